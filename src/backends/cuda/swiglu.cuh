// SwiGLU's elementwise step, silu(gate) · up in fp32, shared by every kernel that applies it (silu_mul, the gemv
// reading a fused gate|up row, the grouped GEMM's epilogue) so their bf16 results agree bit for bit.
#pragma once
#include "backends/cuda/common.h"

namespace moeinfer::cuda {

__device__ __forceinline__ float silu_times(float gate, float up) { return gate / (1.0f + __expf(-gate)) * up; }

}  // namespace moeinfer::cuda
