// Table of element types (GGML block layouts) and row-size arithmetic for dtype.h.
#include "core/dtype.h"

#include <stdexcept>

namespace moeinfer {

namespace {

struct Entry {
    DType type;
    DTypeInfo info;
};

// Block sizes and bytes follow GGML's block structs (fp16 scales are 2 bytes, Q8_K's scale is fp32).
constexpr Entry kTable[] = {
    {DType::F32, {"F32", 1, 4, true}},        {DType::F16, {"F16", 1, 2, true}},
    {DType::Q4_0, {"Q4_0", 32, 18, true}},   // fp16 d + 16 bytes of nibbles
    {DType::Q4_1, {"Q4_1", 32, 20, false}},  // fp16 d, m + 16 bytes
    {DType::Q5_0, {"Q5_0", 32, 22, true}},  // fp16 d + 4 bytes high bits + 16 bytes
    {DType::Q5_1, {"Q5_1", 32, 24, true}},  // fp16 d, m + 4 + 16
    {DType::Q8_0, {"Q8_0", 32, 34, true}},   // fp16 d + 32 int8
    {DType::Q8_1, {"Q8_1", 32, 36, false}},  // fp16 d, s + 32 int8
    {DType::Q2_K, {"Q2_K", 256, 84, false}},  {DType::Q3_K, {"Q3_K", 256, 110, false}},
    {DType::Q4_K, {"Q4_K", 256, 144, true}}, {DType::Q5_K, {"Q5_K", 256, 176, true}},
    {DType::Q6_K, {"Q6_K", 256, 210, true}}, {DType::Q8_K, {"Q8_K", 256, 292, false}},
    {DType::I8, {"I8", 1, 1, false}},         {DType::I16, {"I16", 1, 2, false}},
    {DType::I32, {"I32", 1, 4, false}},       {DType::I64, {"I64", 1, 8, false}},
    {DType::F64, {"F64", 1, 8, false}},       {DType::BF16, {"BF16", 1, 2, true}},
};

constexpr DTypeInfo kUnknown{"unknown", 0, 0, false};

}  // namespace

const DTypeInfo& dtype_info(DType t) {
    for (const Entry& e : kTable)
        if (e.type == t) return e.info;
    return kUnknown;
}

size_t dtype_row_bytes(DType t, int64_t n) {
    const DTypeInfo& info = dtype_info(t);
    if (info.block_elems == 0)
        throw std::invalid_argument("dtype_row_bytes: unknown dtype " + std::to_string(static_cast<uint32_t>(t)));
    if (n < 0) throw std::invalid_argument("dtype_row_bytes: negative element count " + std::to_string(n));
    if (n % info.block_elems != 0)
        throw std::invalid_argument(std::string("dtype_row_bytes: ") + std::to_string(n) +
                                    " elements is not a multiple of the " + info.name + " block size " +
                                    std::to_string(info.block_elems));
    return static_cast<size_t>(n / info.block_elems) * static_cast<size_t>(info.block_bytes);
}

DType dtype_from_ggml(uint32_t ggml_type) {
    for (const Entry& e : kTable)
        if (static_cast<uint32_t>(e.type) == ggml_type) return e.type;
    return DType::Unknown;
}

}  // namespace moeinfer
