// Fused dot kernels (see fused_dot.h).
#include "backends/cpu/fused_dot.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/check.h"
#include "core/half.h"
#include "formats/dequant.h"

#include "backends/cpu/kernel_variant.h"  // after every other include but the kernel-private headers
#include "backends/cpu/float_rows.h"
#include "backends/cpu/simd.h"

namespace moeinfer::cpu::MOEINFER_KERNEL_NS {

#if MOEINFER_AVX512
// 16 F16 or BF16 weights as fp32.
template <bool BF16>
inline __m512 half16_to_f32(const uint16_t* p) {
    const __m256i h = _mm256_loadu_si256((const __m256i*)p);
    if constexpr (BF16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}
#endif
#if MOEINFER_AVX2
// 8 F16 or BF16 weights as fp32.
template <bool BF16>
inline __m256 half8_to_f32(const uint16_t* p) {
    const __m128i h = _mm_loadu_si128((const __m128i*)p);
    if constexpr (BF16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}
#endif

namespace {

template <bool BF16, int NR>
void dot_rows_exact(const float* x, const uint16_t* w, int64_t stride, int64_t n, float* out) {
    int64_t i = 0;
    float sum[NR] = {};
#if MOEINFER_AVX512
    __m512 acc[NR];
    for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        if constexpr (NR > 1) prefetch_next_rows(w + (NR - 1) * stride, stride * 2, NR * 32, i / 16);
        const __m512 xv = _mm512_loadu_ps(x + i);
        for (int r = 0; r < NR; ++r) {
            acc[r] = _mm512_fmadd_ps(xv, half16_to_f32<BF16>(w + r * stride + i), acc[r]);
        }
    }
    for (int r = 0; r < NR; ++r) sum[r] = _mm512_reduce_add_ps(acc[r]);
#elif MOEINFER_AVX2
    __m256 acc[NR];
    for (int r = 0; r < NR; ++r) acc[r] = _mm256_setzero_ps();
    for (; i + 8 <= n; i += 8) {
        if constexpr (NR > 1) prefetch_next_rows(w + (NR - 1) * stride, stride * 2, NR * 16, i / 8);
        const __m256 xv = _mm256_loadu_ps(x + i);
        for (int r = 0; r < NR; ++r) acc[r] = _mm256_fmadd_ps(xv, half8_to_f32<BF16>(w + r * stride + i), acc[r]);
    }
    for (int r = 0; r < NR; ++r) sum[r] = hsum256(acc[r]);
#endif
    for (; i < n; ++i)
        for (int r = 0; r < NR; ++r) sum[r] += x[i] * (BF16 ? bf16_to_fp32(w[r * stride + i]) : fp16_to_fp32(w[r * stride + i]));
    for (int r = 0; r < NR; ++r) out[r] = sum[r];
}

// The bf16 arithmetic of GemmArith::Bf16 for a few tokens: x and the weights rounded to bf16, each product exact in
// fp32, sums in fp32 — the products the packed GEMM forms for prefill, so a sequence's logits do not depend on
// whether its tokens came in one step or many (speculative verification, chunked prefill, overlapped decode).
template <bool BF16, int NR>
void dot_rows_bf16_arith(const float* x, const uint16_t* w, int64_t stride, int64_t n, float* out) {
    int64_t i = 0;
    float sum[NR] = {};
#if MOEINFER_AVX512
    __m512 acc[NR];
    for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        if constexpr (NR > 1) prefetch_next_rows(w + (NR - 1) * stride, stride * 2, NR * 64, i / 32);
        // The same rounding as the packed GEMM's panels (float_rows.h), so decode and prefill form the same products.
        constexpr DType kW = BF16 ? DType::BF16 : DType::F16;
        const __m512 xv = load32_bf16<DType::F32>(x + i, 32);
        for (int r = 0; r < NR; ++r) acc[r] = dot_bf16_pairs(acc[r], xv, load32_bf16<kW>(w + r * stride + i, 32));
    }
    for (int r = 0; r < NR; ++r) sum[r] = _mm512_reduce_add_ps(acc[r]);
#endif
    for (; i < n; ++i) {
        const float xb = bf16_to_fp32(fp32_to_bf16(x[i]));
        for (int r = 0; r < NR; ++r) {
            const uint16_t v = w[r * stride + i];
            sum[r] += xb * (BF16 ? bf16_to_fp32(v) : bf16_to_fp32(fp32_to_bf16(fp16_to_fp32(v))));
        }
    }
    for (int r = 0; r < NR; ++r) out[r] = sum[r];
}

template <bool BF16, bool kBf16Arith>
void dot_rows(const float* x, const uint16_t* w, int64_t stride, int64_t nrows, int64_t n, float* out) {
    int64_t r = 0;
    if constexpr (kBf16Arith) {
        for (; r + 4 <= nrows; r += 4) dot_rows_bf16_arith<BF16, 4>(x, w + r * stride, stride, n, out + r);
        for (; r < nrows; ++r) dot_rows_bf16_arith<BF16, 1>(x, w + r * stride, stride, n, out + r);
    } else {
        for (; r + 4 <= nrows; r += 4) dot_rows_exact<BF16, 4>(x, w + r * stride, stride, n, out + r);
        for (; r < nrows; ++r) dot_rows_exact<BF16, 1>(x, w + r * stride, stride, n, out + r);
    }
}

}  // namespace

void dot_rows_half(DType wtype, GemmArith arith, const float* x, const uint16_t* w, int64_t row_stride, int64_t nrows,
                   int64_t n, float* out) {
    MOE_CHECK(wtype == DType::F16 || wtype == DType::BF16, "dot_rows_half: weights must be F16 or BF16");
    const bool bf16 = arith == GemmArith::Bf16 && bf16_gemm_available();
    if (wtype == DType::F16)
        return bf16 ? dot_rows<false, true>(x, w, row_stride, nrows, n, out) : dot_rows<false, false>(x, w, row_stride, nrows, n, out);
    bf16 ? dot_rows<true, true>(x, w, row_stride, nrows, n, out) : dot_rows<true, false>(x, w, row_stride, nrows, n, out);
}

void row_to_f32(DType t, const void* src, float* dst, int64_t n) {
    if (t != DType::F16 && t != DType::BF16) return dequantize_row(t, src, dst, n);
    const uint16_t* w = static_cast<const uint16_t*>(src);
    const bool bf16 = t == DType::BF16;
    int64_t i = 0;
#if MOEINFER_AVX512
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(dst + i, bf16 ? half16_to_f32<true>(w + i) : half16_to_f32<false>(w + i));
#elif MOEINFER_AVX2
    for (; i + 8 <= n; i += 8) _mm256_storeu_ps(dst + i, bf16 ? half8_to_f32<true>(w + i) : half8_to_f32<false>(w + i));
#endif
    for (; i < n; ++i) dst[i] = bf16 ? bf16_to_fp32(w[i]) : fp16_to_fp32(w[i]);
}

}  // namespace moeinfer::cpu::MOEINFER_KERNEL_NS
