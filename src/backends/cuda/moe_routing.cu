// MoE routing on the device: fp32 router logits, softmax top-k gating, the stable expert permutation, row gather and
// weighted combine (the combine fused with the residual add and the next norm is in rms_norm.cu).
// route_topk: one warp per token holding the row in registers; the k winners are found in k rounds, each a warp
// max-reduction over the experts not yet taken in (logit desc, id asc) order, so ties go to the lower id as on the CPU.
// moe_permute: counts per (tile of 256 assignments, expert), a column scan giving
// each tile its base row per expert, then each tile's warp walks its assignments in order, ranking equal experts
// within 32 lanes by __match_any_sync; the result is the CPU's stable order, with no global atomics on row slots.
#include <algorithm>
#include <cmath>

#include "backends/cuda/expert_rows.cuh"
#include "backends/cuda/mailbox.cuh"
#include "backends/cuda/norm_weights.cuh"
#include "backends/cuda/ops.h"
#include "backends/cuda/pdl.cuh"
#include "backends/cuda/reduce.cuh"

namespace moeinfer::cuda {
namespace {

constexpr int kTileAssign = 256;  // assignments per permutation tile (one warp)
constexpr int kMaxExperts = 4096; // bound of the scan kernel's shared totals

constexpr int kMaxRouted = 1024;  // experts route_topk handles: 32 lanes × up to 32 logits each

// A logit as an unsigned key in the same order (larger logit, larger key), so a round of the top-k is one warp
// max-reduction instruction. -0 counts as +0 (equal in the CPU's float compare), NaN ranks below every number, and
// 0 is left for "taken / no expert".
__device__ __forceinline__ unsigned rank_key(float v) {
    if (v != v) return 1u;
    const unsigned b = __float_as_uint(v + 0.0f);
    return (b & 0x80000000u) ? ~b : (b | 0x80000000u);
}
__device__ __forceinline__ float key_value(unsigned key) {
    return __uint_as_float((key & 0x80000000u) ? (key & 0x7fffffffu) : ~key);
}

// One warp picks a token row's k winners; ids, weights: that token's [k] outputs. Lane j holds experts j, j + 32,
// ... (kPer of them) in registers, filled by load(v) (-inf past E). Each of the k rounds is a warp max-reduction
// (redux.sync) over every lane's best remaining key and a ballot: the lane holding the maximum takes it (on a tie of
// logits, the lowest id, as on the CPU). A lane remembers the rounds its experts won, so no value travels between
// lanes, and the weights need no further round trip: softmax numerators against the largest logit, divided by their
// sum over the winners (`normalize`) or over all experts.
template <int kPer, typename Load>
__device__ void topk_warp(Load&& load, int64_t E, int64_t k, bool normalize, int32_t* ids, float* weights) {
    const int lane = threadIdx.x & 31;
    float v[kPer];
    load(v);
    unsigned key[kPer];
    int won[kPer];  // the round expert lane + 32·j won, or -1
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        key[j] = lane + 32 * j < E ? rank_key(v[j]) : 0u;
        won[j] = -1;
    }
    unsigned top = 0;  // the largest key (round 0's)
    for (int r = 0; r < int(k); ++r) {
        unsigned best = 0;
#pragma unroll
        for (int j = 0; j < kPer; ++j) best = max(best, key[j]);
        const unsigned m = __reduce_max_sync(0xffffffffu, best);
        if (r == 0) top = m;
        const unsigned holders = __ballot_sync(0xffffffffu, best == m);
        int winner = __ffs(holders) - 1;
        if (__popc(holders) > 1) {  // equal logits in several lanes: the lowest id among each lane's first one
            unsigned id = 0xffffffffu;
#pragma unroll
            for (int j = kPer - 1; j >= 0; --j)
                if (key[j] == m) id = unsigned(lane + 32 * j);
            winner = int(__reduce_min_sync(0xffffffffu, id) & 31u);
        }
        if (lane == winner) {
            bool first = true;  // a lane's equal logits go in id order
#pragma unroll
            for (int j = 0; j < kPer; ++j)
                if (first && key[j] == m) {
                    key[j] = 0;
                    won[j] = r;
                    first = false;
                }
        }
    }
    const float l0 = key_value(top);
    float p[kPer], winners = 0.0f, all = 0.0f;
#pragma unroll
    for (int j = 0; j < kPer; ++j) {
        p[j] = lane + 32 * j < E ? expf(v[j] - l0) : 0.0f;
        all += p[j];
        if (won[j] >= 0) winners += p[j];
    }
    const float sum = warp_sum(normalize ? winners : all);
#pragma unroll
    for (int j = 0; j < kPer; ++j)
        if (won[j] >= 0) {
            ids[won[j]] = lane + 32 * j;
            weights[won[j]] = p[j] / sum;
        }
}

// topk_warp with the register count for E (runtime dispatch to the smallest fitting kPer). load(v) is a generic
// callable filling its float (&v)[kPer] with the lane's experts lane, lane + 32, ... (-inf past E).
template <typename Load>
__device__ void topk_row(Load&& load, int64_t E, int64_t k, bool normalize, int32_t* ids, float* weights) {
    if (E <= 32) return topk_warp<1>(load, E, k, normalize, ids, weights);
    if (E <= 64) return topk_warp<2>(load, E, k, normalize, ids, weights);
    if (E <= 128) return topk_warp<4>(load, E, k, normalize, ids, weights);
    if (E <= 256) return topk_warp<8>(load, E, k, normalize, ids, weights);
    if (E <= 512) return topk_warp<16>(load, E, k, normalize, ids, weights);
    topk_warp<32>(load, E, k, normalize, ids, weights);
}

__global__ void route_topk_kernel(const float* __restrict__ logits, int64_t T, int64_t E, int64_t k, bool normalize,
                                  int32_t* __restrict__ ids, float* __restrict__ weights) {
    pdl_trigger();  // the expert products after it wait for its ids; their blocks may get resident now
    const int64_t t = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    if (t >= T) return;  // whole warps leave together: t is uniform across a warp
    const float* row = logits + t * E;
    const int lane = threadIdx.x & 31;
    topk_row([&](auto& v) {
        constexpr int kPer = sizeof(v) / sizeof(v[0]);
#pragma unroll
        for (int j = 0; j < kPer; ++j) v[j] = lane + 32 * j < E ? row[lane + 32 * j] : -INFINITY;
    }, E, k, normalize, ids + t * k, weights + t * k);
}

// The router's arithmetic, shared by the per-token kernel (decode) and the tiled one (prefill) below.

// Token row `row` RMS-normed into xs by the group of threads nw belongs to: thread nw.tid takes elements nw.tid,
// nw.tid + nw.step, ...; `sum` reduces over the group (the per-token kernel's group is the block: block_sum, whose
// barrier also publishes xs; the tiled kernel's is a warp). kLoadUnroll row loads are in flight together;
// kScaleUnroll: the unroll of the scaling past nw's held weights. f(i) sees each normed element once.
template <int kLoadUnroll, int kScaleUnroll, int kHeld, typename Sum, typename F>
__device__ __forceinline__ void norm_row(const float* row, const NormWeights<kHeld>& nw, float eps, float* xs, Sum sum,
                                         F&& f) {
    float ss = 0.0f;
#pragma unroll(kLoadUnroll)
    for (int64_t i = nw.tid; i < nw.n; i += nw.step) {
        xs[i] = row[i];
        ss += xs[i] * xs[i];
    }
    const float inv = rsqrtf(sum(ss) / float(nw.n) + eps);
    nw.template for_each<kScaleUnroll>([&](int64_t i, float w) {
        xs[i] = xs[i] * inv * w;
        f(i);
    });
}

// s[r] += token r's normed row (xs + r·H, 16-byte aligned) · one 16-byte piece of a router row (8 weights, piece i):
// the weights are converted once for all kRows tokens and the products added to s in pairs, in one order for both
// kernels.
template <int kRows>
__device__ __forceinline__ void add_piece(float (&s)[kRows], const float* xs, int64_t H, int64_t i, uint4 raw) {
    const __nv_bfloat162* p = reinterpret_cast<const __nv_bfloat162*>(&raw);
    float2 f[4];
#pragma unroll
    for (int j = 0; j < 4; ++j) f[j] = __bfloat1622float2(p[j]);
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        const float4 a = *reinterpret_cast<const float4*>(xs + r * H + 8 * i);
        const float4 b = *reinterpret_cast<const float4*>(xs + r * H + 8 * i + 4);
        s[r] += a.x * f[0].x + a.y * f[0].y;
        s[r] += a.z * f[1].x + a.w * f[1].y;
        s[r] += b.x * f[2].x + b.y * f[2].y;
        s[r] += b.z * f[3].x + b.w * f[3].y;
    }
}

