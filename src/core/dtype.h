// Element types of tensors, including GGUF block-quantized formats (shapes always count elements).
#pragma once
#include <cstddef>
#include <cstdint>
#include <string>

namespace moeinfer {

// Values of the plain types equal GGML's type ids where GGML has them, so GGUF files map directly.
enum class DType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    I8 = 24,
    I16 = 25,
    I32 = 26,
    I64 = 27,
    F64 = 28,
    BF16 = 30,
    Unknown = 0xffffffffu,
};

struct DTypeInfo {
    const char* name;     // "F32", "Q8_0", ... (GGML spelling)
    int block_elems;      // elements per block (1 for plain types)
    int block_bytes;      // bytes per block
    bool supported;       // this build can compute with it
};

const DTypeInfo& dtype_info(DType t);  // Unknown info (name "unknown") for values it does not know
inline const char* dtype_name(DType t) { return dtype_info(t).name; }
// Bytes for a row of n elements; throws std::invalid_argument when n is not a multiple of the block size.
size_t dtype_row_bytes(DType t, int64_t n);
DType dtype_from_ggml(uint32_t ggml_type);  // Unknown when not a known id

}  // namespace moeinfer
