// Loads the HF golden references under tests/data/goldens/<family>/ (see that folder's README).
#pragma once
#include <cstdint>
#include <fstream>
#include <stdexcept>
#include <string>
#include <vector>

#include "core/json.h"
#include "engine/generator.h"

namespace moeinfer::test {

struct Golden {
    std::string dir;
    int64_t vocab = 0;
    std::vector<std::vector<int32_t>> prompts, greedy;
    std::vector<std::vector<double>> margins;
    std::vector<std::vector<float>> logprobs;  // per prompt: [len, vocab]
};

inline std::string golden_dir(const std::string& family) {
    return std::string(MOEINFER_SOURCE_DIR) + "/tests/data/goldens/" + family;
}

inline Golden load_golden(const std::string& family) {
    Golden g;
    g.dir = golden_dir(family);
    const json::Value j = json::parse_file(g.dir + "/golden.json");
    g.vocab = j.at("vocab_size").as_int();
    auto ids = [](const json::Value& a) {
        std::vector<int32_t> v;
        for (const auto& e : a.as_array()) v.push_back(static_cast<int32_t>(e.as_int()));
        return v;
    };
    for (const auto& p : j.at("prompts").as_array()) g.prompts.push_back(ids(p));
    for (const auto& p : j.at("greedy").as_array()) g.greedy.push_back(ids(p));
    for (const auto& m : j.at("margins").as_array()) {
        g.margins.emplace_back();
        for (const auto& e : m.as_array()) g.margins.back().push_back(e.as_number());
    }
    std::ifstream f(g.dir + "/" + j.at("logprobs_file").as_string(), std::ios::binary);
    for (const auto& p : g.prompts) {
        std::vector<float> rows(p.size() * g.vocab);
        f.read(reinterpret_cast<char*>(rows.data()), rows.size() * sizeof(float));
        if (!f) throw std::runtime_error("truncated logprobs file in " + g.dir);
        g.logprobs.push_back(std::move(rows));
    }
    return g;
}

// One greedy request per golden prompt, as long as the golden's greedy continuation.
inline std::vector<GenerationRequest> greedy_requests(const Golden& g) {
    std::vector<GenerationRequest> reqs;
    for (const auto& p : g.prompts) {
        GenerationRequest r;
        r.prompt = p;
        r.max_new_tokens = static_cast<int64_t>(g.greedy[0].size());
        r.sampling.temperature = 0;
        reqs.push_back(r);
    }
    return reqs;
}

inline const char* const kGoldenFamilies[] = {"llama",   "mistral",   "qwen2",     "qwen3",
                                              "mixtral", "qwen2_moe", "qwen3_moe", "olmoe"};

}  // namespace moeinfer::test
