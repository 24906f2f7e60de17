// Small glue kernels of the model forward (cuda_model.cpp): embedding lookup, fp32 router logits, the gated
// shared-expert add and random weights (next-token selection is in summarize.cu).
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

void fill_random(bf16* x, int64_t n, uint64_t seed, float scale, cudaStream_t stream) {
    if (n == 0) return;
    fill_random_kernel<<<dim3(1024), kThreads, 0, stream>>>(x, n, seed, scale);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

}  // namespace moeinfer::cuda
