// Helpers for the CUDA parity tests: skip without a GPU, host↔device copies, bf16 rounding on the host, and an
// element-wise closeness check (|got − want| ≤ atol + rtol·|want|) whose failure names the first bad index.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "backends/cuda/common.h"
#include "core/half.h"
#include "ref/test_util.h"

// Every CUDA test starts with this: the binary runs in CI on machines without a GPU and must pass there.
#define MOEINFER_REQUIRE_GPU()                                                      \
    do {                                                                            \
        if (!::moeinfer::cuda::gpu_available()) GTEST_SKIP() << "no CUDA device"; \
    } while (0)

namespace moeinfer::cuda::testing {

using moeinfer::testing::random_vector;  // seeded normal floats, shared with the CPU kernel tests

// Values rounded to bf16 and back, so the CPU reference sees exactly the GPU's inputs.
inline std::vector<float> round_bf16(std::vector<float> v) {
    for (float& x : v) x = bf16_to_fp32(fp32_to_bf16(x));
    return v;
}

template <typename T>
DeviceBuffer to_device(const std::vector<T>& v) {
    DeviceBuffer b(v.size() * sizeof(T));
    if (!v.empty()) MOEINFER_CUDA_CHECK(cudaMemcpy(b.get(), v.data(), v.size() * sizeof(T), cudaMemcpyHostToDevice));
    return b;
}

inline DeviceBuffer to_device_bf16(const std::vector<float>& v) {
    std::vector<uint16_t> h(v.size());
    for (size_t i = 0; i < v.size(); ++i) h[i] = fp32_to_bf16(v[i]);
    return to_device(h);
}

template <typename T>
std::vector<T> to_host(const DeviceBuffer& b, size_t n) {
    MOEINFER_CUDA_CHECK(cudaDeviceSynchronize());
    std::vector<T> v(n);
    if (n) MOEINFER_CUDA_CHECK(cudaMemcpy(v.data(), b.get(), n * sizeof(T), cudaMemcpyDeviceToHost));
    return v;
}

inline std::vector<float> to_host_bf16(const DeviceBuffer& b, size_t n) {
    const std::vector<uint16_t> h = to_host<uint16_t>(b, n);
    std::vector<float> v(n);
    for (size_t i = 0; i < n; ++i) v[i] = bf16_to_fp32(h[i]);
    return v;
}

// A buffer of n elements of `bytes_each` filled with 0xff bytes (NaN in fp32 and bf16, -1 in int32), so an
// element a kernel fails to write fails the comparison.
inline DeviceBuffer poisoned(size_t n, size_t bytes_each) {
    DeviceBuffer b(n * bytes_each);
    if (n) MOEINFER_CUDA_CHECK(cudaMemset(b.get(), 0xff, n * bytes_each));
    return b;
}

// |got − want| ≤ atol + rtol·|want| everywhere (NaN fails), through the CPU tests' all_close.
inline void expect_close(const std::vector<float>& got, const std::vector<float>& want, double rtol, double atol,
                         const std::string& what) {
    EXPECT_TRUE(moeinfer::testing::all_close(got, want, rtol, atol)) << what << " (rtol " << rtol << ", atol " << atol << ")";
}

// bf16 results: one rounding of the output (2^-8 relative) plus fp32 reordering; atol scales with the data.
inline double rms(const std::vector<float>& v) {
    double s = 0;
    for (float x : v) s += double(x) * x;
    return v.empty() ? 0.0 : std::sqrt(s / v.size());
}
constexpr double kBf16Rtol = 2e-2;
constexpr double kFp32Rtol = 1e-5;

}  // namespace moeinfer::cuda::testing
