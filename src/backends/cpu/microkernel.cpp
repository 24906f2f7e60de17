// Micro-kernel (see microkernel.h): one template per (rows, tokens) shape up to 4×4, tails of K masked.
#include "backends/cpu/microkernel.h"

#include "backends/cpu/kernel_variant.h"  // after every other include but the kernel-private headers
#include "backends/cpu/simd.h"

namespace moeinfer::cpu::MOEINFER_KERNEL_NS {
namespace {

template <int NR, int NT>
void kernel(const float* w, const float* x, int64_t xs, int64_t K, float* y, int64_t ys) {
#if MOEINFER_AVX512
    __m512 acc[NR][NT];
    for (int r = 0; r < NR; ++r)
        for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_setzero_ps();
    int64_t k = 0;
    for (; k + 16 <= K; k += 16) {
        __m512 xv[NT];
        for (int t = 0; t < NT; ++t) xv[t] = _mm512_loadu_ps(x + t * xs + k);
        for (int r = 0; r < NR; ++r) {
            const __m512 wv = _mm512_loadu_ps(w + r * K + k);
            for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    if (k < K) {
        const __mmask16 m = static_cast<__mmask16>((1u << (K - k)) - 1);
        __m512 xv[NT];
        for (int t = 0; t < NT; ++t) xv[t] = _mm512_maskz_loadu_ps(m, x + t * xs + k);
        for (int r = 0; r < NR; ++r) {
            const __m512 wv = _mm512_maskz_loadu_ps(m, w + r * K + k);
            for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    for (int t = 0; t < NT; ++t)
        for (int r = 0; r < NR; ++r) y[t * ys + r] = _mm512_reduce_add_ps(acc[r][t]);
#elif MOEINFER_AVX2
    __m256 acc[NR][NT];
    for (int r = 0; r < NR; ++r)
        for (int t = 0; t < NT; ++t) acc[r][t] = _mm256_setzero_ps();
    int64_t k = 0;
    for (; k + 8 <= K; k += 8) {
        __m256 xv[NT];
        for (int t = 0; t < NT; ++t) xv[t] = _mm256_loadu_ps(x + t * xs + k);
        for (int r = 0; r < NR; ++r) {
            const __m256 wv = _mm256_loadu_ps(w + r * K + k);
            for (int t = 0; t < NT; ++t) acc[r][t] = _mm256_fmadd_ps(wv, xv[t], acc[r][t]);
        }
    }
    for (int t = 0; t < NT; ++t)
        for (int r = 0; r < NR; ++r) {
            float s = hsum256(acc[r][t]);
            for (int64_t kk = k; kk < K; ++kk) s += w[r * K + kk] * x[t * xs + kk];
            y[t * ys + r] = s;
        }
#else
    for (int t = 0; t < NT; ++t)
        for (int r = 0; r < NR; ++r) y[t * ys + r] = dot_f32(w + r * K, x + t * xs, K);
#endif
}

using Kernel = void (*)(const float*, const float*, int64_t, int64_t, float*, int64_t);

template <int NR>
constexpr Kernel pick(int64_t nt) {
    switch (nt) {
        case 1: return kernel<NR, 1>;
        case 2: return kernel<NR, 2>;
        case 3: return kernel<NR, 3>;
        default: return kernel<NR, 4>;
    }
}

}  // namespace

void micro_gemm(const float* w, int64_t nr, const float* x, int64_t x_stride, int64_t nt, int64_t K, float* y,
                int64_t y_stride) {
    Kernel k;
    switch (nr) {
        case 1: k = pick<1>(nt); break;
        case 2: k = pick<2>(nt); break;
        case 3: k = pick<3>(nt); break;
        default: k = pick<4>(nt); break;
    }
    k(w, x, x_stride, K, y, y_stride);
}

}  // namespace moeinfer::cpu::MOEINFER_KERNEL_NS
