// Randomized checks: arbitrary bytes never crash encode/decode, random Unicode text round-trips through the
// lossless (byte-level) tokenizers, and streaming equals one-shot decoding.
#include <gtest/gtest.h>

#include <random>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"
#include "tokenizer_test_util.h"

namespace moeinfer {
namespace {

// Code points drawn from ranges the tokenizers treat differently: ASCII, whitespace, Latin, combining marks,
// CJK, Hangul, emoji and modifiers, ZWJ, supplementary letters.
std::string random_text(std::mt19937& rng, size_t n_chars) {
    static const std::pair<uint32_t, uint32_t> kRanges[] = {
        {0x20, 0x7E}, {0x20, 0x7E}, {0x20, 0x7E}, {0x09, 0x0D}, {0xA0, 0x17F}, {0x300, 0x36F}, {0x391, 0x3C9},
        {0x410, 0x44F}, {0x600, 0x6FF}, {0x900, 0x97F}, {0x3040, 0x30FF}, {0x4E00, 0x9FA5}, {0xAC00, 0xD7A3},
        {0xFF01, 0xFF5E}, {0x1F300, 0x1F6FF}, {0x1F3FB, 0x1F3FF}, {0x200B, 0x200D}, {0x1D400, 0x1D4FF}, {0x3000, 0x3000}};
    std::string s;
    for (size_t i = 0; i < n_chars; ++i) {
        const auto& r = kRanges[rng() % std::size(kRanges)];
        unicode::append_utf8(s, r.first + rng() % (r.second - r.first + 1));
    }
    return s;
}

class Fuzz : public ::testing::TestWithParam<std::string> {};

TEST_P(Fuzz, RandomInput) {
    const std::string name = GetParam();
    if (!test::have_tokenizer(name)) GTEST_SKIP() << "run scripts/fetch_tokenizers.sh to get " << name;
    auto tok = Tokenizer::from_file(test::tokenizer_path(name));
    std::mt19937 rng(1234);
    const bool byte_level = name != "llama2" && name != "gemma3";
    for (int iter = 0; iter < 150; ++iter) {
        std::string bytes(rng() % 200, '\0');
        for (char& c : bytes) c = char(rng() % 256);
        std::vector<int32_t> ids;
        ASSERT_NO_THROW(ids = tok->encode(bytes, iter % 2 == 0)) << name;
        std::string dec;
        ASSERT_NO_THROW(dec = tok->decode(ids, false)) << name;
        EXPECT_TRUE(unicode::is_valid_utf8(dec));

        std::string text = random_text(rng, rng() % 120);
        ids = tok->encode(text, false);
        std::string back = tok->decode(ids, false);
        if (byte_level && (name != "qwen3" || unicode::nfc(text) == text)) EXPECT_EQ(back, text) << name;
        StreamDecoder sd(*tok, false);
        std::string streamed;
        for (int32_t id : ids) streamed += sd.push(id);
        streamed += sd.flush();
        EXPECT_EQ(streamed, back) << name;
    }
}

INSTANTIATE_TEST_SUITE_P(Files, Fuzz, ::testing::Values("qwen3", "llama3", "llama2", "deepseek_v3", "gptoss", "gemma3"));

}  // namespace
}  // namespace moeinfer
