// Engine (continuous batching): greedy outputs equal the HF goldens under chunked prefill, preemption and
// prefix caching; cancellation frees blocks; bad requests and a full queue are refused with clear errors.
#include <gtest/gtest.h>

#include <thread>

#include "../exact_arithmetic.h"
#include "../models/golden_util.h"
#include "engine/engine.h"
#include "engine_test_util.h"

namespace moeinfer::test {
namespace {

// Metrics are published after each step; wait until the loop has published an idle state.
EngineMetrics idle_metrics(const Engine& e) {
    for (int i = 0; i < 500; ++i) {
        EngineMetrics m = e.metrics();
        if (m.running == 0 && m.waiting == 0 && m.kv_blocks_in_use == 0) return m;
        std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    return e.metrics();
}

// Tiny budgets force chunked prefill; a tiny cache forces preemption; outputs must not change.
TEST(Engine, GreedyMatchesGoldensUnderChunkingAndPreemption) {
    for (const char* family : {"qwen3_moe", "llama", "qwen2_moe"}) {
        const Golden g = load_golden(family);
        EngineConfig cfg;
        cfg.max_num_batched_tokens = 7;
        cfg.max_num_seqs = 3;
        cfg.block_size = 4;
        cfg.kv_cache_mib = 1;
        Engine engine(Model::load(g.dir), cfg);
        engine.start();
        std::vector<std::shared_ptr<RequestHandle>> hs;
        for (const auto& p : g.prompts) hs.push_back(engine.submit(greedy(p, 24)));
        for (size_t i = 0; i < hs.size(); ++i) {
            EXPECT_EQ(collect(*hs[i]), g.greedy[i]) << family << " prompt " << i;
            EXPECT_EQ(hs[i]->finish_reason(), FinishReason::Length);
        }
        engine.stop(true);
        EXPECT_EQ(engine.metrics().kv_blocks_in_use, 0);
    }
}

TEST(Engine, PreemptsWhenBlocksRunOut) {
    const Golden g = load_golden("llama");
    EngineConfig cfg;
    cfg.block_size = 4;
    // llama golden: 2 layers × 2 kv heads × 16 dims × 2 (K,V) × 4 bytes = 512 B/token → 1 MiB = 2048 tokens;
    // make the cache just large enough for one long request so several at once must preempt.
    cfg.kv_cache_mib = 1;
    cfg.max_num_batched_tokens = 64;
    Engine engine(Model::load(g.dir), cfg);
    engine.start();
    std::vector<std::shared_ptr<RequestHandle>> hs;
    std::vector<int32_t> prompt(g.prompts[2]);
    for (int i = 0; i < 8; ++i) hs.push_back(engine.submit(greedy(prompt, 24)));
    for (auto& h : hs) EXPECT_EQ(collect(*h), g.greedy[2]);
    engine.stop(true);
    EXPECT_EQ(engine.metrics().kv_blocks_in_use, 0);
}

TEST(Engine, PrefixCacheHitsOnRepeatedPromptAndKeepsOutput) {
    const Golden g = load_golden("qwen3_moe");
    EngineConfig cfg;
    cfg.block_size = 4;
    Engine engine(Model::load(g.dir), cfg);
    engine.start();
    auto first = collect(*engine.submit(greedy(g.prompts[2], 24)));
    const auto before = idle_metrics(engine);
    auto second = collect(*engine.submit(greedy(g.prompts[2], 24)));
    const auto after = idle_metrics(engine);
    EXPECT_EQ(first, g.greedy[2]);
    EXPECT_EQ(second, g.greedy[2]);
    // 29-token prompt, blocks of 4: the 7 full blocks before the last token are reused.
    EXPECT_EQ(after.prefix_cache_hits - before.prefix_cache_hits, 7);
    EXPECT_GT(after.kv_blocks_cached, 0);
    EXPECT_EQ(after.kv_blocks_in_use, 0);
    engine.stop(true);
}

TEST(Engine, CancelFreesBlocks) {
    const Golden g = load_golden("mixtral");
    Engine engine(Model::load(g.dir), EngineConfig{});
    const int64_t room = 128 - static_cast<int64_t>(g.prompts[1].size());  // golden context is 128
    // Cancelled while queued (the loop has not started yet): never runs.
    auto queued = engine.submit(greedy(g.prompts[0], 8));
    queued->cancel();
    engine.start();
    std::vector<TokenEvent> evs;
    while (!queued->wait(evs, std::chrono::milliseconds(100))) {
    }
    EXPECT_EQ(queued->finish_reason(), FinishReason::Cancelled);
    EXPECT_TRUE(evs.empty());
    // Cancelled while running: stops early unless it outran the cancel on a loaded machine; blocks freed either way.
    auto running = engine.submit(greedy(g.prompts[1], room));
    while (evs.empty()) running->wait(evs, std::chrono::milliseconds(100));
    running->cancel();
    while (!running->wait(evs, std::chrono::milliseconds(100))) {
    }
    EXPECT_TRUE(running->finish_reason() == FinishReason::Cancelled || running->finish_reason() == FinishReason::Length);
    EXPECT_EQ(idle_metrics(engine).kv_blocks_in_use, 0);
    engine.stop(false);
}

TEST(Engine, RejectsBadRequestsAndFullQueue) {
    const Golden g = load_golden("llama");
    EngineConfig cfg;
    cfg.max_waiting = 2;
    Engine engine(Model::load(g.dir), cfg);  // not started: submissions stay queued
    EXPECT_THROW(engine.submit(greedy({}, 4)), std::invalid_argument);
    EXPECT_THROW(engine.submit(greedy({1, 512}, 4)), std::invalid_argument);
    EXPECT_THROW(engine.submit(greedy({1, 2}, -1)), std::invalid_argument);
    EXPECT_THROW(engine.submit(greedy({1, 2}, 1 << 20)), std::invalid_argument);
    RequestOptions bad = greedy({1, 2}, 4);
    bad.sampling.top_p = 0;
    EXPECT_THROW(engine.submit(bad), std::invalid_argument);
    RequestOptions bias = greedy({1, 2}, 4);
    bias.sampling.logit_bias = {{512, 1.f}};  // vocab is 512
    EXPECT_THROW(engine.submit(bias), std::invalid_argument);
    auto a = engine.submit(greedy({1, 2}, 4));
    auto b = engine.submit(greedy({1, 2}, 4));
    EXPECT_THROW(engine.submit(greedy({1, 2}, 4)), EngineFull);
    engine.stop(false);
    EXPECT_EQ(a->finish_reason(), FinishReason::Cancelled);
}

// A -100 bias on the golden's first greedy token makes greedy pick the runner-up from the golden logprobs.
TEST(Engine, LogitBiasChangesGreedyChoice) {
    const Golden g = load_golden("llama");
    Engine engine(Model::load(g.dir), EngineConfig{});
    engine.start();
    RequestOptions o = greedy(g.prompts[1], 1);
    o.sampling.logit_bias = {{g.greedy[1][0], -100.f}};
    auto h = engine.submit(o);
    const std::vector<float>& last = g.logprobs[1];
    const int64_t V = g.vocab, row = static_cast<int64_t>(g.prompts[1].size()) - 1;
    int32_t second = -1;
    for (int32_t t = 0; t < V; ++t)
        if (t != g.greedy[1][0] && (second < 0 || last[row * V + t] > last[row * V + second])) second = t;
    EXPECT_EQ(collect(*h), std::vector<int32_t>{second});
    engine.stop(true);
}

TEST(Engine, MinTokensAndStopIds) {
    const Golden g = load_golden("llama");
    Engine engine(Model::load(g.dir), EngineConfig{});
    engine.start();
    RequestOptions o = greedy(g.prompts[0], 24);
    o.stop_token_ids = {g.greedy[0][3]};
    auto out = collect(*engine.submit(o));
    // Stops at the first occurrence of the stop id (which is included as the last token).
    size_t first = std::find(g.greedy[0].begin(), g.greedy[0].end(), g.greedy[0][3]) - g.greedy[0].begin();
    EXPECT_EQ(out, std::vector<int32_t>(g.greedy[0].begin(), g.greedy[0].begin() + first + 1));
    engine.stop(true);
}

}  // namespace
}  // namespace moeinfer::test

namespace moeinfer::test {
namespace {

// Runs every golden prompt of `families` greedily with prompt-lookup speculation (k = 4) and expects the tokens
// want(engine, golden, prompt) names; returns the drafts accepted over all families.
template <typename Want>
int64_t speculate_goldens(std::initializer_list<const char*> families, Want want) {
    int64_t accepted = 0;
    for (const char* family : families) {
        const Golden g = load_golden(family);
        EngineConfig cfg;
        cfg.block_size = 4;
        Engine engine(Model::load(g.dir), cfg);
        engine.start();
        for (size_t i = 0; i < g.prompts.size(); ++i) {
            const std::vector<int32_t> expected = want(engine, g, i);
            RequestOptions o = greedy(g.prompts[i], 24);
            o.spec_ngram = 4;
            EXPECT_EQ(collect(*engine.submit(o)), expected) << family << " prompt " << i;
        }
        const EngineMetrics m = idle_metrics(engine);
        EXPECT_LE(m.spec_accepted_tokens, m.spec_draft_tokens);
        EXPECT_EQ(m.kv_blocks_in_use, 0);
        accepted += m.spec_accepted_tokens;
        engine.stop(true);
    }
    return accepted;
}

// Prompt-lookup speculation is lossless for greedy decoding: same tokens as plain decoding, and on these
// repetitive tiny models some drafts are accepted (so the verify path really runs).
TEST(Engine, NgramSpeculationKeepsGreedyOutput) {
    EXPECT_GT(speculate_goldens({"qwen3_moe", "llama", "mixtral", "qwen2"},
                                [](Engine&, const Golden& g, size_t i) { return g.greedy[i]; }),
              0);
}

// The same in the CPU's default bf16 arithmetic (the test binary otherwise runs exact fp32 products), against
// plain decoding in that arithmetic: a verification step (k + 1 tokens, the packed GEMM) and a decode step (one
// token, the fused dot) form the same bf16 products (PackedGemm.Bf16ArithmeticMatchesRoundedReference).
TEST(Engine, NgramSpeculationKeepsGreedyOutputWithBf16Products) {
    if (!cpu::bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
    GemmArithGuard bf16(cpu::GemmArith::Bf16);
    EXPECT_GT(speculate_goldens({"qwen3_moe", "llama", "mixtral"},
                                [](Engine& engine, const Golden& g, size_t i) {
                                    return collect(*engine.submit(greedy(g.prompts[i], 24)));
                                }),
              0);
}

}  // namespace
}  // namespace moeinfer::test
