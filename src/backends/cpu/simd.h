// Small vector primitives shared by the CPU kernels, in the AVX-512 / AVX2 form of the level being compiled
// (kernel_variant.h); the scalar loop is the reference and the generic level's code.
#pragma once
#ifndef MOEINFER_KERNEL_LEVEL
#error "kernel-private header: include backends/cpu/kernel_variant.h before it"
#endif

namespace moeinfer::cpu::MOEINFER_KERNEL_NS {

// core/half.h's conversions were compiled for the baseline (no F16C): inside the kernels these take their place —
// unqualified calls find them first — so a block's fp16 scale costs one instruction from the AVX2 level up.
inline float fp16_to_fp32(uint16_t h) {
#if MOEINFER_AVX2
    return _cvtsh_ss(h);
#else
    return moeinfer::fp16_to_fp32(h);
#endif
}
inline float fp16_at(const void* p) {
    uint16_t h;
    std::memcpy(&h, p, 2);
    return fp16_to_fp32(h);
}

// Decode kernels read each weight once, NR rows at a time. NR rows of a few KB are NR short streams the hardware
// prefetcher hardly trains on (perf: the kernels stalled on their loads). A matrix's rows are contiguous, so the
// next NR rows start where the last one ends: at step i of the current rows, fetch slice i of the next rows
// (slice_bytes = NR × the bytes a step reads per row), so they arrive a whole block of rows — hundreds of ns —
// ahead. Prefetches never fault, so the slices past a matrix's end are harmless.
inline void prefetch_next_rows(const void* last_row, int64_t row_bytes, int64_t slice_bytes, int64_t i) {
#if MOEINFER_AVX2
    const char* p = static_cast<const char*>(last_row) + row_bytes + i * slice_bytes;
    for (int64_t l = 0; l < slice_bytes; l += 64) _mm_prefetch(p + l, _MM_HINT_T0);
#else
    (void)last_row, (void)row_bytes, (void)slice_bytes, (void)i;
#endif
}

#if MOEINFER_AVX2
// The sum of 8 lanes.
inline float hsum256(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}
#endif

inline float dot_f32(const float* a, const float* b, int64_t n) {
    int64_t i = 0;
    float sum = 0.f;
#if MOEINFER_AVX512
    __m512 acc0 = _mm512_setzero_ps(), acc1 = _mm512_setzero_ps();
    for (; i + 32 <= n; i += 32) {
        acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
        acc1 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i + 16), _mm512_loadu_ps(b + i + 16), acc1);
    }
    for (; i + 16 <= n; i += 16) acc0 = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc0);
    sum = _mm512_reduce_add_ps(_mm512_add_ps(acc0, acc1));
#elif MOEINFER_AVX2
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    for (; i + 16 <= n; i += 16) {
        acc0 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i), _mm256_loadu_ps(b + i), acc0);
        acc1 = _mm256_fmadd_ps(_mm256_loadu_ps(a + i + 8), _mm256_loadu_ps(b + i + 8), acc1);
    }
    sum = hsum256(_mm256_add_ps(acc0, acc1));
#endif
    for (; i < n; ++i) sum += a[i] * b[i];
    return sum;
}

