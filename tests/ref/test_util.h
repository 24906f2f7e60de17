// Shared helpers for kernel tests: seeded random data, owned weight tensors in any storage dtype, and an
// element-wise closeness check whose failure message names the first bad index.
#pragma once
#include <gtest/gtest.h>

#include <cmath>
#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "core/tensor.h"
#include "formats/dequant.h"

namespace moeinfer::testing {

inline std::vector<float> random_vector(int64_t n, uint32_t seed, float stddev = 1.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, stddev);
    std::vector<float> v(n);
    for (float& x : v) x = dist(rng);
    return v;
}

// A [rows, cols] weight in `dtype`, quantized from random floats; owns its bytes (the Tensor views them, so an
// OwnedTensor must not be copied after `tensor` is taken — hold it in a stable container).
struct OwnedTensor {
    std::vector<uint8_t> bytes;
    Tensor tensor;

    OwnedTensor(DType dtype, int64_t rows, int64_t cols, uint32_t seed, float stddev = 1.0f, std::string name = "w") {
        const std::vector<float> src = random_vector(rows * cols, seed, stddev);
        const size_t rb = dtype_row_bytes(dtype, cols);
        bytes.resize(rb * rows);
        for (int64_t r = 0; r < rows; ++r) quantize_row(dtype, src.data() + r * cols, bytes.data() + r * rb, cols);
        tensor.name = std::move(name);
        tensor.dtype = dtype;
        tensor.shape = {rows, cols};
        tensor.data = bytes.data();
    }
    OwnedTensor(const OwnedTensor&) = delete;
    OwnedTensor& operator=(const OwnedTensor&) = delete;
};

// |a[i] - b[i]| <= atol + rtol · |b[i]| for every i (b is the reference). NaN in either side fails.
inline ::testing::AssertionResult all_close(const float* a, const float* b, int64_t n, double rtol, double atol) {
    for (int64_t i = 0; i < n; ++i) {
        const double d = std::fabs(double(a[i]) - double(b[i]));
        if (!(d <= atol + rtol * std::fabs(double(b[i]))))
            return ::testing::AssertionFailure() << "index " << i << ": got " << a[i] << ", want " << b[i]
                                                 << " (|diff| " << d << ")";
    }
    return ::testing::AssertionSuccess();
}

inline ::testing::AssertionResult all_close(const std::vector<float>& a, const std::vector<float>& b, double rtol,
                                            double atol) {
    if (a.size() != b.size())
        return ::testing::AssertionFailure() << "size " << a.size() << " vs " << b.size();
    return all_close(a.data(), b.data(), static_cast<int64_t>(a.size()), rtol, atol);
}

}  // namespace moeinfer::testing
