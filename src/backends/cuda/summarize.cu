// Next-token selection on the device (RowSummary, see engine/batch.h): greedy, or sampling with temperature, top-k,
// top-p and min-p, after logit bias / penalties / bans, so a decode step returns 8 bytes per row instead of a
// vocab-sized row of logits. Passes over chunks, so a 128k-152k row is read by many blocks instead of one (one
// block per row took ~0.3 ms, a twentieth of a batch-1 decode step):
//  1. per chunk of kSummaryChunk logits: max, its id (ties → lower id) and Σ exp(l − chunk max); per row from
//     those, the raw distribution's max and log-sum-exp (the reported logprob's). With adjustments, the raw values
//     of the adjusted ids are saved, the row is adjusted in place and pass 1 runs again on it;
//  2. rows with top-k / top-p, one block each: where the kept best-first prefix ends (radix selection on the logit
//     bits: by count for top-k, by tempered probability mass for top-p; ties ordered by id);
//  3. sampled rows, per chunk: Σ of the kept tempered weights exp((l − row max) / T) (double);
//  4. per row: the argmax and the raw log-sum-exp from the chunk stats; with a temperature, the chunk holding u·Z
//     of the inverse CDF in id order, then the token inside it (each thread owns a contiguous piece).
#include <cstdint>

#include "backends/cuda/ops.h"
#include "backends/cuda/reduce.cuh"
#include "engine/batch.h"

namespace moeinfer::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kCutThreads = 1024;
constexpr int64_t kSummaryChunk = 4096;
constexpr int kParams = kSummaryParams;  // per row: temperature, min_p, u, top_k, top_p

struct ChunkStat {
    float max;
    int32_t arg;
    float sum;    // Σ exp(l − max) over the chunk
    double kept;  // pass 3: Σ of the chunk's kept tempered weights, relative to the row max
};

// The kept prefix of the ids sorted by (logit desc, id asc) ends at (logit, id); everything when logit = -inf and
// id = INT32_MAX.
struct Cut {
    float logit;
    int32_t id;
};

struct RowInfo {
    Cut cut;
    float raw_max, raw_log_z;  // of the unadjusted row
};

__device__ __forceinline__ bool within(float l, int64_t i, Cut c) { return l > c.logit || (l == c.logit && i <= c.id); }

__device__ __forceinline__ bool better(float v, int64_t i, float bv, int64_t bi) { return v > bv || (v == bv && i < bi); }

// Float bits as an unsigned key with the same order (larger float → larger key).
__device__ __forceinline__ uint32_t order_key(float f) {
    const uint32_t u = __float_as_uint(f);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ float key_float(uint32_t k) {
    return __uint_as_float((k & 0x80000000u) ? (k & 0x7fffffffu) : ~k);
}

// Block-wide argmax (ties → lower index); every thread gets the result.
__device__ void block_argmax(float& v, int64_t& i) {
    __shared__ float sv[32];
    __shared__ int64_t si[32];
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const int64_t oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (better(ov, oi, v, i)) v = ov, i = oi;
    }
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) sv[warp] = v, si[warp] = i;
    __syncthreads();
    v = lane < nwarps ? sv[lane] : -INFINITY;
    i = lane < nwarps ? si[lane] : INT64_MAX;
    for (int o = 16; o > 0; o >>= 1) {
        const float ov = __shfl_xor_sync(0xffffffffu, v, o);
        const int64_t oi = __shfl_xor_sync(0xffffffffu, i, o);
        if (better(ov, oi, v, i)) v = ov, i = oi;
    }
}

