// GGUF writer -> reader round trips: every metadata type, tensor shapes/dtypes/data, alignment, getters.
#include "formats/gguf.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "core/half.h"
#include "formats/dequant.h"
#include "gguf_sample.h"
#include "temp_dir.h"

namespace moeinfer {
namespace {

using test::expect_error;

TEST(Gguf, EveryMetadataType) {
    test::TempDir dir;
    const std::string path = dir.file("meta.gguf");
    GgufWriter w;
    w.add_u8("u8", 200);
    w.add_i8("i8", -5);
    w.add_u16("u16", 65000);
    w.add_i16("i16", -30000);
    w.add_u32("u32", 4000000000u);
    w.add_i32("i32", -7);
    w.add_u64("u64", 0xfedcba9876543210ull);
    w.add_i64("i64", -(1ll << 40));
    w.add_f32("f32", 0.1f);
    w.add_f64("f64", 1e-300);
    w.add_bool("t", true);
    w.add_bool("f", false);
    w.add_string("s", std::string("h\xc3\xa9llo\0x", 8));
    w.add_string("empty", "");
    w.add_array("strs", std::vector<std::string>{"a", "", "<|im_end|>"});
    w.add_array("i32s", std::vector<int32_t>{1, -2, 3});
    w.add_array("i64s", std::vector<int64_t>{-(1ll << 50)});
    w.add_array("f32s", std::vector<float>{0.5f, -1.25f});
    w.add_array("none", std::vector<float>{});
    w.add("nested",
          GgufValue::of_array(GgufType::Array, {GgufValue::of_array(GgufType::U8, {GgufValue::of_u8(1)}),
                                                GgufValue::of_array(GgufType::String, {GgufValue::of_string("x")})}));
    w.add("bools", GgufValue::of_array(GgufType::Bool, {GgufValue::of_bool(true), GgufValue::of_bool(false)}));
    w.add("u16s", GgufValue::of_array(GgufType::U16, {GgufValue::of_u16(7)}));
    w.add("f64s", GgufValue::of_array(GgufType::F64, {GgufValue::of_f64(2.5)}));
    w.write(path);

    auto f = GgufFile::open(path);
    EXPECT_EQ(f->version(), 3u);
    EXPECT_EQ(f->alignment(), 32u);
    ASSERT_EQ(f->keys().size(), 23u);
    EXPECT_EQ(f->keys()[0], "u8");
    EXPECT_EQ(f->keys()[22], "f64s");
    EXPECT_EQ(f->find("u8")->type, GgufType::U8);
    EXPECT_EQ(f->find("u8")->as_u64(), 200u);
    EXPECT_EQ(f->find("i8")->as_i64(), -5);
    EXPECT_EQ(f->find("u16")->as_u64(), 65000u);
    EXPECT_EQ(f->find("i16")->as_i64(), -30000);
    EXPECT_EQ(f->get_u32("u32", 0), 4000000000u);
    EXPECT_EQ(f->find("i32")->as_i64(), -7);
    EXPECT_EQ(f->get_u64("u64", 0), 0xfedcba9876543210ull);
    EXPECT_EQ(f->find("i64")->as_i64(), -(1ll << 40));
    EXPECT_EQ(f->get_f32("f32", 0), 0.1f);
    EXPECT_EQ(f->find("f64")->as_f64(), 1e-300);
    EXPECT_TRUE(f->get_bool("t", false));
    EXPECT_FALSE(f->get_bool("f", true));
    EXPECT_EQ(f->get_string("s", ""), std::string("h\xc3\xa9llo\0x", 8));
    EXPECT_EQ(f->require_string("empty"), "");
    EXPECT_EQ(f->find("strs")->string_array(), (std::vector<std::string>{"a", "", "<|im_end|>"}));
    EXPECT_EQ(f->find("strs")->elem_type, GgufType::String);
    EXPECT_EQ(f->find("i32s")->int_array(), (std::vector<int64_t>{1, -2, 3}));
    EXPECT_EQ(f->find("i32s")->elem_type, GgufType::I32);
    EXPECT_EQ(f->find("i64s")->int_array(), (std::vector<int64_t>{-(1ll << 50)}));
    EXPECT_EQ(f->find("f32s")->float_array(), (std::vector<float>{0.5f, -1.25f}));
    EXPECT_TRUE(f->find("none")->array().empty());
    const auto& nested = f->find("nested")->array();
    ASSERT_EQ(nested.size(), 2u);
    EXPECT_EQ(nested[0].array()[0].as_u64(), 1u);
    EXPECT_EQ(nested[1].string_array()[0], "x");
    EXPECT_TRUE(f->find("bools")->array()[0].as_bool());
    EXPECT_EQ(f->find("u16s")->int_array()[0], 7);
    EXPECT_EQ(f->find("f64s")->float_array()[0], 2.5f);
    EXPECT_EQ(f->find("absent"), nullptr);
    EXPECT_TRUE(f->tensors().empty());
}

TEST(Gguf, GettersDefaultsAndErrors) {
    test::TempDir dir;
    const std::string path = dir.file("g.gguf");
    GgufWriter w;
    w.add_string("general.architecture", "llama");
    w.add_u64("big", 1ull << 40);
    w.add_i32("neg", -1);
    w.add_u32("llama.context_length", 4096);
    w.write(path);
    auto f = GgufFile::open(path);
    EXPECT_EQ(f->get_u32("missing", 7), 7u);
    EXPECT_EQ(f->get_string("missing", "d"), "d");
    EXPECT_EQ(f->get_f32("llama.context_length", 0), 4096.0f);  // integers widen to float
    EXPECT_EQ(f->require_u32("llama.context_length"), 4096u);
    expect_error([&] { f->require_u32("llama.block_count"); },
                 {"GGUF '" + path + "': missing metadata key 'llama.block_count'"});
    expect_error([&] { f->get_u32("general.architecture", 0); }, {path, "general.architecture", "string", "integer"});
    expect_error([&] { f->get_u32("big", 0); }, {path, "'big'", "does not fit in uint32"});
    expect_error([&] { f->require_u64("neg"); }, {path, "'neg'", "negative"});
    expect_error([&] { f->get_bool("neg", false); }, {"'neg'", "int32", "bool"});
    EXPECT_THROW(w.add_u32("neg", 1), std::invalid_argument);  // duplicate key
}

TEST(Gguf, TensorsRoundTrip) {
    test::TempDir dir;
    const std::string path = dir.file("t.gguf");
    test::GgufSample s = test::write_gguf_sample(path);
    auto f = GgufFile::open(path);
    ASSERT_EQ(f->tensors().size(), 3u);

    const Tensor* emb = f->tensor("token_embd.weight");
    ASSERT_NE(emb, nullptr);
    EXPECT_EQ(emb->dtype, DType::F32);
    EXPECT_EQ(emb->shape, (std::vector<int64_t>{3, 64}));
    EXPECT_EQ(std::memcmp(emb->data, s.f32.data(), s.f32.size() * 4), 0);

    const Tensor* q = f->tensor("blk.0.attn_q.weight");
    ASSERT_NE(q, nullptr);
    EXPECT_EQ(q->dtype, DType::Q8_0);
    EXPECT_EQ(q->shape, (std::vector<int64_t>{4, 64}));
    EXPECT_EQ(q->nbytes(), s.q8.size());
    EXPECT_EQ(std::memcmp(q->data, s.q8.data(), s.q8.size()), 0);
    std::vector<float> row(64);
    dequantize_row(q->dtype, q->row(1), row.data(), 64);
    for (int i = 0; i < 64; ++i) EXPECT_NEAR(row[i], s.q8_src[64 + i], 0.05f);

    // Stacked experts: GGUF ne = [in=32, ff=3, E=2] reads as [E, ff, in].
    const Tensor* ex = f->tensor("blk.0.ffn_up_exps.weight");
    ASSERT_NE(ex, nullptr);
    EXPECT_EQ(ex->shape, (std::vector<int64_t>{2, 3, 32}));
    EXPECT_EQ(ex->dtype, DType::F16);
    EXPECT_EQ(std::memcmp(ex->data, s.f16.data(), s.f16.size() * 2), 0);

    for (const Tensor& t : f->tensors()) {
        const size_t off = static_cast<const uint8_t*>(t.data) - f->file()->data();
        EXPECT_EQ(off % 32, 0u) << t.name;
        EXPECT_GE(off, f->data_offset());
    }
    EXPECT_EQ(f->tensor("nope"), nullptr);
}

TEST(Gguf, CustomAlignment) {
    test::TempDir dir;
    const std::string path = dir.file("a.gguf");
    std::vector<float> a(5, 1.0f), b(3, 2.0f);
    GgufWriter w(64);
    w.add_tensor("a", DType::F32, {5}, a.data(), 20);
    w.add_tensor("b", DType::F32, {3}, b.data(), 12);
    w.write(path);
    auto f = GgufFile::open(path);
    EXPECT_EQ(f->alignment(), 64u);
    EXPECT_EQ(f->get_u32("general.alignment", 0), 64u);
    for (const Tensor& t : f->tensors())
        EXPECT_EQ((static_cast<const uint8_t*>(t.data) - f->file()->data()) % 64, 0) << t.name;
    EXPECT_EQ(static_cast<const float*>(f->tensor("b")->data)[2], 2.0f);
}

TEST(Gguf, ReadsVersion2) {
    test::TempDir dir;
    const std::string path = dir.file("v2.gguf");
    test::write_gguf_sample(path);
    auto bytes = test::read_bytes(path);
    test::patch<uint32_t>(bytes, 4, 2);
    test::write_bytes(path, bytes);
    auto f = GgufFile::open(path);
    EXPECT_EQ(f->version(), 2u);
    EXPECT_EQ(f->tensors().size(), 3u);
}

TEST(GgufWriter, RejectsBadTensors) {
    std::vector<uint8_t> buf(1024);
    GgufWriter w;
    EXPECT_THROW(w.add_tensor("x", DType::F32, {4}, buf.data(), 15), std::invalid_argument);
    EXPECT_THROW(w.add_tensor("x", DType::Q8_0, {2, 33}, buf.data(), 68), std::invalid_argument);
    EXPECT_THROW(w.add_tensor("x", DType::F32, {1, 1, 1, 1, 1}, buf.data(), 4), std::invalid_argument);
    EXPECT_THROW(w.add_tensor("x", DType::F32, {0}, buf.data(), 0), std::invalid_argument);
    w.add_tensor("x", DType::F32, {4}, buf.data(), 16);
    EXPECT_THROW(w.add_tensor("x", DType::F32, {4}, buf.data(), 16), std::invalid_argument);
    EXPECT_THROW(GgufWriter(48), std::invalid_argument);
    EXPECT_THROW(GgufValue::of_array(GgufType::U8, {GgufValue::of_i8(1)}), std::invalid_argument);
}

}  // namespace
}  // namespace moeinfer
