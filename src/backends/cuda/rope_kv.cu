// RoPE fused with the KV-cache write: one block per token rotates that token's q heads in place and writes its
// rotated k heads and its v heads straight into their paged-cache slot, so k never makes a round trip through
// device memory between the rotation and the cache. Angles are pos · inv_freq in fp32 with accurate sin/cos,
// as the CPU kernel (and HF) form them, so long positions round alike.
#include "backends/cuda/ops.h"

namespace moeinfer::cuda {
namespace {

constexpr int kThreads = 128;

// Rotates pair i of one head row x (length d) and returns the two outputs with their offsets.
__device__ __forceinline__ void rotate_pair(const bf16* x, int64_t d, int64_t i, bool interleaved, float c, float s,
                                            int64_t& o0, int64_t& o1, float& y0, float& y1) {
    o0 = interleaved ? 2 * i : i;
    o1 = interleaved ? 2 * i + 1 : i + d / 2;
    const float x0 = __bfloat162float(x[o0]), x1 = __bfloat162float(x[o1]);
    y0 = x0 * c - x1 * s;
    y1 = x1 * c + x0 * s;
}

__global__ void rope_write_kv_kernel(bf16* __restrict__ q, const bf16* __restrict__ k, const bf16* __restrict__ v,
                                     int64_t num_heads, const int32_t* __restrict__ positions,
                                     const int32_t* __restrict__ token_seq, const float* __restrict__ inv_freq,
                                     bool interleaved, PagedKv kv, bf16* __restrict__ k_cache,
                                     bf16* __restrict__ v_cache) {
    const int64_t t = blockIdx.x;
    const int64_t d = kv.head_dim, half = d / 2, hkv = kv.num_kv_heads;
    const int32_t pos = positions[t];
    const int64_t block = kv.block_tables[int64_t(token_seq[t]) * kv.max_blocks_per_seq + pos / kv.block_size];
    const int64_t slot_base = ((block * kv.block_size + pos % kv.block_size) * hkv) * d;  // [hkv, d] slot in cache

    // q and k pairs share the angle of pair i: iterate (head, i) with i fastest so a warp reads adjacent pairs.
    const int64_t pairs = (num_heads + hkv) * half;
    for (int64_t idx = threadIdx.x; idx < pairs; idx += blockDim.x) {
        const int64_t h = idx / half, i = idx % half;
        float s, c;
        sincosf(float(pos) * inv_freq[i], &s, &c);
        int64_t o0, o1;
        float y0, y1;
        if (h < num_heads) {
            bf16* row = q + (t * num_heads + h) * d;
            rotate_pair(row, d, i, interleaved, c, s, o0, o1, y0, y1);
            row[o0] = __float2bfloat16(y0);  // each pair is read and written by one thread only
            row[o1] = __float2bfloat16(y1);
        } else {
            const int64_t kh = h - num_heads;
            rotate_pair(k + (t * hkv + kh) * d, d, i, interleaved, c, s, o0, o1, y0, y1);
            bf16* dst = k_cache + slot_base + kh * d;
            dst[o0] = __float2bfloat16(y0);
            dst[o1] = __float2bfloat16(y1);
        }
    }
    for (int64_t idx = threadIdx.x; idx < hkv * d; idx += blockDim.x) v_cache[slot_base + idx] = v[t * hkv * d + idx];
}

}  // namespace

void rope_write_kv(bf16* q, const bf16* k, const bf16* v, int64_t T, int64_t num_heads, const int32_t* positions,
                   const int32_t* token_seq, const float* inv_freq, bool interleaved, const PagedKv& kv, bf16* k_cache,
                   bf16* v_cache, cudaStream_t stream) {
    if (T == 0) return;
    if (kv.head_dim % 2 != 0) throw std::invalid_argument("cuda::rope_write_kv: head_dim must be even");
    rope_write_kv_kernel<<<dim3(T), kThreads, 0, stream>>>(q, k, v, num_heads, positions, token_seq, inv_freq,
                                                           interleaved, kv, k_cache, v_cache);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

}  // namespace moeinfer::cuda
