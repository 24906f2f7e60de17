// Prefill products of block-quantized weights (Q4_0, Q8_0, Q4_K, Q5_K, Q6_K) in panels of 16 rows unpacked once
// into VNNI order, for calls with enough tokens to pay for the unpack (panel_gemm.cpp).
#pragma once
#include <cstdint>

#include "backends/cpu/int8_gemm.h"
#include "core/tensor.h"

namespace moeinfer::cpu {

// Fewest tokens a panel call takes (Q6_K's bound is higher, in panel_gemm.cpp); Q8Activations builds its token
// tiles only for batches of at least this many.
constexpr int64_t kPanelMinTokens = 16;

// The int8_gemm / kquant_gemm contract (y[t · y_stride + r] for r in [row_begin, row_end), t < nt) on the whole
// 16-row panels from row_begin; returns the first row it did not compute (row_begin itself when the dtype, the token
// count or the machine does not suit), which the caller finishes with the row kernels.
int64_t panel_gemm(const Tensor& w, int64_t row_begin, int64_t row_end, const Q8Activations& a, int64_t t0, int64_t nt,
                   float* y, int64_t y_stride);

}  // namespace moeinfer::cpu
