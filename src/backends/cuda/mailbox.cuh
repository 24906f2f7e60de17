// Mailboxes: device memory in which one kernel's blocks hand values to another block of the same grid without a
// fence, ticket or kernel boundary. Every slot holds kMailboxEmpty (all bits set: a NaN arithmetic never produces)
// until a value is posted; a value is its own "ready" flag, so the reader polls the slots it needs with relaxed
// loads until none is empty, then empties them again for the next launch (whose writes come after this grid ends,
// in stream order). Each slot has one reader, which is the only one to empty it. Readers spin: the posting blocks
// must never wait on them, and there must be few readers, so that the posters always get SM slots to run in.
// Used by route_decode (router logits → each token's top-k warp). Measured and dropped: the decode attention's split
// merge this way (bench/RESULTS.md 2026-11-27 11:30-12:12: the in-kernel merge cost ~10 µs a layer where the merge
// kernel costs 4.6).
#pragma once
#include "backends/cuda/ops.h"  // kMailboxEmpty, fill_mailbox

namespace moeinfer::cuda {

__device__ __forceinline__ float mailbox_load(const float* p) {
    float v;
    asm volatile("ld.relaxed.gpu.global.f32 %0, [%1];" : "=f"(v) : "l"(p) : "memory");
    return v;
}
__device__ __forceinline__ bool mailbox_is_empty(float v) { return __float_as_uint(v) == kMailboxEmpty; }
// Posts v (the empty pattern, were it ever computed, as the ordinary NaN).
__device__ __forceinline__ void mailbox_post(float* p, float v) {
    if (mailbox_is_empty(v)) v = __uint_as_float(0x7fffffffu);
    asm volatile("st.relaxed.gpu.global.f32 [%0], %1;" ::"l"(p), "f"(v) : "memory");
}
__device__ __forceinline__ void mailbox_clear(float* p) {
    asm volatile("st.relaxed.gpu.global.f32 [%0], %1;" ::"l"(p), "f"(__uint_as_float(kMailboxEmpty)) : "memory");
}

}  // namespace moeinfer::cuda
