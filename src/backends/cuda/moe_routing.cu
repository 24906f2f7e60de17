// MoE routing on the device: softmax top-k gating, the stable expert permutation, row gather and weighted combine.
// route_topk: one warp per token; the k winners are found in k rounds, each round a warp arg-max over the experts
// ranked strictly below the previous winner in (logit desc, id asc) order, so nothing needs marking and ties go
// to the lower id as on the CPU. moe_permute: counts per (tile of 256 assignments, expert), a column scan giving
// each tile its base row per expert, then each tile's warp walks its assignments in order, ranking equal experts
// within 32 lanes by __match_any_sync; the result is the CPU's stable order, with no global atomics on row slots.
#include <algorithm>
#include <climits>
#include <cmath>

#include "backends/cuda/ops.h"
#include "backends/cuda/reduce.cuh"

namespace moeinfer::cuda {
namespace {

constexpr int kTileAssign = 256;  // assignments per permutation tile (one warp)
constexpr int kMaxExperts = 4096; // bound of the scan kernel's shared totals

// (logit, id) order: a ranks before b when its logit is larger, or equal with a lower id.
__device__ __forceinline__ bool ranks_before(float la, int ia, float lb, int ib) {
    return la > lb || (la == lb && ia < ib);
}

__global__ void route_topk_kernel(const float* __restrict__ logits, int64_t T, int64_t E, int64_t k, bool normalize,
                                  int32_t* __restrict__ ids, float* __restrict__ weights) {
    const int64_t t = int64_t(blockIdx.x) * (blockDim.x / 32) + threadIdx.x / 32;
    const int lane = threadIdx.x & 31;
    if (t >= T) return;  // whole warps leave together: t is uniform across a warp
    const float* row = logits + t * E;
    float mx = -INFINITY;
    for (int64_t e = lane; e < E; e += 32) mx = fmaxf(mx, row[e]);
    mx = warp_max(mx);
    float sum = 0.0f;
    for (int64_t e = lane; e < E; e += 32) sum += expf(row[e] - mx);
    sum = warp_sum(sum);

    float prev_l = INFINITY;
    int prev_i = -1;
    float picked = 0.0f;  // Σ of the chosen probabilities (same value in every lane)
    for (int64_t r = 0; r < k; ++r) {
        float best_l = -INFINITY;
        int best_i = INT_MAX;
        for (int64_t e = lane; e < E; e += 32) {
            const float l = row[e];
            if (ranks_before(prev_l, prev_i, l, int(e)) && ranks_before(l, int(e), best_l, best_i)) {
                best_l = l;
                best_i = int(e);
            }
        }
        for (int o = 16; o > 0; o >>= 1) {
            const float ol = __shfl_xor_sync(0xffffffffu, best_l, o);
            const int oi = __shfl_xor_sync(0xffffffffu, best_i, o);
            if (ranks_before(ol, oi, best_l, best_i)) {
                best_l = ol;
                best_i = oi;
            }
        }
        const float p = expf(best_l - mx) / sum;
        picked += p;
        if (lane == 0) {
            ids[t * k + r] = best_i;
            weights[t * k + r] = p;
        }
        prev_l = best_l;
        prev_i = best_i;
    }
    if (normalize) {
        __syncwarp();  // lane 0's weight stores become visible to the other lanes
        for (int64_t r = lane; r < k; r += 32) weights[t * k + r] /= picked;
    }
}

__global__ void permute_count_kernel(const int32_t* __restrict__ ids, int64_t N, int64_t E, int32_t* tile_counts) {
    const int64_t tile = blockIdx.x, end = min(N, (tile + 1) * kTileAssign);
    for (int64_t i = tile * kTileAssign + threadIdx.x; i < end; i += 32) atomicAdd(&tile_counts[tile * E + ids[i]], 1);
}

// One block: tile_counts[tile, e] becomes the first row of expert e's rows in that tile; offsets [E + 1].
__global__ void permute_scan_kernel(int64_t N, int64_t E, int64_t tiles, int32_t* tile_counts, int32_t* offsets) {
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
        int32_t acc = 0;
        for (int64_t e = 0; e < E; ++e) {
            const int32_t c = base[e];
            base[e] = acc;
            offsets[e] = acc;
            acc += c;
        }
        offsets[E] = acc;
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

__global__ void combine_rows_kernel(const bf16* __restrict__ y, const int32_t* __restrict__ slot_row,
                                    const float* __restrict__ weights, int64_t k, int64_t n, bool accumulate,
                                    float* __restrict__ out) {
    const int64_t t = blockIdx.x;
    for (int64_t i = int64_t(blockIdx.y) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.y) * blockDim.x) {
        float acc = accumulate ? out[t * n + i] : 0.0f;
        for (int64_t s = 0; s < k; ++s)
            acc += weights[t * k + s] * __bfloat162float(y[int64_t(slot_row[t * k + s]) * n + i]);
        out[t * n + i] = acc;
    }
}

}  // namespace

void route_topk(const float* logits, int64_t T, int64_t E, int64_t k, bool normalize, int32_t* ids, float* weights,
                cudaStream_t stream) {
    if (T == 0) return;
    if (k < 1 || k > E) throw std::invalid_argument("cuda::route_topk: need 1 ≤ k ≤ E");
    constexpr int kWarpsPerBlock = 4;
    route_topk_kernel<<<dim3((T + kWarpsPerBlock - 1) / kWarpsPerBlock), 32 * kWarpsPerBlock, 0, stream>>>(
        logits, T, E, k, normalize, ids, weights);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

int64_t moe_permute_workspace_ints(int64_t N, int64_t E) { return ((N + kTileAssign - 1) / kTileAssign) * E; }

void moe_permute(const int32_t* ids, int64_t T, int64_t k, int64_t E, int32_t* workspace, int32_t* offsets,
                 int32_t* row_token, int32_t* slot_row, cudaStream_t stream) {
    if (E > kMaxExperts) throw std::invalid_argument("cuda::moe_permute: more than 4096 experts");
    const int64_t N = T * k, tiles = (N + kTileAssign - 1) / kTileAssign;
    if (tiles > 0) MOEINFER_CUDA_CHECK(cudaMemsetAsync(workspace, 0, sizeof(int32_t) * tiles * E, stream));
    if (tiles > 0) {
        permute_count_kernel<<<dim3(tiles), 32, 0, stream>>>(ids, N, E, workspace);
        MOEINFER_CUDA_LAUNCH_CHECK();
    }
    permute_scan_kernel<<<1, 1024, 0, stream>>>(N, E, tiles, workspace, offsets);
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
    if (T == 0) return;
    // Column chunks as a second grid dimension: at batch 1 one block per token would walk all n·k values alone.
    const dim3 grid(unsigned(T), unsigned(std::min<int64_t>((n + 255) / 256, 64)));
    combine_rows_kernel<<<grid, 256, 0, stream>>>(y, slot_row, weights, k, n, accumulate, out);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

}  // namespace moeinfer::cuda
