// Paged decode attention (one query token per sequence), GQA-aware, online softmax, optional split-K.
// Grid = (kv head, sequence, split). A block serves all G = num_heads / num_kv_heads query heads that share one
// kv head, so each K/V row is read from DRAM once per group, not once per query head. Keys are visited in tiles
// of 32 positions (one per lane in the softmax step) independent of the cache block size; a tile's cache offsets
// are looked up once through the block table. Running max / sum / accumulator live in shared memory (fp32).
// With split-K each split writes an unnormalized partial (m, l, acc) and a second kernel merges the splits,
// which keeps the card busy when a few sequences have long contexts. Next steps (issue 7): 16-byte K/V loads,
// K/V tiles staged through shared memory by TMA, and a prefill (many-query, causal, varlen) variant.
#include <algorithm>
#include <cmath>

#include "backends/cuda/ops.h"
#include "backends/cuda/reduce.cuh"

namespace moeinfer::cuda {
namespace {

constexpr int kThreads = 128;
constexpr int kWarps = kThreads / 32;
constexpr int kTile = 32;           // key positions per tile = warp width
constexpr int kMaxHeadDim = 256;    // per lane: up to 8 key elements held in registers
constexpr int kPerLane = kMaxHeadDim / 32;

struct Smem {  // carve-up of the dynamic shared memory of one block
    float* q;       // [G, D] query rows, pre-multiplied by scale
    float* acc;     // [G, D] unnormalized output
    float* p;       // [G, kTile] scores, then probabilities
    float* m;       // [G] running max
    float* l;       // [G] running sum
    float* corr;    // [G] rescale of acc for this tile
    int64_t* off;   // [kTile] element offset of each tile position's [D] row in the cache (same for K and V)
};

__host__ __device__ inline size_t smem_bytes(int64_t G, int64_t D) {
    return sizeof(int64_t) * kTile + sizeof(float) * (2 * G * D + G * kTile + 3 * G);
}

__device__ inline Smem carve(char* base, int64_t G, int64_t D) {
    Smem s;
    s.off = reinterpret_cast<int64_t*>(base);
    s.q = reinterpret_cast<float*>(base + sizeof(int64_t) * kTile);
    s.acc = s.q + G * D;
    s.p = s.acc + G * D;
    s.m = s.p + G * kTile;
    s.l = s.m + G;
    s.corr = s.l + G;
    return s;
}

__global__ void decode_kernel(DecodeAttentionArgs a, PagedKv kv, const bf16* __restrict__ k_cache,
                              const bf16* __restrict__ v_cache) {
    extern __shared__ __align__(16) char smem_raw[];
    const int64_t kvh = blockIdx.x, seq = blockIdx.y, split = blockIdx.z;
    const int64_t D = kv.head_dim, hkv = kv.num_kv_heads, G = a.num_heads / hkv;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    Smem s = carve(smem_raw, G, D);

    const int64_t len = a.context_lens[seq];
    const int64_t start = a.sliding_window > 0 ? max(int64_t(0), len - a.sliding_window) : 0;
    // Split ranges are whole tiles so no tile straddles two splits.
    const int64_t tiles = (len - start + kTile - 1) / kTile;
    const int64_t tiles_per_split = (tiles + a.num_splits - 1) / a.num_splits;
    const int64_t begin = start + split * tiles_per_split * kTile;
    const int64_t end = min(len, begin + tiles_per_split * kTile);

    const bf16* q = a.q + (seq * a.num_heads + kvh * G) * D;
    for (int64_t i = threadIdx.x; i < G * D; i += kThreads) {
        s.q[i] = __bfloat162float(q[i]) * a.scale;
        s.acc[i] = 0.0f;
    }
    for (int64_t g = threadIdx.x; g < G; g += kThreads) {
        s.m[g] = -INFINITY;
        s.l[g] = 0.0f;
    }
    __syncthreads();

    const int32_t* table = kv.block_tables + seq * kv.max_blocks_per_seq;
    for (int64_t t0 = begin; t0 < end; t0 += kTile) {
        const int n = int(min(int64_t(kTile), end - t0));
        // Scores: warp w takes positions w, w + kWarps, ...; lanes split the head dimension.
        for (int j = warp; j < n; j += kWarps) {
            const int64_t pos = t0 + j;
            const int64_t off = ((int64_t(table[pos / kv.block_size]) * kv.block_size + pos % kv.block_size) * hkv +
                                 kvh) * D;
            if (lane == 0) s.off[j] = off;
            float kr[kPerLane];
#pragma unroll
            for (int c = 0; c < kPerLane; ++c) {
                const int64_t d = lane + 32 * c;
                kr[c] = d < D ? __bfloat162float(k_cache[off + d]) : 0.0f;
            }
            for (int64_t g = 0; g < G; ++g) {
                float acc = 0.0f;
#pragma unroll
                for (int c = 0; c < kPerLane; ++c) {
                    const int64_t d = lane + 32 * c;
                    if (d < D) acc += s.q[g * D + d] * kr[c];
                }
                acc = warp_sum(acc);
                if (lane == 0) s.p[g * kTile + j] = acc;
            }
        }
        __syncthreads();
        // Online softmax update: warp per query head, lane per tile position.
        for (int64_t g = warp; g < G; g += kWarps) {
            const float x = lane < n ? s.p[g * kTile + lane] : -INFINITY;
            const float m_old = s.m[g];
            const float m_new = fmaxf(m_old, warp_max(x));
            const float p = lane < n ? expf(x - m_new) : 0.0f;
            s.p[g * kTile + lane] = p;
            const float sum = warp_sum(p);
            if (lane == 0) {
                const float c = expf(m_old - m_new);  // m_old = -inf on the first tile gives 0
                s.corr[g] = c;
                s.l[g] = s.l[g] * c + sum;
                s.m[g] = m_new;
            }
        }
        __syncthreads();
        // acc[g, d] = acc · corr + Σ_j p[g, j] · V[j, d]; adjacent threads take adjacent d (coalesced V rows).
        for (int64_t i = threadIdx.x; i < G * D; i += kThreads) {
            const int64_t g = i / D, d = i % D;
            float acc = s.acc[i] * s.corr[g];
            for (int j = 0; j < n; ++j) acc += s.p[g * kTile + j] * __bfloat162float(v_cache[s.off[j] + d]);
            s.acc[i] = acc;
        }
        __syncthreads();
    }

    if (a.num_splits == 1) {
        bf16* out = a.out + (seq * a.num_heads + kvh * G) * D;
        for (int64_t i = threadIdx.x; i < G * D; i += kThreads) {
            const float l = s.l[i / D];
            out[i] = __float2bfloat16(l > 0.0f ? s.acc[i] / l : 0.0f);
        }
        return;
    }
    // Workspace: ml [num_seqs, num_heads, splits, 2] then acc [num_seqs, num_heads, splits, D].
    const int64_t S = a.num_splits, rows = int64_t(gridDim.y) * a.num_heads * S;
    float* ml = a.workspace;
    float* wacc = a.workspace + 2 * rows;
    for (int64_t i = threadIdx.x; i < G * D; i += kThreads) {
        const int64_t h = kvh * G + i / D;
        wacc[((seq * a.num_heads + h) * S + split) * D + i % D] = s.acc[i];
    }
    for (int64_t g = threadIdx.x; g < G; g += kThreads) {
        const int64_t r = (seq * a.num_heads + kvh * G + g) * S + split;
        ml[2 * r] = s.m[g];
        ml[2 * r + 1] = s.l[g];
    }
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
    // Enough splits for about two blocks per SM, each split keeping at least 256 keys of work.
    const int64_t want = (2 * int64_t(num_sms) + blocks - 1) / blocks;
    const int64_t most = (max_context_len + 255) / 256;
    return int(std::max<int64_t>(1, std::min<int64_t>({want, most, 64})));
}

void paged_decode_attention(const DecodeAttentionArgs& args, const PagedKv& kv, const bf16* k_cache,
                            const bf16* v_cache, cudaStream_t stream) {
    if (args.num_seqs == 0) return;
    if (kv.head_dim > kMaxHeadDim) throw std::invalid_argument("cuda::paged_decode_attention: head_dim > 256");
    if (args.num_heads % kv.num_kv_heads != 0)
        throw std::invalid_argument("cuda::paged_decode_attention: num_heads not a multiple of num_kv_heads");
    if (args.num_splits < 1 || (args.num_splits > 1 && !args.workspace))
        throw std::invalid_argument("cuda::paged_decode_attention: split-K needs num_splits ≥ 1 and a workspace");
    const int64_t G = args.num_heads / kv.num_kv_heads;
    const size_t smem = smem_bytes(G, kv.head_dim);
    if (smem > 48 * 1024) {
        // Above the default 48 KB a kernel must opt in to more dynamic shared memory (Hopper allows 227 KB).
        MOEINFER_CUDA_CHECK(cudaFuncSetAttribute(decode_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    }
    const dim3 grid(kv.num_kv_heads, args.num_seqs, args.num_splits);
    decode_kernel<<<grid, kThreads, smem, stream>>>(args, kv, k_cache, v_cache);
    MOEINFER_CUDA_LAUNCH_CHECK();
    if (args.num_splits > 1) {
        merge_kernel<<<dim3(args.num_heads, args.num_seqs), 128, 0, stream>>>(args, kv.head_dim);
        MOEINFER_CUDA_LAUNCH_CHECK();
    }
}

}  // namespace moeinfer::cuda
