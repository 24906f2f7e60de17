// Fused dot kernels (see fused_dot.h).
#include "backends/cpu/fused_dot.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "core/half.h"
#include "formats/dequant.h"

#if defined(__AVX512F__)
#include <immintrin.h>
#endif

namespace moeinfer::cpu {

float dot_f32_f16(const float* x, const uint16_t* w, int64_t n) {
    int64_t i = 0;
    float sum = 0;
#if defined(__AVX512F__)
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(w + i))), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16),
                             _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(w + i + 16))), a1);
    }
    sum = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#endif
    for (; i < n; ++i) sum += x[i] * fp16_to_fp32(w[i]);
    return sum;
}

#if defined(__AVX512F__)
static inline __m512 bf16x16_to_f32(const uint16_t* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i*)p)), 16));
}
#endif

float dot_f32_bf16(const float* x, const uint16_t* w, int64_t n) {
    int64_t i = 0;
    float sum = 0;
#if defined(__AVX512F__)
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i), bf16x16_to_f32(w + i), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(x + i + 16), bf16x16_to_f32(w + i + 16), a1);
    }
    sum = _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
#endif
    for (; i < n; ++i) sum += x[i] * bf16_to_fp32(w[i]);
    return sum;
}

void row_to_f32(DType t, const void* src, float* dst, int64_t n) {
#if defined(__AVX512F__)
    if (t == DType::F16 || t == DType::BF16) {
        const uint16_t* w = static_cast<const uint16_t*>(src);
        int64_t i = 0;
        for (; i + 16 <= n; i += 16)
            _mm512_storeu_ps(dst + i, t == DType::F16 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i*)(w + i)))
                                                      : bf16x16_to_f32(w + i));
        for (; i < n; ++i) dst[i] = t == DType::F16 ? fp16_to_fp32(w[i]) : bf16_to_fp32(w[i]);
        return;
    }
#endif
    dequantize_row(t, src, dst, n);
}

}  // namespace moeinfer::cpu