__device__ double block_sum_double(double v) {
    __shared__ double partial[32];
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    __syncthreads();
    if (lane == 0) partial[warp] = v;
    __syncthreads();
    v = lane < nwarps ? partial[lane] : 0.0;
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

// Exclusive prefix sum over the block in thread order; `total` gets the sum of all.
__device__ int64_t block_exclusive_scan(int64_t v, int64_t& total) {
    __shared__ int64_t warp_sums[32];
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, nwarps = blockDim.x >> 5;
    int64_t inclusive = v;
    for (int o = 1; o < 32; o <<= 1) {
        const int64_t n = __shfl_up_sync(0xffffffffu, inclusive, o);
        if (lane >= o) inclusive += n;
    }
    __syncthreads();
    if (lane == 31) warp_sums[warp] = inclusive;
    __syncthreads();
    int64_t before = 0;
    total = 0;
    for (int w = 0; w < nwarps; ++w) {
        if (w < warp) before += warp_sums[w];
        total += warp_sums[w];
    }
    return before + inclusive - v;
}

__device__ __forceinline__ float row_max(const ChunkStat* st, int64_t chunks) {
    float m = -INFINITY;
    for (int64_t c = 0; c < chunks; ++c) m = fmaxf(m, st[c].max);
    return m;
}

__device__ __forceinline__ double tempered(float l, float m, float temperature) {
    return exp((double(l) - double(m)) / temperature);
}

__global__ void summary_chunk_kernel(const float* __restrict__ logits, int64_t V, ChunkStat* __restrict__ stats) {
    const float* row = logits + int64_t(blockIdx.y) * V;
    const int64_t lo = int64_t(blockIdx.x) * kSummaryChunk, hi = min(V, lo + kSummaryChunk);
    float best = -INFINITY;
    int64_t best_i = INT64_MAX;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x)
        if (better(row[i], i, best, best_i)) best = row[i], best_i = i;
    block_argmax(best, best_i);
    float sum = 0.0f;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) sum += __expf(row[i] - best);
    sum = block_sum(sum);
    if (threadIdx.x == 0)
        stats[int64_t(blockIdx.y) * gridDim.x + blockIdx.x] = {best, int32_t(best_i < hi ? best_i : lo), sum, 0.0};
}

// Among the logits whose key matches `prefix` on the bits of `mask` (and within `limit`), the `rank`-th best by
// count (by_mass false) or the bucket where the best-first tempered mass reaches `rank` (by_mass true): four passes
// of 8-bit digits, most significant first. Returns the key; `rank` is left as what remains inside that key's ties.
__device__ uint32_t radix_select(const float* row, int64_t V, Cut limit, bool by_mass, float m, float temperature,
                                 double& rank) {
    __shared__ unsigned long long counts[256];
    __shared__ double masses[256];
    __shared__ uint32_t digit_s;
    __shared__ double rank_s;
    uint32_t prefix = 0, mask = 0;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int b = threadIdx.x; b < 256; b += blockDim.x) counts[b] = 0, masses[b] = 0.0;
        __syncthreads();
        // Logits crowd into a few digits (the exponent byte especially), so lanes of a warp that share a digit add
        // into it once, from their lowest lane: far fewer colliding shared-memory atomics.
        const int lane = threadIdx.x & 31;
        for (int64_t base = 0; base < V; base += blockDim.x) {  // the same trip count for every lane of a warp
            const int64_t i = base + threadIdx.x;
            const float l = i < V ? row[i] : -INFINITY;
            const uint32_t k = order_key(l);
            const bool take = i < V && (k & mask) == prefix && within(l, i, limit);
            const uint32_t d = take ? (k >> shift) & 0xffu : 256u;
            const unsigned peers = __match_any_sync(0xffffffffu, d);
            const bool leader = take && lane == __ffs(peers) - 1;
            if (!by_mass) {
                if (leader) atomicAdd(&counts[d], (unsigned long long)__popc(peers));
                continue;
            }
            const double w = take ? tempered(l, m, temperature) : 0.0;
            double group = 0.0;
            for (int j = 0; j < 32; ++j) {
                const double wj = __shfl_sync(0xffffffffu, w, j);
                if ((peers >> j) & 1u) group += wj;
            }
            if (leader) atomicAdd(&masses[d], group);
        }
        __syncthreads();
        if (threadIdx.x == 0) {  // best digits first: the bucket where the running count / mass reaches rank
            double acc = 0.0;
            int d = 255;
            for (; d > 0; --d) {
                const double here = by_mass ? masses[d] : double(counts[d]);
                if (acc + here >= rank && here > 0) break;
                acc += here;
            }
            digit_s = uint32_t(d);
            rank_s = rank - acc;
        }
        __syncthreads();
        prefix |= digit_s << shift;
        mask |= 0xffu << shift;
        rank = rank_s;
        __syncthreads();
    }
    return prefix;
}

