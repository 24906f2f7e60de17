// The MoE combine of one output element, shared by combine_rows (moe_routing.cu) and the combine folded into the
// residual add + norm (rms_norm.cu), so both compute the same sums in the same order, bit for bit.
#pragma once
#include <cuda_bf16.h>

#include <cstdint>

namespace moeinfer::cuda {

// acc + Σ_slot weights[t·k + slot] · y[slot_row[t·k + slot], i], added in slot order (y: [rows, n] bf16).
// slot_row == nullptr: row t·k + slot (decode's direct expert rows), which spares the chain the slot_row load before
// the y loads can be issued.
__device__ __forceinline__ float add_expert_rows(float acc, const __nv_bfloat16* __restrict__ y,
                                                 const int32_t* __restrict__ slot_row,
                                                 const float* __restrict__ weights, int64_t k, int64_t n, int64_t t,
                                                 int64_t i) {
#pragma unroll 8  // the slots' loads in flight together
    for (int64_t s = 0; s < k; ++s) {
        const int64_t row = slot_row ? int64_t(slot_row[t * k + s]) : t * k + s;
        acc += weights[t * k + s] * __bfloat162float(y[row * n + i]);
    }
    return acc;
}

}  // namespace moeinfer::cuda
