// Prefill: 16 weight rows are unpacked once per call into VNNI order — for each group of 4 consecutive k, one
// 64-byte vector holding those 4 weights of all 16 rows — with each row's block scales as 16-float vectors. One
// VPDPBUSD then does 4 k × 16 rows for a token whose 4 activation bytes are broadcast, and a block's int32 sums
// need one conversion and two or three vector operations per token: 8 multiply instructions per ~4 bookkeeping
// ones where the row kernels (int8_gemm.cpp, kquant_gemm.cpp) spend 1 per 3. The unpack (and its transpose) is
// paid once per panel and call, so it pays from a few dozen tokens. Activations come from Q8Activations' 8-token
// tiles.
// Two forms, by the sign of the unpacked weights:
//  - unsigned (Q4_K / Q5_K quants) × signed activations q, per 32-element block:
//    Σ x·a = dx · (ds · Σ q_w·q_a − dm · Σ q_a), with (ds, dm) = (d·sc, dmin·m);
//  - signed (Q8_0 bytes, Q4_0 n − 8, Q6_K q − 32) × unsigned activations q + 128 (qu), per block of B = 32 or 16:
//    Σ w·(q_a + 128) − 128·Σ w = Σ w·q_a, then · ds · dx; wsum holds 128·Σ w per row and block.
#include "backends/cpu/panel_gemm.h"

#include <algorithm>
#include <cstring>
#include <vector>

#include "core/half.h"
#include "formats/kquants.h"

#include "backends/cpu/kernel_variant.h"  // after every other include but the kernel-private headers
#include "backends/cpu/kquant_unpack.h"
#include "backends/cpu/simd.h"

namespace moeinfer::cpu::MOEINFER_KERNEL_NS {

#if MOEINFER_AVX512
namespace {

constexpr int kRows = 16;
constexpr int kTokens = 8;  // tokens per pass: 8 int32 + 8 float accumulators
constexpr int kQ4_0Bytes = 18, kQ8_0Bytes = 34;

struct Panel {
    std::vector<uint8_t> bytes;  // [16 rows][K] unpacked weights in element order, transposed into vnni
    std::vector<uint8_t> vnni;   // [K / 4][16 rows][4]
    std::vector<float> ds, dm;   // [blocks][16]: scale of each row's block; dm (unsigned form) its min term
    std::vector<int32_t> wsum;   // [blocks][16] (signed form)
};

// Smallest token count for which the panel beats the row kernels (Zen 5, 2 threads, the files). Q6_K's
// unpack costs more per weight (6-bit fields, per-16 sums): from 128 tokens its panel wins (dense Q4_K_M pp128
// 407 -> 520 tok/s), at ~32-64 (MoE experts in a 128-token prompt) it lost up to 17 %.
int64_t min_tokens(DType t) { return t == DType::Q6_K ? 128 : kPanelMinTokens; }

// bytes [16 rows][K] → vnni: each 32-byte column chunk of the 16 rows is two 8 × 8 dword transposes done side by
// side in 512-bit registers (rows 0-7 in the low halves, 8-15 in the high halves): unpacks and shuffles within
// 128-bit lanes, then one two-source permute per output vector. (A gather per output vector cost ~10 % of a
// 128-token prefill.)
void transpose(int64_t K, Panel& p) {
    p.vnni.resize(size_t(kRows) * K);
    const __m512i lo_idx = _mm512_set_epi32(27, 26, 25, 24, 11, 10, 9, 8, 19, 18, 17, 16, 3, 2, 1, 0);
    const __m512i hi_idx = _mm512_set_epi32(31, 30, 29, 28, 15, 14, 13, 12, 23, 22, 21, 20, 7, 6, 5, 4);
    for (int64_t c = 0; c < K / 32; ++c) {
        __m512 r[8];
        for (int i = 0; i < 8; ++i) {
            const __m256i a = _mm256_loadu_si256((const __m256i*)(p.bytes.data() + i * K + 32 * c));
            const __m256i b = _mm256_loadu_si256((const __m256i*)(p.bytes.data() + (i + 8) * K + 32 * c));
            r[i] = _mm512_castsi512_ps(_mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1));
        }
        __m512 t[8], u[8];
        for (int i = 0; i < 4; ++i) {
            t[2 * i] = _mm512_unpacklo_ps(r[2 * i], r[2 * i + 1]);
            t[2 * i + 1] = _mm512_unpackhi_ps(r[2 * i], r[2 * i + 1]);
        }
        for (int h = 0; h < 2; ++h) {  // rows 0-3 (h = 0) and 4-7 of each half
            u[4 * h + 0] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], 0x44);
            u[4 * h + 1] = _mm512_shuffle_ps(t[4 * h], t[4 * h + 2], 0xEE);
            u[4 * h + 2] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0x44);
            u[4 * h + 3] = _mm512_shuffle_ps(t[4 * h + 1], t[4 * h + 3], 0xEE);
        }
        uint8_t* out = p.vnni.data() + c * 8 * 64;
        for (int g = 0; g < 4; ++g) {
            _mm512_storeu_ps(out + g * 64, _mm512_permutex2var_ps(u[g], lo_idx, u[g + 4]));
            _mm512_storeu_ps(out + (g + 4) * 64, _mm512_permutex2var_ps(u[g], hi_idx, u[g + 4]));
        }
    }
}

