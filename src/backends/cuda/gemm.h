// Dense bf16 GEMM for linear layers, y = x · Wᵀ, over cuBLASLt (fp32 accumulation), with a per-shape plan cache.
#pragma once
#include <cstdint>
#include <memory>

#include "backends/cuda/common.h"

namespace moeinfer::cuda {

class Gemm {
public:
    // workspace_bytes: cuBLASLt scratch (cudaMalloc'd once); 32 MiB lets the heuristic pick split-K kernels on H100.
    explicit Gemm(size_t workspace_bytes = size_t(32) << 20);
    ~Gemm();
    Gemm(const Gemm&) = delete;
    Gemm& operator=(const Gemm&) = delete;

    // y[T, out] = x[T, in] · w[out, in]ᵀ, all row-major; y in bf16 (activations) or fp32 (router logits, lm head).
    void matmul(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, bf16* y, cudaStream_t stream);
    void matmul(const bf16* x, int64_t T, const bf16* w, int64_t out, int64_t in, float* y, cudaStream_t stream);

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace moeinfer::cuda
