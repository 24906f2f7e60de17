// Small glue kernels of the model forward (cuda_model.cpp): embedding lookup, the gated shared-expert add and random
// weights (routing is in moe_routing.cu, next-token selection in summarize.cu).
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

void fill_random(bf16* x, int64_t n, uint64_t seed, float scale, cudaStream_t stream) {
    if (n == 0) return;
    fill_random_kernel<<<dim3(1024), kThreads, 0, stream>>>(x, n, seed, scale);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

void fill_mailbox(float* mailbox, int64_t floats, cudaStream_t stream) {
    static_assert(kMailboxEmpty == 0xffffffffu, "filled bytewise");
    if (floats > 0) MOEINFER_CUDA_CHECK(cudaMemsetAsync(mailbox, 0xff, sizeof(float) * size_t(floats), stream));
}

}  // namespace moeinfer::cuda
