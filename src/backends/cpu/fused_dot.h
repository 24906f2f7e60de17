// Dot products straight from stored weight formats, without converting a row first: fp32 activations against
// F16 / BF16 weights, and Q8 activations (int8, fp32 scale per 32) against Q8_0 / Q4_0 weights with int8 VNNI.
// AVX-512 paths are compiled when the target has them; the scalar loops are the fallback and the reference.
#pragma once
#include <cstdint>
#include <vector>

#include "core/dtype.h"

namespace moeinfer::cpu {

// One block of 32 activations quantized to int8: x ≈ d · q.
struct BlockQ8 {
    float d;
    int8_t q[32];
};

float dot_f32_f16(const float* x, const uint16_t* w, int64_t n);
float dot_f32_bf16(const float* x, const uint16_t* w, int64_t n);

// dst[n] = row of `t` in fp32: vectorized for F16 / BF16, dequantize_row otherwise.
void row_to_f32(DType t, const void* src, float* dst, int64_t n);

// x: [rows, n] fp32 → rows × n/32 blocks (n must be a multiple of 32). Symmetric: d = max|x| / 127.
void quantize_q8_blocks(const float* x, int64_t rows, int64_t n, std::vector<BlockQ8>& out);
// Σ over nb blocks of (weight block · activation block); w points at GGML Q8_0 / Q4_0 blocks.
float dot_q8_0_q8(const void* w, const BlockQ8* x, int64_t nb);
float dot_q4_0_q8(const void* w, const BlockQ8* x, int64_t nb);

}  // namespace moeinfer::cpu
