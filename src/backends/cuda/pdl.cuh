// Programmatic dependent launch (Hopper): a kernel launched with launch_pdl may start while the kernel before it
// in the stream is still running, from the moment that kernel's blocks have all called pdl_trigger() (or exited).
// Its blocks do what does not depend on the previous kernel first (issue their weight loads), then pdl_wait(),
// which returns once the previous kernel has completed and its writes are visible. At batch 1 a decode step is a
// chain of short kernels, and this hides the launch gap and the first memory round trip of the big products behind
// the small kernel before them.
// Rules: a kernel launched with launch_pdl reads nothing a previous kernel wrote, and writes nothing, before
// pdl_wait(); before the wait it may read only what no kernel of the step writes (weights). Both calls are no-ops
// for kernels launched the ordinary way.
#pragma once
#include <utility>

#include "backends/cuda/common.h"

namespace moeinfer::cuda {

__device__ __forceinline__ void pdl_wait() { asm volatile("griddepcontrol.wait;" ::: "memory"); }
__device__ __forceinline__ void pdl_trigger() { asm volatile("griddepcontrol.launch_dependents;" :::); }

template <typename... Params, typename... Args>
void launch_pdl(void (*kernel)(Params...), dim3 grid, dim3 block, size_t smem, cudaStream_t stream, Args&&... args) {
    cudaLaunchAttribute attr[1];
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg{};
    cfg.gridDim = grid;
    cfg.blockDim = block;
    cfg.dynamicSmemBytes = smem;
    cfg.stream = stream;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    MOEINFER_CUDA_CHECK(cudaLaunchKernelEx(&cfg, kernel, std::forward<Args>(args)...));
}

}  // namespace moeinfer::cuda
