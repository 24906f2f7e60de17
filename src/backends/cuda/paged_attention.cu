// Paged decode attention (one query token per sequence), GQA-aware, online softmax, optional split-K.
// Grid = (kv head, sequence, split). A block serves all G = num_heads / num_kv_heads query heads that share one
// kv head, so each K/V row is read from DRAM once per group, not once per query head. Each of the block's warps
// runs its own online softmax over its own tiles of 32 key positions (no block barrier inside the key loop):
// lane j scores key j of the tile against all G heads, reading its K row in 16-byte pieces; then the warp walks
// the tile's 32 V rows, each lane owning head_dim/32 output columns of every head (coalesced V reads, fp32
// accumulators in registers, head_dim and the group bound as template parameters). The warps' (m, l, acc) are
// merged through shared memory at the end. With split-K each split writes an unnormalized partial and a second
// kernel merges the splits, which keeps the card busy when few sequences are decoding. Then (split_heads) the
// block's warps also split the group's heads instead of the tiles: at batch 1 a block has about one tile per split
// and the step is bound by the length of one warp's instruction chain, not by loads (ncu, 30B-A3B shape, H200: all 8
// heads in one warp 17.5 us per layer; 4 blocks of 16 tile-warps 51 us). Each warp's chain of memory round trips
// is kept short too: a K row's pieces are loaded 8 at a time and V rows 16 keys at a time (4 and 8 when the warps
// split the keys: fewer registers, more resident warps), one vector load per V row and lane, and the next tile's
// cache offsets are looked up while the current K arrives.
// With DecodeAttentionArgs::query_seq the same kernel serves prefill tokens (each query is its own row, causal by its
// context length; a length of 0 yields zeros, which CUDA-graph padding rows use).
// At small batches a tile's K and V loads are all issued before its arithmetic (kEarlyLoads).
// Small batches with head_dim 64 or 128 take the tensor-core decode kernel of decode_attention_mma.cu instead (same
// grid, split ranges and workspace; the merge below serves both). Prompts use the kernel of prefill_attention.cu.
#include <algorithm>
#include <cmath>

#include "backends/cuda/decode_attention_mma.h"
#include "backends/cuda/decode_split.cuh"
#include "backends/cuda/ops.h"
#include "backends/cuda/paged_kv.cuh"
#include "backends/cuda/pdl.cuh"
#include "backends/cuda/reduce.cuh"

