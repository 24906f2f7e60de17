// Small glue kernels of the model forward (cuda_model.cpp): embedding lookup, fp32 router logits, the gated
// shared-expert add, next-token selection (greedy or temperature / min-p sampling) and random weights.
// Each is one launch over rows and memory-bound; none needs shared state beyond a block reduction.
#include "backends/cuda/ops.h"
#include "backends/cuda/reduce.cuh"

namespace moeinfer::cuda {
namespace {

constexpr int kThreads = 256;

__global__ void embed_kernel(const bf16* __restrict__ table, const int32_t* __restrict__ ids,
                             const int32_t* __restrict__ previous, int64_t H, float* __restrict__ out) {
    const int64_t t = blockIdx.x;
    const int32_t id = ids[t] >= 0 ? ids[t] : previous[-1 - ids[t]];
    const bf16* row = table + int64_t(id) * H;
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) out[t * H + i] = __bfloat162float(row[i]);
}

__global__ void add_gated_kernel(float* __restrict__ out, const bf16* __restrict__ shared,
                                 const float* __restrict__ gate_logit, int64_t H) {
    const int64_t t = blockIdx.x;
    const float g = gate_logit ? 1.0f / (1.0f + expf(-gate_logit[t])) : 1.0f;
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) out[t * H + i] += g * __bfloat162float(shared[t * H + i]);
}

// Router logits in fp32 from the fp32 residual: the block normalizes its token's row itself (the same RMSNorm the
// experts' bf16 input went through) and each warp takes experts e = warp, warp + 8, ... Routing is a discrete
// choice, so a bf16-rounded input would flip near-tied experts that HF (fp32) keeps. Grid (token, expert group).
__global__ void router_logits_kernel(const float* __restrict__ x, const float* __restrict__ norm_w, float eps,
                                     const bf16* __restrict__ Wr, int64_t E, int64_t H, float* __restrict__ out) {
    extern __shared__ float xs[];  // [H] normed row
    const int64_t t = blockIdx.x;
    const float* row = x + t * H;
    float ss = 0.0f;
#pragma unroll 8
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) {
        xs[i] = row[i];
        ss += xs[i] * xs[i];
    }
    const float inv = rsqrtf(block_sum(ss) / float(H) + eps);  // its barrier also publishes xs
#pragma unroll 8
    for (int64_t i = threadIdx.x; i < H; i += blockDim.x) xs[i] = xs[i] * inv * norm_w[i];
    __syncthreads();
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    for (int64_t e = int64_t(blockIdx.y) * warps + warp; e < E; e += int64_t(gridDim.y) * warps) {
        const bf16* w = Wr + e * H;
        float s = 0.0f;
        if (H % 8 == 0) {  // 16-byte pieces: 8 weights per load
            for (int64_t i = lane; i < H / 8; i += 32) {
                const uint4 raw = __ldg(reinterpret_cast<const uint4*>(w) + i);
                const __nv_bfloat162* p = reinterpret_cast<const __nv_bfloat162*>(&raw);
#pragma unroll
                for (int j = 0; j < 4; ++j) {
                    const float2 f = __bfloat1622float2(p[j]);
                    s += xs[8 * i + 2 * j] * f.x + xs[8 * i + 2 * j + 1] * f.y;
                }
            }
        } else {
            for (int64_t i = lane; i < H; i += 32) s += xs[i] * __bfloat162float(w[i]);
        }
        s = warp_sum(s);
        if (lane == 0) out[t * E + e] = s;
    }
}

// RowSummary on the device, in three passes so a vocab-sized row is read by many blocks instead of one (one block
// per 128k-float row took ~0.3 ms, a twentieth of a batch-1 decode step):
//  1. per chunk of kSummaryChunk logits: max, its id (ties → lower id) and Σ exp(l − chunk max);
//  2. sampled rows only, per chunk: Σ of the tempered weights exp((l − row max) / T) that pass min_p (double);
//  3. per row: the argmax and the raw log-sum-exp from the chunk stats; with a temperature, the chunk holding u·Z
//     of the inverse CDF in id order, then the token inside it (each thread owns a contiguous piece).
struct ChunkStat {
    float max;
    int32_t arg;
    float sum;    // Σ exp(l − max) over the chunk
    double kept;  // pass 2: Σ of the chunk's tempered weights, relative to the row max
};

constexpr int64_t kSummaryChunk = 4096;

__device__ __forceinline__ bool better(float v, int64_t i, float bv, int64_t bi) { return v > bv || (v == bv && i < bi); }

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

__device__ __forceinline__ float row_max(const ChunkStat* st, int64_t chunks) {
    float m = -INFINITY;
    for (int64_t c = 0; c < chunks; ++c) m = fmaxf(m, st[c].max);
    return m;
}

// Relative to the top token's weight, so min_p compares directly.
__device__ __forceinline__ float tempered(float l, float m, float temperature, float min_p) {
    const float w = __expf((l - m) / temperature);
    return w >= min_p ? w : 0.0f;
}

__global__ void summary_weight_kernel(const float* __restrict__ logits, int64_t V, const float* __restrict__ params,
                                      ChunkStat* __restrict__ stats) {
    const float temperature = params[3 * blockIdx.y], min_p = params[3 * blockIdx.y + 1];
    if (temperature <= 0.0f) return;
    ChunkStat* st = stats + int64_t(blockIdx.y) * gridDim.x;
    const float m = row_max(st, gridDim.x);
    const float* row = logits + int64_t(blockIdx.y) * V;
    const int64_t lo = int64_t(blockIdx.x) * kSummaryChunk, hi = min(V, lo + kSummaryChunk);
    double kept = 0.0;
    for (int64_t i = lo + threadIdx.x; i < hi; i += blockDim.x) kept += tempered(row[i], m, temperature, min_p);
    kept = block_sum_double(kept);
    if (threadIdx.x == 0) st[blockIdx.x].kept = kept;
}

