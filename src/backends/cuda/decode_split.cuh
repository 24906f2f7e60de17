// What a decode attention block writes (paged_attention.cu's fp32 kernel, decode_attention_mma.cu's tensor-core one):
// with one split the normalized output, else its split's partial in the split-K workspace that merge_kernel reads —
// ml [num_seqs, num_heads, splits, 2] (running max in natural-log units of the scaled score, sum of exponentials),
// then acc [num_seqs, num_heads, splits, D] (the unnormalized weighted sum of V).
#pragma once
#include "backends/cuda/ops.h"

namespace moeinfer::cuda {

// The keys [begin, end) split `split` of query seq attends to: its visible keys [max(0, len − window), len) in whole
// units of kDecodeSplitKeys, spread evenly over the splits (a split past the last unit gets an empty range). Both
// decode kernels use it, so their splits cover the same keys (choose_decode_splits counts these units).
constexpr int64_t kDecodeSplitKeys = 32;
struct DecodeSplitRange {
    int64_t len, begin, end;
};
__device__ __forceinline__ DecodeSplitRange decode_split_range(const DecodeAttentionArgs& a, int64_t seq,
                                                               int64_t split) {
    const int64_t len = a.context_lens[seq];
    const int64_t start = a.sliding_window > 0 ? max(int64_t(0), len - a.sliding_window) : 0;
    const int64_t units = (len - start + kDecodeSplitKeys - 1) / kDecodeSplitKeys;
    const int64_t per_split = (units + a.num_splits - 1) / a.num_splits;
    const int64_t begin = start + split * per_split * kDecodeSplitKeys;
    return {len, begin, min(len, begin + per_split * kDecodeSplitKeys)};
}

// Column d of head h of sequence seq: A = Σ p·v over the block's keys, L = Σ p, M the max the p are relative to.
__device__ __forceinline__ void store_decode_result(const DecodeAttentionArgs& a, int64_t seq, int64_t h, int64_t split,
                                                    int64_t D, int64_t d, float A, float L, float M) {
    const int64_t S = a.num_splits;
    if (S == 1) {
        a.out[(seq * a.num_heads + h) * D + d] = __float2bfloat16(L > 0.0f ? A / L : 0.0f);
        return;
    }
    const int64_t r = (seq * a.num_heads + h) * S + split, rows = a.num_seqs * a.num_heads * S;
    a.workspace[2 * rows + r * D + d] = A;
    if (d == 0) {
        a.workspace[2 * r] = M;
        a.workspace[2 * r + 1] = L;
    }
}

}  // namespace moeinfer::cuda
