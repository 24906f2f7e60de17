// Scalar conversion of one row between fp32 and the storage dtypes (F32, F16, BF16, Q8_0, Q4_0).
// These are the reference definitions of the block formats; SIMD kernels are tested against them.
#pragma once
#include <cstdint>

#include "core/dtype.h"

namespace moeinfer {

// dst[n] (fp32) <- src (n elements of `t`). Throws std::invalid_argument for a dtype it cannot convert
// or an n that is not a multiple of the block size.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

// dst (n elements of `t`, dtype_row_bytes(t, n) bytes) <- src[n]. Same errors as dequantize_row.
// Q8_0: d = max|x| / 127, q = round(x / d). Q4_0: m = the x with the largest |x|, d = m / -8,
// q = min(15, trunc(x / d + 8.5)), as GGML's reference quantizer, so files we write match llama.cpp's.
void quantize_row(DType t, const float* src, void* dst, int64_t n);

}  // namespace moeinfer
