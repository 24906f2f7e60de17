// Matrix products against weights in their stored dtype (F32, F16, BF16, Q8_0, Q4_0): y = x · Wᵀ.
// Weight rows are converted to fp32 a tile at a time into a per-thread buffer, never the whole matrix.
#pragma once
#include <cstdint>
#include <vector>

#include "backends/cpu/f32_gemm.h"
#include "core/tensor.h"

namespace moeinfer::cpu {

// The arithmetic of every product against F16 / BF16 weights (f32_gemm.h GemmArith), decode and prefill alike, so
// a sequence's logits do not depend on how its tokens were batched. Default Bf16 where the CPU has AVX512-BF16:
// activations (and F16 weights) rounded to bf16, products exact and sums in fp32 — the precision GPU engines run
// bf16 models at, finer than the int8 activations of every quantized format, and about 1.6× the prefill rate of
// fp32 FMAs (which is where llama.cpp's F16 path runs). MOEINFER_BF16_GEMM=0 in the environment selects Fp32, the
// stored weights exactly (the HF golden tests hold that form to 2e-3 in logprob; the bf16 form to HF's own bf16).
GemmArith float_gemm_arith();
void set_float_gemm_arith(GemmArith arith);  // Bf16 is honoured only where bf16_gemm_available()

// y[t, r] = sum_i x[t, i] * w[r, i] for r in [row_begin, row_end). x: [T, in]; w: [out, in]; y row stride y_stride.
// Runs in the calling thread: the building block of matmul and grouped_matmul.
void matmul_rows(const float* x, int64_t T, const Tensor& w, int64_t row_begin, int64_t row_end, float* y,
                 int64_t y_stride);

// y[T, out] = x[T, in] · w[out, in]ᵀ, split over output rows on the thread pool.
void matmul(const float* x, int64_t T, const Tensor& w, float* y);

// One group of a grouped matmul: rows [row_begin, row_end) of x are multiplied by `weight`.
struct MatmulGroup {
    const Tensor* weight;  // [out, in]
    int64_t row_begin, row_end;
};

// For every group g: y[g rows, out] = x[g rows, in] · g.weightᵀ. All groups share out/in sizes; the work of every
// group is split into (group, output-row tile) items and run as one parallel region (the MoE expert GEMM).
void grouped_matmul(const float* x, const std::vector<MatmulGroup>& groups, int64_t out, float* y);

// The general form: each job multiplies rows [row_begin, row_end) of x [·, in] by its own weight [out_j, in] into
// y (row stride y_stride, its first row = x row row_begin). All jobs run in one parallel region over (job, tile)
// items, with x quantized once — e.g. q, k and v, or gate and up, of one input: one region instead of three.
struct MatmulJob {
    const Tensor* weight;
    int64_t row_begin, row_end;
    float* y;
    int64_t y_stride;
};
void matmul_jobs(const float* x, const std::vector<MatmulJob>& jobs);

}  // namespace moeinfer::cpu