__global__ void summary_pick_kernel(const float* __restrict__ logits, int64_t V, int64_t chunks,
                                    const float* __restrict__ params, const ChunkStat* __restrict__ stats,
                                    int32_t* __restrict__ out, float* __restrict__ logprob) {
    const ChunkStat* st = stats + int64_t(blockIdx.x) * chunks;
    const float* row = logits + int64_t(blockIdx.x) * V;
    const float m = row_max(st, chunks);
    int64_t token = INT64_MAX;
    float Z = 0.0f;
    for (int64_t c = 0; c < chunks; ++c) {  // chunks in id order: the first chunk reaching m has the lowest id
        if (st[c].max == m && token == INT64_MAX) token = st[c].arg;
        Z += st[c].sum * __expf(st[c].max - m);
    }
    const float temperature = params[3 * blockIdx.x], min_p = params[3 * blockIdx.x + 1], u = params[3 * blockIdx.x + 2];
    if (temperature > 0.0f) {
        __shared__ double scan[kThreads];
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
            const int64_t lo = base + min(len, threadIdx.x * piece), hi = base + min(len, (threadIdx.x + 1) * piece);
            double local = 0.0;
            for (int64_t i = lo; i < hi; ++i) local += tempered(row[i], m, temperature, min_p);
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
                    const float w = tempered(row[i], m, temperature, min_p);
                    acc += w;
                    if (w > 0.0f && acc > in_chunk) found = i;
                }
                for (int64_t i = hi - 1; found < 0 && i >= lo; --i)  // rounding left the target at the very end
                    if (tempered(row[i], m, temperature, min_p) > 0.0f) found = i;
                picked = found;  // pieces are disjoint: at most one thread gets here
            }
            __syncthreads();
            if (picked < 0 && threadIdx.x == 0)  // the target fell past every piece's sum (rounding): the last kept
                for (int64_t i = base + len - 1; i >= base && picked < 0; --i)
                    if (tempered(row[i], m, temperature, min_p) > 0.0f) picked = i;
            __syncthreads();
            if (picked >= 0) token = picked;
        }
    }
    if (token == INT64_MAX) token = 0;  // no finite logit at all
    if (threadIdx.x == 0) {
        out[blockIdx.x] = int32_t(token);
        logprob[blockIdx.x] = row[token] - m - logf(Z);
    }
}

__global__ void fill_random_kernel(bf16* __restrict__ x, int64_t n, uint64_t seed, float scale) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        uint64_t z = seed + uint64_t(i) * 0x9e3779b97f4a7c15ull;
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
        z ^= z >> 31;
        const float u = float(z >> 40) * (1.0f / 16777216.0f);  // [0, 1)
        x[i] = __float2bfloat16((2.0f * u - 1.0f) * scale);
    }
}

}  // namespace

void embed_rows(const bf16* table, const int32_t* ids, const int32_t* previous, int64_t T, int64_t H, float* out,
                cudaStream_t stream) {
    if (T == 0) return;
    embed_kernel<<<dim3(T), kThreads, 0, stream>>>(table, ids, previous, H, out);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

void add_gated(float* out, const bf16* shared, const float* gate_logit, int64_t T, int64_t H, cudaStream_t stream) {
    if (T == 0) return;
    add_gated_kernel<<<dim3(T), kThreads, 0, stream>>>(out, shared, gate_logit, H);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

void router_logits(const float* x, const float* norm_w, float eps, const bf16* Wr, int64_t T, int64_t E, int64_t H,
                   float* out, cudaStream_t stream) {
    if (T == 0) return;
    const size_t smem = size_t(H) * sizeof(float);
    if (smem > 48 * 1024)
        MOEINFER_CUDA_CHECK(cudaFuncSetAttribute(router_logits_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem)));
    // Blocks of 8 experts per token: every block normalizes its row again (H floats: cheap) so experts spread
    // over the SMs even at batch 1.
    const dim3 grid(unsigned(T), unsigned((E + kThreads / 32 - 1) / (kThreads / 32)));
    router_logits_kernel<<<grid, kThreads, smem, stream>>>(x, norm_w, eps, Wr, E, H, out);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

size_t summarize_workspace_bytes(int64_t rows, int64_t V) {
    return size_t(rows) * size_t((V + kSummaryChunk - 1) / kSummaryChunk) * sizeof(ChunkStat);
}

void summarize_rows(const float* logits, int64_t rows, int64_t V, const float* params, void* workspace, int32_t* token,
                    float* logprob, cudaStream_t stream) {
    if (rows == 0 || V == 0) return;
    const int64_t chunks = (V + kSummaryChunk - 1) / kSummaryChunk;
    auto* stats = static_cast<ChunkStat*>(workspace);
    const dim3 grid{unsigned(chunks), unsigned(rows)};
    summary_chunk_kernel<<<grid, kThreads, 0, stream>>>(logits, V, stats);
    MOEINFER_CUDA_LAUNCH_CHECK();
    summary_weight_kernel<<<grid, kThreads, 0, stream>>>(logits, V, params, stats);
    MOEINFER_CUDA_LAUNCH_CHECK();
    summary_pick_kernel<<<dim3(unsigned(rows)), kThreads, 0, stream>>>(logits, V, chunks, params, stats, token, logprob);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

void fill_random(bf16* x, int64_t n, uint64_t seed, float scale, cudaStream_t stream) {
    if (n == 0) return;
    fill_random_kernel<<<dim3(1024), kThreads, 0, stream>>>(x, n, seed, scale);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

}  // namespace moeinfer::cuda