void reserve(Panel& p, int64_t K, int64_t block) {
    p.bytes.resize(size_t(kRows) * K);
    p.ds.resize(size_t(K / block) * kRows);
    p.dm.resize(size_t(K / block) * kRows);
    p.wsum.resize(size_t(K / block) * kRows);
}

// 128 · Σ of each 16 signed bytes of v (two sums) from the unsigned sums of v + bias.
void signed_sums16(__m256i unsigned_v, int bias, int32_t* out0, int32_t* out1) {
    alignas(32) uint64_t s[4];
    _mm256_store_si256((__m256i*)s, _mm256_sad_epu8(unsigned_v, _mm256_setzero_si256()));
    *out0 = 128 * (int32_t(s[0] + s[1]) - 16 * bias);
    *out1 = 128 * (int32_t(s[2] + s[3]) - 16 * bias);
}

// The unpack loop of every format: f(r, b, blk, out) for block b (bytes blk, elements out[0, elems)) of each of
// the 16 rows, then the transpose to VNNI order.
template <typename F>
void unpack_blocks(const uint8_t* rows, size_t row_bytes, int64_t K, int64_t elems, int block_bytes, Panel& p, F&& f) {
    for (int r = 0; r < kRows; ++r)
        for (int64_t b = 0; b < K / elems; ++b)
            f(r, b, rows + r * row_bytes + b * block_bytes, p.bytes.data() + size_t(r) * K + b * elems);
    transpose(K, p);
}

template <bool Q5>
void unpack_q4k(const uint8_t* rows, size_t row_bytes, int64_t K, Panel& p) {
    constexpr int kBytes = Q5 ? kQ5KBytes : kQ4KBytes;
    reserve(p, K, 32);
    unpack_blocks(rows, row_bytes, K, 256, kBytes, p, [&](int r, int64_t sb, const uint8_t* blk, uint8_t* out) {
        uint64_t sc_bytes, m_bytes;
        unpack_scales_mins(blk + 4, sc_bytes, m_bytes);
        const float d = fp16_at(blk), dmin = fp16_at(blk + 2);
        for (int j = 0; j < 8; ++j) {
            p.ds[(sb * 8 + j) * kRows + r] = d * float((sc_bytes >> (8 * j)) & 0xff);
            p.dm[(sb * 8 + j) * kRows + r] = dmin * float((m_bytes >> (8 * j)) & 0xff);
        }
        __m256i qh = _mm256_setzero_si256();  // Q5_K: the fifth bits of all 256 elements
        if constexpr (Q5) qh = _mm256_loadu_si256((const __m256i*)(blk + 16));
        for (int c = 0; c < 4; ++c) {
            __m256i lo, hi;
            q45k_chunk<Q5>(blk, c, qh, lo, hi);
            _mm256_storeu_si256((__m256i*)(out + 64 * c), lo);
            _mm256_storeu_si256((__m256i*)(out + 64 * c + 32), hi);
        }
    });
}

// Q4_0 takes the signed form (n − 8 against q + 128): one scale per block and no activation-sum term, two vector
// operations per token and block fewer than the unsigned form.
void unpack_q4_0(const uint8_t* rows, size_t row_bytes, int64_t K, Panel& p) {
    reserve(p, K, 32);
    const __m128i low = _mm_set1_epi8(0x0f), eight = _mm_set1_epi8(8);
    unpack_blocks(rows, row_bytes, K, 32, kQ4_0Bytes, p, [&](int r, int64_t b, const uint8_t* blk, uint8_t* out) {
        p.ds[b * kRows + r] = fp16_at(blk);
        const __m128i packed = _mm_loadu_si128((const __m128i*)(blk + 2));
        const __m128i lo = _mm_and_si128(packed, low), hi = _mm_and_si128(_mm_srli_epi16(packed, 4), low);
        _mm_storeu_si128((__m128i*)out, _mm_sub_epi8(lo, eight));
        _mm_storeu_si128((__m128i*)(out + 16), _mm_sub_epi8(hi, eight));
        int32_t s0, s1;
        signed_sums16(_mm256_inserti128_si256(_mm256_castsi128_si256(lo), hi, 1), 8, &s0, &s1);
        p.wsum[b * kRows + r] = s0 + s1;
    });
}