// The id of the `nth` (1-based) logit equal to `value` within `limit`, in id order; the last such id when fewer.
__device__ int32_t nth_equal_id(const float* row, int64_t V, float value, Cut limit, int64_t nth) {
    __shared__ int32_t found;
    const int64_t piece = (V + blockDim.x - 1) / blockDim.x;
    const int64_t lo = min(V, int64_t(threadIdx.x) * piece), hi = min(V, lo + piece);
    int64_t mine = 0;
    for (int64_t i = lo; i < hi; ++i) mine += row[i] == value && within(row[i], i, limit);
    int64_t total = 0;
    const int64_t before = block_exclusive_scan(mine, total);
    if (threadIdx.x == 0) found = -1;
    __syncthreads();
    nth = nth < 1 ? 1 : (nth > total ? total : nth);
    if (before < nth && nth <= before + mine) {
        int64_t seen = before;
        for (int64_t i = lo; i < hi; ++i)
            if (row[i] == value && within(row[i], i, limit) && ++seen == nth) {
                found = int32_t(i);
                break;
            }
    }
    __syncthreads();
    return found;
}

__global__ void summary_raw_kernel(const ChunkStat* __restrict__ stats, int64_t chunks, RowInfo* __restrict__ info) {
    const ChunkStat* st = stats + int64_t(blockIdx.x) * chunks;
    if (threadIdx.x != 0) return;
    const float m = row_max(st, chunks);
    float z = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) z += st[c].sum * __expf(st[c].max - m);
    info[blockIdx.x].raw_max = m;
    info[blockIdx.x].raw_log_z = logf(z);
}

// LogitAdjust's rule, in place; the raw value of each adjusted id is kept for the reported logprob.
__global__ void summary_adjust_kernel(float* __restrict__ logits, int64_t V, const LogitAdjust* __restrict__ adjust,
                                      const int32_t* __restrict__ offsets, float* __restrict__ raw) {
    float* row = logits + int64_t(blockIdx.x) * V;
    for (int32_t e = offsets[blockIdx.x] + threadIdx.x; e < offsets[blockIdx.x + 1]; e += blockDim.x) {
        const LogitAdjust a = adjust[e];
        const float r = row[a.id];
        raw[e] = r;
        float l = r + a.bias;
        if (a.rep != 1.0f) l = l > 0.0f ? l / a.rep : l * a.rep;
        row[a.id] = l - a.sub;
    }
}

__global__ void summary_cut_kernel(const float* __restrict__ logits, int64_t V, int64_t chunks,
                                   const float* __restrict__ params, const ChunkStat* __restrict__ stats,
                                   RowInfo* __restrict__ info) {
    const float* p = params + kParams * blockIdx.x;
    const float temperature = p[0], top_p = p[4];
    const int64_t top_k = int64_t(p[3]);
    Cut cut{-INFINITY, INT32_MAX};
    const bool by_k = top_k > 0 && top_k < V, by_p = top_p < 1.0f;
    if (temperature > 0.0f && (by_k || by_p)) {
        const float* row = logits + int64_t(blockIdx.x) * V;
        const float m = row_max(stats + int64_t(blockIdx.x) * chunks, chunks);
        if (by_k) {
            double rank = double(top_k);
            const float value = key_float(radix_select(row, V, cut, false, m, temperature, rank));
            cut = Cut{value, nth_equal_id(row, V, value, cut, int64_t(rank))};
        }
        if (by_p) {
            double mass = 0.0;  // of what top-k kept
            for (int64_t i = threadIdx.x; i < V; i += blockDim.x)
                if (within(row[i], i, cut)) mass += tempered(row[i], m, temperature);
            mass = block_sum_double(mass);
            double rank = double(top_p) * mass;
            const float value = key_float(radix_select(row, V, cut, true, m, temperature, rank));
            // Ties at the boundary share one weight: as many as the remaining mass needs, in id order.
            const double w = tempered(value, m, temperature);
            const int64_t need = w > 0.0 ? int64_t(ceil(rank / w - 1e-9)) : 1;
            cut = Cut{value, nth_equal_id(row, V, value, cut, need)};
        }
    }
    if (threadIdx.x == 0) info[blockIdx.x].cut = cut;
}

