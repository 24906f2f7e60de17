// Decode attention on tensor cores for small batches (decode_attention_mma.cu), used by paged_decode_attention.
#pragma once
#include "backends/cuda/ops.h"

namespace moeinfer::cuda {

// head_dim 64 or 128 and at most 16 query heads per kv head.
bool decode_attention_mma_supported(const DecodeAttentionArgs& args, const PagedKv& kv);
// The split ranges and split-K workspace of paged_decode_attention's kernel; the caller runs the merge.
void decode_attention_mma(const DecodeAttentionArgs& args, const PagedKv& kv, const bf16* k_cache,
                          const bf16* v_cache, cudaStream_t stream);

}  // namespace moeinfer::cuda