// The same over a whole router row w[H] whose H is not a multiple of 8: weight by weight, lane, lane + 32, ...
template <int kRows>
__device__ __forceinline__ void add_row_unaligned(float (&s)[kRows], const float* xs, int64_t H, const bf16* w,
                                                  int lane) {
    for (int64_t i = lane; i < H; i += 32) {
        const float wf = __bfloat162float(w[i]);
#pragma unroll
        for (int r = 0; r < kRows; ++r) s[r] += xs[r * H + i] * wf;
    }
}

// The warp's sums are one expert's logits for its first nt tokens: out[r·E] for token r.
template <int kRows>
__device__ __forceinline__ void store_logits(const float (&s)[kRows], int nt, float* out, int64_t E, int lane) {
#pragma unroll
    for (int r = 0; r < kRows; ++r) {
        const float v = warp_sum(s[r]);
        if (lane == 0 && r < nt) out[r * E] = v;
    }
}

// Router logits in fp32 from the fp32 residual: the block normalizes its token's row itself (the same RMSNorm the
// experts' bf16 input went through) and each warp takes experts e = warp, warp + warps, ... of its group. Routing is
// a discrete choice, so a bf16-rounded input would flip near-tied experts that HF (fp32) keeps. Grid (token, group).
// The weights do not depend on the row, so each warp's first batch of weight loads is issued before the norm and
// arrives while it is computed (at batch 1 a warp has one expert: its whole row is that batch for H ≤ 2048).
constexpr int kRouterInFlight = 8;  // 16-byte pieces per lane loaded together
constexpr int kNormHeld = 16;       // norm weights per thread loaded with them (H = 2048 at 128 threads: all)

