// Int8 GEMM kernel (see int8_gemm.h). VPDPBUSD multiplies unsigned by signed bytes, so each format supplies an
// unsigned operand and a correction that is exact in int32:
//  - Q4_0: weights as nibbles n ∈ [0, 15] (unsigned) times signed activations q: Σ(n − 8)q = Σnq − 8Σq.
//  - Q8_0: activations as q + 128 (unsigned) times signed weights w: Σqw = Σ(q + 128)w − 128Σw.
// Two 32-element blocks fill one 512-bit register; lanes 0–7 belong to the first block and 8–15 to the second, so
// the per-block scales are applied lane-wise before accumulating in fp32.
#include "backends/cpu/int8_gemm.h"

#include <algorithm>
#include <cmath>
#include <cstring>

#include "backends/cpu/panel_gemm.h"
#include "core/half.h"

#include "backends/cpu/kernel_variant.h"  // after every other include but the kernel-private headers
#include "backends/cpu/simd.h"

namespace moeinfer::cpu::MOEINFER_KERNEL_NS {

#if MOEINFER_AVX2
// One 32-element block by the scalar definition in quantize_activations (#else), in vector form — the same IEEE
// operations, so the same bytes (cvtps rounds to nearest even as lrintf does under the default rounding mode):
// max |v| in vmax, the quants returned, their sum in sum.
inline __m256i quantize_block(const float* v, float& vmax, int32_t& sum) {
#if MOEINFER_AVX512
    const __m512 v0 = _mm512_loadu_ps(v), v1 = _mm512_loadu_ps(v + 16);
    vmax = _mm512_reduce_max_ps(_mm512_max_ps(_mm512_abs_ps(v0), _mm512_abs_ps(v1)));
    const __m512 vinv = _mm512_set1_ps(vmax > 0 ? 127.0f / vmax : 0.0f);
    const __m512i q0 = _mm512_cvtps_epi32(_mm512_mul_ps(v0, vinv)), q1 = _mm512_cvtps_epi32(_mm512_mul_ps(v1, vinv));
    sum = _mm512_reduce_add_epi32(_mm512_add_epi32(q0, q1));
    return _mm256_inserti128_si256(_mm256_castsi128_si256(_mm512_cvtsepi32_epi8(q0)), _mm512_cvtsepi32_epi8(q1), 1);
#else
    __m256 v8[4];
    __m256 amax8 = _mm256_setzero_ps();
    const __m256 abs_mask = _mm256_castsi256_ps(_mm256_set1_epi32(0x7fffffff));
    for (int j = 0; j < 4; ++j) {
        v8[j] = _mm256_loadu_ps(v + 8 * j);
        amax8 = _mm256_max_ps(amax8, _mm256_and_ps(v8[j], abs_mask));
    }
    __m128 m4 = _mm_max_ps(_mm256_castps256_ps128(amax8), _mm256_extractf128_ps(amax8, 1));
    m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
    vmax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
    const __m256 vinv = _mm256_set1_ps(vmax > 0 ? 127.0f / vmax : 0.0f);
    __m256i q32[4];
    for (int j = 0; j < 4; ++j) q32[j] = _mm256_cvtps_epi32(_mm256_mul_ps(v8[j], vinv));
    const __m256i s8 = _mm256_add_epi32(_mm256_add_epi32(q32[0], q32[1]), _mm256_add_epi32(q32[2], q32[3]));
    __m128i s4 = _mm_add_epi32(_mm256_castsi256_si128(s8), _mm256_extracti128_si256(s8, 1));
    s4 = _mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0x4E));
    sum = _mm_cvtsi128_si32(_mm_add_epi32(s4, _mm_shuffle_epi32(s4, 0xB1)));
    // packs work within 128-bit lanes: bytes come out in dword order 0 2 4 6 1 3 5 7 — put them back.
    const __m256i q16 = _mm256_packs_epi16(_mm256_packs_epi32(q32[0], q32[1]), _mm256_packs_epi32(q32[2], q32[3]));
    return _mm256_permutevar8x32_epi32(q16, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
#endif
}
#endif

