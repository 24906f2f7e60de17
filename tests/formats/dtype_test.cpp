// dtype table, row sizes, MappedFile basics and Tensor::shape_str.
#include "core/dtype.h"

#include <gtest/gtest.h>

#include <stdexcept>

#include "core/mapped_file.h"
#include "core/tensor.h"
#include "temp_dir.h"

namespace moeinfer {
namespace {

TEST(DType, BlockLayouts) {
    struct Row {
        DType t;
        int elems, bytes;
        bool supported;
    };
    const Row rows[] = {
        {DType::F32, 1, 4, true},       {DType::F16, 1, 2, true},       {DType::BF16, 1, 2, true},
        {DType::Q4_0, 32, 18, true},    {DType::Q4_1, 32, 20, false},   {DType::Q5_0, 32, 22, true},
        {DType::Q5_1, 32, 24, true},   {DType::Q8_0, 32, 34, true},    {DType::Q8_1, 32, 36, false},
        {DType::Q2_K, 256, 84, false},  {DType::Q3_K, 256, 110, false}, {DType::Q4_K, 256, 144, true},
        {DType::Q5_K, 256, 176, true}, {DType::Q6_K, 256, 210, true}, {DType::Q8_K, 256, 292, false},
        {DType::I8, 1, 1, false},       {DType::I16, 1, 2, false},      {DType::I32, 1, 4, false},
        {DType::I64, 1, 8, false},      {DType::F64, 1, 8, false},
    };
    for (const Row& r : rows) {
        const DTypeInfo& info = dtype_info(r.t);
        EXPECT_EQ(info.block_elems, r.elems) << info.name;
        EXPECT_EQ(info.block_bytes, r.bytes) << info.name;
        EXPECT_EQ(info.supported, r.supported) << info.name;
        EXPECT_EQ(dtype_from_ggml(static_cast<uint32_t>(r.t)), r.t) << info.name;
    }
    EXPECT_STREQ(dtype_name(DType::Q8_0), "Q8_0");
    EXPECT_STREQ(dtype_name(DType::Unknown), "unknown");
    EXPECT_EQ(dtype_from_ggml(4), DType::Unknown);  // removed Q4_2
    EXPECT_EQ(dtype_from_ggml(1000), DType::Unknown);
}

TEST(DType, RowBytes) {
    EXPECT_EQ(dtype_row_bytes(DType::F32, 7), 28u);
    EXPECT_EQ(dtype_row_bytes(DType::Q8_0, 64), 68u);
    EXPECT_EQ(dtype_row_bytes(DType::Q4_K, 512), 288u);
    EXPECT_EQ(dtype_row_bytes(DType::Q4_0, 0), 0u);
    EXPECT_THROW(dtype_row_bytes(DType::Q8_0, 33), std::invalid_argument);
    EXPECT_THROW(dtype_row_bytes(DType::F32, -1), std::invalid_argument);
    EXPECT_THROW(dtype_row_bytes(DType::Unknown, 4), std::invalid_argument);
}

TEST(Tensor, ShapeStr) {
    Tensor t;
    t.shape = {4096, 1024};
    EXPECT_EQ(t.shape_str(), "[4096, 1024]");
    t.shape = {};
    EXPECT_EQ(t.shape_str(), "[]");
}

TEST(MappedFile, MissingFileNamesPath) {
    test::TempDir dir;
    const std::string p = dir.file("nope.gguf");
    test::expect_error([&] { MappedFile::open(p); },
                       {"cannot open model file '" + p + "'", "No such file or directory"});
}

TEST(MappedFile, ReadsContentsAndEmptyFiles) {
    test::TempDir dir;
    test::write_bytes(dir.file("a"), {1, 2, 3});
    auto f = MappedFile::open(dir.file("a"));
    ASSERT_EQ(f->size(), 3u);
    EXPECT_EQ(f->data()[2], 3);
    EXPECT_EQ(f->path(), dir.file("a"));
    test::write_bytes(dir.file("empty"), {});
    auto e = MappedFile::open(dir.file("empty"));
    EXPECT_EQ(e->size(), 0u);
    test::expect_error([&] { MappedFile::open(dir.path().string()); }, {"is a directory"});
}

}  // namespace
}  // namespace moeinfer