__device__ __forceinline__ void load_router_batch(const bf16* w, int64_t H8, int64_t i0, uint4 (&raw)[kRouterInFlight]) {
#pragma unroll
    for (int u = 0; u < kRouterInFlight; ++u)
        raw[u] = i0 + 32 * u < H8 ? __ldg(reinterpret_cast<const uint4*>(w) + i0 + 32 * u) : make_uint4(0, 0, 0, 0);
}

// The optional top-k (route_decode): TopkArgs::ids set. Every warp also posts its logit to the token's mailbox row
// (mailbox.cuh), and the token's first block's first warp polls that row until every expert's logit is there, picks
// the experts and empties the row for the next launch. A logit is its own "ready" flag, so no fence, ticket or
// re-read stands between the last logit and the pick (the ticket version: a fence, an atomic and a reload from L2,
// ~2 µs a layer on the 30B-A3B shape).
struct TopkArgs {
    int64_t k = 0;
    bool normalize = false;
    int32_t* ids = nullptr;
    float* weights = nullptr;
    bf16* xn = nullptr;  // the normed row in bf16, written by each token's first block
    float* mailbox = nullptr;
};

// The token's top-k from its mailbox row, by one warp, which then empties the row.
__device__ void pick_from_mailbox(const TopkArgs& topk, int64_t t, int64_t E, int lane) {
    float* box = topk.mailbox + t * E;
    topk_row([&](auto& v) {
        constexpr int kPer = sizeof(v) / sizeof(v[0]);
        bool missing = true;
        while (__any_sync(0xffffffffu, missing)) {  // every lane's loads in flight together, until all have arrived
            missing = false;
#pragma unroll
            for (int j = 0; j < kPer; ++j) {
                v[j] = lane + 32 * j < E ? mailbox_load(box + lane + 32 * j) : -INFINITY;
                missing |= mailbox_is_empty(v[j]);
            }
        }
        // Emptied for the next launch, whose stores come after this grid has finished (stream order).
#pragma unroll
        for (int j = 0; j < kPer; ++j)
            if (lane + 32 * j < E) mailbox_clear(box + lane + 32 * j);
    }, E, topk.k, topk.normalize, topk.ids + t * topk.k, topk.weights + t * topk.k);
}

