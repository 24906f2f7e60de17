// Packed-panel GEMM for float weights (see f32_gemm.h for the blocking and why), in fp32 or bf16-pair arithmetic.
#include "backends/cpu/f32_gemm.h"

#include <algorithm>
#include <array>
#include <cstdlib>
#include <memory>
#include <string>
#include <utility>

#include "core/check.h"

#include "backends/cpu/kernel_variant.h"  // after every other include but the kernel-private headers
#include "backends/cpu/float_rows.h"
#include "backends/cpu/simd.h"

namespace moeinfer::cpu::MOEINFER_KERNEL_NS {

#if MOEINFER_AVX512
namespace {

// Measured on Zen 5 (F16 weights, T = 40..300, K = 1024..5632): NR 12 / 14 and kc 384..1024 are within noise of
// each other; kc 256 and below lose 3-8% (more K blocks: more y round trips and kernel prologues).
constexpr int64_t kMR = 32;           // weight rows per panel: two vectors
constexpr int kNR = 12;               // tokens per micro-kernel call at most: 2 × 12 accumulators + 2 weight vectors
constexpr int64_t kKC = 512;          // K block: a 32 × 512 fp32 panel is 64 KiB, read from L1 / L2
constexpr int64_t kTokenChunk = 256;  // tokens per packed activation block: 512 × 272 × 4 B = 544 KiB, inside L2

// The cache lines of the weight panel packed after the current one. Weight panels come from DRAM and each of their
// rows is a separate short stream (kc elements, a few hundred bytes), too short for the hardware prefetcher to ramp
// up, so packing stalled on memory. The micro-kernel calls of one panel instead prefetch the next panel into L2,
// spread over their k loops: a few lines at a time, so the requests neither queue up nor delay the FMAs.
struct NextPanel {
    const uint8_t* row[kMR];  // first byte of each row's k range
    int64_t rows = 0, lines_per_row = 0;