__device__ __forceinline__ double kept_weight(const float* row, int64_t i, float m, float temperature, float min_p, Cut cut) {
    const double w = tempered(row[i], m, temperature);
    return w >= min_p && within(row[i], i, cut) ? w : 0.0;
}

__global__ void summary_weight_kernel(const float* __restrict__ logits, int64_t V, const float* __restrict__ params,
                                      const RowInfo* __restrict__ info, ChunkStat* __restrict__ stats) {
    const float temperature = params[kParams * blockIdx.y], min_p = params[kParams * blockIdx.y + 1];
    if (temperature <= 0.0f) return;
    ChunkStat* st = stats + int64_t(blockIdx.y) * gridDim.x;
    const float m = row_max(st, gridDim.x);
    const Cut cut = info[blockIdx.y].cut;
    const float* row = logits + int64_t(blockIdx.y) * V;
    const int64_t lo = int64_t(blockIdx.x) * kSummaryChunk, hi = min(V, lo + kSummaryChunk);
    double kept = 0.0;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) kept += kept_weight(row, i, m, temperature, min_p, cut);
    kept = block_sum_double(kept);
    if (threadIdx.x == 0) st[blockIdx.x].kept = kept;
}

__global__ void summary_pick_kernel(const float* __restrict__ logits, int64_t V, int64_t chunks,
                                    const float* __restrict__ params, const RowInfo* __restrict__ info,
                                    const ChunkStat* __restrict__ stats, const LogitAdjust* __restrict__ adjust,
                                    const int32_t* __restrict__ offsets, const float* __restrict__ raw,
                                    int32_t* __restrict__ out, float* __restrict__ logprob) {
    const ChunkStat* st = stats + int64_t(blockIdx.x) * chunks;
    const float* row = logits + int64_t(blockIdx.x) * V;
    const float m = row_max(st, chunks);
    int64_t token = INT64_MAX;
    for (int64_t c = 0; c < chunks && token == INT64_MAX; ++c)  // chunks in id order: the first reaching m has the lowest id
        if (st[c].max == m) token = st[c].arg;
    const float* p = params + kParams * blockIdx.x;
    const float temperature = p[0], min_p = p[1], u = p[2];
    if (temperature > 0.0f) {
        const Cut cut = info[blockIdx.x].cut;
        __shared__ int64_t picked;
        double total = 0.0;
        for (int64_t c = 0; c < chunks; ++c) total += st[c].kept;
        const double target = double(u) * total;
        // The chunk holding the target; when rounding leaves it past the end, the last chunk with weight.
        int64_t chunk = -1;
        double before = 0.0, chunk_before = 0.0;
        for (int64_t c = 0; c < chunks; ++c) {
            if (st[c].kept <= 0.0) continue;
            chunk = c;
            chunk_before = before;
            if (before + st[c].kept > target) break;
            before += st[c].kept;
        }
        if (chunk >= 0) {
            const double in_chunk = fmin(target - chunk_before, st[chunk].kept);
            const int64_t base = chunk * kSummaryChunk, len = min(kSummaryChunk, V - base);
            const int64_t piece = (len + blockDim.x - 1) / blockDim.x;
            const int64_t lo = base + min(len, int64_t(threadIdx.x) * piece), hi = base + min(len, (threadIdx.x + 1) * piece);
            double local = 0.0;
            for (int64_t i = lo; i < hi; ++i) local += kept_weight(row, i, m, temperature, min_p, cut);
            __shared__ double scan[kThreads];
            scan[threadIdx.x] = local;
            __syncthreads();
            if (threadIdx.x == 0) {  // exclusive scan of the pieces, in place
                double acc = 0.0;
                for (int t = 0; t < int(blockDim.x); ++t) {
                    const double v = scan[t];
                    scan[t] = acc;
                    acc += v;
                }
                picked = -1;
            }
            __syncthreads();
            if (local > 0.0 && scan[threadIdx.x] <= in_chunk && in_chunk < scan[threadIdx.x] + local) {
                double acc = scan[threadIdx.x];
                int64_t found = -1;
                for (int64_t i = lo; i < hi && found < 0; ++i) {
                    const double w = kept_weight(row, i, m, temperature, min_p, cut);
                    acc += w;
                    if (w > 0.0 && acc > in_chunk) found = i;
                }
                for (int64_t i = hi - 1; found < 0 && i >= lo; --i)  // rounding left the target at the very end
                    if (kept_weight(row, i, m, temperature, min_p, cut) > 0.0) found = i;
                picked = found;  // pieces are disjoint: at most one thread gets here
            }
            __syncthreads();
            if (picked < 0 && threadIdx.x == 0)  // the target fell past every piece's sum (rounding): the last kept
                for (int64_t i = base + len - 1; i >= base && picked < 0; --i)
                    if (kept_weight(row, i, m, temperature, min_p, cut) > 0.0) picked = i;
            __syncthreads();
            if (picked >= 0) token = picked;
        }
    }
    if (token == INT64_MAX) token = 0;  // no finite logit at all
    if (threadIdx.x == 0) {
        float value = row[token];  // its raw value, unless the row was adjusted there
        for (int32_t e = adjust ? offsets[blockIdx.x] : 0; adjust && e < offsets[blockIdx.x + 1]; ++e)
            if (adjust[e].id == token) value = raw[e];
        out[blockIdx.x] = int32_t(token);
        logprob[blockIdx.x] = value - info[blockIdx.x].raw_max - info[blockIdx.x].raw_log_z;
    }
}

}  // namespace

