// Paged decode attention (one query token per sequence), GQA-aware, online softmax, optional split-K.
// Grid = (kv head, sequence, split). A block serves all G = num_heads / num_kv_heads query heads that share one
// kv head, so each K/V row is read from DRAM once per group, not once per query head. Each of the block's warps
// runs its own online softmax over its own tiles of 32 key positions (no block barrier inside the key loop):
// lane j scores key j of the tile against all G heads, reading its K row in 16-byte pieces; then the warp walks
// the tile's 32 V rows, each lane owning head_dim/32 output columns of every head (coalesced V reads, fp32
// accumulators in registers, head_dim and the group bound as template parameters). The warps' (m, l, acc) are
// merged through shared memory at the end. With split-K each split writes an unnormalized partial and a second
// kernel merges the splits, which keeps the card busy when few sequences have long contexts.
// With DecodeAttentionArgs::query_seq the same kernel serves prefill tokens (each query is its own row, causal by its
// context length; a length of 0 yields zeros, which CUDA-graph padding rows use).
// Next steps (issue 7): K/V tiles staged through shared memory by TMA, and a tiled tensor-core prefill kernel.
#include <algorithm>
#include <cmath>

#include "backends/cuda/ops.h"
#include "backends/cuda/reduce.cuh"

namespace moeinfer::cuda {
namespace {

constexpr int kWarps = 4;
constexpr int kThreads = 32 * kWarps;
constexpr int kTile = 32;  // key positions per warp step = one per lane

template <int D, int GMAX>
__global__ void __launch_bounds__(kThreads) decode_kernel(DecodeAttentionArgs a, PagedKv kv,
                                                          const bf16* __restrict__ k_cache,
                                                          const bf16* __restrict__ v_cache) {
    constexpr int kCols = (D + 31) / 32;  // output columns per lane (head_dim 16: lanes 16-31 own none)
    extern __shared__ __align__(16) float smem[];
    float* q_s = smem;               // [G, D] query rows × scale
    float* red = smem + GMAX * D;    // [kWarps, G, D + 2]: each warp's acc, m, l for the final merge
    const int64_t kvh = blockIdx.x, seq = blockIdx.y, split = blockIdx.z;
    const int64_t hkv = kv.num_kv_heads;
    const int G = int(a.num_heads / hkv);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const bool owns = lane * kCols < D;

    const int64_t len = a.context_lens[seq];
    const int64_t start = a.sliding_window > 0 ? max(int64_t(0), len - a.sliding_window) : 0;
    const int64_t tiles = (len - start + kTile - 1) / kTile;  // split ranges are whole tiles
    const int64_t tiles_per_split = (tiles + a.num_splits - 1) / a.num_splits;
    const int64_t begin = start + split * tiles_per_split * kTile;
    const int64_t end = min(len, begin + tiles_per_split * kTile);

    const bf16* q = a.q + (seq * a.num_heads + kvh * G) * D;
    for (int i = threadIdx.x; i < G * D; i += kThreads) q_s[i] = __bfloat162float(q[i]) * a.scale;
    __syncthreads();

    float m[GMAX], l[GMAX], acc[GMAX][kCols];
#pragma unroll
    for (int g = 0; g < GMAX; ++g) {
        m[g] = -INFINITY;
        l[g] = 0.0f;
#pragma unroll
        for (int c = 0; c < kCols; ++c) acc[g][c] = 0.0f;
    }

    const int32_t* table = kv.block_tables + (a.query_seq ? int64_t(a.query_seq[seq]) : seq) * kv.max_blocks_per_seq;
    for (int64_t t0 = begin + int64_t(warp) * kTile; t0 < end; t0 += int64_t(kWarps) * kTile) {
        const int64_t pos = t0 + lane;
        const bool valid = pos < end;
        const int64_t off = valid ? ((int64_t(table[pos / kv.block_size]) * kv.block_size + pos % kv.block_size) * hkv +
                                     kvh) * D
                                  : 0;
        float s[GMAX];
#pragma unroll
        for (int g = 0; g < GMAX; ++g) s[g] = 0.0f;
        if (valid) {
            const uint4* krow = reinterpret_cast<const uint4*>(k_cache + off);  // D % 8 == 0 and 16-byte rows
#pragma unroll 4
            for (int c = 0; c < D / 8; ++c) {
                const uint4 raw = krow[c];
                const __nv_bfloat162* kp = reinterpret_cast<const __nv_bfloat162*>(&raw);
                float kf[8];
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const float2 f = __bfloat1622float2(kp[e]);
                    kf[2 * e] = f.x;
                    kf[2 * e + 1] = f.y;
                }
#pragma unroll
                for (int g = 0; g < GMAX; ++g) {
                    if (g < G) {
                        const float4 qa = *reinterpret_cast<const float4*>(q_s + g * D + 8 * c);
                        const float4 qb = *reinterpret_cast<const float4*>(q_s + g * D + 8 * c + 4);
                        s[g] += qa.x * kf[0] + qa.y * kf[1] + qa.z * kf[2] + qa.w * kf[3] + qb.x * kf[4] +
                                qb.y * kf[5] + qb.z * kf[6] + qb.w * kf[7];
                    }
                }
            }
        }
        // Online softmax update, per head, over the warp's 32 positions.
        float p[GMAX];
#pragma unroll
        for (int g = 0; g < GMAX; ++g) {
            const float x = valid ? s[g] : -INFINITY;
            const float m_new = fmaxf(m[g], warp_max(x));
            p[g] = valid ? expf(x - m_new) : 0.0f;
            const float corr = expf(m[g] - m_new);  // 0 on the first tile (m = -inf)
            l[g] = l[g] * corr + warp_sum(p[g]);
            m[g] = m_new;
#pragma unroll
            for (int c = 0; c < kCols; ++c) acc[g][c] *= corr;
        }
        // V pass over the tile's 32 keys, 8 at a time with their loads issued together (a key-by-key loop waited
        // one memory latency per key). Keys past `end` have p = 0 and off = 0 (a valid row), so no guards.
#pragma unroll
        for (int j0 = 0; j0 < kTile; j0 += 8) {
            float vf[8][kCols];
#pragma unroll
            for (int u = 0; u < 8; ++u) {
                const int64_t vo = __shfl_sync(0xffffffffu, off, j0 + u) + lane * kCols;
#pragma unroll
                for (int c = 0; c < kCols; ++c) vf[u][c] = owns ? __bfloat162float(v_cache[vo + c]) : 0.0f;
            }
#pragma unroll
            for (int u = 0; u < 8; ++u) {
#pragma unroll
                for (int g = 0; g < GMAX; ++g) {
                    const float pj = __shfl_sync(0xffffffffu, p[g], j0 + u);
#pragma unroll
                    for (int c = 0; c < kCols; ++c) acc[g][c] += pj * vf[u][c];
                }
            }
        }
    }

