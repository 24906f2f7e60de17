// Attention layer: q/k/v projections (+bias, +q/k norm), RoPE, KV-cache write, paged attention, output projection.
#pragma once
#include <cstdint>
#include <vector>

#include "backends/cpu/attention.h"
#include "layers/layer_weights.h"

namespace moeinfer {

struct AttentionContext {
    cpu::PagedKvMeta meta;     // where each token reads/writes the cache
    cpu::AttentionShape shape;
    float* k_cache;            // this layer's cache (see KvCache)
    float* v_cache;
    const float* inv_freq;     // [head_dim / 2] rotary frequencies
    bool rope_interleaved;
    float norm_eps;
};

// out[T, H] = attention of x[T, H] (already normed) for every token of the batch.
void attention_forward(const AttentionWeights& w, const float* x, int64_t T, const AttentionContext& ctx, float* out);

}  // namespace moeinfer