    int64_t lines() const { return rows * lines_per_row; }
    // Line j, row-interleaved: consecutive lines go to different rows (DRAM pages) and all rows advance together.
    const char* line(int64_t j) const { return reinterpret_cast<const char*>(row[j % rows] + (j / rows) * 64); }
};

// dst[k · ld + i] = fp32(row i)[k0 + k] for k < kc, i < 16 · groups; rows i ≥ nrows read as zero.
// Row i starts at base + i · row_bytes.
// kPairs (bf16 arithmetic): dst[p · ld + i] = the bf16 pair (k0 + 2p, k0 + 2p + 1) of row i as one 32-bit unit,
// for p < ceil(kc / 2) (an odd kc's last pair ends in a zero). Row-major pairs are already 32-bit units, so the
// same 16 × 16 transpose of 32-bit elements packs them.
template <DType D, bool kPairs>
void pack_transposed(const uint8_t* base, size_t row_bytes, int64_t nrows, int64_t groups, int64_t k0, int64_t kc,
                     float* dst, int64_t ld) {
    constexpr size_t esz = D == DType::F32 ? 4 : 2;
    constexpr int64_t kStep = kPairs ? 32 : 16;  // elements of a row per 16-lane vector
    for (int64_t g = 0; g < groups; ++g) {
        const int64_t rows = std::clamp<int64_t>(nrows - 16 * g, 0, 16);
        for (int64_t k = 0; k < kc; k += kStep) {
            __m512 v[16];
            for (int i = 0; i < 16; ++i) {
                const uint8_t* p = base + (16 * g + i) * row_bytes + (k0 + k) * esz;
                if (i >= rows) {
                    v[i] = _mm512_setzero_ps();
                } else if constexpr (kPairs) {
                    v[i] = load32_bf16<D>(p, kc - k);
                } else {
                    v[i] = load16<D>(p, first_n(kc - k));
                }
            }
            transpose16(v);
            const int64_t n = std::min<int64_t>(16, kPairs ? (kc - k + 1) / 2 : kc - k), u0 = kPairs ? k / 2 : k;
            for (int64_t j = 0; j < n; ++j) _mm512_store_ps(dst + (u0 + j) * ld + 16 * g, v[j]);
        }
    }
}

// y[t · ys + r] (+)= Σ_{k < kc} wp[k · 32 + r] · xp[k · ldx + t] for t < NT, r < 32 with rows masked by m0 / m1.
// With `accumulate` the accumulators start from y (an earlier K block), else from zero (adding y after the loop
// instead measured 2-3% slower end to end). Lines [j, j_end) of `next` are prefetched evenly over the k loop.
// kPairs: wp and xp hold bf16 pairs (pack_transposed<D, true>) and kc counts pairs; each step is one VDPBF16PS per accumulator,
// two multiply-adds per lane for the issue cost of one FMA.
template <int NT, bool kPairs>
void micro_kernel(const float* wp, const float* xp, int64_t ldx, int64_t kc, float* y, int64_t ys, __mmask16 m0,
                  __mmask16 m1, bool accumulate, const NextPanel& next, int64_t j, int64_t j_end) {
    __m512 a0[NT], a1[NT];
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) {
        a0[t] = accumulate ? _mm512_maskz_loadu_ps(m0, y + t * ys) : _mm512_setzero_ps();
        a1[t] = accumulate ? _mm512_maskz_loadu_ps(m1, y + t * ys + 16) : _mm512_setzero_ps();
    }
    // `burst` lines every `step` iterations: more than one per iteration only when a short call (few tokens) must
    // cover a wide panel (F32: two lines per k).
    const int64_t n = j_end - j, burst = std::max<int64_t>(1, (n + kc - 1) / kc);
    const int64_t step = std::max<int64_t>(1, kc * burst / std::max<int64_t>(1, n));
    for (int64_t k = 0; k < kc;) {
        for (int64_t b = 0; b < burst && j < j_end; ++b) _mm_prefetch(next.line(j++), _MM_HINT_T1);
        for (const int64_t k_end = std::min(kc, k + step); k < k_end; ++k) {
            const __m512 w0 = _mm512_load_ps(wp + k * kMR), w1 = _mm512_load_ps(wp + k * kMR + 16);
            const float* xk = xp + k * ldx;
#pragma GCC unroll 16
            for (int t = 0; t < NT; ++t) {
                const __m512 b = _mm512_set1_ps(xk[t]);
                if constexpr (kPairs) {
                    a0[t] = dot_bf16_pairs(a0[t], w0, b);
                    a1[t] = dot_bf16_pairs(a1[t], w1, b);
                    continue;
                }
                a0[t] = _mm512_fmadd_ps(w0, b, a0[t]);
                a1[t] = _mm512_fmadd_ps(w1, b, a1[t]);
            }
        }
    }
#pragma GCC unroll 16
    for (int t = 0; t < NT; ++t) {
        _mm512_mask_storeu_ps(y + t * ys, m0, a0[t]);
        _mm512_mask_storeu_ps(y + t * ys + 16, m1, a1[t]);
    }
}

using Kernel = void (*)(const float*, const float*, int64_t, int64_t, float*, int64_t, __mmask16, __mmask16, bool,
                       const NextPanel&, int64_t, int64_t);

template <bool kPairs, int... N>
constexpr auto kernel_table(std::integer_sequence<int, N...>) {
    return std::array<Kernel, sizeof...(N)>{micro_kernel<N + 1, kPairs>...};
}
// kKernels[pairs][n - 1]: n tokens
constexpr std::array<std::array<Kernel, kNR>, 2> kKernels = {kernel_table<false>(std::make_integer_sequence<int, kNR>{}),
                                                            kernel_table<true>(std::make_integer_sequence<int, kNR>{})};

// 64-byte aligned per-thread scratch, grown on demand: the panels are read with aligned vector loads.
float* scratch(std::unique_ptr<float[], void (*)(float*)>& buf, size_t& cap, size_t n) {
    if (cap < n) {
        buf.reset(static_cast<float*>(std::aligned_alloc(64, (n * sizeof(float) + 63) / 64 * 64)));
        MOE_CHECK(buf != nullptr, "f32_gemm: out of memory");
        cap = n;
    }
    return buf.get();
}
void free_float(float* p) { std::free(p); }

template <DType D, bool kPairs>
void gemm(const float* x, int64_t T, const Tensor& w, int64_t row_begin, int64_t row_end, float* y, int64_t ys) {
    const int64_t K = w.cols();
    constexpr int64_t kEsz = D == DType::F32 ? 4 : 2;
    thread_local std::unique_ptr<float[], void (*)(float*)> wbuf(nullptr, free_float), xbuf(nullptr, free_float);
    thread_local size_t wcap = 0, xcap = 0;
    // +16: a stride of a multiple of 1 KiB would put every k of the token block into the same few L1 sets.
    const int64_t ldx = (std::min(T, kTokenChunk) + 15) / 16 * 16 + 16;
    float* wp = scratch(wbuf, wcap, kKC * kMR);
    float* xp = scratch(xbuf, xcap, kKC * ldx);

    for (int64_t tc0 = 0; tc0 < T; tc0 += kTokenChunk) {
        const int64_t tc = std::min(kTokenChunk, T - tc0);
        for (int64_t k0 = 0; k0 < K; k0 += kKC) {
            const int64_t kc = std::min(kKC, K - k0);
            const int64_t units = kPairs ? (kc + 1) / 2 : kc;  // k steps of the micro-kernel
            const auto* xb = reinterpret_cast<const uint8_t*>(x + tc0 * K);
            pack_transposed<DType::F32, kPairs>(xb, K * sizeof(float), tc, (tc + 15) / 16, k0, kc, xp, ldx);
            for (int64_t r0 = row_begin; r0 < row_end; r0 += kMR) {
                const int64_t mr = std::min(kMR, row_end - r0);
                // The panel after this one: the next rows of this K block, else the first rows of the next K block.
                NextPanel next;
                int64_t nr0 = r0 + kMR, nk0 = k0;
                if (nr0 >= row_end) nr0 = row_begin, nk0 = k0 + kKC;
                if (nk0 < K) {
                    next.rows = std::min(kMR, row_end - nr0);
                    next.lines_per_row = (std::min(kKC, K - nk0) * kEsz + 63) / 64;
                    for (int64_t i = 0; i < next.rows; ++i) next.row[i] = w.row(nr0 + i) + nk0 * kEsz;
                }
                pack_transposed<D, kPairs>(w.row(r0), w.row_bytes(), mr, 2, k0, kc, wp, kMR);
                const __mmask16 m0 = first_n(mr), m1 = first_n(std::max<int64_t>(0, mr - 16));
                // Token blocks of nearly equal size (40 tokens: 10 + 10 + 10 + 10, not 12 + 12 + 12 + 4): a narrow
                // block does fewer FMAs per load of the panel.
                const int64_t calls = (tc + kNR - 1) / kNR;
                for (int64_t c = 0, t0 = 0; c < calls; ++c) {
                    const int64_t nt = tc * (c + 1) / calls - tc * c / calls;
                    kKernels[kPairs][nt - 1](wp, xp + t0, ldx, units, y + (tc0 + t0) * ys + r0, ys, m0, m1, k0 > 0, next,
                                     next.lines() * c / calls, next.lines() * (c + 1) / calls);
                    t0 += nt;
                }
            }
        }
    }
}

}  // namespace

