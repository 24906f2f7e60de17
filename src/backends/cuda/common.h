// Shared pieces of the CUDA backend: error checks that name the failing call, a cudaMalloc-owned buffer
// (never managed memory), and device-availability probing for tests and tools.
#pragma once
#include <cuda_bf16.h>
#include <cuda_runtime.h>

#include <cstddef>
#include <map>
#include <mutex>
#include <stdexcept>
#include <string>
#include <utility>

namespace moeinfer::cuda {

using bf16 = __nv_bfloat16;

// Throws with file:line and the CUDA error string; every runtime call and every launch goes through this.
inline void check_cuda(cudaError_t err, const char* what, const char* file, int line) {
    if (err != cudaSuccess) {
        throw std::runtime_error(std::string(file) + ":" + std::to_string(line) + ": " + what + ": " +
                                 cudaGetErrorString(err));
    }
}
#define MOEINFER_CUDA_CHECK(expr) ::moeinfer::cuda::check_cuda((expr), #expr, __FILE__, __LINE__)
// After a <<<...>>> launch: catches bad launch configurations at once (execution errors surface at the next sync).
#define MOEINFER_CUDA_LAUNCH_CHECK() ::moeinfer::cuda::check_cuda(cudaGetLastError(), "kernel launch", __FILE__, __LINE__)

// Opts `kernel` in to `bytes` of dynamic shared memory where that is above the default 48 KB, once per (device,
// kernel) and size: the attribute call is host work that every launch of a prefill layer used to repeat.
template <typename Kernel>
void allow_dynamic_smem(Kernel* kernel, size_t bytes) {
    if (bytes <= 48 * 1024) return;
    static std::mutex mu;
    static std::map<std::pair<int, const void*>, size_t> granted;
    int device = 0;
    MOEINFER_CUDA_CHECK(cudaGetDevice(&device));
    std::lock_guard<std::mutex> lock(mu);
    size_t& g = granted[{device, reinterpret_cast<const void*>(kernel)}];
    if (g >= bytes) return;
    MOEINFER_CUDA_CHECK(cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, int(bytes)));
    g = bytes;
}

// True when a CUDA device can be used: the runtime loads, a driver answers and at least one device exists.
inline bool gpu_available() {
    int n = 0;
    if (cudaGetDeviceCount(&n) != cudaSuccess) {
        (void)cudaGetLastError();  // clear the sticky "no device / no driver" error
        return false;
    }
    return n > 0;
}

// Owning device allocation of `bytes` (cudaMalloc); move-only.
class DeviceBuffer {
public:
    DeviceBuffer() = default;
    explicit DeviceBuffer(size_t bytes) : bytes_(bytes) {
        if (bytes) MOEINFER_CUDA_CHECK(cudaMalloc(&ptr_, bytes));
    }
    ~DeviceBuffer() {
        if (ptr_) cudaFree(ptr_);
    }
    DeviceBuffer(DeviceBuffer&& o) noexcept : ptr_(std::exchange(o.ptr_, nullptr)), bytes_(std::exchange(o.bytes_, 0)) {}
    DeviceBuffer& operator=(DeviceBuffer&& o) noexcept {
        if (this != &o) {
            if (ptr_) cudaFree(ptr_);
            ptr_ = std::exchange(o.ptr_, nullptr);
            bytes_ = std::exchange(o.bytes_, 0);
        }
        return *this;
    }
    DeviceBuffer(const DeviceBuffer&) = delete;
    DeviceBuffer& operator=(const DeviceBuffer&) = delete;

    template <typename T>
    T* as() const { return static_cast<T*>(ptr_); }
    void* get() const { return ptr_; }
    size_t bytes() const { return bytes_; }

private:
    void* ptr_ = nullptr;
    size_t bytes_ = 0;
};

}  // namespace moeinfer::cuda