void unpack_q8_0(const uint8_t* rows, size_t row_bytes, int64_t K, Panel& p) {
    reserve(p, K, 32);
    const __m256i flip = _mm256_set1_epi8(char(0x80));
    unpack_blocks(rows, row_bytes, K, 32, kQ8_0Bytes, p, [&](int r, int64_t b, const uint8_t* blk, uint8_t* out) {
        p.ds[b * kRows + r] = fp16_at(blk);
        const __m256i q = _mm256_loadu_si256((const __m256i*)(blk + 2));
        _mm256_storeu_si256((__m256i*)out, q);
        int32_t s0, s1;
        signed_sums16(_mm256_xor_si256(q, flip), 128, &s0, &s1);  // q + 128 is q ^ 0x80 as unsigned
        p.wsum[b * kRows + r] = s0 + s1;
    });
}

void unpack_q6k(const uint8_t* rows, size_t row_bytes, int64_t K, Panel& p) {
    reserve(p, K, 16);
    const __m256i off = _mm256_set1_epi8(32);
    unpack_blocks(rows, row_bytes, K, 256, kQ6KBytes, p, [&](int r, int64_t sb, const uint8_t* blk, uint8_t* out) {
        const float d = fp16_at(blk + 208);
        for (int i = 0; i < 16; ++i) p.ds[(sb * 16 + i) * kRows + r] = d * float(int8_t(blk[192 + i]));
        for (int h = 0; h < 2; ++h) {
            __m256i q[4];
            q6k_half(blk, h, q);
            for (int c = 0; c < 4; ++c) {  // elements 128h + 32c ..: 16-element blocks 8h + 2c and 8h + 2c + 1
                _mm256_storeu_si256((__m256i*)(out + 128 * h + 32 * c), _mm256_sub_epi8(q[c], off));
                const int64_t blk16 = sb * 16 + 8 * h + 2 * c;
                signed_sums16(q[c], 32, &p.wsum[blk16 * kRows + r], &p.wsum[(blk16 + 1) * kRows + r]);
            }
        }
    });
}

// NT tokens of one activation tile through one unpacked panel, per block of B elements: B / 4 VPDPBUSD per token
// into int32, then the form's scaling (see the file comment):
//  - unsigned (B = 32): acc += dx · (ds · sum) − dm · (dx · Σq_a);
//  - signed: acc += dx · ds · (sum − wsum), the activations being q + 128.
// Activations come from Q8Activations' 8-token tiles: the group's tokens (all in one tile) sit 32 bytes apart and
// consecutive 32-element blocks 256 bytes apart; a block of B = 16 lies at byte (j · B) % 32 of its 32-block.
template <int NT, int B, bool kSigned>
void tokens_form(const Panel& p, const Q8Activations& a, int64_t t0, float* y, int64_t ys) {
    __m512 acc[NT];
    for (int t = 0; t < NT; ++t) acc[t] = _mm512_setzero_ps();
    const int64_t tile0 = a.tile_index(t0, 0);
    const uint8_t* x = kSigned ? a.qu_tiles.data() : reinterpret_cast<const uint8_t*>(a.q_tiles.data());
    for (int64_t j = 0; j < a.K / B; ++j) {
        const uint8_t* xb = x + tile0 + (j * B / 32) * 256 + (j * B) % 32;
        __m512i s[NT];
        for (int t = 0; t < NT; ++t) s[t] = _mm512_setzero_si512();
        for (int g = 0; g < B / 4; ++g) {
            const __m512i w = _mm512_loadu_si512(p.vnni.data() + (j * (B / 4) + g) * 64);
            for (int t = 0; t < NT; ++t) {
                int32_t xa;
                std::memcpy(&xa, xb + t * 32 + 4 * g, 4);
                // VPDPBUSD takes its unsigned operand first: the weights, or the q + 128 activations.
                s[t] = kSigned ? _mm512_dpbusd_epi32(s[t], _mm512_set1_epi32(xa), w)
                               : _mm512_dpbusd_epi32(s[t], w, _mm512_set1_epi32(xa));
            }
        }
        const __m512 ds = _mm512_loadu_ps(p.ds.data() + j * kRows);
        const float* dx = a.d_tiles.data() + tile0 / 32 + (j * B / 32) * 8;
        if constexpr (kSigned) {
            const __m512i ws = _mm512_loadu_si512(p.wsum.data() + j * kRows);
            for (int t = 0; t < NT; ++t)
                acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(_mm512_sub_epi32(s[t], ws)), ds),
                                         _mm512_set1_ps(dx[t]), acc[t]);
        } else {
            const __m512 dm = _mm512_loadu_ps(p.dm.data() + j * kRows);
            const float* dxs = a.dsum_tiles.data() + tile0 / 32 + j * 8;
            for (int t = 0; t < NT; ++t) {
                acc[t] = _mm512_fmadd_ps(_mm512_mul_ps(_mm512_cvtepi32_ps(s[t]), ds), _mm512_set1_ps(dx[t]), acc[t]);
                acc[t] = _mm512_fnmadd_ps(dm, _mm512_set1_ps(dxs[t]), acc[t]);
            }
        }
    }
    for (int t = 0; t < NT; ++t) _mm512_storeu_ps(y + t * ys, acc[t]);
}

