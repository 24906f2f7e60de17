// Ids, decodes and streaming decodes of every fetched tokenizer.json x corpus text against HF `tokenizers`
// goldens (tools/tokenizer_goldens.py).
#include <gtest/gtest.h>

#include "core/json.h"
#include "tokenizer/unicode.h"
#include "tokenizer_test_util.h"
#include "tokenizer/tokenizer.h"

namespace moeinfer {
namespace {

std::string show(const std::vector<int32_t>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) s += (i ? "," : "") + std::to_string(v[i]);
    return s + "]";
}

std::vector<int32_t> ids_of(const json::Value& a) {
    std::vector<int32_t> v;
    for (const auto& x : a.as_array()) v.push_back(int32_t(x.as_int()));
    return v;
}

class GoldenTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GoldenTest, IdsDecodeAndStream) {
    const std::string name = GetParam();
    if (!test::have_tokenizer(name)) GTEST_SKIP() << "run scripts/fetch_tokenizers.sh to get " << name;
    auto tok = Tokenizer::from_file(test::tokenizer_path(name));
    json::Value g = json::parse_file(test::tokenizer_data("ids_" + name + ".json"));
    int ok_plain = 0, ok_special = 0, ok_decode = 0, ok_stream = 0, n = 0;
    for (const auto& row : g.at("rows").as_array()) {
        ++n;
        const std::string& text = row.at("text").as_string();
        auto plain = tok->encode(text, false);
        auto special = tok->encode(text, true);
        auto want_plain = ids_of(row.at("ids")), want_special = ids_of(row.at("ids_special"));
        EXPECT_EQ(show(plain), show(want_plain)) << name << " text: " << json::quote(text);
        EXPECT_EQ(show(special), show(want_special)) << name << " (special) text: " << json::quote(text);
        ok_plain += plain == want_plain;
        ok_special += special == want_special;
        std::string dec = tok->decode(want_special, false);
        EXPECT_EQ(dec, row.at("decoded").as_string()) << name << " decode of " << json::quote(text);
        EXPECT_EQ(tok->decode(want_special, true), row.at("decoded_skip").as_string()) << name << " decode(skip) of " << json::quote(text);
        ok_decode += dec == row.at("decoded").as_string();
        StreamDecoder sd(*tok, false);
        std::string streamed;
        for (int32_t id : want_special) {
            std::string delta = sd.push(id);
            EXPECT_TRUE(unicode::is_valid_utf8(delta)) << name << " partial UTF-8 in stream of " << json::quote(text);
            streamed += delta;
        }
        streamed += sd.flush();
        EXPECT_EQ(streamed, dec) << name << " stream of " << json::quote(text);
        ok_stream += streamed == dec;
    }
    std::printf("[tokenizer %s] ids %d/%d, ids+special %d/%d, decode %d/%d, stream %d/%d\n", name.c_str(), ok_plain,
                n, ok_special, n, ok_decode, n, ok_stream, n);
}

INSTANTIATE_TEST_SUITE_P(Files, GoldenTest,
                         ::testing::Values("qwen3", "llama3", "llama2", "deepseek_v3", "gptoss", "gemma3"));

}  // namespace
}  // namespace moeinfer
