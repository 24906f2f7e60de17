// Causal GQA attention over a paged KV cache, as a tiled online softmax (one KV block per tile).
#pragma once
#include <cstdint>

namespace moeinfer::cpu {

// Where each token of a ragged batch reads and writes the cache.
struct PagedKvMeta {
    const int32_t* positions;            // [T] position of each token in its sequence
    const int32_t* token_seq;            // [T] sequence index of each token
    const int32_t* const* block_tables;  // [num_seqs] → block ids of that sequence, in position order
    int64_t block_size;                  // tokens per block
};

struct AttentionShape {
    int64_t num_heads, num_kv_heads, head_dim;
    int64_t sliding_window;  // 0 = full causal; else key j is visible to query p when p - window < j <= p
    float scale;             // usually 1/sqrt(head_dim)
};

// Cache layout per layer: [num_blocks, block_size, num_kv_heads, head_dim] for K and for V.
// k, v: [T, num_kv_heads, head_dim] for the batch's tokens, written at their positions.
void write_kv(const float* k, const float* v, int64_t T, const PagedKvMeta& meta, const AttentionShape& shape,
              float* k_cache, float* v_cache);

// q: [T, num_heads, head_dim]; out: [T, num_heads, head_dim]. Each query attends to its own sequence's
// keys at positions ≤ its own (these must already be in the cache, this step's included).
void paged_attention(const float* q, int64_t T, const PagedKvMeta& meta, const AttentionShape& shape,
                     const float* k_cache, const float* v_cache, float* out);

}  // namespace moeinfer::cpu