void quantize_activations(const float* x, int64_t T, int64_t K, Q8Activations& out) {
    out.T = T;
    out.K = K;
    out.nb = K / 32;
    out.q.resize(T * K);
    out.qu.resize(T * K);
    out.d.resize(T * out.nb);
    out.sum.resize(T * out.nb);
    const bool tiles = T >= kPanelMinTokens;  // decode-sized calls never reach the panels
    if (tiles) {
        const int64_t padded = (T + 7) / 8 * 8;
        out.q_tiles.resize(padded * K);
        out.qu_tiles.resize(padded * K);
        out.d_tiles.resize(padded * out.nb);
        out.dsum_tiles.resize(padded * out.nb);
    }
    for (int64_t t = 0; t < T; ++t)
        for (int64_t b = 0; b < out.nb; ++b) {
            const float* v = x + t * K + b * 32;
#if MOEINFER_AVX2
            float vmax;
            int32_t sum;
            const __m256i qb = quantize_block(v, vmax, sum);
            out.d[t * out.nb + b] = vmax / 127.0f;
            _mm256_storeu_si256((__m256i*)(out.q.data() + t * K + b * 32), qb);
            const __m256i qub = _mm256_xor_si256(qb, _mm256_set1_epi8(char(0x80)));  // q + 128
            _mm256_storeu_si256((__m256i*)(out.qu.data() + t * K + b * 32), qub);
            out.sum[t * out.nb + b] = sum;
#else
            float amax = 0;
            for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(v[j]));
            out.d[t * out.nb + b] = amax / 127.0f;
            const float inv = amax > 0 ? 127.0f / amax : 0.0f;
            int32_t sum = 0;
            for (int j = 0; j < 32; ++j) {
                const int8_t q = static_cast<int8_t>(std::lrintf(v[j] * inv));
                out.q[t * K + b * 32 + j] = q;
                out.qu[t * K + b * 32 + j] = static_cast<uint8_t>(q) ^ 0x80;
                sum += q;
            }
            out.sum[t * out.nb + b] = sum;
#endif
            if (tiles) {  // the same block again in the panels' token-tile order
                const int64_t at = out.tile_index(t, b);
                std::memcpy(&out.q_tiles[at], &out.q[t * K + b * 32], 32);
                std::memcpy(&out.qu_tiles[at], &out.qu[t * K + b * 32], 32);
                out.d_tiles[at / 32] = out.d[t * out.nb + b];
                out.dsum_tiles[at / 32] = out.d[t * out.nb + b] * float(out.sum[t * out.nb + b]);
            }
        }
    if (K % 128 != 0) {
        out.q4i.clear();
        return;
    }
    out.q4i.resize(T * K);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t g = 0; g < K / 128; ++g)
            for (int half = 0; half < 2; ++half)
                for (int blk = 0; blk < 4; ++blk)
                    std::memcpy(&out.q4i[t * K + g * 128 + half * 64 + blk * 16], &out.q[t * K + g * 128 + blk * 32 + half * 16], 16);
}