namespace moeinfer::cuda {
namespace {

// Warps of a decode block: 4 where they split the key tiles (large batches, prefill), 8 where they split the heads
// (small batches). There a warp's instruction chain is the step's critical path (ncu, 30B-A3B shape at batch 1 on
// H100: ~5 cycles per issued instruction, one warp per scheduler), so one head a warp, where 4 warps carried two.
template <bool kSplitHeads>
constexpr int kDecodeWarps = kSplitHeads ? 8 : 4;
constexpr int kTile = 32;  // key positions per warp step = one per lane

// kCols consecutive bf16 values of a V row, kept raw (half the registers of fp32) from load to use: one load where
// the width allows (16 bytes for kCols 8, 8 bytes for 4, 4 for 2), else value by value (kCols 1, 3). Raw, so that
// with kEarlyLoads a tile's V loads are issued together with its K row's, before any of them is converted.
template <int kCols>
struct RawCols {
    bf16 v[kCols];
    __device__ void load(const bf16* p) {
#pragma unroll
        for (int c = 0; c < kCols; ++c) v[c] = p[c];
    }
    __device__ void to_float(float (&out)[kCols]) const {
#pragma unroll
        for (int c = 0; c < kCols; ++c) out[c] = __bfloat162float(v[c]);
    }
};
// kCols bf16 values held as bf16 pairs in the 32-bit words of a vector type W: one load, a pair conversion per word.
template <int kCols, typename W>
struct RawPairs {
    W v;
    __device__ void load(const bf16* p) { v = __ldg(reinterpret_cast<const W*>(p)); }
    __device__ void to_float(float (&out)[kCols]) const {
        const __nv_bfloat162* h = reinterpret_cast<const __nv_bfloat162*>(&v);
#pragma unroll
        for (int i = 0; i < kCols / 2; ++i) {
            const float2 f = __bfloat1622float2(h[i]);
            out[2 * i] = f.x, out[2 * i + 1] = f.y;
        }
    }
};
template <>
struct RawCols<8> : RawPairs<8, uint4> {};
template <>
struct RawCols<4> : RawPairs<4, uint2> {};
template <>
struct RawCols<2> : RawPairs<2, __nv_bfloat162> {};

// The same columns as fp32, for a V pass that converts right after loading.
template <int kCols>
__device__ __forceinline__ void load_cols(const bf16* p, float (&out)[kCols]) {
    RawCols<kCols> raw;
    raw.load(p);
    raw.to_float(out);
}

template <int D, int GMAX, bool kSplitHeads>
__global__ void __launch_bounds__(32 * kDecodeWarps<kSplitHeads>) decode_kernel(DecodeAttentionArgs a, PagedKv kv,
                                                                                const bf16* __restrict__ k_cache,
                                                                                const bf16* __restrict__ v_cache) {
    constexpr int kWarps = kDecodeWarps<kSplitHeads>, kThreads = 32 * kWarps;
    constexpr int kCols = (D + 31) / 32;  // output columns per lane (head_dim 16: lanes 16-31 own none)
    constexpr int kPieces = D / 8;        // 16-byte pieces of a K row
    // Small batches (kSplitHeads) are a chain of memory round trips, so a tile's whole K row and its 32 V rows are
    // loaded at once, before any arithmetic: one round trip per tile where there were four (8 K pieces, 8 more, 16 V
    // rows, 16 more). Registers: 16 uint4 + 32 uint2 per lane at head_dim 128, affordable where few warps run.
    // Large batches and prefill load shallower batches (fewer registers, more resident warps hide the latency).
    constexpr bool kEarlyLoads = kSplitHeads && (kCols == 1 || kCols == 2 || kCols == 4);
    constexpr int kKBatch =
        kEarlyLoads ? kPieces : kPieces % 8 == 0 ? (kSplitHeads ? 8 : 4) : kPieces % 4 == 0 ? 4 : kPieces;
    constexpr int kVBatch = kSplitHeads ? 16 : 8;
    // Most heads one warp serves: all G when the warps split the key tiles; with kSplitHeads, G / kWarps rounded up
    // (dispatch guarantees G > GMAX / 2 for GMAX > 4).
    constexpr int GW = kSplitHeads ? (GMAX + kWarps - 1) / kWarps : GMAX;
    if (a.num_splits == 1) pdl_trigger();  // no merge after it: the output projection may start loading weights
    extern __shared__ __align__(16) float smem[];
    float* q_s = smem;               // [G, D] query rows × scale
    float* red = smem + GMAX * D;    // [kWarps, GW, D + 2]: each warp's acc, m, l for the final merge
    const int64_t kvh = blockIdx.x, seq = blockIdx.y, split = blockIdx.z;
    const int64_t hkv = kv.num_kv_heads;
    const int G = int(a.num_heads / hkv);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    const bool owns = lane * kCols < D;
    // kSplitHeads (small batches): the block's warps split the heads first (HG groups of ≤ GW heads), then the key
    // tiles (TG ways): with few blocks a warp's instruction chain per tile bounds the step, so it should carry as
    // few heads as possible. Otherwise (large batches, prefill) the warps split the tiles and each reads a K row
    // once for all heads: there the load/store unit, not the chain, is the limit.
    const int HG = kSplitHeads ? min(G, kWarps) : 1, TG = kWarps / HG;
    const int hg = warp % HG, tg = warp / HG;
    const int gw = (G + HG - 1) / HG;               // heads per group
    const int g0 = hg * gw, gn = min(gw, G - g0);   // this warp's heads: [g0, g0 + gn)

    static_assert(kTile == kDecodeSplitKeys, "split ranges are whole tiles");
    const DecodeSplitRange range = decode_split_range(a, seq, split);
    const int64_t begin = range.begin, end = range.end;
    const int32_t* table = kv.block_tables + (a.query_seq ? int64_t(a.query_seq[seq]) : seq) * kv.max_blocks_per_seq;
    const bool active = warp < HG * TG;  // warps past the last full group idle (G = 3: 3 of 4 work)

    // The first tile's cache offsets are looked up (with kEarlyLoads, its K/V loads issued) while the query is staged.
    int64_t t0 = begin + int64_t(tg) * kTile;
    int64_t next_off = kv_offset(kv, table, t0 + lane, end, kvh, D);
    uint4 kraw[kEarlyLoads ? kPieces : 1];
    RawCols<kEarlyLoads ? kCols : 1> vraw[kEarlyLoads ? kTile : 1];
    auto issue_tile = [&](int64_t off) {  // the lane's K row (key t0 + lane), its V columns of the tile's 32 keys
#pragma unroll
        for (int c = 0; c < kPieces; ++c) kraw[c] = __ldg(reinterpret_cast<const uint4*>(k_cache + off) + c);
#pragma unroll
        for (int u = 0; u < kTile; ++u) {
            const int64_t vo = __shfl_sync(0xffffffffu, off, u) + lane * kCols;
            if (owns) vraw[u].load(v_cache + vo);
        }
    };
    if constexpr (kEarlyLoads)
        if (active && t0 < end) issue_tile(next_off);
    const bf16* q = a.q + (seq * a.num_heads + kvh * G) * D;
#pragma unroll 4
    for (int i = threadIdx.x; i < G * D; i += kThreads) q_s[i] = __bfloat162float(q[i]) * a.scale;
    __syncthreads();

    float m[GW], l[GW], acc[GW][kCols];
#pragma unroll
    for (int j = 0; j < GW; ++j) {
        m[j] = -INFINITY;
        l[j] = 0.0f;
#pragma unroll
        for (int c = 0; c < kCols; ++c) acc[j][c] = 0.0f;
    }

    for (; active && t0 < end; t0 += int64_t(TG) * kTile) {
        const int64_t pos = t0 + lane;
        const bool valid = pos < end;
        const int64_t off = next_off;
        // Scores: lane j against key t0 + j. Its K row's pieces are loaded kKBatch at a time, all in flight before
        // the first FMA; the next tile's offsets are looked up while the last batch arrives.
        float s[GW];
#pragma unroll
        for (int j = 0; j < GW; ++j) s[j] = 0.0f;
        const uint4* krow = reinterpret_cast<const uint4*>(k_cache + off);  // D % 8 == 0 and 16-byte rows
#pragma unroll
        for (int c0 = 0; c0 < kPieces; c0 += kKBatch) {
            uint4 raw[kKBatch];
#pragma unroll
            for (int c = 0; c < kKBatch; ++c) raw[c] = kEarlyLoads ? kraw[c0 + c] : __ldg(krow + c0 + c);
            if (c0 + kKBatch >= kPieces) next_off = kv_offset(kv, table, pos + int64_t(TG) * kTile, end, kvh, D);
#pragma unroll
            for (int c = 0; c < kKBatch; ++c) {
                const __nv_bfloat162* kp = reinterpret_cast<const __nv_bfloat162*>(&raw[c]);
                float kf[8];
#pragma unroll
                for (int e = 0; e < 4; ++e) {
                    const float2 f = __bfloat1622float2(kp[e]);
                    kf[2 * e] = f.x;
                    kf[2 * e + 1] = f.y;
                }
#pragma unroll
                for (int j = 0; j < GW; ++j) {
                    if (j < gn) {
                        const float* qg = q_s + (g0 + j) * D + 8 * (c0 + c);
                        const float4 qa = *reinterpret_cast<const float4*>(qg);
                        const float4 qb = *reinterpret_cast<const float4*>(qg + 4);
                        s[j] += qa.x * kf[0] + qa.y * kf[1] + qa.z * kf[2] + qa.w * kf[3] + qb.x * kf[4] +
                                qb.y * kf[5] + qb.z * kf[6] + qb.w * kf[7];
                    }
                }
            }
        }
        // Online softmax update, per head, over the warp's 32 positions.
        float p[GW];
#pragma unroll
        for (int j = 0; j < GW; ++j) {
            const float x = valid ? s[j] : -INFINITY;
            const float m_new = fmaxf(m[j], warp_max(x));
            p[j] = valid ? expf(x - m_new) : 0.0f;
            const float corr = expf(m[j] - m_new);  // 0 on the first tile (m = -inf)
            l[j] = l[j] * corr + warp_sum(p[j]);
            m[j] = m_new;
#pragma unroll
            for (int c = 0; c < kCols; ++c) acc[j][c] *= corr;
        }
        if constexpr (kEarlyLoads) {
            // V from the registers loaded with K; then the next tile's loads (only a warp with several tiles).
#pragma unroll
            for (int u = 0; u < kTile; ++u) {
                float vf[kCols];
#pragma unroll
                for (int c = 0; c < kCols; ++c) vf[c] = 0.0f;
                if (owns) vraw[u].to_float(vf);
#pragma unroll
                for (int j = 0; j < GW; ++j) {
                    const float pj = __shfl_sync(0xffffffffu, p[j], u);
#pragma unroll
                    for (int c = 0; c < kCols; ++c) acc[j][c] += pj * vf[c];
                }
            }
            if (t0 + int64_t(TG) * kTile < end) issue_tile(next_off);
        } else {
            // V pass over the tile's 32 keys, kVBatch at a time with their loads issued together (one vector load per
            // key and lane). Keys past `end` have p = 0 and offset 0 (a valid row), so no guards.
#pragma unroll
            for (int j0 = 0; j0 < kTile; j0 += kVBatch) {
                float vf[kVBatch][kCols];
#pragma unroll
                for (int u = 0; u < kVBatch; ++u) {
                    const int64_t vo = __shfl_sync(0xffffffffu, off, j0 + u) + lane * kCols;
                    if (owns) {
                        load_cols<kCols>(v_cache + vo, vf[u]);
                    } else {
#pragma unroll
                        for (int c = 0; c < kCols; ++c) vf[u][c] = 0.0f;
                    }
                }
#pragma unroll
                for (int u = 0; u < kVBatch; ++u) {
#pragma unroll
                    for (int j = 0; j < GW; ++j) {
                        const float pj = __shfl_sync(0xffffffffu, p[j], j0 + u);
#pragma unroll
                        for (int c = 0; c < kCols; ++c) acc[j][c] += pj * vf[u][c];
                    }
                }
            }
        }
    }

    // Merge: each warp writes (acc, m, l) of its heads; then thread i combines column i % D of head i / D over the
    // TG warps that served that head.
#pragma unroll
    for (int j = 0; j < GW; ++j) {
        float* r = red + (warp * GW + j) * (D + 2);
        if (owns)
#pragma unroll
            for (int c = 0; c < kCols; ++c) r[lane * kCols + c] = acc[j][c];
        if (lane == 0) {
            r[D] = m[j];
            r[D + 1] = l[j];
        }
    }
    __syncthreads();
    for (int i = threadIdx.x; i < G * D; i += kThreads) {
        const int g = i / D, d = i % D;
        const int ghg = g / gw, j = g % gw;
        float M = -INFINITY;
        for (int t = 0; t < TG; ++t) M = fmaxf(M, red[((ghg + t * HG) * GW + j) * (D + 2) + D]);
        float L = 0.0f, A = 0.0f;
        for (int t = 0; t < TG; ++t) {
            const float* r = red + ((ghg + t * HG) * GW + j) * (D + 2);
            if (r[D + 1] > 0.0f) {
                const float f = expf(r[D] - M);
                L += r[D + 1] * f;
                A += r[d] * f;
            }
        }
        store_decode_result(a, seq, kvh * G + g, split, D, d, A, L, M);
    }
}

template <int D, int GMAX, bool kSplitHeads>
void launch_decode(const DecodeAttentionArgs& args, const PagedKv& kv, const bf16* k_cache, const bf16* v_cache,
                   cudaStream_t stream) {
    constexpr int kWarps = kDecodeWarps<kSplitHeads>;
    constexpr int GW = kSplitHeads ? (GMAX + kWarps - 1) / kWarps : GMAX;
    const size_t smem = sizeof(float) * (GMAX * D + kWarps * GW * (D + 2));
    allow_dynamic_smem(decode_kernel<D, GMAX, kSplitHeads>, smem);  // Hopper allows up to 227 KB
    const dim3 grid(kv.num_kv_heads, args.num_seqs, args.num_splits);
    decode_kernel<D, GMAX, kSplitHeads><<<grid, 32 * kWarps, smem, stream>>>(args, kv, k_cache, v_cache);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

template <int D>
void dispatch_group(const DecodeAttentionArgs& args, const PagedKv& kv, const bf16* k_cache, const bf16* v_cache,
                    cudaStream_t stream) {
    const int64_t G = args.num_heads / kv.num_kv_heads;
    const bool h = args.split_heads;
    if (G <= 4) return h ? launch_decode<D, 4, true>(args, kv, k_cache, v_cache, stream)
                         : launch_decode<D, 4, false>(args, kv, k_cache, v_cache, stream);
    if (G <= 8) return h ? launch_decode<D, 8, true>(args, kv, k_cache, v_cache, stream)
                         : launch_decode<D, 8, false>(args, kv, k_cache, v_cache, stream);
    if (G <= 16) return h ? launch_decode<D, 16, true>(args, kv, k_cache, v_cache, stream)
                          : launch_decode<D, 16, false>(args, kv, k_cache, v_cache, stream);
    throw std::invalid_argument("cuda::paged_decode_attention: more than 16 query heads per kv head");
}

// Merge of the splits of one (head, sequence): out = Σ_s e^{m_s - M} acc_s / Σ_s e^{m_s - M} l_s. Thread d owns
// column d. At batch 1 this kernel is a chain of memory round trips, so it is built to have two: the (m, l) pairs
// go to shared memory while each thread's first kMergeBatch partial columns load into registers, all in flight
// together; then everything is combined (splits past kMergeBatch, rare, cost one more round trip per batch).
constexpr int kMergeBatch = 32;

__global__ void merge_kernel(DecodeAttentionArgs a, int64_t D) {
    __shared__ float ml_s[2 * 64];  // choose_decode_splits never makes more than 64
    pdl_trigger();  // the output projection after it may start loading its weights
    const int64_t h = blockIdx.x, seq = blockIdx.y, S = a.num_splits, d = threadIdx.x;
    const int64_t rows = int64_t(gridDim.y) * a.num_heads * S;
    const float* ml = a.workspace + 2 * ((seq * a.num_heads + h) * S);
    const float* wacc = a.workspace + 2 * rows + (seq * a.num_heads + h) * S * D;
    for (int64_t i = threadIdx.x; i < 2 * S; i += blockDim.x) ml_s[i] = ml[i];
    float part[kMergeBatch];
#pragma unroll
    for (int s = 0; s < kMergeBatch; ++s) part[s] = d < D && s < S ? wacc[s * D + d] : 0.0f;
    __syncthreads();
    float M = -INFINITY;
    for (int64_t s = 0; s < S; ++s) M = fmaxf(M, ml_s[2 * s]);
    float L = 0.0f, acc = 0.0f;
#pragma unroll
    for (int s = 0; s < kMergeBatch; ++s) {
        if (s < S && ml_s[2 * s + 1] > 0.0f) {
            const float f = expf(ml_s[2 * s] - M);
            L += ml_s[2 * s + 1] * f;
            acc += part[s] * f;
        }
    }
    for (int64_t s = kMergeBatch; s < S; ++s) {
        if (ml_s[2 * s + 1] > 0.0f) {
            const float f = expf(ml_s[2 * s] - M);
            L += ml_s[2 * s + 1] * f;
            if (d < D) acc += wacc[s * D + d] * f;
        }
    }
    if (d < D) a.out[(seq * a.num_heads + h) * D + d] = __float2bfloat16(L > 0.0f ? acc / L : 0.0f);
}

}  // namespace

int64_t decode_attention_workspace_floats(int64_t num_seqs, int64_t num_heads, int64_t head_dim, int num_splits) {
    return num_splits > 1 ? num_seqs * num_heads * num_splits * (head_dim + 2) : 0;
}

int choose_decode_splits(int64_t num_seqs, int64_t num_kv_heads, int64_t max_context_len, int64_t block_size,
                         int num_sms) {
    const int64_t blocks = num_seqs * num_kv_heads;
    if (blocks >= num_sms) return 1;
    // Small batches: spread the keys over about one block per SM, down to one 32-key tile per split. The work per
    // tile is heavy for one SM (each lane scores its key against every head of the group from shared memory), so
    // few wide blocks are slower than many short ones even with the merge launch (batch 1, 30B-A3B shape on H200:
    // 4 blocks 51 us, 36 blocks 17.5 us per layer).
    const int64_t want = (int64_t(num_sms) + blocks - 1) / blocks;
    const int64_t most = (max_context_len + kTile - 1) / kTile;
    return int(std::max<int64_t>(1, std::min<int64_t>({want, most, 64})));
}

bool choose_decode_split_heads(int64_t num_seqs, int64_t num_kv_heads, int num_sms) {
    return num_seqs * num_kv_heads < num_sms;
}

void paged_decode_attention(const DecodeAttentionArgs& args, const PagedKv& kv, const bf16* k_cache,
                            const bf16* v_cache, cudaStream_t stream) {
    if (args.num_seqs == 0) return;
    if (args.num_heads % kv.num_kv_heads != 0)
        throw std::invalid_argument("cuda::paged_decode_attention: num_heads not a multiple of num_kv_heads");
    if (args.num_splits < 1 || (args.num_splits > 1 && !args.workspace))
        throw std::invalid_argument("cuda::paged_decode_attention: split-K needs num_splits ≥ 1 and a workspace");
    if (args.num_splits > 64) throw std::invalid_argument("cuda::paged_decode_attention: more than 64 splits");
    if (args.split_heads && decode_attention_mma_supported(args, kv)) {
        decode_attention_mma(args, kv, k_cache, v_cache, stream);
    } else switch (kv.head_dim) {
        case 16: dispatch_group<16>(args, kv, k_cache, v_cache, stream); break;
        case 32: dispatch_group<32>(args, kv, k_cache, v_cache, stream); break;
        case 64: dispatch_group<64>(args, kv, k_cache, v_cache, stream); break;
        case 96: dispatch_group<96>(args, kv, k_cache, v_cache, stream); break;
        case 128: dispatch_group<128>(args, kv, k_cache, v_cache, stream); break;
        case 256: dispatch_group<256>(args, kv, k_cache, v_cache, stream); break;
        default: throw std::invalid_argument("cuda::paged_decode_attention: head_dim must be 16, 32, 64, 96, 128 or 256");
    }
    if (args.num_splits > 1) {
        // One thread per column (head_dim ≤ 256), at least a warp.
        const int threads = int(std::max<int64_t>(32, (kv.head_dim + 31) / 32 * 32));
        merge_kernel<<<dim3(args.num_heads, args.num_seqs), threads, 0, stream>>>(args, kv.head_dim);
        MOEINFER_CUDA_LAUNCH_CHECK();
    }
}

}  // namespace moeinfer::cuda
