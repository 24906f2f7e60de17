// K-quant super-blocks (256 elements) unpacked to one byte per element in 256-bit registers, shared by the decode row
// kernels (kquant_gemm.cpp) and the prefill panels (panel_gemm.cpp).
#pragma once
#ifndef MOEINFER_KERNEL_LEVEL
#error "kernel-private header: include backends/cpu/kernel_variant.h before it"
#endif

#include "backends/cpu/simd.h"  // fp16_at with F16C

namespace moeinfer::cpu::MOEINFER_KERNEL_NS {

constexpr int kQ4KBytes = 144, kQ5KBytes = 176, kQ6KBytes = 210;  // bytes per super-block

#if MOEINFER_AVX2

// Q4_K / Q5_K chunk c (0..3) of the super-block at blk: lo = the 32 elements of sub-block 2c, hi = those of 2c + 1,
// each 0..15 (Q4_K) or 0..31 (Q5_K). The quants are 32 bytes of nibbles per chunk (low = 2c, high = 2c + 1) after
// 16 bytes of scales (Q5_K: and 32 bytes qh, whose bit 2c / 2c + 1 of byte l is element l's fifth bit; qh is that
// load, made once per super-block).
template <bool Q5>
inline void q45k_chunk(const uint8_t* blk, int c, __m256i qh, __m256i& lo, __m256i& hi) {
    const __m256i low = _mm256_set1_epi8(0x0f);
    const __m256i packed = _mm256_loadu_si256((const __m256i*)(blk + (Q5 ? 48 : 16) + 32 * c));
    lo = _mm256_and_si256(packed, low);
    hi = _mm256_and_si256(_mm256_srli_epi16(packed, 4), low);
    if constexpr (Q5) {
        const __m256i bit = _mm256_set1_epi8(1);
        lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c), bit), 4));
        hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * c + 1), bit), 4));
    }
}

// unpack_scales_mins (formats/kquants.h) in vector registers, the same bytes: of s's three 4-byte groups a, b, c,
// bytes 0-7 = the scales [a & 63, (c & 15) | (a >> 6) << 4], bytes 8-15 = the mins [b & 63, (c >> 4) | (b >> 6) << 4].
// About a third of the instructions of the scalar form, which was a quarter of a K-quant decode row's.
inline __m128i q4k_scale_bytes(const uint8_t* s) {
    const __m128i v = _mm_loadu_si128((const __m128i*)s);  // 12 of the 16 bytes used; the block goes on after them
    const __m128i acbc = _mm_shuffle_epi8(v, _mm_setr_epi8(0, 1, 2, 3, 8, 9, 10, 11, 4, 5, 6, 7, 8, 9, 10, 11));
    const __m128i low = _mm_or_si128(_mm_and_si128(acbc, _mm_setr_epi32(0x3f3f3f3f, 0x0f0f0f0f, 0x3f3f3f3f, 0)),
                                     _mm_and_si128(_mm_srli_epi16(acbc, 4), _mm_setr_epi32(0, 0, 0, 0x0f0f0f0f)));
    const __m128i zazb = _mm_shuffle_epi8(v, _mm_setr_epi8(-1, -1, -1, -1, 0, 1, 2, 3, -1, -1, -1, -1, 4, 5, 6, 7));
    return _mm_or_si128(low, _mm_and_si128(_mm_srli_epi16(zazb, 2), _mm_set1_epi8(0x30)));  // (x >> 6) << 4
}

// The 8 sub-block scales d·sc_j and mins dmin·m_j of the Q4_K / Q5_K super-block at blk, as floats.
inline void q4k_scales(const uint8_t* blk, __m256& scf, __m256& mf) {
    const __m128i sm = q4k_scale_bytes(blk + 4);
    int32_t d_dmin;
    std::memcpy(&d_dmin, blk, 4);
    const __m128 dd = _mm_cvtph_ps(_mm_cvtsi32_si128(d_dmin));  // [d, dmin]
    scf = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(sm)), _mm256_broadcastss_ps(dd));
    mf = _mm256_mul_ps(_mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_unpackhi_epi64(sm, sm))),
                       _mm256_broadcastss_ps(_mm_movehdup_ps(dd)));
}

// Q6_K half h (0, 1) of the super-block at blk: q[c] = elements 128h + 32c .. 128h + 32c + 31, each 0..63 (the
// stored value, before the −32): low or high nibbles of ql[64h ..] with a 2-bit field of qh[32h ..] on top.
inline void q6k_half(const uint8_t* blk, int h, __m256i (&q)[4]) {
    const __m256i low = _mm256_set1_epi8(0x0f), two = _mm256_set1_epi8(3);
    const __m256i l0 = _mm256_loadu_si256((const __m256i*)(blk + 64 * h));
    const __m256i l1 = _mm256_loadu_si256((const __m256i*)(blk + 64 * h + 32));
    const __m256i hb = _mm256_loadu_si256((const __m256i*)(blk + 128 + 32 * h));
    auto top = [&](int shift) {  // 2-bit field moved to bits 4-5
        return _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hb, shift), two), 4);
    };
    q[0] = _mm256_or_si256(_mm256_and_si256(l0, low), top(0));
    q[1] = _mm256_or_si256(_mm256_and_si256(l1, low), top(2));
    q[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l0, 4), low), top(4));
    q[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(l1, 4), low), top(6));
}

#endif

}  // namespace moeinfer::cpu::MOEINFER_KERNEL_NS