namespace {

constexpr int kQ8_0Bytes = 34, kQ4_0Bytes = 18;

// Scalar reference for one block: Σ w·q over 32 elements (exact int32). Not auto-vectorized: g++ 12 with
// VNNI enabled turns this signed×signed byte sum into VPDPBUSD and drops the unsigned-operand correction
// (the result came out as Σ(q + 128)·w); tests/backends/cpu/matmul_test.cpp catches it.
[[maybe_unused]] __attribute__((noinline, optimize("no-tree-vectorize")))  // unused at the avx2 level
int32_t block_dot_scalar(bool q4, const uint8_t* wb, const int8_t* q) {
    int32_t s = 0;
    for (int j = 0; j < 32; ++j) {
        const int32_t wv = q4 ? int32_t(j < 16 ? wb[2 + j] & 15 : wb[2 + j - 16] >> 4) - 8 : int8_t(wb[2 + j]);
        s += wv * q[j];
    }
    return s;
}

#if MOEINFER_AVX512
template <bool Q4>
struct Format {
    static constexpr int kBytes = Q4 ? kQ4_0Bytes : kQ8_0Bytes;
    // Blocks b and b+1 of a row: unsigned nibbles (Q4_0) or signed bytes (Q8_0), element order within a block.
    static __m512i load_pair(const uint8_t* b0) {
        const uint8_t* b1 = b0 + kBytes;
        if constexpr (Q4) {
            const __m128i m = _mm_set1_epi8(0x0f);
            const __m128i p0 = _mm_loadu_si128((const __m128i*)(b0 + 2)), p1 = _mm_loadu_si128((const __m128i*)(b1 + 2));
            const __m256i v0 = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(p0, 4), m), _mm_and_si128(p0, m));
            const __m256i v1 = _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(p1, 4), m), _mm_and_si128(p1, m));
            return _mm512_inserti64x4(_mm512_castsi256_si512(v0), v1, 1);
        } else {
            return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i*)(b0 + 2))),
                                      _mm256_loadu_si256((const __m256i*)(b1 + 2)), 1);
        }
    }
};

// NR rows × NT tokens over all block pairs; a leftover odd block is done in scalar code.
template <bool Q4, int NR, int NT>
void kernel(const uint8_t* const* wrow, const Q8Activations& a, int64_t t0, float* y, int64_t ys) {
    using F = Format<Q4>;
    const int64_t nb = a.nb, K = a.K;
    __m512 acc[NR][NT];
    for (int r = 0; r < NR; ++r)
        for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_setzero_ps();
    const __m512i bias = _mm512_set1_epi8(Q4 ? 8 : static_cast<char>(128));
    int64_t b = 0;
    for (; b + 2 <= nb; b += 2) {
        if constexpr (NT == 1) prefetch_next_rows(wrow[NR - 1], nb * F::kBytes, NR * 2 * F::kBytes, b / 2);
        __m512i w[NR], corr_w[NR];
        __m512 dw[NR];
        for (int r = 0; r < NR; ++r) {
            const uint8_t* blk = wrow[r] + b * F::kBytes;
            w[r] = F::load_pair(blk);
            dw[r] = pair_scales(fp16_at(blk), fp16_at(blk + F::kBytes));
            if constexpr (!Q4) corr_w[r] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, w[r]);  // 128Σw
        }
        for (int t = 0; t < NT; ++t) {
            const int64_t row = t0 + t;
            const __m512 dx = pair_scales(a.d[row * nb + b], a.d[row * nb + b + 1]);
            __m512i xv, corr_x;
            if constexpr (Q4) {
                xv = _mm512_loadu_si512(a.q.data() + row * K + b * 32);
                corr_x = _mm512_dpbusd_epi32(_mm512_setzero_si512(), bias, xv);  // 8Σq
            } else {
                xv = _mm512_loadu_si512(a.qu.data() + row * K + b * 32);
            }
            for (int r = 0; r < NR; ++r) {
                __m512i s;
                if constexpr (Q4)
                    s = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), w[r], xv), corr_x);
                else
                    s = _mm512_sub_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), xv, w[r]), corr_w[r]);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[r], dx), acc[r][t]);
            }
        }
    }
    for (int t = 0; t < NT; ++t)
        for (int r = 0; r < NR; ++r) {
            float s = _mm512_reduce_add_ps(acc[r][t]);
            for (int64_t bb = b; bb < nb; ++bb) {
                const uint8_t* blk = wrow[r] + bb * F::kBytes;
                s += fp16_at(blk) * a.d[(t0 + t) * nb + bb] *
                     float(block_dot_scalar(Q4, blk, a.q.data() + (t0 + t) * K + bb * 32));
            }
            y[t * ys + r] = s;
        }
}