__global__ void __launch_bounds__(256) router_logits_kernel(const float* __restrict__ x, const float* __restrict__ norm_w,
                                                            float eps, const bf16* __restrict__ Wr, int64_t E, int64_t H,
                                                            float* __restrict__ out, TopkArgs topk) {
    extern __shared__ __align__(16) float xs[];  // [H]: the normed row
    const int64_t t = blockIdx.x;
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    const int64_t e_first = int64_t(blockIdx.y) * warps + warp, H8 = H / 8;
    const bool vec = H % 8 == 0;  // 16-byte pieces: 8 weights per load
    uint4 first[kRouterInFlight];
    if (vec && e_first < E) load_router_batch(Wr + e_first * H, H8, lane, first);
    // The norm weights too: otherwise their load is a memory round trip of its own between the sum of squares and
    // the products.
    const NormWeights<kNormHeld> nw(norm_w, H, threadIdx.x, blockDim.x);
    pdl_trigger();  // the expert products after route_decode wait for this grid; their blocks may get resident now
    pdl_wait();  // launched with launch_pdl: x is written by the kernel before

    // The whole row's loads in flight together (H = 2048 at 128 threads): one memory round trip, not one per element.
    norm_row<16, 4>(x + t * H, nw, eps, xs, [](float v) { return block_sum(v); }, [&](int64_t i) {
        if (topk.xn && blockIdx.y == 0) topk.xn[t * H + i] = __float2bfloat16(xs[i]);
    });
    __syncthreads();
    for (int64_t e = e_first; e < E; e += int64_t(gridDim.y) * warps) {
        const bf16* w = Wr + e * H;
        float s[1] = {0.0f};
        if (vec) {
            for (int64_t i0 = lane; i0 < H8; i0 += 32 * kRouterInFlight) {
                uint4 raw[kRouterInFlight];
                if (e == e_first && i0 == lane) {
#pragma unroll
                    for (int u = 0; u < kRouterInFlight; ++u) raw[u] = first[u];
                } else {
                    load_router_batch(w, H8, i0, raw);
                }
#pragma unroll
                for (int u = 0; u < kRouterInFlight; ++u) {
                    if (i0 + 32 * u >= H8) break;
                    add_piece(s, xs, H, i0 + 32 * u, raw[u]);
                }
            }
        } else {
            add_row_unaligned(s, xs, H, w, lane);
        }
        const float logit = warp_sum(s[0]);
        if (lane == 0) {
            if (out) out[t * E + e] = logit;
            if (topk.ids) mailbox_post(topk.mailbox + t * E + e, logit);
        }
    }
    if (!topk.ids || blockIdx.y != 0 || warp != 0) return;
    pick_from_mailbox(topk, t, E, lane);
}

// Router logits for large steps (prefill): a block takes kRouterTile tokens, each warp normalizes one of their rows
// into shared memory, then every warp multiplies its experts' rows with all the block's tokens at once, so each
// weight row is read once per kRouterTile tokens instead of once per token (512-token prompt, 30B-A3B shape: the
// per-token kernel above re-read the 0.5 MB router 512 times a layer). The same norm and products as above, but the
// sum of squares is a warp's, not a block's, so the two kernels' logits may differ in their last bits.
constexpr int kRouterTile = 8;
constexpr int kRouterWarps = 8;

