// Scalar reference (de)quantization of GGML's K-quant super-block formats (Q4_K, Q5_K, Q6_K) and of the Q5_0 /
// Q5_1 formats llama.cpp falls back to when a row is not a multiple of 256. Dequantization is bit-exact with
// llama.cpp's dequantize_row_*; quantization follows its reference search (weighted scale/min fits).
#pragma once
#include <cstdint>
#include <cstring>

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
inline void unpack_scale_min(const uint8_t* s, int j, int& sc, int& m) {
    if (j < 4) {
        sc = s[j] & 63;
        m = s[j + 4] & 63;
    } else {
        sc = (s[j + 4] & 15) | ((s[j - 4] >> 6) << 4);
        m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

// The same 8 scales and 8 mins all at once, byte j of `scales` / `mins` = sub-block j, with word-wide masks over
// the three 4-byte groups (the int8 GEMM's form: one call per super-block instead of eight).
inline void unpack_scales_mins(const uint8_t* s, uint64_t& scales, uint64_t& mins) {
    uint32_t a, b, c;
    std::memcpy(&a, s, 4);
    std::memcpy(&b, s + 4, 4);
    std::memcpy(&c, s + 8, 4);
    const uint32_t sc_hi = (c & 0x0f0f0f0fu) | (((a >> 6) & 0x03030303u) << 4);
    const uint32_t m_hi = ((c >> 4) & 0x0f0f0f0fu) | (((b >> 6) & 0x03030303u) << 4);
    scales = uint64_t(a & 0x3f3f3f3fu) | (uint64_t(sc_hi) << 32);
    mins = uint64_t(b & 0x3f3f3f3fu) | (uint64_t(m_hi) << 32);
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
