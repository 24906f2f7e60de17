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
        return (__m512)_mm512_cvtne2ps_pbh(b, a);
    }
}
#endif

}  // namespace moeinfer::cpu::MOEINFER_KERNEL_NS
#endif
