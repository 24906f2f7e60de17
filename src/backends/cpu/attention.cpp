// Paged attention kernel (see attention.h). Work is split over (token, kv head) — all query heads of a group
// together (attend_group, AVX-512, head_dim a multiple of 16) — or else (token, head); each item walks the
// sequence's blocks, scoring a block's keys at once, then folds them into a running max / sum / accumulator (online
// softmax), so memory use is independent of context length.
#include "backends/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "core/thread_pool.h"

#include "backends/cpu/kernel_variant.h"  // after every other include but the kernel-private headers
#include "backends/cpu/simd.h"

namespace moeinfer::cpu::MOEINFER_KERNEL_NS {

namespace {

// The first key position a query at pos sees (its sliding window's start, or 0).
int64_t first_visible(int64_t pos, const AttentionShape& shape) {
    return shape.sliding_window > 0 ? std::max<int64_t>(0, pos - shape.sliding_window + 1) : 0;
}

}  // namespace

void write_kv(const float* k, const float* v, int64_t T, const PagedKvMeta& meta, const AttentionShape& shape,
              float* k_cache, float* v_cache) {
    const int64_t width = shape.num_kv_heads * shape.head_dim;
    for (int64_t t = 0; t < T; ++t) {
        const int64_t pos = meta.positions[t];
        const int64_t block = meta.block_tables[meta.token_seq[t]][pos / meta.block_size];
        const int64_t slot = block * meta.block_size + pos % meta.block_size;
        std::memcpy(k_cache + slot * width, k + t * width, width * sizeof(float));
        std::memcpy(v_cache + slot * width, v + t * width, width * sizeof(float));
    }
}

#if MOEINFER_AVX512
namespace {

constexpr int64_t kTransposeMinTokens = 8;  // batches from this size transpose the keys once (transpose_keys)

// One (token, kv head) item with its G query heads (G a template parameter so the score accumulators stay in
// registers): keys are taken 16 at a time, each of their head_dim columns brought once into a register and
// multiplied with every head's query, so a score needs no horizontal sum and K is read once per group instead of
// once per head; softmax weights come from one vector exp per 16 keys. head_dim must be a multiple of 16.
// kt (optional): this sequence's K blocks transposed, [block][kv head][head_dim][bsp] with bsp = block_size rounded
// up to 16 (transpose_keys); without it the 16 key rows are transposed in registers, 16 columns at a time.
template <int G>
void attend_group(const float* q, float scale, int64_t pos, int64_t first, const int32_t* table, const PagedKvMeta& meta,
                  const AttentionShape& shape, int64_t kvh, const float* k_cache, const float* v_cache, const float* kt,
                  float* out, float* qs, float* acc) {
    const int64_t hd = shape.head_dim, width = shape.num_kv_heads * hd, bs = meta.block_size, bsp = (bs + 15) / 16 * 16;
    for (int64_t i = 0; i < G * hd; ++i) qs[i] = q[i] * scale;
    std::fill(acc, acc + G * hd, 0.0f);
    float m[G];
    double l[G];
    for (int g = 0; g < G; ++g) m[g] = -std::numeric_limits<float>::infinity(), l[g] = 0;
    for (int64_t j0 = first - first % bs; j0 <= pos; j0 += bs) {
        const int64_t lo = std::max(j0, first), hi = std::min(j0 + bs - 1, pos);
        const int64_t base = int64_t(table[j0 / bs]) * bs;
        if (j0 + bs <= pos) {
            // The next block's K and V rows of this kv head start on their way while this block is scored: at
            // decode they come from DRAM (the weights streamed since evicted them), one short row per key.
            const int64_t next = int64_t(table[j0 / bs + 1]) * bs;
            for (int64_t r = 0; r < bs; ++r)
                for (int64_t d = 0; d < hd; d += 16) {
                    _mm_prefetch(reinterpret_cast<const char*>(k_cache + (next + r) * width + kvh * hd + d), _MM_HINT_T0);
                    _mm_prefetch(reinterpret_cast<const char*>(v_cache + (next + r) * width + kvh * hd + d), _MM_HINT_T0);
                }
        }
        for (int64_t c0 = lo; c0 <= hi; c0 += 16) {
            const int n = int(std::min<int64_t>(16, hi - c0 + 1));
            const __mmask16 valid = __mmask16((1u << n) - 1);
            const float* kb = k_cache + (base + c0 - j0) * width + kvh * hd;
            const float* ktb = kt ? kt + ((j0 / bs) * shape.num_kv_heads + kvh) * hd * bsp + (c0 - j0) : nullptr;
            const float* vb = v_cache + (base + c0 - j0) * width + kvh * hd;
            __m512 s[G];
            for (int g = 0; g < G; ++g) s[g] = _mm512_setzero_ps();
            if (ktb) {
                for (int64_t d = 0; d < hd; ++d) {
                    const __m512 kd = _mm512_maskz_loadu_ps(valid, ktb + d * bsp);
                    for (int g = 0; g < G; ++g) s[g] = _mm512_fmadd_ps(_mm512_set1_ps(qs[g * hd + d]), kd, s[g]);
                }
            } else {
                // The 16 keys' rows, 16 columns at a time, turned into 16 column vectors in registers (a gather per
                // column cost two thirds of decode attention on Zen 5: 16 separate loads each).
                for (int64_t d0 = 0; d0 < hd; d0 += 16) {
                    __m512 kd[16];
                    for (int j = 0; j < 16; ++j) kd[j] = j < n ? _mm512_loadu_ps(kb + j * width + d0) : _mm512_setzero_ps();
                    transpose16(kd);
                    for (int dd = 0; dd < 16; ++dd)
                        for (int g = 0; g < G; ++g)
                            s[g] = _mm512_fmadd_ps(_mm512_set1_ps(qs[g * hd + d0 + dd]), kd[dd], s[g]);
                }
            }
            alignas(64) float p[G][16];
            float correction[G];
            for (int g = 0; g < G; ++g) {
                const __m512 sg = _mm512_mask_mov_ps(_mm512_set1_ps(-std::numeric_limits<float>::infinity()), valid, s[g]);
                const float tile_max = std::max(m[g], _mm512_reduce_max_ps(sg));
                correction[g] = std::exp(m[g] - tile_max);  // exp(-inf) = 0 on the first tile
                const __m512 e = _mm512_maskz_mov_ps(valid, exp_ps(_mm512_sub_ps(sg, _mm512_set1_ps(tile_max))));
                l[g] = l[g] * correction[g] + _mm512_reduce_add_ps(e);
                m[g] = tile_max;
                _mm512_store_ps(p[g], e);
            }
            // Each V row is loaded once for all G heads.
            for (int64_t d = 0; d < hd; d += 16) {
                __m512 a[G];
                for (int g = 0; g < G; ++g) a[g] = _mm512_mul_ps(_mm512_loadu_ps(acc + g * hd + d), _mm512_set1_ps(correction[g]));
                for (int j = 0; j < n; ++j) {
                    const __m512 v = _mm512_loadu_ps(vb + j * width + d);
                    for (int g = 0; g < G; ++g) a[g] = _mm512_fmadd_ps(_mm512_set1_ps(p[g][j]), v, a[g]);
                }
                for (int g = 0; g < G; ++g) _mm512_storeu_ps(acc + g * hd + d, a[g]);
            }
        }
    }
    for (int g = 0; g < G; ++g) {
        const float inv = float(1.0 / l[g]);
        for (int64_t i = 0; i < hd; ++i) out[g * hd + i] = acc[g * hd + i] * inv;
    }
}

// For a prefill-sized batch: every sequence's K blocks up to its last position in the batch, transposed once
// ([block][kv head][head_dim][bsp] per sequence, from kt + seq_base[s]) so each (token, kv head) item loads a key
// column with one vector load. Gathering the columns per item cost more than the scores themselves on Zen 5
// (perf: 55 % of the attention time on the gather); transposed once, a block serves every query that sees it.
void transpose_keys(int64_t T, const PagedKvMeta& meta, const AttentionShape& shape, const float* k_cache,
                    std::vector<float>& kt, std::vector<int64_t>& seq_base) {
    const int64_t hd = shape.head_dim, nkv = shape.num_kv_heads, width = nkv * hd, bs = meta.block_size;
    const int64_t bsp = (bs + 15) / 16 * 16, block_floats = nkv * hd * bsp;
    int64_t S = 0;
    for (int64_t t = 0; t < T; ++t) S = std::max<int64_t>(S, meta.token_seq[t] + 1);
    std::vector<int64_t> blocks(S, 0);
    for (int64_t t = 0; t < T; ++t)
        blocks[meta.token_seq[t]] = std::max<int64_t>(blocks[meta.token_seq[t]], meta.positions[t] / bs + 1);
    seq_base.assign(S + 1, 0);
    std::vector<std::pair<int32_t, int32_t>> items;  // (sequence, block index)
    for (int64_t s = 0; s < S; ++s) {
        seq_base[s + 1] = seq_base[s] + blocks[s] * block_floats;
        for (int64_t i = 0; i < blocks[s]; ++i) items.emplace_back(int32_t(s), int32_t(i));
    }
    kt.resize(size_t(seq_base[S]));
    parallel_for(static_cast<int64_t>(items.size()), [&](int64_t b, int64_t e) {
        for (int64_t it = b; it < e; ++it) {
            const auto [s, i] = items[it];
            const float* src = k_cache + int64_t(meta.block_tables[s][i]) * bs * width;
            float* dst = kt.data() + seq_base[s] + i * block_floats;
            for (int64_t h = 0; h < nkv; ++h)
                for (int64_t d = 0; d < hd; ++d) {
                    float* col = dst + (h * hd + d) * bsp;
                    for (int64_t r = 0; r < bs; ++r) col[r] = src[r * width + h * hd + d];
                    for (int64_t r = bs; r < bsp; ++r) col[r] = 0.0f;
                }
        }
    });
}

}  // namespace
#endif

void paged_attention(const float* q, int64_t T, const PagedKvMeta& meta, const AttentionShape& shape,
                     const float* k_cache, const float* v_cache, float* out) {
    const int64_t hd = shape.head_dim;
    const int64_t group = shape.num_heads / shape.num_kv_heads;
    const int64_t width = shape.num_kv_heads * hd;
    const int64_t bs = meta.block_size;
    // Tokens in the order 0, T−1, 1, T−2, …: in a causal prefill a token's cost grows with its position, and the pool
    // gives each thread a contiguous run of items, so this balances the threads (in token order the last thread did
    // about three times the first's work at T = 512 and the others waited).
    auto token_at = [T](int64_t i) { return i % 2 == 0 ? i / 2 : T - 1 - i / 2; };
#if MOEINFER_AVX512
    if (hd % 16 == 0 && (group == 1 || group == 2 || group == 4 || group == 8)) {
        const int64_t nkv = shape.num_kv_heads;
        thread_local std::vector<float> kt;
        std::vector<int64_t> seq_base;
        const bool transposed = T >= kTransposeMinTokens;
        if (transposed) transpose_keys(T, meta, shape, k_cache, kt, seq_base);
        const float* kt_data = kt.data();  // the pool's threads must not name the thread_local (each has its own)
        parallel_for(T * nkv, [&](int64_t b, int64_t e) {
            std::vector<float> qs(group * hd), acc(group * hd);
            for (int64_t item = b; item < e; ++item) {
                const int64_t t = token_at(item / nkv), kvh = item % nkv;
                const int64_t pos = meta.positions[t];
                const int64_t first = first_visible(pos, shape);
                const int64_t h0 = kvh * group;
                const float* qv = q + (t * shape.num_heads + h0) * hd;
                float* o = out + (t * shape.num_heads + h0) * hd;
                const int32_t* table = meta.block_tables[meta.token_seq[t]];
                auto run = [&]<int G>() {
                    const float* kts = transposed ? kt_data + seq_base[meta.token_seq[t]] : nullptr;
                    attend_group<G>(qv, shape.scale, pos, first, table, meta, shape, kvh, k_cache, v_cache, kts, o,
                                    qs.data(), acc.data());
                };
                switch (group) {
                    case 1: run.template operator()<1>(); break;
                    case 2: run.template operator()<2>(); break;
                    case 4: run.template operator()<4>(); break;
                    default: run.template operator()<8>(); break;
                }
            }
        });
        return;
    }
#endif
    parallel_for(T * shape.num_heads, [&](int64_t b, int64_t e) {
        std::vector<float> scores(bs), acc(hd);
        for (int64_t item = b; item < e; ++item) {
            const int64_t t = token_at(item / shape.num_heads), h = item % shape.num_heads, kvh = h / group;
            const int64_t pos = meta.positions[t];
            const int32_t* table = meta.block_tables[meta.token_seq[t]];
            const int64_t first = first_visible(pos, shape);
            const float* qv = q + (t * shape.num_heads + h) * hd;
            float running_max = -std::numeric_limits<float>::infinity();
            double running_sum = 0;
            std::fill(acc.begin(), acc.end(), 0.f);
            for (int64_t j0 = first - first % bs; j0 <= pos; j0 += bs) {
                const int64_t lo = std::max(j0, first), hi = std::min(j0 + bs - 1, pos);
                const int64_t base = int64_t(table[j0 / bs]) * bs;
                float tile_max = running_max;
                for (int64_t j = lo; j <= hi; ++j) {
                    const float* kv = k_cache + (base + j - j0) * width + kvh * hd;
                    scores[j - lo] = dot_f32(qv, kv, hd) * shape.scale;
                    tile_max = std::max(tile_max, scores[j - lo]);
                }
                const float correction = std::exp(running_max - tile_max);  // exp(-inf) = 0 on the first tile
                running_sum *= correction;
                scale_f32(acc.data(), correction, hd);
                running_sum += exp_shifted_f32(scores.data(), tile_max, hi - lo + 1);
                for (int64_t j = lo; j <= hi; ++j)
                    axpy_f32(scores[j - lo], v_cache + (base + j - j0) * width + kvh * hd, acc.data(), hd);
                running_max = tile_max;
            }
            float* o = out + (t * shape.num_heads + h) * hd;
            const float inv = float(1.0 / running_sum);
            for (int64_t i = 0; i < hd; ++i) o[i] = acc[i] * inv;
        }
    });
}

}  // namespace moeinfer::cpu::MOEINFER_KERNEL_NS