// tokens_form for the dtype's form and block size.
template <int NT>
void tokens(DType t, const Panel& p, const Q8Activations& a, int64_t t0, float* y, int64_t ys) {
    if (t == DType::Q8_0 || t == DType::Q4_0) tokens_form<NT, 32, true>(p, a, t0, y, ys);
    else if (t == DType::Q6_K) tokens_form<NT, 16, true>(p, a, t0, y, ys);
    else tokens_form<NT, 32, false>(p, a, t0, y, ys);
}

void group(DType dt, const Panel& p, const Q8Activations& a, int64_t t0, int64_t n, float* yt, int64_t ys) {
    switch (n) {
        case 8: tokens<8>(dt, p, a, t0, yt, ys); break;
        case 7: tokens<7>(dt, p, a, t0, yt, ys); break;
        case 6: tokens<6>(dt, p, a, t0, yt, ys); break;
        case 5: tokens<5>(dt, p, a, t0, yt, ys); break;
        case 4: tokens<4>(dt, p, a, t0, yt, ys); break;
        case 3: tokens<3>(dt, p, a, t0, yt, ys); break;
        case 2: tokens<2>(dt, p, a, t0, yt, ys); break;
        default: tokens<1>(dt, p, a, t0, yt, ys); break;
    }
}

// Groups follow the activation tiles (a group never straddles two), so a call whose t0 is not a multiple of 8 starts
// and may end with a narrower group.
void all_tokens(DType dt, const Panel& p, const Q8Activations& a, int64_t t0, int64_t nt, float* y, int64_t ys) {
    for (int64_t t = 0; t < nt;) {
        const int64_t n = std::min<int64_t>(kTokens - (t0 + t) % kTokens, nt - t);
        group(dt, p, a, t0 + t, n, y + t * ys, ys);
        t += n;
    }
}

}  // namespace

int64_t panel_gemm(const Tensor& w, int64_t row_begin, int64_t row_end, const Q8Activations& a, int64_t t0, int64_t nt,
                   float* y, int64_t y_stride) {
    const DType dt = w.dtype;
    const bool kquant = dt == DType::Q4_K || dt == DType::Q5_K || dt == DType::Q6_K;
    if (!(kquant || dt == DType::Q4_0 || dt == DType::Q8_0) || a.K % (kquant ? 256 : 32) != 0 || nt < min_tokens(dt))
        return row_begin;
    thread_local Panel panel;
    const auto* base = static_cast<const uint8_t*>(w.data);
    const size_t row_bytes = w.row_bytes();
    for (; row_begin + kRows <= row_end; row_begin += kRows) {
        const uint8_t* rows = base + row_begin * row_bytes;
        switch (dt) {
            case DType::Q4_0: unpack_q4_0(rows, row_bytes, a.K, panel); break;
            case DType::Q8_0: unpack_q8_0(rows, row_bytes, a.K, panel); break;
            case DType::Q4_K: unpack_q4k<false>(rows, row_bytes, a.K, panel); break;
            case DType::Q5_K: unpack_q4k<true>(rows, row_bytes, a.K, panel); break;
            default: unpack_q6k(rows, row_bytes, a.K, panel); break;
        }
        all_tokens(dt, panel, a, t0, nt, y + row_begin, y_stride);
    }
    return row_begin;
}

#else

int64_t panel_gemm(const Tensor&, int64_t row_begin, int64_t, const Q8Activations&, int64_t, int64_t, float*, int64_t) {
    return row_begin;  // the row kernels do everything
}

#endif

}  // namespace moeinfer::cpu::MOEINFER_KERNEL_NS
