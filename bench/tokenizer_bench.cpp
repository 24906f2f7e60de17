// Encode/decode throughput (MB/s, one thread) of the tokenizer on a large mixed text built from the test corpus.
// Usage: tokenizer_bench [TOKENIZERS_DIR (default build/tokenizers)] [MB (default 8)] [names...]
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

#include "core/json.h"
#include "tokenizer/tokenizer.h"

using namespace moeinfer;

int main(int argc, char** argv) {
    std::string dir = argc > 1 ? argv[1] : "build/tokenizers";
    double mb = argc > 2 ? std::atof(argv[2]) : 8.0;
    std::vector<std::string> names;
    for (int i = 3; i < argc; ++i) names.push_back(argv[i]);
    if (names.empty()) names = {"llama3", "qwen3", "deepseek_v3", "gptoss", "llama2", "gemma3"};
    std::string corpus_path = "tests/data/tokenizer/corpus.json";
    json::Value corpus = json::parse_file(corpus_path);
    std::string unit;
    for (const auto& t : corpus.at("texts").as_array()) unit += t.as_string() + "\n";
    // Make the text large and not a pure repetition of whole lines, so caches see realistic reuse.
    std::string text;
    size_t target = size_t(mb * 1e6);
    for (size_t k = 0; text.size() < target; ++k) {
        text += unit;
        text += "Iteration " + std::to_string(k) + " of the mixed benchmark text, value " + std::to_string(k * 7919 % 100003) + ".\n";
    }
    // A cache-hostile text too: random lowercase "words", so nearly every piece goes through BPE merging.
    std::string random_words;
    uint64_t rng = 0x9E3779B97F4A7C15ull;
    auto next = [&] { return (rng = rng * 6364136223846793005ull + 1442695040888963407ull) >> 33; };
    while (random_words.size() < target / 4) {
        size_t len = 3 + next() % 8;
        for (size_t k = 0; k < len; ++k) random_words += char('a' + next() % 26);
        random_words += next() % 12 == 0 ? ".\n" : " ";
    }
    if (const char* dump = std::getenv("MOEINFER_BENCH_DUMP")) {  // lets a peer (HF tokenizers) time the same text
        std::ofstream(std::string(dump) + "/mixed.txt", std::ios::binary) << text;
        std::ofstream(std::string(dump) + "/random.txt", std::ios::binary) << random_words;
    }
    std::printf("text: %.1f MB mixed (corpus of %zu texts, repeated); %.1f MB random words\n", text.size() / 1e6,
                corpus.at("texts").size(), random_words.size() / 1e6);
    std::printf("%-12s %8s %10s %12s %12s %14s\n", "tokenizer", "load s", "tokens", "encode MB/s", "decode MB/s",
                "random MB/s");
    for (const auto& n : names) {
        std::string path = dir + "/" + n;
        if (!std::filesystem::exists(path + "/tokenizer.json")) {
            std::printf("%-12s (missing: run scripts/fetch_tokenizers.sh)\n", n.c_str());
            continue;
        }
        auto t0 = std::chrono::steady_clock::now();
        auto tok = Tokenizer::from_file(path);
        auto t1 = std::chrono::steady_clock::now();
        std::vector<int32_t> ids = tok->encode(text, false);
        auto t2 = std::chrono::steady_clock::now();
        std::string back = tok->decode(ids, false);
        auto t3 = std::chrono::steady_clock::now();
        tok->encode(random_words, false);
        auto t4 = std::chrono::steady_clock::now();
        auto s = [](auto a, auto b) { return std::chrono::duration<double>(b - a).count(); };
        std::printf("%-12s %8.2f %10zu %12.1f %12.1f %14.1f\n", n.c_str(), s(t0, t1), ids.size(),
                    text.size() / 1e6 / s(t1, t2), back.size() / 1e6 / s(t2, t3), random_words.size() / 1e6 / s(t3, t4));
    }
    return 0;
}