    // Merge the warps: each writes (acc, m, l) per head; then thread i combines column i % D of head i / D.
#pragma unroll
    for (int g = 0; g < GMAX; ++g) {
        if (g < G) {
            float* r = red + (warp * G + g) * (D + 2);
            if (owns)
#pragma unroll
                for (int c = 0; c < kCols; ++c) r[lane * kCols + c] = acc[g][c];
            if (lane == 0) {
                r[D] = m[g];
                r[D + 1] = l[g];
            }
        }
    }
    __syncthreads();
    const int64_t S = a.num_splits;
    const int64_t rows = int64_t(gridDim.y) * a.num_heads * S;
    for (int i = threadIdx.x; i < G * D; i += kThreads) {
        const int g = i / D, d = i % D;
        float M = -INFINITY;
        for (int w = 0; w < kWarps; ++w) M = fmaxf(M, red[(w * G + g) * (D + 2) + D]);
        float L = 0.0f, A = 0.0f;
        for (int w = 0; w < kWarps; ++w) {
            const float* r = red + (w * G + g) * (D + 2);
            if (r[D + 1] > 0.0f) {
                const float f = expf(r[D] - M);
                L += r[D + 1] * f;
                A += r[d] * f;
            }
        }
        const int64_t h = kvh * G + g;
        if (S == 1) {
            a.out[(seq * a.num_heads + h) * D + d] = __float2bfloat16(L > 0.0f ? A / L : 0.0f);
        } else {
            // Workspace: ml [num_seqs, num_heads, splits, 2] then acc [num_seqs, num_heads, splits, D].
            const int64_t r = (seq * a.num_heads + h) * S + split;
            a.workspace[2 * rows + r * D + d] = A;
            if (d == 0) {
                a.workspace[2 * r] = M;
                a.workspace[2 * r + 1] = L;
            }
        }
    }
}

template <int D, int GMAX>
void launch_decode(const DecodeAttentionArgs& args, const PagedKv& kv, const bf16* k_cache, const bf16* v_cache,
                   cudaStream_t stream) {
    const int64_t G = args.num_heads / kv.num_kv_heads;
    const size_t smem = sizeof(float) * (GMAX * D + kWarps * G * (D + 2));
    if (smem > 48 * 1024) {
        // Above the default 48 KB a kernel must opt in to more dynamic shared memory (Hopper allows 227 KB).
        MOEINFER_CUDA_CHECK(
            cudaFuncSetAttribute(decode_kernel<D, GMAX>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    }
    const dim3 grid(kv.num_kv_heads, args.num_seqs, args.num_splits);
    decode_kernel<D, GMAX><<<grid, kThreads, smem, stream>>>(args, kv, k_cache, v_cache);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

template <int D>
void dispatch_group(const DecodeAttentionArgs& args, const PagedKv& kv, const bf16* k_cache, const bf16* v_cache,
                    cudaStream_t stream) {
    const int64_t G = args.num_heads / kv.num_kv_heads;
    if (G <= 4) return launch_decode<D, 4>(args, kv, k_cache, v_cache, stream);
    if (G <= 8) return launch_decode<D, 8>(args, kv, k_cache, v_cache, stream);
    if (G <= 16) return launch_decode<D, 16>(args, kv, k_cache, v_cache, stream);
    throw std::invalid_argument("cuda::paged_decode_attention: more than 16 query heads per kv head");
}

// Merge of the splits of one (head, sequence): out = Σ_s e^{m_s - M} acc_s / Σ_s e^{m_s - M} l_s.
__global__ void merge_kernel(DecodeAttentionArgs a, int64_t D) {
    const int64_t h = blockIdx.x, seq = blockIdx.y, S = a.num_splits;
    const int64_t rows = int64_t(gridDim.y) * a.num_heads * S;
    const float* ml = a.workspace + 2 * ((seq * a.num_heads + h) * S);
    const float* wacc = a.workspace + 2 * rows + (seq * a.num_heads + h) * S * D;
    float M = -INFINITY;
    for (int64_t s = 0; s < S; ++s) M = fmaxf(M, ml[2 * s]);
    float L = 0.0f;
    for (int64_t s = 0; s < S; ++s) L += ml[2 * s + 1] > 0.0f ? ml[2 * s + 1] * expf(ml[2 * s] - M) : 0.0f;
    for (int64_t d = threadIdx.x; d < D; d += blockDim.x) {
        float acc = 0.0f;
        for (int64_t s = 0; s < S; ++s)
            if (ml[2 * s + 1] > 0.0f) acc += wacc[s * D + d] * expf(ml[2 * s] - M);
        a.out[(seq * a.num_heads + h) * D + d] = __float2bfloat16(L > 0.0f ? acc / L : 0.0f);
    }
}

}  // namespace

int64_t decode_attention_workspace_floats(int64_t num_seqs, int64_t num_heads, int64_t head_dim, int num_splits) {
    return num_splits > 1 ? num_seqs * num_heads * num_splits * (head_dim + 2) : 0;
}

int choose_decode_splits(int64_t num_seqs, int64_t num_kv_heads, int64_t max_context_len, int64_t block_size,
                         int num_sms) {
    const int64_t blocks = num_seqs * num_kv_heads;
    if (blocks >= num_sms || max_context_len <= 512) return 1;
    // Enough splits for about two blocks per SM, each split keeping at least 64 keys of work (one tile per warp:
    // at batch 1 the step is latency-bound, so more, shorter splits finish sooner).
    const int64_t want = (2 * int64_t(num_sms) + blocks - 1) / blocks;
    const int64_t most = (max_context_len + 63) / 64;
    return int(std::max<int64_t>(1, std::min<int64_t>({want, most, 64})));
}

void paged_decode_attention(const DecodeAttentionArgs& args, const PagedKv& kv, const bf16* k_cache,
                            const bf16* v_cache, cudaStream_t stream) {
    if (args.num_seqs == 0) return;
    if (args.num_heads % kv.num_kv_heads != 0)
        throw std::invalid_argument("cuda::paged_decode_attention: num_heads not a multiple of num_kv_heads");
    if (args.num_splits < 1 || (args.num_splits > 1 && !args.workspace))
        throw std::invalid_argument("cuda::paged_decode_attention: split-K needs num_splits ≥ 1 and a workspace");
    switch (kv.head_dim) {
        case 16: dispatch_group<16>(args, kv, k_cache, v_cache, stream); break;
        case 32: dispatch_group<32>(args, kv, k_cache, v_cache, stream); break;
        case 64: dispatch_group<64>(args, kv, k_cache, v_cache, stream); break;
        case 96: dispatch_group<96>(args, kv, k_cache, v_cache, stream); break;
        case 128: dispatch_group<128>(args, kv, k_cache, v_cache, stream); break;
        case 256: dispatch_group<256>(args, kv, k_cache, v_cache, stream); break;
        default: throw std::invalid_argument("cuda::paged_decode_attention: head_dim must be 16, 32, 64, 96, 128 or 256");
    }
    if (args.num_splits > 1) {
        merge_kernel<<<dim3(args.num_heads, args.num_seqs), 128, 0, stream>>>(args, kv.head_dim);
        MOEINFER_CUDA_LAUNCH_CHECK();
    }
}

}  // namespace moeinfer::cuda
