// Where a position's K/V row lives in the paged cache, for the attention kernels (decode, tensor-core decode,
// prefill): block table entry, then the row within the block, then the kv head.
#pragma once
#include "backends/cuda/ops.h"

namespace moeinfer::cuda {

// Cache offset (in elements) of position pos's K/V row for kv head kvh; 0 (a valid row) for positions at or past end.
__device__ __forceinline__ int64_t kv_offset(const PagedKv& kv, const int32_t* table, int64_t pos, int64_t end,
                                             int64_t kvh, int D) {
    if (pos >= end) return 0;
    return ((int64_t(table[pos / kv.block_size]) * kv.block_size + pos % kv.block_size) * kv.num_kv_heads + kvh) * D;
}

}  // namespace moeinfer::cuda