// y[i] += a * x[i]
inline void axpy_f32(float a, const float* x, float* y, int64_t n) {
    int64_t i = 0;
#if MOEINFER_AVX512
    __m512 va = _mm512_set1_ps(a);
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
#elif MOEINFER_AVX2
    __m256 va = _mm256_set1_ps(a);
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(va, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
#endif
    for (; i < n; ++i) y[i] += a * x[i];
}

#if MOEINFER_AVX512
// In-register transpose of a 16 × 16 block: v[i] lane j ← v[j] lane i. Interleave pairs of rows (32-bit), then
// pairs of pairs (64-bit), which leaves each 128-bit lane holding a 4 × 4 sub-block; two rounds of 128-bit lane
// shuffles then transpose the 4 × 4 arrangement of those lanes.
inline void transpose16(__m512 v[16]) {
    __m512 t[16], u[16];
    for (int i = 0; i < 8; ++i) {
        t[2 * i] = _mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]);
    }
    for (int i = 0; i < 4; ++i) {
        const __m512d a = _mm512_castps_pd(t[4 * i]), b = _mm512_castps_pd(t[4 * i + 1]);
        const __m512d c = _mm512_castps_pd(t[4 * i + 2]), d = _mm512_castps_pd(t[4 * i + 3]);
        u[4 * i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
        u[4 * i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
        u[4 * i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
        u[4 * i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    // u[4i + j], 128-bit lane L: column 4L + j of rows 4i..4i+3.
    for (int j = 0; j < 4; ++j) {
        const __m512 a = _mm512_shuffle_f32x4(u[j], u[4 + j], 0x44), b = _mm512_shuffle_f32x4(u[j], u[4 + j], 0xEE);
        const __m512 c = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0x44);
        const __m512 d = _mm512_shuffle_f32x4(u[8 + j], u[12 + j], 0xEE);
        v[j] = _mm512_shuffle_f32x4(a, c, 0x88);
        v[4 + j] = _mm512_shuffle_f32x4(a, c, 0xDD);
        v[8 + j] = _mm512_shuffle_f32x4(b, d, 0x88);
        v[12 + j] = _mm512_shuffle_f32x4(b, d, 0xDD);
    }
}

// [a × 8 lanes, b × 8 lanes]: the per-block scales of two 32-element blocks sharing one 512-bit register.
inline __m512 pair_scales(float a, float b) { return _mm512_insertf32x8(_mm512_set1_ps(a), _mm256_set1_ps(b), 1); }
#endif

// y[i] = y[i] * s
inline void scale_f32(float* y, float s, int64_t n) {
    for (int64_t i = 0; i < n; ++i) y[i] *= s;
}

#if MOEINFER_AVX2
// e^x = 2^n · e^r with n = round(x · log2 e) and r = x − n·ln2 (ln2 split in two parts so r stays exact); e^r by its
// Taylor series to degree 7 (relative error below 2e-7, about float rounding), these coefficients in Horner order.
constexpr float kLog2e = 1.44269504088896341f, kLn2Hi = 0.693359375f, kLn2Lo = -2.12194440e-4f;
constexpr float kExpSeries[] = {1.0f / 5040, 1.0f / 720, 1.0f / 120, 1.0f / 24, 1.0f / 6, 0.5f, 1.0f, 1.0f};
#endif

#if MOEINFER_AVX512
// e^x for 16 lanes. Inputs below −88 (−inf included) give e^−88 ≈ 6e−39, nothing beside any softmax term; above
// 88.7 +inf.
inline __m512 exp_ps(__m512 x) {
    x = _mm512_max_ps(x, _mm512_set1_ps(-88.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(kLog2e)),
                                          _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Lo), _mm512_fnmadd_ps(n, _mm512_set1_ps(kLn2Hi), x));
    __m512 p = _mm512_set1_ps(kExpSeries[0]);
    for (int i = 1; i < 8; ++i) p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(kExpSeries[i]));
    return _mm512_scalef_ps(p, n);
}
#endif

#if MOEINFER_AVX2 && !MOEINFER_AVX512
// exp_ps for 8 lanes; without VSCALEFPS, 2^n is built in the exponent field, which holds normal numbers only: the
// series runs on x clamped to [−87, 88], and lanes below −87 give 0, above 88.7 +inf.
inline __m256 exp256_ps(__m256 x_in) {
    const __m256 x = _mm256_min_ps(_mm256_max_ps(x_in, _mm256_set1_ps(-87.0f)), _mm256_set1_ps(88.0f));
    const __m256 n =
        _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(kLog2e)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    const __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Lo), _mm256_fnmadd_ps(n, _mm256_set1_ps(kLn2Hi), x));
    __m256 p = _mm256_set1_ps(kExpSeries[0]);
    for (int i = 1; i < 8; ++i) p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(kExpSeries[i]));
    const __m256i e = _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(n), _mm256_set1_epi32(127)), 23);
    const __m256 v = _mm256_mul_ps(p, _mm256_castsi256_ps(e));
    const __m256 big = _mm256_cmp_ps(x_in, _mm256_set1_ps(88.72f), _CMP_GT_OQ);
    return _mm256_blendv_ps(_mm256_and_ps(v, _mm256_cmp_ps(x_in, _mm256_set1_ps(-87.0f), _CMP_GE_OQ)),
                            _mm256_set1_ps(std::numeric_limits<float>::infinity()), big);
}
#endif

// x[i] ← e^(x[i] − m) for i < n; returns their sum.
inline double exp_shifted_f32(float* x, float m, int64_t n) {
    int64_t i = 0;
    double sum = 0;
#if MOEINFER_AVX512
    const __m512 vm = _mm512_set1_ps(m);
    for (; i < n; i += 16) {
        const __mmask16 k = n - i >= 16 ? __mmask16(0xffff) : __mmask16((1u << (n - i)) - 1);
        const __m512 e = exp_ps(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), vm));
        _mm512_mask_storeu_ps(x + i, k, e);
        sum += _mm512_mask_reduce_add_ps(k, e);
    }
#elif MOEINFER_AVX2
    const __m256 vm = _mm256_set1_ps(m);
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp256_ps(_mm256_sub_ps(_mm256_loadu_ps(x + i), vm));
        _mm256_storeu_ps(x + i, e);
        sum += hsum256(e);
    }
#endif
    for (; i < n; ++i) sum += (x[i] = std::exp(x[i] - m));
    return sum;
}

}  // namespace moeinfer::cpu::MOEINFER_KERNEL_NS
