// Loads the HF golden references under tests/data/goldens/<family>/ (see that folder's README).
#pragma once
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <numeric>
#include <stdexcept>
#include <string>
#include <vector>

#include <gtest/gtest.h>

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

// The largest |ours - ref| over the 5 tokens HF ranks highest in one position's log-softmax row of V entries.
inline double top5_logprob_diff(const float* ours, const float* ref, int64_t V) {
    std::vector<int32_t> idx(V);
    std::iota(idx.begin(), idx.end(), 0);
    std::partial_sort(idx.begin(), idx.begin() + 5, idx.end(), [&](int32_t a, int32_t b) { return ref[a] > ref[b]; });
    double worst = 0;
    for (int k = 0; k < 5; ++k) worst = std::max(worst, std::fabs(double(ours[idx[k]]) - ref[idx[k]]));
    return worst;
}

// The yardstick for "bf16 tolerance": HF transformers itself in bf16 on the GPU, measured against the same fp32
// goldens by tools/bf16_reference.py (tests/data/goldens/bf16_reference.json): its worst top-5 logprob difference,
// or 0.1 if that is smaller. On these small models one bf16 rounding of an activation moves logprobs by a few
// 1e-2, and a routing decision flipped by it moves a MoE model's by tenths.
inline double bf16_logprob_tolerance(const std::string& family) {
    double tol = 0.1;
    const json::Value ref = json::parse_file(std::string(MOEINFER_SOURCE_DIR) + "/tests/data/goldens/bf16_reference.json");
    if (ref.contains(family)) tol = std::max(tol, ref.at(family).at("worst_top5_logprob_diff").as_number());
    return tol;
}

// The bf16-tolerance rule over the worst top-5 difference at each prompt position: most positions (90 %) within
// tol = bf16_logprob_tolerance(family), none beyond 2·tol — a few may be further off where a router near-tie picks
// another expert, as HF's own bf16 run shows. Prints the spread under `label`; returns the worst difference.
inline double expect_within_bf16_tolerance(std::vector<double> per_position, const std::string& family,
                                           const std::string& label) {
    std::sort(per_position.begin(), per_position.end());
    const double p90 = per_position[per_position.size() * 9 / 10], worst = per_position.back();
    const double tol = bf16_logprob_tolerance(family);
    std::printf("[ %s ] %s: top-5 logprob difference vs HF fp32 p90 %.4f, worst %.4f (tolerance %.4f)\n",
                family.c_str(), label.c_str(), p90, worst, tol);
    EXPECT_LT(p90, tol) << family << " " << label;
    EXPECT_LT(worst, 2 * tol) << family << " " << label;
    return worst;
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
