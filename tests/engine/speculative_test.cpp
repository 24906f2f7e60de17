// Speculative decoding: rejection sampling emits tokens distributed as the target whatever the draft (chi-square
// on hand-made distributions, one and two positions deep); a draft model leaves greedy output equal to the HF
// goldens (the target as its own draft: everything accepted; another golden model as draft: mostly rejected);
// sampled speculation (n-gram and draft model) keeps the distribution of plain sampling.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "../models/golden_util.h"
#include "engine/engine.h"
#include "engine_test_util.h"
#include "engine/speculative.h"

namespace moeinfer::test {
namespace {

double chi_square(const std::vector<int>& count, const std::vector<double>& want, int n) {
    double chi = 0;
    for (size_t i = 0; i < want.size(); ++i) {
        const double e = want[i] * n;
        if (e == 0) {
            EXPECT_EQ(count[i], 0) << "token " << i << " has probability 0";
            continue;
        }
        chi += (count[i] - e) * (count[i] - e) / e;
    }
    return chi;
}

// 5 tokens, 4 degrees of freedom: P(chi² > 23.5) = 1e-4 (the seed is fixed, so this is deterministic).
TEST(Speculative, RejectionSamplingKeepsTheTargetDistribution) {
    const std::vector<double> p = {0.1, 0.4, 0.05, 0.3, 0.15};
    const std::vector<double> q = {0.5, 0.1, 0.2, 0.1, 0.1};  // a poor draft
    std::mt19937_64 rng(7);
    const int n = 40000;
    std::vector<int> from_model(5, 0), from_lookup(5, 0), naive(5, 0);
    int accepted_model = 0;
    for (int i = 0; i < n; ++i) {
        bool ok;
        const int32_t d = sample_from(q, rng);  // the draft model's token
        ++from_model[accept_or_resample(p, d, &q, rng, &ok)];
        accepted_model += ok;
        ++from_lookup[accept_or_resample(p, 0, nullptr, rng, &ok)];  // a fixed (prompt-lookup) draft: token 0
        ++naive[d];
    }
    EXPECT_LT(chi_square(from_model, p, n), 23.5);
    EXPECT_LT(chi_square(from_lookup, p, n), 23.5);
    EXPECT_GT(chi_square(naive, p, n), 1000) << "the test must tell q from p";
    // Acceptance rate is sum_x min(p, q) = 0.1 + 0.1 + 0.05 + 0.1 + 0.1 = 0.45.
    EXPECT_NEAR(accepted_model / double(n), 0.45, 0.015);
}

// Two positions: the second target row depends on the first token (p1[t0]); the joint of the emitted pair must be
// p0(t0) p1(t1 | t0) over the runs where the first draft token was accepted and a second token was emitted.
TEST(Speculative, TwoDeepJointDistribution) {
    const std::vector<double> p0 = {0.6, 0.3, 0.1};
    const std::vector<std::vector<double>> p1 = {{0.2, 0.7, 0.1}, {0.5, 0.25, 0.25}, {0.3, 0.3, 0.4}};
    const std::vector<double> q0 = {0.3, 0.3, 0.4};
    const std::vector<std::vector<double>> q1 = {{0.6, 0.2, 0.2}, {0.1, 0.8, 0.1}, {0.3, 0.4, 0.3}};
    std::mt19937_64 rng(11);
    const int n = 60000;
    std::vector<int> first(3, 0), pair(9, 0);
    int pairs = 0;
    for (int i = 0; i < n; ++i) {
        bool ok;
        const int32_t d0 = sample_from(q0, rng);
        const int32_t d1 = sample_from(q1[d0], rng);
        const int32_t t0 = accept_or_resample(p0, d0, &q0, rng, &ok);
        ++first[t0];
        if (!ok) continue;
        const int32_t t1 = accept_or_resample(p1[t0], d1, &q1[t0], rng, &ok);
        ++pair[t0 * 3 + t1];
        ++pairs;
    }
    EXPECT_LT(chi_square(first, p0, n), 18.5);  // 2 dof: P = 1e-4
    // Given t0 was an accepted draft, t0 ~ min(p0, q0) normalized; t1 | t0 must still be p1[t0].
    std::vector<double> acc0(3);
    double z = 0;
    for (int t = 0; t < 3; ++t) z += acc0[t] = std::min(p0[t], q0[t]);
    std::vector<double> want(9);
    for (int a = 0; a < 3; ++a)
        for (int b = 0; b < 3; ++b) want[a * 3 + b] = acc0[a] / z * p1[a][b];
    EXPECT_LT(chi_square(pair, want, pairs), 33.1);  // 8 dof: P = 1e-4
}

RequestOptions request(const std::vector<int32_t>& prompt, int64_t n, float temperature, uint64_t seed = 0) {
    RequestOptions o;
    o.prompt = prompt;
    o.max_tokens = n;
    o.sampling.temperature = temperature;
    o.sampling.seed = seed;
    return o;
}

TEST(Speculative, DraftModelKeepsGreedyGoldens) {
    // (target, draft): the target as its own draft, and a different model of the same vocabulary (512).
    const std::pair<const char*, const char*> pairs[] = {
        {"qwen3_moe", "qwen3_moe"}, {"llama", "llama"}, {"qwen3_moe", "mixtral"}, {"llama", "olmoe"}};
    for (const auto& [target, draft_family] : pairs) {
        const Golden g = load_golden(target);
        auto draft = Model::load(golden_dir(draft_family));
        EngineConfig cfg;
        cfg.block_size = 4;
        cfg.max_num_batched_tokens = 16;  // prompts prefill in chunks; drafts compete for the budget
        Engine engine(Model::load(g.dir), cfg);
        engine.set_draft_model(*draft);
        engine.start();
        std::vector<std::shared_ptr<RequestHandle>> hs;
        for (const auto& p : g.prompts) {
            RequestOptions o = request(p, 24, 0);
            o.spec_draft = 4;
            hs.push_back(engine.submit(o));
        }
        for (size_t i = 0; i < hs.size(); ++i)
            EXPECT_EQ(collect(*hs[i]), g.greedy[i]) << target << " drafted by " << draft_family << " prompt " << i;
        engine.stop(true);
        const EngineMetrics m = engine.metrics();
        EXPECT_GT(m.spec_draft_tokens, 0);
        if (std::string(target) == draft_family)
            EXPECT_EQ(m.spec_accepted_tokens, m.spec_draft_tokens) << target << ": its own draft is always right";
        else
            EXPECT_LT(m.spec_accepted_tokens, m.spec_draft_tokens);
        EXPECT_EQ(m.kv_blocks_in_use, 0);
    }
}

TEST(Speculative, RejectsDraftRequestsWithoutDraftModel) {
    const Golden g = load_golden("llama");
    Engine engine(Model::load(g.dir), EngineConfig{});
    RequestOptions o = request({1, 2}, 4, 0);
    o.spec_draft = 2;
    EXPECT_THROW(engine.submit(o), std::invalid_argument);
    auto other = Model::load(golden_dir("qwen3"));  // vocab 1024
    EXPECT_THROW(engine.set_draft_model(*other), std::invalid_argument);
    engine.stop(false);
}

// Sampled speculation: the distribution of the tokens at positions 2..6 over many seeds equals plain sampling's
// (two-sample chi-square over the 8 most frequent tokens + "other" per position; seeds fixed → deterministic).
TEST(Speculative, SampledSpeculationKeepsTheDistribution) {
    // llama's greedy continuation of prompt 0 repeats itself (16 272 321 272 321 ...), so at a moderate temperature
    // prompt lookup finds drafts worth accepting.
    const Golden g = load_golden("llama");
    auto target = Model::load(g.dir);
    auto draft = Model::load(golden_dir("mixtral"));
    const int runs = 1500, len = 6;
    const std::vector<int32_t> prompt = g.prompts[0];
    auto histogram = [&](int mode) {  // 0 plain, 1 n-gram, 2 draft model
        EngineConfig cfg;
        cfg.max_num_seqs = 256;
        cfg.max_num_batched_tokens = 2048;
        cfg.max_waiting = runs;
        Engine engine(*target, cfg);
        engine.set_draft_model(*draft);
        engine.start();
        std::vector<std::shared_ptr<RequestHandle>> hs;
        for (int r = 0; r < runs; ++r) {
            RequestOptions o = request(prompt, len, 0.7f, 1000 + r);
            o.spec_ngram = mode == 1 ? 3 : 0;
            o.spec_draft = mode == 2 ? 3 : 0;
            hs.push_back(engine.submit(o));
        }
        std::vector<std::map<int32_t, int>> h(len);
        for (auto& hd : hs) {
            const std::vector<int32_t> t = collect(*hd);
            EXPECT_EQ(t.size(), size_t(len));
            for (size_t i = 0; i < t.size() && i < size_t(len); ++i) ++h[i][t[i]];
        }
        engine.stop(true);
        const EngineMetrics m = engine.metrics();
        if (mode > 0) {
            EXPECT_GT(m.spec_draft_tokens, 0) << mode;
            EXPECT_GT(m.spec_accepted_tokens, 0) << mode << " drafted " << m.spec_draft_tokens;
            EXPECT_LT(m.spec_accepted_tokens, m.spec_draft_tokens) << mode;
        }
        return h;
    };
    const auto plain = histogram(0);
    for (int mode : {1, 2}) {
        const auto spec = histogram(mode);
        for (int pos = 1; pos < len; ++pos) {
            // Cells: the plain run's 8 most frequent tokens, and everything else.
            std::vector<std::pair<int, int32_t>> top;
            for (const auto& [t, c] : plain[pos]) top.push_back({c, t});
            std::sort(top.rbegin(), top.rend());
            top.resize(std::min<size_t>(top.size(), 8));
            double chi = 0;
            int a_rest = runs, b_rest = runs;
            auto cell = [&](int a, int b) {
                if (a + b > 0) chi += double(a - b) * (a - b) / (a + b);  // equal sample sizes
            };
            for (const auto& [c, t] : top) {
                const int b = spec[pos].count(t) ? spec[pos].at(t) : 0;
                cell(c, b);
                a_rest -= c;
                b_rest -= b;
            }
            cell(a_rest, b_rest);
            EXPECT_LT(chi, 33.7) << "mode " << mode << " position " << pos;  // ≤ 9 dof: P(chi² > 33.7) ≤ 1e-4
        }
    }
}

}  // namespace
}  // namespace moeinfer::test