bool f32_gemm_available() { return true; }
bool bf16_gemm_available() { return true; }

bool amx_bf16_gemm(const float* x, int64_t T, const Tensor& w, int64_t row_begin, int64_t row_end, float* y,
                   int64_t y_stride);  // amx_gemm.cpp: false where it does not apply

void f32_gemm(const float* x, int64_t T, const Tensor& w, int64_t row_begin, int64_t row_end, float* y,
              int64_t y_stride, GemmArith arith) {
    const bool pairs = arith == GemmArith::Bf16;
    if (pairs && amx_bf16_gemm(x, T, w, row_begin, row_end, y, y_stride)) return;
    switch (w.dtype) {
        case DType::F32:
            return pairs ? gemm<DType::F32, true>(x, T, w, row_begin, row_end, y, y_stride)
                         : gemm<DType::F32, false>(x, T, w, row_begin, row_end, y, y_stride);
        case DType::F16:
            return pairs ? gemm<DType::F16, true>(x, T, w, row_begin, row_end, y, y_stride)
                         : gemm<DType::F16, false>(x, T, w, row_begin, row_end, y, y_stride);
        case DType::BF16:
            return pairs ? gemm<DType::BF16, true>(x, T, w, row_begin, row_end, y, y_stride)
                         : gemm<DType::BF16, false>(x, T, w, row_begin, row_end, y, y_stride);
        default: MOE_CHECK(false, "f32_gemm: unsupported weight dtype " + std::string(dtype_name(w.dtype)));
    }
}

#else  // below the AVX-512 level: callers use micro_gemm

bool f32_gemm_available() { return false; }
bool bf16_gemm_available() { return false; }

void f32_gemm(const float*, int64_t, const Tensor& w, int64_t, int64_t, float*, int64_t, GemmArith) {
    MOE_CHECK(false, "f32_gemm: needs the avx512 kernel level");
}

#endif

}  // namespace moeinfer::cpu::MOEINFER_KERNEL_NS