size_t summarize_workspace_bytes(int64_t rows, int64_t V) {
    return size_t(rows) * (size_t((V + kSummaryChunk - 1) / kSummaryChunk) * sizeof(ChunkStat) + sizeof(RowInfo));
}

void summarize_rows(const SummarizeArgs& a, cudaStream_t stream) {
    if (a.rows == 0 || a.V == 0) return;
    const int64_t rows = a.rows, V = a.V, chunks = (V + kSummaryChunk - 1) / kSummaryChunk;
    auto* stats = static_cast<ChunkStat*>(a.workspace);
    auto* info = reinterpret_cast<RowInfo*>(stats + rows * chunks);
    const dim3 grid{unsigned(chunks), unsigned(rows)};
    summary_chunk_kernel<<<grid, kThreads, 0, stream>>>(a.logits, V, stats);
    MOEINFER_CUDA_LAUNCH_CHECK();
    summary_raw_kernel<<<dim3(unsigned(rows)), 32, 0, stream>>>(stats, chunks, info);
    MOEINFER_CUDA_LAUNCH_CHECK();
    if (a.adjust) {
        summary_adjust_kernel<<<dim3(unsigned(rows)), kThreads, 0, stream>>>(a.logits, V, a.adjust, a.adjust_offsets,
                                                                            a.adjust_raw);
        MOEINFER_CUDA_LAUNCH_CHECK();
        summary_chunk_kernel<<<grid, kThreads, 0, stream>>>(a.logits, V, stats);
        MOEINFER_CUDA_LAUNCH_CHECK();
    }
    if (!a.all_greedy) {  // greedy rows read neither the cut nor the kept weights
        summary_cut_kernel<<<dim3(unsigned(rows)), kCutThreads, 0, stream>>>(a.logits, V, chunks, a.params, stats, info);
        MOEINFER_CUDA_LAUNCH_CHECK();
        summary_weight_kernel<<<grid, kThreads, 0, stream>>>(a.logits, V, a.params, info, stats);
        MOEINFER_CUDA_LAUNCH_CHECK();
    }
    summary_pick_kernel<<<dim3(unsigned(rows)), kThreads, 0, stream>>>(a.logits, V, chunks, a.params, info, stats,
                                                                       a.adjust, a.adjust_offsets, a.adjust_raw,
                                                                       a.token, a.logprob);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

}  // namespace moeinfer::cuda
