// A norm's per-element weights as a row kernel reads them: the first kHeld of each thread loaded into registers at
// the kernel's start, the rest read from memory when used. Loaded with the row rather than after its sum of squares,
// the held ones cost no memory round trip of their own on the chain load row → reduce → scale (RMSNorm, router).
#pragma once
#include <cuda_runtime.h>

#include <cstdint>

namespace moeinfer::cuda {

// Thread `tid` of a group of `step` threads owns elements tid, tid + step, ... of w[n]. kHeld 0: none held.
template <int kHeld>
struct NormWeights {
    const float* w;
    int64_t n;
    unsigned tid, step;  // unsigned as threadIdx and blockDim are, so indices widen as threadIdx.x + u * blockDim.x
    float held[kHeld > 0 ? kHeld : 1];

    __device__ __forceinline__ NormWeights(const float* w_, int64_t n_, unsigned tid_, unsigned step_)
        : w(w_), n(n_), tid(tid_), step(step_) {
#pragma unroll
        for (int u = 0; u < kHeld; ++u) {
            const int64_t i = tid + int64_t(u) * step;
            held[u] = i < n ? w[i] : 0.0f;
        }
    }

    // f(i, w[i]) for each of the thread's elements in ascending order; kTailUnroll: the unroll of the part from memory.
    template <int kTailUnroll = 4, typename F>
    __device__ __forceinline__ void for_each(F&& f) const {
#pragma unroll
        for (int u = 0; u < kHeld; ++u) {
            const int64_t i = tid + int64_t(u) * step;
            if (i < n) f(i, held[u]);
        }
#pragma unroll(kTailUnroll)
        for (int64_t i = tid + int64_t(kHeld) * step; i < n; i += step) f(i, w[i]);
    }
};

}  // namespace moeinfer::cuda
