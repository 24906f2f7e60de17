// Register-blocked fp32 micro-kernel for prefill-sized products: NR weight rows × NT tokens accumulate in NR·NT
// vector registers, so each loaded vector feeds several FMAs (a plain dot product does one FMA per two loads).
#pragma once
#include <cstdint>

namespace moeinfer::cpu {

// y[t · y_stride + r] = Σ_k w[r · K + k] · x[t · x_stride + k] for r < nr ≤ 4, t < nt ≤ 4.
void micro_gemm(const float* w, int64_t nr, const float* x, int64_t x_stride, int64_t nt, int64_t K, float* y,
                int64_t y_stride);

}  // namespace moeinfer::cpu
