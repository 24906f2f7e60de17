// safetensors: writer -> reader round trips (single file, directory, sharded index) and corrupted inputs.
#include "formats/safetensors.h"

#include <gtest/gtest.h>

#include <cstring>
#include <filesystem>
#include <stdexcept>
#include <vector>

#include "core/half.h"
#include "temp_dir.h"

namespace moeinfer {
namespace {

using test::expect_error;

Tensor view(std::string name, DType dt, std::vector<int64_t> shape, const void* data) {
    Tensor t;
    t.name = std::move(name);
    t.dtype = dt;
    t.shape = std::move(shape);
    t.data = data;
    return t;
}

// Writes a file from a raw JSON header and data bytes, for hand-made corrupt inputs.
void write_raw(const std::string& path, const std::string& header, size_t data_bytes, uint64_t len_override = 0) {
    std::vector<uint8_t> b(8 + header.size() + data_bytes, 0);
    const uint64_t len = len_override ? len_override : header.size();
    std::memcpy(b.data(), &len, 8);
    std::memcpy(b.data() + 8, header.data(), header.size());
    test::write_bytes(path, b);
}

struct Sample {
    std::vector<float> f32 = std::vector<float>(12);
    std::vector<uint16_t> f16 = std::vector<uint16_t>(6), bf16 = std::vector<uint16_t>(5);
    std::vector<int32_t> i32 = {1, -2, 3};
    std::vector<int64_t> i64 = {-(1ll << 40)};
    std::vector<double> f64 = {3.25};
    Sample() {
        for (size_t i = 0; i < f32.size(); ++i) f32[i] = static_cast<float>(i) - 2.5f;
        for (size_t i = 0; i < f16.size(); ++i) f16[i] = fp32_to_fp16(static_cast<float>(i));
        for (size_t i = 0; i < bf16.size(); ++i) bf16[i] = fp32_to_bf16(static_cast<float>(i) * 0.5f);
    }
    std::vector<Tensor> tensors() const {
        return {view("model.embed_tokens.weight", DType::F32, {3, 4}, f32.data()),
                view("lm_head.weight", DType::F16, {2, 3}, f16.data()),
                view("norm.weight", DType::BF16, {5}, bf16.data()),
                view("ids", DType::I32, {3}, i32.data()),
                view("big", DType::I64, {1}, i64.data()),
                view("scalar", DType::F64, {}, f64.data())};
    }
};

void expect_same(const SafetensorsSet& set, const std::vector<Tensor>& want) {
    for (const Tensor& w : want) {
        const Tensor* t = set.tensor(w.name);
        ASSERT_NE(t, nullptr) << w.name;
        EXPECT_EQ(t->dtype, w.dtype) << w.name;
        EXPECT_EQ(t->shape, w.shape) << w.name;
        EXPECT_EQ(std::memcmp(t->data, w.data, t->numel() * dtype_info(t->dtype).block_bytes), 0) << w.name;
    }
}

TEST(Safetensors, SingleFileRoundTrip) {
    test::TempDir dir;
    Sample s;
    const std::string path = dir.file("x.safetensors");
    write_safetensors(path, s.tensors(), {{"format", "pt"}});
    auto set = SafetensorsSet::open(path);
    EXPECT_EQ(set->tensors().size(), 6u);
    expect_same(*set, s.tensors());
    EXPECT_EQ(set->metadata().at("format"), "pt");
    EXPECT_EQ(set->file_of("ids"), path);
    EXPECT_EQ(set->tensor("absent"), nullptr);
    // The writer pads the header so the data section is 8-byte aligned.
    EXPECT_EQ(reinterpret_cast<uintptr_t>(set->tensor("model.embed_tokens.weight")->data) % 8, 0u);
}

TEST(Safetensors, DirectoryWithModelFile) {
    test::TempDir dir;
    Sample s;
    write_safetensors(dir.file("model.safetensors"), s.tensors());
    auto set = SafetensorsSet::open(dir.path().string());
    expect_same(*set, s.tensors());
}

TEST(Safetensors, ShardedIndex) {
    test::TempDir dir;
    Sample s;
    const auto all = s.tensors();
    write_safetensors(dir.file("model-00001-of-00002.safetensors"), {all[0], all[1], all[2]});
    write_safetensors(dir.file("model-00002-of-00002.safetensors"), {all[3], all[4], all[5]});
    const std::string index = R"({"metadata": {"total_size": 100}, "weight_map": {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00001-of-00002.safetensors",
        "norm.weight": "model-00001-of-00002.safetensors",
        "ids": "model-00002-of-00002.safetensors",
        "big": "model-00002-of-00002.safetensors",
        "scalar": "model-00002-of-00002.safetensors"}})";
    test::write_bytes(dir.file("model.safetensors.index.json"), std::vector<uint8_t>(index.begin(), index.end()));
    auto set = SafetensorsSet::open(dir.path().string());
    EXPECT_EQ(set->tensors().size(), 6u);
    expect_same(*set, all);
    EXPECT_EQ(set->file_of("big"), dir.file("model-00002-of-00002.safetensors"));
    // Opening the index file directly works too.
    EXPECT_EQ(SafetensorsSet::open(dir.file("model.safetensors.index.json"))->tensors().size(), 6u);

    // A missing shard is named.
    std::filesystem::remove(dir.file("model-00002-of-00002.safetensors"));
    expect_error([&] { SafetensorsSet::open(dir.path().string()); },
                 {"model.safetensors.index.json", "shard 'model-00002-of-00002.safetensors' is missing"});
    // A weight_map entry pointing at the wrong shard is named.
    write_safetensors(dir.file("model-00002-of-00002.safetensors"), {all[3], all[4]});
    expect_error([&] { SafetensorsSet::open(dir.path().string()); },
                 {"tensor 'scalar' is listed in weight_map under shard 'model-00002-of-00002.safetensors'"});
}