#elif MOEINFER_AVX2
// Without VNNI: VPMADDUBSW multiplies unsigned by signed bytes into int16 pair sums that saturate, so each format
// keeps them below 2^15 — Q4_0 nibbles n ≤ 15 times q (|q| ≤ 127), with 8·q (the zero point) subtracted in int16;
// Q8_0 as |w| times q carrying w's sign (VPSIGNB), |w|·|q|·2 ≤ 32512 — and VPMADDWD by ones widens them to int32.
// One 32-element block per step; NR rows × NT tokens.
template <bool Q4, int NR, int NT>
void kernel(const uint8_t* const* wrow, const Q8Activations& a, int64_t t0, float* y, int64_t ys) {
    constexpr int kBytes = Q4 ? kQ4_0Bytes : kQ8_0Bytes;
    const int64_t nb = a.nb, K = a.K;
    const __m256i ones = _mm256_set1_epi16(1), low = _mm256_set1_epi8(0x0f), eight = _mm256_set1_epi8(8);
    __m256 acc[NR][NT];
    for (int r = 0; r < NR; ++r)
        for (int t = 0; t < NT; ++t) acc[r][t] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; ++b) {
        if constexpr (NT == 1) prefetch_next_rows(wrow[NR - 1], nb * kBytes, NR * kBytes, b);
        __m256i w[NR];
        float dw[NR];
        for (int r = 0; r < NR; ++r) {
            const uint8_t* blk = wrow[r] + b * kBytes;
            dw[r] = fp16_at(blk);
            if constexpr (Q4) {
                const __m128i p = _mm_loadu_si128((const __m128i*)(blk + 2));
                w[r] = _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(p, 4), p), low);
            } else {
                w[r] = _mm256_loadu_si256((const __m256i*)(blk + 2));
            }
        }
        for (int t = 0; t < NT; ++t) {
            const int64_t row = t0 + t;
            const __m256i x = _mm256_loadu_si256((const __m256i*)(a.q.data() + row * K + b * 32));
            const float dx = a.d[row * nb + b];
            __m256i corr = _mm256_setzero_si256();
            if constexpr (Q4) corr = _mm256_maddubs_epi16(eight, x);
            for (int r = 0; r < NR; ++r) {
                const __m256i p16 = Q4 ? _mm256_sub_epi16(_mm256_maddubs_epi16(w[r], x), corr)
                                       : _mm256_maddubs_epi16(_mm256_sign_epi8(w[r], w[r]), _mm256_sign_epi8(x, w[r]));
                acc[r][t] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(p16, ones)),
                                            _mm256_set1_ps(dw[r] * dx), acc[r][t]);
            }
        }
    }
    for (int t = 0; t < NT; ++t)
        for (int r = 0; r < NR; ++r) y[t * ys + r] = hsum256(acc[r][t]);
}
#endif

#if MOEINFER_AVX2
constexpr int64_t kRows = 4;
// Tokens per kernel call: with AVX-512 12 accumulators + operands fit the 32 vector registers, with AVX2 8 in 16.
constexpr int64_t kTokens = MOEINFER_AVX512 ? 3 : 2;

using Kernel = void (*)(const uint8_t* const*, const Q8Activations&, int64_t, float*, int64_t);
#endif

#if MOEINFER_AVX512
// Where q4_group_kernel's permutes take their bytes from, in the 72 bytes of four Q4_0 blocks: quant byte j of the
// gathered register is byte 16·(j / 16) + j % 16 of block j / 16 (after its 2-byte scale); scale word j (of 16) is
// block j / 4's. Built at compile time, not per call.
struct Q4GroupIndex {
    alignas(64) int8_t quant[64];
    alignas(64) int16_t scale[32];
};
constexpr Q4GroupIndex make_q4_group_index() {
    Q4GroupIndex x{};
    for (int j = 0; j < 64; ++j) x.quant[j] = int8_t(kQ4_0Bytes * (j / 16) + 2 + j % 16);
    for (int j = 0; j < 16; ++j) x.scale[j] = int16_t(kQ4_0Bytes / 2 * (j / 4));
    return x;
}
constexpr Q4GroupIndex kQ4GroupIndex = make_q4_group_index();

