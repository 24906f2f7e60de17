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

// The 8 bytes of v as 8 floats.
inline __m256 bytes_to_floats(uint64_t v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(_mm_cvtsi64_si128(int64_t(v)))); }

// The 8 sub-block scales d·sc_j and mins dmin·m_j of the Q4_K / Q5_K super-block at blk, as floats.
inline void q4k_scales(const uint8_t* blk, __m256& scf, __m256& mf) {
    uint64_t sc_bytes, m_bytes;
    unpack_scales_mins(blk + 4, sc_bytes, m_bytes);
    scf = _mm256_mul_ps(bytes_to_floats(sc_bytes), _mm256_set1_ps(fp16_at(blk)));
    mf = _mm256_mul_ps(bytes_to_floats(m_bytes), _mm256_set1_ps(fp16_at(blk + 2)));
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
