// Cache-blocked fp32 GEMM for prefill against F32 / F16 / BF16 weights: y = x · Wᵀ in the packed-panel
// outer-product form.
//
// Blocking, from the outside in (one thread, its own range of weight rows):
//   token chunk (256 tokens) → K block (kc = 512) → panel of MR = 32 weight rows → block of at most NR = 12 tokens.
//  - x is packed per (token chunk, K block) transposed as [kc][tokens] (fp32), so for one k the activations the
//    micro-kernel broadcasts are adjacent. At 512 × 256 × 4 B it stays in L2 (1 MiB) while every row panel of the
//    thread streams over it.
//  - a weight panel is converted to fp32 once and packed transposed as [kc][32], so for one k the 32 weights are two
//    full vectors. All token blocks of the chunk reuse it from L1 / L2: each weight element is converted once per
//    call (per 256 tokens) and then read T / NR times.
//  - the micro-kernel keeps 2 × NR vector accumulators (32 rows × NR tokens); per k it does 2 vector loads and NR
//    broadcasts for 2·NR FMAs (the dot-product form it replaces did one load per FMA, from rows too long for L1).
//  - y (the rows of one token are contiguous) is read into the accumulators at the start of each K block after the
//    first and written back with masked full-vector stores, so every output is one FMA chain over k = 0..K-1 in
//    order: the result does not depend on how rows are split over threads.
//  - weight panels come from DRAM as 32 short row streams the hardware prefetcher does not pick up; the micro-kernel
//    calls of one panel prefetch the next panel into L2 (+8% on a dense F16 prefill; two or three panels ahead: no
//    better).
// Packing transposes 16 × 16 blocks in registers (64 shuffles per 256 elements), which run beside the FMAs' pipes:
// about 6% of the time at 128 tokens, 15-20% at 40, mostly waiting for the weight loads. A variant with half the
// shuffles (F16 element pairs transposed as 32-bit units, converted in the micro-kernel) measured no faster.
#pragma once
#include <cstdint>

#include "core/tensor.h"

namespace moeinfer::cpu {

// Whether this build has the packed kernel (it needs AVX-512); without it callers keep the dot-product micro_gemm.
bool f32_gemm_available();
// Whether it also has the bf16-pair arithmetic (AVX512-BF16).
bool bf16_gemm_available();
// Whether the bf16 products of 32 tokens and more run on AMX tiles (amx_gemm.cpp): a CPU with AMX-BF16 whose OS
// grants the tile state, unless MOEINFER_AMX=0.
bool amx_available();

// How the products are computed. Fp32: weights converted to fp32, one FMA per multiply-add, exact products of the
// stored weights. Bf16: weights and activations rounded to bf16 (nearest even), products and sums in fp32, two
// multiply-adds per VDPBF16PS for the issue cost of one FMA — prefill against F16 / BF16 weights is compute-bound,
// so this nearly halves it. For BF16 weights only the activations are rounded (as llama.cpp does for BF16 files);
// F16 weights also lose their 3 lowest mantissa bits (relative error ≤ 2⁻⁹ per weight, finer than Q8_0's blocks).
enum class GemmArith { Fp32, Bf16 };

// y[t · y_stride + r] = Σ_k w[r, k] · x[t · K + k] for r in [row_begin, row_end), t < T, with K = w.cols() and
// w.dtype F32, F16 or BF16. Runs in the calling thread. Only call when f32_gemm_available() (and, for Bf16,
// bf16_gemm_available()).
void f32_gemm(const float* x, int64_t T, const Tensor& w, int64_t row_begin, int64_t row_end, float* y,
              int64_t y_stride, GemmArith arith = GemmArith::Fp32);

}  // namespace moeinfer::cpu
