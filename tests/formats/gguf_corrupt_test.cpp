// Hostile / corrupted GGUF inputs: each must fail with a std::runtime_error naming the file and the fault,
// never crash or read out of bounds (run under ASan).
#include <gtest/gtest.h>

#include <random>
#include <stdexcept>

#include "formats/gguf.h"
#include "gguf_sample.h"
#include "temp_dir.h"

namespace moeinfer {
namespace {

using test::expect_error;

class GgufCorrupt : public ::testing::Test {
protected:
    void SetUp() override {
        path = dir.file("m.gguf");
        test::write_gguf_sample(path);
        bytes = test::read_bytes(path);
    }
    // Offset just past the first occurrence of a key or tensor name string.
    size_t after(const std::string& s) { return test::find_bytes(bytes, s) + s.size(); }
    void expect_open_error(const std::vector<std::string>& parts) {
        test::write_bytes(path, bytes);
        std::vector<std::string> all = {"GGUF '" + path + "'"};
        all.insert(all.end(), parts.begin(), parts.end());
        expect_error([&] { GgufFile::open(path); }, all);
    }

    test::TempDir dir;
    std::string path;
    std::vector<uint8_t> bytes;
};

TEST_F(GgufCorrupt, BadMagic) {
    bytes[0] = 'X';
    expect_open_error({"bad magic"});
}

TEST_F(GgufCorrupt, UnsupportedVersion) {
    test::patch<uint32_t>(bytes, 4, 1);
    expect_open_error({"unsupported GGUF version 1"});
    test::patch<uint32_t>(bytes, 4, 4);
    expect_open_error({"unsupported GGUF version 4"});
}

TEST_F(GgufCorrupt, EveryTruncationFails) {
    const std::vector<uint8_t> full = bytes;
    for (size_t n = 0; n < full.size(); ++n) {
        bytes.assign(full.begin(), full.begin() + n);
        test::write_bytes(path, bytes);
        expect_error([&] { GgufFile::open(path); }, {"GGUF '" + path + "'"});
    }
    bytes.assign(full.begin(), full.begin() + 20);
    expect_open_error({"truncated file while reading metadata count"});
    bytes.assign(full.begin(), full.end() - 1);
    expect_open_error({"blk.0.ffn_up_exps.weight", "runs past the end of the file"});
}

TEST_F(GgufCorrupt, AbsurdCounts) {
    const std::vector<uint8_t> full = bytes;
    test::patch<uint64_t>(bytes, 8, 1ull << 60);
    expect_open_error({"tensor count 1152921504606846976 is impossible"});
    bytes = full;
    test::patch<uint64_t>(bytes, 16, ~0ull);
    expect_open_error({"metadata count", "impossible"});
}

TEST_F(GgufCorrupt, HugeStringLengths) {
    const std::vector<uint8_t> full = bytes;
    test::patch<uint64_t>(bytes, 24, 1ull << 62);  // first key's length
    expect_open_error({"metadata key #0 length 4611686018427387904 runs past the end of the file"});
    bytes = full;
    test::patch<uint64_t>(bytes, after("general.architecture") + 4, ~0ull);  // its string value's length
    expect_open_error({"metadata 'general.architecture' length", "runs past the end"});
    bytes = full;
    test::patch<uint64_t>(bytes, after("tokenizer.ggml.tokens") + 16, 1ull << 40);  // a string inside an array
    expect_open_error({"metadata 'tokenizer.ggml.tokens'[0] length 1099511627776 runs past the end"});
    bytes = full;
    test::patch<uint64_t>(bytes, test::find_bytes(bytes, "blk.0.attn_q.weight") - 8, 1ull << 50);  // tensor name
    expect_open_error({"tensor #1 name length", "runs past the end"});
}

TEST_F(GgufCorrupt, HugeArrayCount) {
    test::patch<uint64_t>(bytes, after("tokenizer.ggml.scores") + 8, 1ull << 61);
    expect_open_error({"metadata 'tokenizer.ggml.scores' element count 2305843009213693952 is impossible"});
}

TEST_F(GgufCorrupt, UnknownValueTypes) {
    const std::vector<uint8_t> full = bytes;
    test::patch<uint32_t>(bytes, after("llama.block_count"), 99);
    expect_open_error({"unknown metadata value type 99 for metadata 'llama.block_count'"});
    bytes = full;
    test::patch<uint32_t>(bytes, after("tokenizer.ggml.tokens") + 4, 13);
    expect_open_error({"unknown metadata value type 13 for metadata 'tokenizer.ggml.tokens' element type"});
}

TEST_F(GgufCorrupt, BadTensorInfos) {
    const std::vector<uint8_t> full = bytes;
    const size_t emb = after("token_embd.weight");  // n_dims u32, ne[2] u64, type u32, offset u64
    test::patch<uint32_t>(bytes, emb + 4 + 16, 99);
    expect_open_error({"tensor 'token_embd.weight': unknown ggml tensor type 99"});
    bytes = full;
    test::patch<uint32_t>(bytes, emb, 5);
    expect_open_error({"tensor 'token_embd.weight': n_dims 5 out of range"});
    bytes = full;
    test::patch<uint32_t>(bytes, emb, 0);
    expect_open_error({"n_dims 0 out of range"});
    bytes = full;
    test::patch<uint64_t>(bytes, emb + 4, 0);
    expect_open_error({"tensor 'token_embd.weight': dimension 0 is 0"});
    bytes = full;
    test::patch<uint64_t>(bytes, emb + 12, static_cast<uint64_t>(-3));
    expect_open_error({"dimension 1 is -3 (must be positive)"});
    bytes = full;
    test::patch<uint64_t>(bytes, emb + 4, 1ull << 40);
    test::patch<uint64_t>(bytes, emb + 12, 1ull << 40);
    expect_open_error({"tensor 'token_embd.weight': element count overflows"});
    bytes = full;
    test::patch<uint64_t>(bytes, emb + 4, 1ull << 30);  // large but valid count: data runs past the file
    expect_open_error({"tensor 'token_embd.weight' data", "runs past the end of the file"});
    bytes = full;
    const size_t q = after("blk.0.attn_q.weight");
    test::patch<uint64_t>(bytes, q + 4, 48);
    expect_open_error({"tensor 'blk.0.attn_q.weight': row length 48 is not a multiple of the Q8_0 block size 32"});
    bytes = full;
    test::patch<uint64_t>(bytes, q + 4 + 16 + 4, test::peek<uint64_t>(bytes, q + 24) + 4);
    expect_open_error({"tensor 'blk.0.attn_q.weight': data offset", "not a multiple of the alignment 32"});
    bytes = full;
    const size_t ex = after("blk.0.ffn_up_exps.weight");  // 3 dims
    test::patch<uint64_t>(bytes, ex + 4 + 24 + 4, 1ull << 20);
    expect_open_error({"tensor 'blk.0.ffn_up_exps.weight' data [1048576", "runs past the end of the file"});
    bytes = full;
    test::patch<uint64_t>(bytes, ex + 4 + 24 + 4, ~0ull << 5);  // aligned, and offset + size overflows uint64
    expect_open_error({"runs past the end of the file"});
}

TEST_F(GgufCorrupt, DuplicateNames) {
    GgufWriter w;
    float x[4] = {};
    w.add_u32("ka", 1);
    w.add_u32("kb", 2);
    w.add_tensor("ta", DType::F32, {4}, x, 16);
    w.add_tensor("tb", DType::F32, {4}, x, 16);
    w.write(path);
    bytes = test::read_bytes(path);
    const std::vector<uint8_t> full = bytes;
    bytes[test::find_bytes(bytes, "kb") + 1] = 'a';
    expect_open_error({"duplicate metadata key 'ka'"});
    bytes = full;
    bytes[test::find_bytes(bytes, "tb") + 1] = 'a';
    expect_open_error({"duplicate tensor name 'ta'"});
}

TEST_F(GgufCorrupt, BadAlignment) {
    GgufWriter w;
    w.add_u32("general.alignment", 48);
    w.write(path);
    bytes = test::read_bytes(path);
    expect_open_error({"general.alignment 48 is not a power of two"});
    GgufWriter w2;
    w2.add_u64("general.alignment", 64);
    w2.write(path);
    bytes = test::read_bytes(path);
    expect_open_error({"general.alignment must be uint32, found uint64"});
}

TEST_F(GgufCorrupt, DeeplyNestedArrays) {
    GgufValue v = GgufValue::of_u8(1);
    for (int i = 0; i < 20; ++i) {
        const GgufType t = v.type;
        v = GgufValue::of_array(t, {v});
    }
    GgufWriter w;
    w.add("deep", v);
    w.write(path);
    bytes = test::read_bytes(path);
    expect_open_error({"arrays nested deeper than"});
}

TEST_F(GgufCorrupt, EmptyAndMissingFiles) {
    bytes.clear();
    expect_open_error({"truncated file while reading magic"});
    const std::string missing = dir.file("missing.gguf");
    expect_error([&] { GgufFile::open(missing); }, {"cannot open model file '" + missing + "'"});
}

// Random byte corruption: any outcome but a crash or an out-of-bounds read is acceptable.
TEST_F(GgufCorrupt, RandomBitFlipsNeverCrash) {
    const std::vector<uint8_t> full = bytes;
    std::mt19937 rng(42);
    int failures = 0;
    for (int iter = 0; iter < 3000; ++iter) {
        bytes = full;
        const int flips = 1 + static_cast<int>(rng() % 4);
        for (int k = 0; k < flips; ++k) bytes[rng() % bytes.size()] ^= static_cast<uint8_t>(1u << (rng() % 8));
        test::write_bytes(path, bytes);
        try {
            auto f = GgufFile::open(path);
            for (const Tensor& t : f->tensors()) {
                const auto* p = static_cast<const uint8_t*>(t.data);
                ASSERT_LE(p + t.nbytes(), f->file()->data() + f->file()->size()) << t.name;
            }
        } catch (const std::runtime_error& e) {
            ++failures;
            ASSERT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
        }
    }
    EXPECT_GT(failures, 0);
}

}  // namespace
}  // namespace moeinfer
