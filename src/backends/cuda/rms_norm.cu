// RMSNorm, plain and fused with the residual add. One block per row: the row (≤ a few K floats) stays in L1/L2
// between the sum-of-squares pass and the scaling pass, so the fused form reads delta and residual once from
// DRAM and writes residual and y once. The delta can also be an MoE layer's weighted expert rows, which folds the
// combine into the same launch. fp32 residual stream and statistics; bf16 output feeds the next GEMM.
#include <algorithm>
#include <type_traits>

#include "backends/cuda/expert_rows.cuh"
#include "backends/cuda/norm_weights.cuh"
#include "backends/cuda/ops.h"
#include "backends/cuda/pdl.cuh"
#include "backends/cuda/reduce.cuh"

namespace moeinfer::cuda {
namespace {

constexpr int kThreads = 256;

__device__ __forceinline__ float to_float(float v) { return v; }
__device__ __forceinline__ float to_float(bf16 v) { return __bfloat162float(v); }

// What is added to the residual: nothing, a [rows, n] tensor, or the weighted sum of a token's expert rows.
struct NoDelta {};
template <typename T>
struct RowsDelta {
    const T* p;
    __device__ float operator()(int64_t row, int64_t n, int64_t i) const { return to_float(p[row * n + i]); }
};
struct ExpertsDelta {  // Σ_slot weights[row, slot] · y[slot_row[row·k + slot], i], in slot order as combine_rows
    const bf16* y;
    const int32_t* slot_row;
    const float* weights;
    int64_t k;
    __device__ float operator()(int64_t row, int64_t n, int64_t i) const {
        return add_expert_rows(0.0f, y, slot_row, weights, k, n, row, i);
    }
};

template <typename Delta>
__global__ void rms_norm_kernel(Delta delta, float* __restrict__ residual, const float* __restrict__ w, float eps,
                                int64_t n, bf16* __restrict__ y) {
    pdl_trigger();  // a gemv launched after it may start issuing its weight loads (it waits for y itself)
    const NormWeights<8> nw(w, n, threadIdx.x, blockDim.x);  // one memory round trip fewer on a decode step's chain
    const int64_t row = blockIdx.x;
    float* r = residual + row * n;
    float ss = 0.0f;
#pragma unroll 4
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) {
        float v = r[i];
        if constexpr (!std::is_same_v<Delta, NoDelta>) {
            v += delta(row, n, i);
            r[i] = v;  // each thread re-reads only what it wrote itself below: no barrier needed
        }
        ss += v * v;
    }
    const float inv = rsqrtf(block_sum(ss) / float(n) + eps);
    bf16* out = y + row * n;
    nw.for_each([&](int64_t i, float wi) { out[i] = __float2bfloat16(r[i] * inv * wi); });
}

template <typename Delta>
void launch(Delta delta, float* residual, const float* w, float eps, int64_t rows, int64_t n, bf16* y,
            cudaStream_t stream) {
    if (rows == 0) return;
    // Few rows (a decode step): up to 1024 threads per row, so one row is not a long latency chain on one SM.
    const int threads = rows >= 64 ? kThreads : int(std::min<int64_t>(1024, std::max<int64_t>(32, (n / 4 + 31) / 32 * 32)));
    rms_norm_kernel<Delta><<<dim3(rows), threads, 0, stream>>>(delta, residual, w, eps, n, y);
    MOEINFER_CUDA_LAUNCH_CHECK();
}

}  // namespace

void rms_norm(const float* x, const float* w, float eps, int64_t rows, int64_t n, bf16* y, cudaStream_t stream) {
    // The kernel only reads `residual` when there is no delta, so the const_cast never leads to a write.
    launch(NoDelta{}, const_cast<float*>(x), w, eps, rows, n, y, stream);
}

void add_rms_norm(const bf16* delta, float* residual, const float* w, float eps, int64_t rows, int64_t n, bf16* y,
                  cudaStream_t stream) {
    launch(RowsDelta<bf16>{delta}, residual, w, eps, rows, n, y, stream);
}

void add_rms_norm(const float* delta, float* residual, const float* w, float eps, int64_t rows, int64_t n, bf16* y,
                  cudaStream_t stream) {
    launch(RowsDelta<float>{delta}, residual, w, eps, rows, n, y, stream);
}

void combine_add_rms_norm(const bf16* expert_rows, const int32_t* slot_row, const float* weights, int64_t k,
                          float* residual, const float* w, float eps, int64_t rows, int64_t n, bf16* y,
                          cudaStream_t stream) {
    launch(ExpertsDelta{expert_rows, slot_row, weights, k}, residual, w, eps, rows, n, y, stream);
}

}  // namespace moeinfer::cuda