__global__ void __launch_bounds__(32 * kRouterWarps) router_logits_tiled_kernel(
    const float* __restrict__ x, const float* __restrict__ norm_w, float eps, const bf16* __restrict__ Wr, int64_t T,
    int64_t E, int64_t H, float* __restrict__ out) {
    extern __shared__ __align__(16) float xs[];  // [kRouterTile, H] normed rows (zeros past the last token)
    const int64_t t0 = int64_t(blockIdx.x) * kRouterTile;
    const int nt = int(min(int64_t(kRouterTile), T - t0));
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    for (int r = warp; r < kRouterTile; r += kRouterWarps) {
        float* xr = xs + int64_t(r) * H;
        if (r >= nt) {
            for (int64_t i = lane; i < H; i += 32) xr[i] = 0.0f;
            continue;
        }
        // No norm weights held: a warp normalizes a whole row alone (H / 32 weights a lane), too many to hold.
        norm_row<8, 8>(x + (t0 + r) * H, NormWeights<0>(norm_w, H, lane, 32), eps, xr,
                       [](float v) { return warp_sum(v); }, [](int64_t) {});
    }
    __syncthreads();
    for (int64_t e = int64_t(blockIdx.y) * kRouterWarps + warp; e < E; e += int64_t(gridDim.y) * kRouterWarps) {
        const bf16* w = Wr + e * H;
        float s[kRouterTile] = {};
        if (H % 8 == 0) {
#pragma unroll 2
            for (int64_t i = lane; i < H / 8; i += 32)
                add_piece(s, xs, H, i, __ldg(reinterpret_cast<const uint4*>(w) + i));
        } else {
            add_row_unaligned(s, xs, H, w, lane);
        }
        store_logits(s, nt, out + t0 * E + e, E, lane);
    }
}

__global__ void permute_count_kernel(const int32_t* __restrict__ ids, int64_t N, int64_t E, int32_t* tile_counts) {
    const int64_t tile = blockIdx.x, end = min(N, (tile + 1) * kTileAssign);
    for (int64_t i = tile * kTileAssign + threadIdx.x; i < end; i += 32) atomicAdd(&tile_counts[tile * E + ids[i]], 1);
}

// One block: tile_counts[tile, e] becomes the first row of expert e's rows in that tile; offsets [E + 1]; active:
// the experts with rows, ascending, then -1s (the grouped products' blocks look their expert up there in one load).
__global__ void permute_scan_kernel(int64_t N, int64_t E, int64_t tiles, int32_t* tile_counts, int32_t* offsets,
                                    int32_t* active) {
    __shared__ int32_t base[kMaxExperts + 1];
    for (int64_t e = threadIdx.x; e < E; e += blockDim.x) {
        int32_t running = 0;
        for (int64_t t = 0; t < tiles; ++t) {
            const int32_t c = tile_counts[t * E + e];
            tile_counts[t * E + e] = running;
            running += c;
        }
        base[e] = running;
    }
    __syncthreads();
    if (threadIdx.x == 0) {  // E ≤ a few hundred in practice: a serial exclusive scan costs ~1 µs
        int32_t acc = 0, n_active = 0;
        for (int64_t e = 0; e < E; ++e) {
            const int32_t c = base[e];
            base[e] = acc;
            offsets[e] = acc;
            acc += c;
            if (c > 0) active[n_active++] = int32_t(e);
        }
        offsets[E] = acc;
        for (int64_t e = n_active; e < E; ++e) active[e] = -1;
    }
    __syncthreads();
    for (int64_t e = threadIdx.x; e < E; e += blockDim.x)
        for (int64_t t = 0; t < tiles; ++t) tile_counts[t * E + e] += base[e];
}

__global__ void permute_scatter_kernel(const int32_t* __restrict__ ids, int64_t N, int64_t k, int64_t E,
                                       int32_t* tile_next, int32_t* __restrict__ row_token,
                                       int32_t* __restrict__ slot_row) {
    const int64_t tile = blockIdx.x, end = min(N, (tile + 1) * kTileAssign);
    const int lane = threadIdx.x;
    int32_t* next = tile_next + tile * E;
    for (int64_t b = tile * kTileAssign; b < end; b += 32) {
        const int64_t i = b + lane;
        const bool active = i < end;
        const int e = active ? ids[i] : -1;
        const unsigned peers = __match_any_sync(0xffffffffu, e);
        const int rank = __popc(peers & ((1u << lane) - 1u));
        if (active) {
            const int32_t row = next[e] + rank;
            row_token[row] = int32_t(i / k);
            slot_row[i] = row;
        }
        __syncwarp();  // every lane has read next[e] before the group's leader advances it
        if (active && lane == __ffs(peers) - 1) next[e] += __popc(peers);
        __syncwarp();
    }
}

