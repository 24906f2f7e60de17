// Scalar reference (de)quantization of GGML's K-quant super-block formats (Q4_K, Q5_K, Q6_K) and of the Q5_0 /
// Q5_1 formats llama.cpp falls back to when a row is not a multiple of 256. Dequantization is bit-exact with
// llama.cpp's dequantize_row_*; quantization follows its reference search (weighted scale/min fits).
#pragma once
#include <cstdint>

namespace moeinfer {

constexpr int kQK_K = 256;  // elements per K-quant super-block

// Block layouts (little-endian, packed, as ggml-common.h):
//   Q4_K (144 B) = fp16 d, fp16 dmin, u8 scales[12] (8 x 6-bit scale + 8 x 6-bit min), u8 qs[128] (nibbles)
//   Q5_K (176 B) = Q4_K's header, u8 qh[32] (5th bits), u8 qs[128]
//   Q6_K (210 B) = u8 ql[128] (low 4 bits), u8 qh[64] (high 2 bits), i8 scales[16], fp16 d
//   Q5_0 (22 B)  = fp16 d, u8 qh[4], u8 qs[16];   Q5_1 (24 B) = fp16 d, fp16 m, u8 qh[4], u8 qs[16]
// n must be a multiple of the block size (256, or 32 for Q5_0/Q5_1); callers check (dequant.cpp does).
// The 6-bit scale and min of sub-block j (0..7) from the 12 packed scale bytes of a Q4_K / Q5_K block: sub-blocks
// 0-3 keep sc and m in the low 6 bits of bytes 0-3 and 4-7; sub-blocks 4-7 put their low 4 bits in bytes 8-11
// (sc low nibble, m high nibble) and their top 2 bits in the spare top bits of bytes 0-3 (sc) and 4-7 (m).
// Inline: the int8 kernels call it per sub-block in the decode hot loop.
inline void unpack_scale_min(const uint8_t* s, int j, int& sc, int& m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

void dequantize_row_q4_k(const void* src, float* dst, int64_t n);
void dequantize_row_q5_k(const void* src, float* dst, int64_t n);
void dequantize_row_q6_k(const void* src, float* dst, int64_t n);
void dequantize_row_q5_0(const void* src, float* dst, int64_t n);
void dequantize_row_q5_1(const void* src, float* dst, int64_t n);

void quantize_row_q4_k(const float* src, void* dst, int64_t n);
void quantize_row_q5_k(const float* src, void* dst, int64_t n);
void quantize_row_q6_k(const float* src, void* dst, int64_t n);
void quantize_row_q5_0(const float* src, void* dst, int64_t n);
void quantize_row_q5_1(const float* src, void* dst, int64_t n);

}  // namespace moeinfer
