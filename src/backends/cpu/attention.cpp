// Paged attention kernel (see attention.h). Work is split over (token, head); each item walks the sequence's
// blocks, scoring a block's keys at once, then folds them into a running max / sum / accumulator (online softmax),
// so memory use is independent of context length.
#include "backends/cpu/attention.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <vector>

#include "backends/cpu/simd.h"
#include "core/thread_pool.h"

namespace moeinfer::cpu {

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
    parallel_for(T * shape.num_heads, [&](int64_t b, int64_t e) {
        std::vector<float> scores(bs), acc(hd);
        for (int64_t item = b; item < e; ++item) {
            const int64_t t = token_at(item / shape.num_heads), h = item % shape.num_heads, kvh = h / group;
            const int64_t pos = meta.positions[t];
            const int32_t* table = meta.block_tables[meta.token_seq[t]];
            const int64_t first = shape.sliding_window > 0 ? std::max<int64_t>(0, pos - shape.sliding_window + 1) : 0;
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

}  // namespace moeinfer::cpu