__global__ void gather_rows_kernel(const bf16* __restrict__ x, const int32_t* __restrict__ row_token, int64_t n,
                                   bf16* __restrict__ xp) {
    const int64_t r = blockIdx.x;
    const bf16* src = x + int64_t(row_token[r]) * n;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) xp[r * n + i] = src[i];
}

// kMode: kWrite out = Σ; kAccumulate out += each slot in turn (the CPU's order); kAddSum out += Σ (the residual add
// after the sum, as combine_add_rms_norm adds it).
enum CombineMode { kWrite, kAccumulate, kAddSum };

template <int kMode>
__global__ void combine_rows_kernel(const bf16* __restrict__ y, const int32_t* __restrict__ slot_row,
                                    const float* __restrict__ weights, int64_t k, int64_t n, float* __restrict__ out) {
    pdl_wait();  // launched with PDL: resident while the expert products finish, so no launch gap after them
    // Only now may the gemv after it get resident and issue its weight loads (it waits for out itself): triggered at
    // entry, the next layer's q|k|v requested its whole 21 MB while these blocks' few loads were still to come, and
    // they queued behind it (H100 2026-11-27, 30B-A3B: this launch 7.9 µs past the down projection's end, 3.5 so).
    pdl_trigger();
    const int64_t t = blockIdx.x;
    for (int64_t i = int64_t(blockIdx.y) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.y) * blockDim.x) {
        float* o = out + t * n + i;
        if constexpr (kMode == kAddSum) *o += add_expert_rows(0.0f, y, slot_row, weights, k, n, t, i);
        else *o = add_expert_rows(kMode == kAccumulate ? *o : 0.0f, y, slot_row, weights, k, n, t, i);
    }
}

template <int kMode>
void launch_combine(const bf16* y, const int32_t* slot_row, const float* weights, int64_t T, int64_t k, int64_t n,
                    float* out, cudaStream_t stream) {
    if (T == 0) return;
    // Column chunks as a second grid dimension: at batch 1 one block per token would walk all n·k values alone.
    const dim3 grid(unsigned(T), unsigned(std::min<int64_t>((n + 255) / 256, 64)));
    launch_pdl(combine_rows_kernel<kMode>, grid, 256, 0, stream, y, slot_row, weights, k, n, out);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

}  // namespace

