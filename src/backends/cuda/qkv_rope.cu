// Everything between the fused q|k|v projection and attention, in one launch per step: bias add, q/k RMSNorm
// (per head or over the whole projection), RoPE, and the write of rotated k and of v into the paged cache. One
// block per token holds its [qw + 2·kvw] row in shared memory as fp32 and rounds to bf16 after each stage, as a
// chain of separate bf16 kernels would store it (the CPU reference in tests/cuda/qkv_rope_test.cpp does the same).
// In a decode step this replaces four launches per layer with one. Steps of ≤ 64 tokens of most models take the
// warp-per-head form below.
#include "backends/cuda/ops.h"
#include "backends/cuda/pdl.cuh"
#include "backends/cuda/reduce.cuh"

namespace moeinfer::cuda {
namespace {

constexpr int kThreads = 512;  // one block per token: a decode step has few blocks, so each is wide

__device__ __forceinline__ float round_bf16(float v) { return __bfloat162float(__float2bfloat16(v)); }

__global__ void qkv_rope_kernel(const bf16* __restrict__ qkv, int64_t num_heads, const int32_t* __restrict__ positions,
                                const int32_t* __restrict__ token_seq, QkvPost p, PagedKv kv, bf16* __restrict__ q_out,
                                bf16* __restrict__ k_cache, bf16* __restrict__ v_cache) {
    extern __shared__ float row[];  // [qw + 2·kvw]
    const int64_t t = blockIdx.x, d = kv.head_dim, half = d / 2, hkv = kv.num_kv_heads;
    const int64_t qw = num_heads * d, kvw = hkv * d, width = qw + 2 * kvw;
    // 16-byte loads (width is a multiple of 8: head_dim is), all of a thread's pieces in flight at once.
    const uint4* src = reinterpret_cast<const uint4*>(qkv + t * width);
    for (int64_t piece = threadIdx.x; piece < width / 8; piece += blockDim.x) {
        const uint4 raw = src[piece];
        const __nv_bfloat162* h2 = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
        for (int j = 0; j < 4; ++j) {
            const float2 f = __bfloat1622float2(h2[j]);
            const int64_t i = 8 * piece + 2 * j;
            row[i] = round_bf16(f.x + (p.bias ? p.bias[i] : 0.0f));
            row[i + 1] = round_bf16(f.y + (p.bias ? p.bias[i + 1] : 0.0f));
        }
    }
    __syncthreads();

    if (p.qk_norm == QkNormKind::PerHead) {
        const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
        for (int64_t h = warp; h < num_heads + hkv; h += warps) {  // q heads, then k heads
            float* x = row + h * d;
            const float* w = h < num_heads ? p.q_norm : p.k_norm;
            float ss = 0.0f;
            for (int64_t i = lane; i < d; i += 32) ss += x[i] * x[i];
            const float inv = rsqrtf(warp_sum(ss) / float(d) + p.eps);
            for (int64_t i = lane; i < d; i += 32) x[i] = round_bf16(x[i] * inv * w[i]);
        }
        __syncthreads();
    } else if (p.qk_norm == QkNormKind::Full) {
        float sq = 0.0f, sk = 0.0f;
        for (int64_t i = threadIdx.x; i < qw; i += blockDim.x) sq += row[i] * row[i];
        for (int64_t i = threadIdx.x; i < kvw; i += blockDim.x) sk += row[qw + i] * row[qw + i];
        const float inv_q = rsqrtf(block_sum(sq) / float(qw) + p.eps);
        const float inv_k = rsqrtf(block_sum(sk) / float(kvw) + p.eps);
        for (int64_t i = threadIdx.x; i < qw; i += blockDim.x) row[i] = round_bf16(row[i] * inv_q * p.q_norm[i]);
        for (int64_t i = threadIdx.x; i < kvw; i += blockDim.x)
            row[qw + i] = round_bf16(row[qw + i] * inv_k * p.k_norm[i]);
        __syncthreads();
    }

    const int32_t pos = positions[t];
    const int64_t block = kv.block_tables[int64_t(token_seq[t]) * kv.max_blocks_per_seq + pos / kv.block_size];
    const int64_t slot = ((block * kv.block_size + pos % kv.block_size) * hkv) * d;
    for (int64_t idx = threadIdx.x; idx < (num_heads + hkv) * half; idx += blockDim.x) {
        const int64_t h = idx / half, i = idx % half;
        float s, c;
        sincosf(float(pos) * p.inv_freq[i], &s, &c);
        const int64_t o0 = p.interleaved ? 2 * i : i, o1 = p.interleaved ? 2 * i + 1 : i + half;
        const float* x = row + h * d;
        const bf16 y0 = __float2bfloat16(x[o0] * c - x[o1] * s), y1 = __float2bfloat16(x[o1] * c + x[o0] * s);
        bf16* dst = h < num_heads ? q_out + (t * num_heads + h) * d : k_cache + slot + (h - num_heads) * d;
        dst[o0] = y0;
        dst[o1] = y1;
    }
    for (int64_t i = threadIdx.x; i < kvw; i += blockDim.x) v_cache[slot + i] = __float2bfloat16(row[qw + kvw + i]);
}

// The common case (no whole-projection norm, rotate-half RoPE, head_dim a multiple of 64) without the block-wide
// stages: one warp per head, lane j owning elements j, j + 32, ..., so each element and its RoPE partner
// (i + d/2) sit in the same lane. A decode step then spreads over (heads / 4) blocks per token instead of one
// block walking every head. The same bf16 rounding after each stage as the block kernel.
template <int D>
__global__ void qkv_rope_heads_kernel(const bf16* __restrict__ qkv, int64_t num_heads,
                                      const int32_t* __restrict__ positions, const int32_t* __restrict__ token_seq,
                                      QkvPost p, PagedKv kv, bf16* __restrict__ q_out, bf16* __restrict__ k_cache,
                                      bf16* __restrict__ v_cache) {
    constexpr int kPer = D / 32, kHalf = kPer / 2;
    const int lane = threadIdx.x & 31;
    const int64_t t = blockIdx.x, hkv = kv.num_kv_heads;
    const int64_t h = int64_t(blockIdx.y) * (blockDim.x / 32) + (threadIdx.x >> 5);
    pdl_trigger();  // the decode attention after it may get resident and load the keys it does not write
    if (h >= num_heads + 2 * hkv) return;  // whole warps leave
    const int64_t width = (num_heads + 2 * hkv) * D;
    // Every load that does not depend on another is issued first — the head's norm weights and RoPE frequencies
    // (constants, before waiting for the q|k|v product: the kernel is launched with PDL), then its values — so the
    // chain is one memory round trip plus the position → block-table lookup, not one round trip per stage.
    float x[kPer], nw[kPer], freq[kHalf];
    const bool v_head = h >= num_heads + hkv;
    const float* norm_w = p.qk_norm == QkNormKind::PerHead && !v_head ? (h < num_heads ? p.q_norm : p.k_norm) : nullptr;
#pragma unroll
    for (int u = 0; u < kPer; ++u) nw[u] = norm_w ? norm_w[lane + 32 * u] : 1.0f;
#pragma unroll
    for (int u = 0; u < kHalf; ++u) freq[u] = v_head ? 0.0f : p.inv_freq[lane + 32 * u];
    pdl_wait();
#pragma unroll
    for (int u = 0; u < kPer; ++u) {
        const int64_t i = h * D + lane + 32 * u;
        x[u] = __bfloat162float(qkv[t * width + i]) + (p.bias ? p.bias[i] : 0.0f);
    }
    const int32_t pos = positions[t];
    const int64_t block = kv.block_tables[int64_t(token_seq[t]) * kv.max_blocks_per_seq + pos / kv.block_size];
    const int64_t slot = ((block * kv.block_size + pos % kv.block_size) * hkv) * D;
#pragma unroll
    for (int u = 0; u < kPer; ++u) x[u] = round_bf16(x[u]);
    if (v_head) {  // a v head: into the cache as it is
#pragma unroll
        for (int u = 0; u < kPer; ++u) v_cache[slot + (h - num_heads - hkv) * D + lane + 32 * u] = __float2bfloat16(x[u]);
        return;
    }
    if (norm_w) {
        float ss = 0.0f;
#pragma unroll
        for (int u = 0; u < kPer; ++u) ss += x[u] * x[u];
        const float inv = rsqrtf(warp_sum(ss) / float(D) + p.eps);
#pragma unroll
        for (int u = 0; u < kPer; ++u) x[u] = round_bf16(x[u] * inv * nw[u]);
    }
    bf16* dst = h < num_heads ? q_out + (t * num_heads + h) * D : k_cache + slot + (h - num_heads) * D;
#pragma unroll
    for (int u = 0; u < kHalf; ++u) {
        const int i = lane + 32 * u;
        float sn, cs;
        sincosf(float(pos) * freq[u], &sn, &cs);
        dst[i] = __float2bfloat16(x[u] * cs - x[u + kHalf] * sn);
        dst[i + D / 2] = __float2bfloat16(x[u + kHalf] * cs + x[u] * sn);
    }
}

template <int D>
void launch_heads(const bf16* qkv, int64_t T, int64_t num_heads, const int32_t* positions, const int32_t* token_seq,
                  const QkvPost& post, const PagedKv& kv, bf16* q_out, bf16* k_cache, bf16* v_cache,
                  cudaStream_t stream) {
    constexpr int kWarps = 4;
    const dim3 grid(unsigned(T), unsigned((num_heads + 2 * kv.num_kv_heads + kWarps - 1) / kWarps));
    launch_pdl(qkv_rope_heads_kernel<D>, grid, 32 * kWarps, 0, stream, qkv, num_heads, positions, token_seq, post, kv,
               q_out, k_cache, v_cache);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

}  // namespace

void qkv_rope_write_kv(const bf16* qkv, int64_t T, int64_t num_heads, const int32_t* positions,
                       const int32_t* token_seq, const QkvPost& post, const PagedKv& kv, bf16* q_out, bf16* k_cache,
                       bf16* v_cache, cudaStream_t stream) {
    if (T == 0) return;
    if (kv.head_dim % 8 != 0) throw std::invalid_argument("cuda::qkv_rope_write_kv: head_dim must be a multiple of 8");
    // Decode-sized steps take the warp-per-head kernel; large ones the block kernel (16-byte loads, one block per
    // token already fills the device).
    if (T <= 64 && post.qk_norm != QkNormKind::Full && !post.interleaved) {
        switch (kv.head_dim) {
            case 64: return launch_heads<64>(qkv, T, num_heads, positions, token_seq, post, kv, q_out, k_cache, v_cache, stream);
            case 128: return launch_heads<128>(qkv, T, num_heads, positions, token_seq, post, kv, q_out, k_cache, v_cache, stream);
            case 256: return launch_heads<256>(qkv, T, num_heads, positions, token_seq, post, kv, q_out, k_cache, v_cache, stream);
            default: break;  // the block kernel below
        }
    }
    const size_t smem = sizeof(float) * size_t((num_heads + 2 * kv.num_kv_heads) * kv.head_dim);
    allow_dynamic_smem(qkv_rope_kernel, smem);
    qkv_rope_kernel<<<dim3(T), kThreads, smem, stream>>>(qkv, num_heads, positions, token_seq, post, kv, q_out, k_cache,
                                                        v_cache);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

}  // namespace moeinfer::cuda