// Q4_0 with activations in q4i order: four blocks per step. Their 4 × 16 packed bytes fill one register; the low
// nibbles are elements 0-15 of each block and the high nibbles 16-31, matching q4i, so lanes 4b..4b+3 of the two
// VPDPBUSD results belong to block b and the 4 block scales are spread over lane quarters. About half the
// instructions per weight byte of the pair kernel (which made decode instruction-bound). NR rows × NT tokens.
template <int NR, int NT>
void q4_group_kernel(const uint8_t* const* wrow, const Q8Activations& a, int64_t t0, float* y, int64_t ys) {
    const int64_t K = a.K, groups = K / 128;
    __m512 acc[NR][NT];
    for (int r = 0; r < NR; ++r)
        for (int t = 0; t < NT; ++t) acc[r][t] = _mm512_setzero_ps();
    const __m512i low = _mm512_set1_epi8(0x0f), eight = _mm512_set1_epi8(8);
    const __m512i spread = _mm512_set_epi32(3, 3, 3, 3, 2, 2, 2, 2, 1, 1, 1, 1, 0, 0, 0, 0);
    // The 4 blocks are 72 bytes: one 64-byte load and an 8-byte masked one hold them; one byte permute gathers the
    // 4 × 16 quant bytes and one word permute spreads the 4 fp16 scales over lane quarters (instead of 4 + 4 narrow
    // loads and 6 inserts, which left decode bound on the shuffle ports).
#if MOEINFER_VBMI
    const __m512i quant_index = _mm512_load_si512(kQ4GroupIndex.quant);
#endif
    const __m512i scale_index = _mm512_load_si512(kQ4GroupIndex.scale);
    for (int64_t g = 0; g < groups; ++g) {
        if constexpr (NT == 1) prefetch_next_rows(wrow[NR - 1], groups * 4 * kQ4_0Bytes, NR * 4 * kQ4_0Bytes, g);
        __m512i lo[NR], hi[NR];
        __m512 dw[NR];
        for (int r = 0; r < NR; ++r) {
            const uint8_t* blk = wrow[r] + g * 4 * kQ4_0Bytes;
            const __m512i head = _mm512_loadu_si512(blk);
#if MOEINFER_VBMI
            const __m512i v = _mm512_permutex2var_epi8(head, quant_index, _mm512_maskz_loadu_epi8(0xff, blk + 64));
#else  // the 4 blocks' 16 quant bytes by 4 loads (byte permutes need VBMI)
            __m512i v = _mm512_castsi128_si512(_mm_loadu_si128((const __m128i*)(blk + 2)));
            v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i*)(blk + 2 + kQ4_0Bytes)), 1);
            v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i*)(blk + 2 + 2 * kQ4_0Bytes)), 2);
            v = _mm512_inserti32x4(v, _mm_loadu_si128((const __m128i*)(blk + 2 + 3 * kQ4_0Bytes)), 3);
#endif
            lo[r] = _mm512_and_si512(v, low);
            hi[r] = _mm512_and_si512(_mm512_srli_epi16(v, 4), low);
            dw[r] = _mm512_cvtph_ps(_mm512_castsi512_si256(_mm512_permutexvar_epi16(scale_index, head)));
        }
        for (int t = 0; t < NT; ++t) {
            const int8_t* xq = a.q4i.data() + (t0 + t) * K + g * 128;
            const __m512i xlo = _mm512_loadu_si512(xq), xhi = _mm512_loadu_si512(xq + 64);
            // 8·Σq per block, lane-aligned with the products below (the Q4_0 zero point).
            const __m512i corr = _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), eight, xlo), eight, xhi);
            const __m512 dx = _mm512_permutexvar_ps(spread, _mm512_castps128_ps512(_mm_loadu_ps(a.d.data() + (t0 + t) * a.nb + g * 4)));
            for (int r = 0; r < NR; ++r) {
                const __m512i s = _mm512_sub_epi32(
                    _mm512_dpbusd_epi32(_mm512_dpbusd_epi32(_mm512_setzero_si512(), lo[r], xlo), hi[r], xhi), corr);
                acc[r][t] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(s), _mm512_mul_ps(dw[r], dx), acc[r][t]);
            }
        }
    }
    for (int t = 0; t < NT; ++t)
        for (int r = 0; r < NR; ++r) y[t * ys + r] = _mm512_reduce_add_ps(acc[r][t]);
}

