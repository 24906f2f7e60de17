// Dot products straight from stored F16 / BF16 weights with fp32 activations, without converting a row first
// (int8 formats: int8_gemm.h).
// AVX-512 paths are compiled when the target has them; the scalar loops are the fallback and the reference.
#pragma once
#include <cstdint>
#include <vector>

#include "backends/cpu/f32_gemm.h"
#include "core/dtype.h"

namespace moeinfer::cpu {

// out[r] = x · w[r] for nrows consecutive rows (row_stride elements apart) of F16 or BF16 weights, in the given
// arithmetic (f32_gemm.h GemmArith: Bf16 forms the same products as the packed GEMM does for prefill; it falls
// back to Fp32 without AVX512-BF16). Four rows share each load of x and keep four independent streams of weight
// loads in flight, which is what decode (memory-bound) needs.
void dot_rows_half(DType wtype, GemmArith arith, const float* x, const uint16_t* w, int64_t row_stride, int64_t nrows,
                   int64_t n, float* out);

// dst[n] = row of `t` in fp32: vectorized for F16 / BF16, dequantize_row otherwise.
void row_to_f32(DType t, const void* src, float* dst, int64_t n);

}  // namespace moeinfer::cpu
