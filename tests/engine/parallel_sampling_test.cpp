// Parallel sampling (RequestOptions::n): the n candidates equal n independent requests seeded seed + i, token for
// token, while the prompt is prefilled once and its KV blocks are shared (fewer blocks at peak); each candidate
// finishes and is cancelled on its own, and every block goes back to the pool.
#include <gtest/gtest.h>

#include <cstdio>
#include <thread>

#include "../models/golden_util.h"
#include "engine/engine.h"
#include "engine_test_util.h"

namespace moeinfer::test {
namespace {

// 90 tokens from the golden prompts: 22 full blocks of 4 and a partial one (shared, then copied on write).
std::vector<int32_t> long_prompt(const Golden& g) {
    std::vector<int32_t> p;
    while (p.size() < 90)
        for (const auto& q : g.prompts) p.insert(p.end(), q.begin(), q.end());
    p.resize(90);
    return p;
}

RequestOptions options(const std::vector<int32_t>& prompt, float temperature, uint64_t seed) {
    RequestOptions o;
    o.prompt = prompt;
    o.max_tokens = 16;
    o.sampling.temperature = temperature;
    o.sampling.seed = seed;
    o.ignore_eos = true;  // every candidate runs to max_tokens: the peak is comparable
    return o;
}

EngineConfig config() {
    EngineConfig cfg;
    cfg.block_size = 4;
    cfg.enable_prefix_caching = false;  // the independent baseline gets no help either way (same-step admission)
    return cfg;
}

struct RunResult {
    std::vector<std::vector<int32_t>> tokens;
    int64_t peak_blocks = 0, prompt_tokens = 0, cow_copies = 0;
};

RunResult run(const Golden& g, int32_t n, bool shared, float temperature, uint64_t seed) {
    Engine engine(Model::load(g.dir), config());
    std::vector<std::shared_ptr<RequestHandle>> hs;
    const std::vector<int32_t> prompt = long_prompt(g);
    if (shared) {
        RequestOptions o = options(prompt, temperature, seed);
        o.n = n;
        hs = engine.submit_n(o);
    } else {
        for (int32_t i = 0; i < n; ++i) hs.push_back(engine.submit(options(prompt, temperature, seed + i)));
    }
    engine.start();  // after submitting: the independent requests are admitted in one step
    RunResult r;
    for (auto& h : hs) {
        r.tokens.push_back(collect(*h));
        EXPECT_EQ(h->finish_reason(), FinishReason::Length);
    }
    engine.stop(true);
    const EngineMetrics m = engine.metrics();
    EXPECT_EQ(m.kv_blocks_in_use, 0) << "every candidate's blocks are released";
    r.peak_blocks = m.kv_blocks_peak;
    r.prompt_tokens = m.prompt_tokens;
    r.cow_copies = m.kv_cow_copies;
    return r;
}

TEST(ParallelSampling, CandidatesEqualIndependentSeededRequestsWithFewerBlocks) {
    const Golden g = load_golden("qwen3_moe");
    for (const float temperature : {0.0f, 0.9f}) {
        for (const int32_t n : {2, 4, 8}) {
            const RunResult ind = run(g, n, false, temperature, 100);
            const RunResult sh = run(g, n, true, temperature, 100);
            ASSERT_EQ(sh.tokens.size(), size_t(n));
            for (int32_t i = 0; i < n; ++i) {
                EXPECT_EQ(sh.tokens[i], ind.tokens[i]) << "n " << n << " candidate " << i << " t " << temperature;
                EXPECT_EQ(sh.tokens[i].size(), 16u);
            }
            if (temperature > 0) EXPECT_NE(sh.tokens[0], sh.tokens[1]) << "seeds differ, so do the samples";
            EXPECT_EQ(sh.prompt_tokens, 90) << "the prompt is prefilled once";
            EXPECT_EQ(ind.prompt_tokens, 90 * n);
            // Independent: n × (90 + 16) / 4 blocks; shared: 23 prompt blocks + n tails (the partial block copied).
            EXPECT_LT(sh.peak_blocks, ind.peak_blocks);
            EXPECT_LE(sh.peak_blocks, 23 + n * 5);
            EXPECT_EQ(sh.cow_copies, n - 1) << "all but the last writer copy the shared partial block";
            std::printf("parallel sampling n=%d t=%.1f: peak KV blocks shared %lld vs independent %lld\n", n,
                        temperature, static_cast<long long>(sh.peak_blocks), static_cast<long long>(ind.peak_blocks));
        }
    }
}

TEST(ParallelSampling, CancellingOneCandidateKeepsTheOthers) {
    const Golden g = load_golden("qwen3_moe");
    Engine engine(Model::load(g.dir), config());
    RequestOptions o = options(long_prompt(g), 0.9f, 5);
    o.n = 3;
    auto hs = engine.submit_n(o);
    ASSERT_EQ(hs.size(), 3u);
    hs[0]->cancel();  // the root: its blocks must outlive it for the forks
    hs[2]->cancel();
    engine.start();
    collect(*hs[0]);
    collect(*hs[2]);
    EXPECT_EQ(hs[0]->finish_reason(), FinishReason::Cancelled);
    EXPECT_EQ(hs[2]->finish_reason(), FinishReason::Cancelled);
    const std::vector<int32_t> got = collect(*hs[1]);
    EXPECT_EQ(hs[1]->finish_reason(), FinishReason::Length);
    engine.stop(true);
    EXPECT_EQ(engine.metrics().kv_blocks_in_use, 0);

    Engine ref(Model::load(g.dir), config());
    ref.start();
    auto h = ref.submit(options(long_prompt(g), 0.9f, 6));
    EXPECT_EQ(got, collect(*h)) << "candidate 1 samples with seed + 1";
}

TEST(ParallelSampling, RejectsBadN) {
    const Golden g = load_golden("qwen3_moe");
    Engine engine(Model::load(g.dir), config());
    RequestOptions o = options(g.prompts[0], 0, 0);
    o.n = 0;
    EXPECT_THROW(engine.submit_n(o), std::invalid_argument);
    o.n = 2;
    EXPECT_THROW(engine.submit(o), std::invalid_argument) << "submit() is for one candidate";
    o.beam_width = 2;
    EXPECT_THROW(engine.submit_n(o), std::invalid_argument);
}

}  // namespace
}  // namespace moeinfer::test
