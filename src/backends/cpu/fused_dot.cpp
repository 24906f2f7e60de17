// Fused dot kernels (see fused_dot.h). The int8 path multiplies |x| (unsigned) by w·sign(x) (signed) with
// VPDPBUSD, which equals x·w exactly; the per-block int32 sums are scaled by d_w · d_x in fp32.
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

void quantize_q8_blocks(const float* x, int64_t rows, int64_t n, std::vector<BlockQ8>& out) {
    const int64_t nb = n / 32;
    out.resize(rows * nb);
    for (int64_t r = 0; r < rows; ++r) {
        for (int64_t b = 0; b < nb; ++b) {
            const float* v = x + r * n + b * 32;
            float amax = 0;
            for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
            BlockQ8& q = out[r * nb + b];
            q.d = amax / 127.0f;
            const float inv = amax > 0 ? 127.0f / amax : 0.0f;
            for (int j = 0; j < 32; ++j) q.q[j] = static_cast<int8_t>(std::lrintf(v[j] * inv));
        }
    }
}

namespace {

constexpr int kQ8_0Bytes = 34, kQ4_0Bytes = 18;

#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
// Σ_j x[j]·w[j] over 32 int8 lanes, as 8 int32 partial sums.
inline __m256i dot32_i8(__m256i w, __m256i x) {
    const __m256i ax = _mm256_sign_epi8(x, x);
    const __m256i sw = _mm256_sign_epi8(w, x);
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), ax, sw);
}
inline float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}
#endif

}  // namespace

namespace {

// Q8_0 block: fp16 d + 32 int8. Q4_0 block: fp16 d + 16 bytes, low nibbles = elements 0..15, high = 16..31,
// value = nibble − 8. Each unpacker yields the block's 32 int8 weights.
struct Q8_0Block {
    static constexpr int kBytes = kQ8_0Bytes;
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    static __m256i unpack(const uint8_t* q) { return _mm256_loadu_si256((const __m256i*)q); }
#endif
    static int32_t at(const uint8_t* q, int j) { return int8_t(q[j]); }
};
struct Q4_0Block {
    static constexpr int kBytes = kQ4_0Bytes;
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    static __m256i unpack(const uint8_t* q) {
        const __m128i packed = _mm_loadu_si128((const __m128i*)q), low = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
        const __m128i lo = _mm_sub_epi8(_mm_and_si128(packed, low), eight);
        const __m128i hi = _mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(packed, 4), low), eight);
        return _mm256_set_m128i(hi, lo);
    }
#endif
    static int32_t at(const uint8_t* q, int j) { return int32_t(j < 16 ? q[j] & 15 : q[j - 16] >> 4) - 8; }
};

template <typename Block>
float dot_blocks_q8(const uint8_t* w, const BlockQ8* x, int64_t nb) {
#if defined(__AVX512VNNI__) && defined(__AVX512VL__)
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b, w += Block::kBytes) {
        uint16_t dh;
        std::memcpy(&dh, w, 2);
        const __m256i xq = _mm256_loadu_si256((const __m256i*)x[b].q);
        const __m256 s = _mm256_cvtepi32_ps(dot32_i8(Block::unpack(w + 2), xq));
        acc = _mm256_fmadd_ps(_mm256_set1_ps(fp16_to_fp32(dh) * x[b].d), s, acc);
    }
    return hsum8(acc);
#else
    float sum = 0;
    for (int64_t b = 0; b < nb; ++b, w += Block::kBytes) {
        uint16_t dh;
        std::memcpy(&dh, w, 2);
        int32_t s = 0;
        for (int j = 0; j < 32; ++j) s += Block::at(w + 2, j) * x[b].q[j];
        sum += fp16_to_fp32(dh) * x[b].d * float(s);
    }
    return sum;
#endif
}

}  // namespace

float dot_q8_0_q8(const void* w, const BlockQ8* x, int64_t nb) {
    return dot_blocks_q8<Q8_0Block>(static_cast<const uint8_t*>(w), x, nb);
}

float dot_q4_0_q8(const void* w, const BlockQ8* x, int64_t nb) {
    return dot_blocks_q8<Q4_0Block>(static_cast<const uint8_t*>(w), x, nb);
}

}  // namespace moeinfer::cpu