template <int NR>
Kernel q4_group_pick_nt(int64_t nt) {
    switch (nt) {
        case 1: return q4_group_kernel<NR, 1>;
        case 2: return q4_group_kernel<NR, 2>;
        default: return q4_group_kernel<NR, 3>;
    }
}

Kernel q4_group_pick(int64_t nr, int64_t nt) {
    switch (nr) {
        case 1: return q4_group_pick_nt<1>(nt);
        case 2: return q4_group_pick_nt<2>(nt);
        case 3: return q4_group_pick_nt<3>(nt);
        default: return q4_group_pick_nt<4>(nt);
    }
}

#endif

#if MOEINFER_AVX2
template <bool Q4, int NR>
Kernel pick_nt(int64_t nt) {
    switch (nt) {
        case 1: return kernel<Q4, NR, 1>;
        case 2: return kernel<Q4, NR, 2>;
        default: return kernel<Q4, NR, kTokens>;
    }
}

template <bool Q4>
Kernel pick(int64_t nr, int64_t nt) {
    switch (nr) {
        case 1: return pick_nt<Q4, 1>(nt);
        case 2: return pick_nt<Q4, 2>(nt);
        case 3: return pick_nt<Q4, 3>(nt);
        default: return pick_nt<Q4, 4>(nt);
    }
}
#endif

}  // namespace

void int8_gemm(const Tensor& w, int64_t row_begin, int64_t row_end, const Q8Activations& a, int64_t t0, int64_t nt,
               float* y, int64_t y_stride) {
    const bool q4 = w.dtype == DType::Q4_0;
#if MOEINFER_AVX2
    const auto* base = static_cast<const uint8_t*>(w.data);
    const size_t row_bytes = w.row_bytes();  // once: Tensor::row() recomputes it (a table lookup) per call
    for (int64_t r = row_begin; r < row_end; r += kRows) {
        const int64_t nr = std::min(kRows, row_end - r);
        const uint8_t* rows[kRows];
        for (int64_t i = 0; i < nr; ++i) rows[i] = base + (r + i) * row_bytes;
        for (int64_t t = 0; t < nt; t += kTokens) {
            const int64_t n = std::min(kTokens, nt - t);
            Kernel k = q4 ? pick<true>(nr, n) : pick<false>(nr, n);
#if MOEINFER_AVX512
            if (q4 && !a.q4i.empty()) k = q4_group_pick(nr, n);  // Q4_0 rows with K % 128 == 0: four blocks a step
#endif
            k(rows, a, t0 + t, y + t * y_stride + r, y_stride);
        }
    }
#else
    const int bytes = q4 ? kQ4_0Bytes : kQ8_0Bytes;
    for (int64_t r = row_begin; r < row_end; ++r)
        for (int64_t t = 0; t < nt; ++t) {
            float s = 0;
            for (int64_t b = 0; b < a.nb; ++b) {
                const uint8_t* blk = w.row(r) + b * bytes;
                s += fp16_at(blk) * a.d[(t0 + t) * a.nb + b] *
                     float(block_dot_scalar(q4, blk, a.q.data() + (t0 + t) * a.K + b * 32));
            }
            y[t * y_stride + r] = s;
        }
#endif
}

}  // namespace moeinfer::cpu::MOEINFER_KERNEL_NS