TEST(Safetensors, BadIndexAndDirectories) {
    test::TempDir dir;
    expect_error([&] { SafetensorsSet::open(dir.path().string()); }, {dir.path().string(), "no model.safetensors"});
    const std::string idx = dir.file("model.safetensors.index.json");
    auto put = [&](const std::string& s) { test::write_bytes(idx, std::vector<uint8_t>(s.begin(), s.end())); };
    put("{\"weight_map\": ");
    expect_error([&] { SafetensorsSet::open(dir.path().string()); }, {idx, "invalid index"});
    put("{\"metadata\": {}}");
    expect_error([&] { SafetensorsSet::open(dir.path().string()); }, {idx, "no \"weight_map\""});
    put(R"({"weight_map": {"a": "../../etc/passwd"}})");
    expect_error([&] { SafetensorsSet::open(dir.path().string()); }, {idx, "invalid shard path"});
}

class SafetensorsCorrupt : public ::testing::Test {
protected:
    void expect_open_error(const std::vector<std::string>& parts) {
        std::vector<std::string> all = {"safetensors '" + path + "'"};
        all.insert(all.end(), parts.begin(), parts.end());
        expect_error([&] { SafetensorsSet::open(path); }, all);
    }
    test::TempDir dir;
    std::string path = dir.file("bad.safetensors");
};

TEST_F(SafetensorsCorrupt, TooShortAndHeaderLength) {
    test::write_bytes(path, {1, 2, 3});
    expect_open_error({"too short"});
    write_raw(path, "{}", 0, 1ull << 40);
    expect_open_error({"header length 1099511627776 exceeds the file size"});
    write_raw(path, "{}", 0, ~0ull);  // 8 + len would overflow
    expect_open_error({"exceeds the file size"});
}

TEST_F(SafetensorsCorrupt, InvalidJson) {
    write_raw(path, R"({"a": {"dtype": "F32",)", 0);
    expect_open_error({"invalid JSON header"});
    write_raw(path, "[1, 2]", 0);
    expect_open_error({"header is not a JSON object"});
    write_raw(path, R"({"w": {"dtype": "F32", "shape": [2]}})", 8);
    expect_open_error({"tensor 'w'", "data_offsets"});
    write_raw(path, R"({"w": {"dtype": 5, "shape": [2], "data_offsets": [0, 8]}})", 8);
    expect_open_error({"tensor 'w'", "dtype"});
    write_raw(path, R"({"w": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", 8);
    expect_open_error({"tensor 'w' shape[0]"});
    write_raw(path, R"({"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", 8);
    expect_open_error({"tensor 'w': negative dimension -2"});
    write_raw(path, R"({"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", 8);
    expect_open_error({"tensor 'w': element count overflows"});
}

TEST_F(SafetensorsCorrupt, Offsets) {
    write_raw(path, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 16]}})", 8);
    expect_open_error({"tensor 'w': data_offsets [0, 16) run past the end of the data section (8 bytes)"});
    write_raw(path, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}})", 8);
    expect_open_error({"tensor 'w': data_offsets [8, 0) are invalid"});
    write_raw(path, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})", 8);
    expect_open_error({"are invalid"});
    write_raw(path, R"({"w": {"dtype": "F32", "shape": [2], "data_offsets": [0, 1e30]}})", 8);
    expect_open_error({"tensor 'w' data_offsets[1]"});
}

TEST_F(SafetensorsCorrupt, WrongByteSizeAndDtype) {
    write_raw(path, R"({"w": {"dtype": "F16", "shape": [3], "data_offsets": [0, 8]}})", 8);
    expect_open_error({"tensor 'w': 8 bytes of data, but F16 [3] needs 6"});
    write_raw(path, R"({"w8": {"dtype": "F8_E4M3", "shape": [8], "data_offsets": [0, 8]}})", 8);
    expect_open_error({"tensor 'w8': unsupported dtype 'F8_E4M3'"});
}

TEST_F(SafetensorsCorrupt, EveryTruncationFails) {
    Sample s;
    write_safetensors(path, s.tensors());
    const std::vector<uint8_t> full = test::read_bytes(path);
    for (size_t n = 0; n < full.size(); ++n) {
        test::write_bytes(path, std::vector<uint8_t>(full.begin(), full.begin() + n));
        expect_error([&] { SafetensorsSet::open(path); }, {path});
    }
}

TEST(SafetensorsWriter, RejectsBlockTypes) {
    uint8_t buf[34] = {};
    EXPECT_THROW(write_safetensors("/nonexistent/x", {view("q", DType::Q8_0, {32}, buf)}), std::invalid_argument);
}

}  // namespace
}  // namespace moeinfer
