// Tensor: a non-owning view (pointer, dtype, row-major shape) over memory owned elsewhere
// (an mmap'd model file, an arena, a std::vector). Quantized dtypes are block formats; shapes count elements.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "core/dtype.h"

namespace moeinfer {

struct Tensor {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;  // outermost first, as PyTorch: a Linear weight is [out, in]
    const void* data = nullptr;

    int64_t numel() const {
        int64_t n = 1;
        for (int64_t d : shape) n *= d;
        return n;
    }
    int64_t dim(int i) const { return shape.at(i < 0 ? shape.size() + i : i); }
    int64_t rows() const { return shape.empty() ? 1 : numel() / shape.back(); }
    int64_t cols() const { return shape.empty() ? 1 : shape.back(); }
    size_t row_bytes() const { return dtype_row_bytes(dtype, cols()); }
    size_t nbytes() const { return rows() * row_bytes(); }
    const uint8_t* row(int64_t r) const { return static_cast<const uint8_t*>(data) + r * row_bytes(); }
    std::string shape_str() const;  // "[4096, 1024]"
};

}  // namespace moeinfer
