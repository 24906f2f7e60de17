// Vector loads of F32 / F16 / BF16 weight rows (and fp32 activations), shared by the packed GEMM (f32_gemm.cpp) and
// the decode dot products (fused_dot.cpp). The bf16 arithmetic needs both to round alike — that is what makes a
// sequence's products the same whether its tokens were decoded one by one or verified together — so the rounding
// lives here once.
#pragma once
#ifndef MOEINFER_KERNEL_LEVEL
#error "kernel-private header: include backends/cpu/kernel_variant.h before it"
#endif

#if MOEINFER_AVX512

namespace moeinfer::cpu::MOEINFER_KERNEL_NS {

inline __mmask16 first_n(int64_t n) { return n >= 16 ? __mmask16(0xFFFF) : __mmask16((1u << n) - 1); }

// 16 consecutive elements of a row starting at p (the first `m` lanes; the rest read as zero), as fp32.
template <DType D>
inline __m512 load16(const void* p, __mmask16 m) {
    if constexpr (D == DType::F32) {
        return _mm512_maskz_loadu_ps(m, p);
    } else if constexpr (D == DType::F16) {
        return _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, p));
    } else {  // BF16: the upper half of an fp32
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, p)), 16));
    }
}

#if MOEINFER_AVX512
#if !MOEINFER_AVX512BF16
// fp32 → bf16 bits (in the low half of each lane) as fp32_to_bf16 rounds: nearest even, NaN truncated and quiet.
inline __m512i bf16_bits(__m512 v) {
    const __m512i x = _mm512_castps_si512(v);
    const __m512i lsb = _mm512_and_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(1));
    const __m512i bias = _mm512_add_epi32(lsb, _mm512_set1_epi32(0x7fff));
    const __m512i rounded = _mm512_srli_epi32(_mm512_add_epi32(x, bias), 16);
    const __m512i quiet = _mm512_or_si512(_mm512_srli_epi32(x, 16), _mm512_set1_epi32(0x40));
    return _mm512_mask_mov_epi32(rounded, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q), quiet);
}
#endif

// acc + Σ over each lane's bf16 pair of a · b (VDPBF16PS: the odd elements' product, then the even ones'; both
// products are exact in fp32, so each add is one FMA). The avx512vnni level has no VDPBF16PS: the pairs are split
// into fp32 halves there.
inline __m512 dot_bf16_pairs(__m512 acc, __m512 a, __m512 b) {
#if MOEINFER_AVX512BF16
    return _mm512_dpbf16_ps(acc, (__m512bh)a, (__m512bh)b);
#else
    const __m512i high = _mm512_set1_epi32(int(0xffff0000u));
    const __m512i ai = _mm512_castps_si512(a), bi = _mm512_castps_si512(b);
    const __m512 a_odd = _mm512_castsi512_ps(_mm512_and_si512(ai, high));
    const __m512 b_odd = _mm512_castsi512_ps(_mm512_and_si512(bi, high));
    const __m512 a_even = _mm512_castsi512_ps(_mm512_slli_epi32(ai, 16));
    const __m512 b_even = _mm512_castsi512_ps(_mm512_slli_epi32(bi, 16));
    return _mm512_fmadd_ps(a_even, b_even, _mm512_fmadd_ps(a_odd, b_odd, acc));
#endif
}

// 32 consecutive elements of a row from p (the first n; the rest read as zero) as 16 bf16 pairs: BF16 as stored,
// F16 and F32 rounded to bf16 (nearest even).
template <DType D>
inline __m512 load32_bf16(const void* p, int64_t n) {
    if constexpr (D == DType::BF16) {
        const __mmask32 m = n >= 32 ? __mmask32(0xFFFFFFFFu) : __mmask32((1u << n) - 1);
        return _mm512_castsi512_ps(_mm512_maskz_loadu_epi16(m, p));
    } else {
        const __m512 a = load16<D>(p, first_n(n));
        const __m512 b = load16<D>(static_cast<const uint8_t*>(p) + 16 * (D == DType::F32 ? 4 : 2),
                                   first_n(std::max<int64_t>(0, n - 16)));
#if MOEINFER_AVX512BF16
        return (__m512)_mm512_cvtne2ps_pbh(b, a);
#else
        const __m256i lo = _mm512_cvtepi32_epi16(bf16_bits(a)), hi = _mm512_cvtepi32_epi16(bf16_bits(b));
        return _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1));
#endif
    }
}
#endif

}  // namespace moeinfer::cpu::MOEINFER_KERNEL_NS
#endif
