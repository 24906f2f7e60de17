// SwiGLU activation: out = silu(gate) · up, elementwise over bf16 rows with fp32 math. Pure bandwidth: a 2-D grid
// (row, column chunk) with one element per thread keeps every access coalesced for any n, odd sizes included.
#include "backends/cuda/ops.h"
#include "backends/cuda/swiglu.cuh"

namespace moeinfer::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void silu_mul_kernel(const bf16* __restrict__ gate, const bf16* __restrict__ up, int64_t in_stride,
                                int64_t n, bf16* __restrict__ out) {
    const int64_t row = blockIdx.x;
    const int64_t i = int64_t(blockIdx.y) * blockDim.x + threadIdx.x;
    if (i >= n) return;
    const float g = __bfloat162float(gate[row * in_stride + i]);
    const float u = __bfloat162float(up[row * in_stride + i]);
    out[row * n + i] = __float2bfloat16(silu_times(g, u));
}

}  // namespace

void silu_mul(const bf16* gate, const bf16* up, int64_t in_stride, int64_t rows, int64_t n, bf16* out,
              cudaStream_t stream) {
    if (rows == 0 || n == 0) return;
    if ((n + kThreads - 1) / kThreads > 65535) throw std::invalid_argument("cuda::silu_mul: n too large");
    const dim3 grid(rows, (n + kThreads - 1) / kThreads);
    silu_mul_kernel<<<grid, kThreads, 0, stream>>>(gate, up, in_stride, n, out);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

}  // namespace moeinfer::cuda