void route_topk(const float* logits, int64_t T, int64_t E, int64_t k, bool normalize, int32_t* ids, float* weights,
                cudaStream_t stream) {
    if (T == 0) return;
    if (k < 1 || k > E || E > kMaxRouted) throw std::invalid_argument("cuda::route_topk: need 1 ≤ k ≤ E ≤ 1024");
    constexpr int kWarpsPerBlock = 4;
    route_topk_kernel<<<dim3((T + kWarpsPerBlock - 1) / kWarpsPerBlock), 32 * kWarpsPerBlock, 0, stream>>>(
        logits, T, E, k, normalize, ids, weights);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

static void launch_router_logits(const float* x, const float* norm_w, float eps, const bf16* Wr, int64_t T, int64_t E,
                                 int64_t H, float* out, const TopkArgs& topk, cudaStream_t stream) {
    const size_t smem = size_t(H) * sizeof(float);
    allow_dynamic_smem(router_logits_kernel, smem);
    // Every block normalizes its row again (H floats from L2: cheap) so the experts spread over the SMs: 4-warp
    // blocks for decode-sized steps (E / 4 blocks per token), 8-warp ones for large steps (less repeated work).
    const int warps = T <= 8 ? 4 : 8;
    const dim3 grid(unsigned(T), unsigned((E + warps - 1) / warps));
    launch_pdl(router_logits_kernel, grid, 32 * warps, smem, stream, x, norm_w, eps, Wr, E, H, out, topk);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

void router_logits(const float* x, const float* norm_w, float eps, const bf16* Wr, int64_t T, int64_t E, int64_t H,
                   float* out, cudaStream_t stream) {
    if (T == 0) return;
    const size_t tiled_smem = size_t(kRouterTile) * H * sizeof(float);
    if (T >= 2 * kRouterTile && tiled_smem <= 160 * 1024) {
        allow_dynamic_smem(router_logits_tiled_kernel, tiled_smem);
        // About 4 experts per warp: enough blocks to fill the SMs at a few hundred tokens, few re-normalizations.
        const int64_t groups = std::max<int64_t>(1, E / (4 * kRouterWarps));
        const dim3 grid(unsigned((T + kRouterTile - 1) / kRouterTile), unsigned(groups));
        router_logits_tiled_kernel<<<grid, 32 * kRouterWarps, tiled_smem, stream>>>(x, norm_w, eps, Wr, T, E, H, out);
        MOEINFER_CUDA_LAUNCH_CHECK();
        return;
    }
    launch_router_logits(x, norm_w, eps, Wr, T, E, H, out, TopkArgs{}, stream);
}

void route_decode(const float* x, const float* norm_w, float eps, const bf16* Wr, int64_t T, int64_t E, int64_t H,
                  int64_t k, bool normalize, float* logits, int32_t* ids, float* weights, bf16* xn, float* mailbox,
                  cudaStream_t stream) {
    if (T == 0) return;
    if (T > kRouteDecodeMaxTokens) throw std::invalid_argument("cuda::route_decode: more than 8 tokens");
    if (k < 1 || k > E || E > kMaxRouted) throw std::invalid_argument("cuda::route_decode: need 1 ≤ k ≤ E ≤ 1024");
    if (!mailbox || !ids || !weights) throw std::invalid_argument("cuda::route_decode: needs ids, weights and a mailbox");
    launch_router_logits(x, norm_w, eps, Wr, T, E, H, logits, TopkArgs{k, normalize, ids, weights, xn, mailbox}, stream);
}

int64_t moe_permute_workspace_ints(int64_t N, int64_t E) { return ((N + kTileAssign - 1) / kTileAssign) * E; }

void moe_permute(const int32_t* ids, int64_t T, int64_t k, int64_t E, int32_t* workspace, int32_t* offsets,
                 int32_t* active, int32_t* row_token, int32_t* slot_row, cudaStream_t stream) {
    if (E > kMaxExperts) throw std::invalid_argument("cuda::moe_permute: more than 4096 experts");
    const int64_t N = T * k, tiles = (N + kTileAssign - 1) / kTileAssign;
    if (tiles > 0) MOEINFER_CUDA_CHECK(cudaMemsetAsync(workspace, 0, sizeof(int32_t) * tiles * E, stream));
    if (tiles > 0) {
        permute_count_kernel<<<dim3(tiles), 32, 0, stream>>>(ids, N, E, workspace);
        MOEINFER_CUDA_LAUNCH_CHECK();
    }
    permute_scan_kernel<<<1, 1024, 0, stream>>>(N, E, tiles, workspace, offsets, active);
    MOEINFER_CUDA_LAUNCH_CHECK();
    if (tiles > 0) {
        permute_scatter_kernel<<<dim3(tiles), 32, 0, stream>>>(ids, N, k, E, workspace, row_token, slot_row);
        MOEINFER_CUDA_LAUNCH_CHECK();
    }
}

void gather_rows(const bf16* x, const int32_t* row_token, int64_t N, int64_t n, bf16* xp, cudaStream_t stream) {
    if (N == 0) return;
    gather_rows_kernel<<<dim3(N), 256, 0, stream>>>(x, row_token, n, xp);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

void combine_rows(const bf16* y, const int32_t* slot_row, const float* weights, int64_t T, int64_t k, int64_t n,
                  bool accumulate, float* out, cudaStream_t stream) {
    if (accumulate) launch_combine<kAccumulate>(y, slot_row, weights, T, k, n, out, stream);
    else launch_combine<kWrite>(y, slot_row, weights, T, k, n, out, stream);
}

void add_combined_rows(const bf16* y, const int32_t* slot_row, const float* weights, int64_t T, int64_t k, int64_t n,
                       float* residual, cudaStream_t stream) {
    launch_combine<kAddSum>(y, slot_row, weights, T, k, n, residual, stream);
}

}  // namespace moeinfer::cuda
