// Overlapped steps (asynchronous decoding): step N+1 is planned and launched before step N's tokens are read,
// feeding them by reference to step N's rows. On the CPU the forward runs at launch, but every piece of the
// bookkeeping runs as on a device (placeholders, sequences finished while a step naming them is in flight, blocks
// hashed only once their tokens are known), so outputs must equal plain stepping exactly.
#include <gtest/gtest.h>

#include <thread>

#include "../models/golden_util.h"
#include "engine/engine.h"
#include "engine_test_util.h"

namespace moeinfer::test {
namespace {

struct Outcome {
    std::vector<int32_t> tokens;
    FinishReason reason;
    bool operator==(const Outcome& o) const { return tokens == o.tokens && reason == o.reason; }
};

std::ostream& operator<<(std::ostream& os, const Outcome& o) {
    os << finish_reason_name(o.reason) << " [";
    for (int32_t t : o.tokens) os << t << " ";
    return os << "]";
}

EngineConfig small_config(EngineConfig::Overlap overlap) {
    EngineConfig cfg;
    cfg.max_num_batched_tokens = 7;  // chunked prefill
    cfg.max_num_seqs = 3;
    cfg.block_size = 4;
    cfg.kv_cache_mib = 1;
    cfg.overlap = overlap;
    return cfg;
}

// Submits every request, then starts the loop (so its first step sees them all, however slowly this thread runs:
// a loaded machine must not turn the preemption test into one without contention), returns each one's tokens and
// finish reason, and the engine's final metrics.
std::vector<Outcome> run_all(Model& model, EngineConfig cfg, const std::vector<RequestOptions>& reqs, EngineMetrics* m) {
    Engine engine(model, cfg);
    std::vector<std::shared_ptr<RequestHandle>> hs;
    for (const auto& r : reqs) hs.push_back(engine.submit(r));
    engine.start();
    std::vector<Outcome> out;
    for (auto& h : hs) {
        out.push_back({collect(*h), FinishReason::None});
        out.back().reason = h->finish_reason();
    }
    engine.stop(true);
    if (m) *m = engine.metrics();
    return out;
}

TEST(Overlap, GreedyMatchesGoldensUnderChunkedPrefill) {
    for (const char* family : {"qwen3_moe", "llama"}) {
        const Golden g = load_golden(family);
        auto model = Model::load(g.dir);
        std::vector<RequestOptions> reqs;
        for (const auto& p : g.prompts) reqs.push_back(greedy(p, 24));
        EngineMetrics m;
        const std::vector<Outcome> out = run_all(*model, small_config(EngineConfig::Overlap::On), reqs, &m);
        for (size_t i = 0; i < out.size(); ++i) {
            EXPECT_EQ(out[i].tokens, g.greedy[i]) << family << " prompt " << i;
            EXPECT_EQ(out[i].reason, FinishReason::Length);
        }
        EXPECT_GT(m.overlapped_steps, 0) << family;
        EXPECT_EQ(m.kv_blocks_in_use, 0) << family;
        EXPECT_EQ(m.generated_tokens, static_cast<int64_t>(24 * g.prompts.size())) << family;
    }
}

// More long requests than the cache holds: sequences are preempted (some while their next token is in flight)
// and recomputed, with the same outputs as plain stepping.
TEST(Overlap, PreemptionEqualsPlainStepping) {
    const Golden g = load_golden("llama");
    auto model = Model::load(g.dir);
    // llama golden: 512 B of K/V per token, so 1 MiB holds 2048 tokens; 24 sequences of ~100 tokens do not fit.
    std::vector<RequestOptions> reqs;
    for (int i = 0; i < 24; ++i) reqs.push_back(greedy(g.prompts[i % g.prompts.size()], 96));
    EngineConfig plain = small_config(EngineConfig::Overlap::Off), overlapped = small_config(EngineConfig::Overlap::On);
    plain.max_num_seqs = overlapped.max_num_seqs = 24;
    plain.max_num_batched_tokens = overlapped.max_num_batched_tokens = 64;
    EngineMetrics mp, mo;
    const std::vector<Outcome> a = run_all(*model, plain, reqs, &mp);
    const std::vector<Outcome> b = run_all(*model, overlapped, reqs, &mo);
    for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "request " << i;
    EXPECT_GT(mo.preemptions, 0) << "the cache was meant to be too small for all at once";
    EXPECT_GT(mo.overlapped_steps, 0);
    EXPECT_EQ(mo.kv_blocks_in_use, 0);
}

// Requests that end early (stop ids, EOS after min_tokens), need host logits (logprobs, penalties, sampling on the
// CPU), speculate or fork share the engine with plain greedy ones: the engine moves between overlapped and plain
// steps, and every request's output equals what plain stepping gives.
TEST(Overlap, MixedRequestsEqualPlainStepping) {
    const Golden g = load_golden("qwen3_moe");
    auto model = Model::load(g.dir);
    std::vector<RequestOptions> reqs;
    for (const auto& p : g.prompts) reqs.push_back(greedy(p, 20));
    RequestOptions stop_early = greedy(g.prompts[0], 20);
    stop_early.stop_token_ids = {g.greedy[0][3]};  // ends at its 4th token (or earlier if it appears before)
    const size_t stop_index = reqs.size();
    reqs.push_back(stop_early);
    RequestOptions stop_after_min = stop_early;
    stop_after_min.min_tokens = 6;
    reqs.push_back(stop_after_min);
    RequestOptions with_logprobs = greedy(g.prompts[1], 12);
    with_logprobs.sampling.logprobs = 2;
    reqs.push_back(with_logprobs);
    RequestOptions sampled = greedy(g.prompts[2 % g.prompts.size()], 12);
    sampled.sampling.temperature = 0.9f;
    sampled.sampling.seed = 7;
    reqs.push_back(sampled);
    RequestOptions penalized = greedy(g.prompts[0], 12);
    penalized.sampling.presence_penalty = 0.5f;
    reqs.push_back(penalized);
    RequestOptions ngram = greedy(g.prompts[1], 16);
    ngram.spec_ngram = 3;
    reqs.push_back(ngram);
    RequestOptions one_token = greedy(g.prompts[0], 1);
    reqs.push_back(one_token);

    for (int32_t seqs : {2, 8}) {
        EngineConfig plain = small_config(EngineConfig::Overlap::Off), overlapped = small_config(EngineConfig::Overlap::On);
        plain.max_num_seqs = overlapped.max_num_seqs = seqs;
        plain.kv_cache_mib = overlapped.kv_cache_mib = 4;
        EngineMetrics mp, mo;
        const std::vector<Outcome> a = run_all(*model, plain, reqs, &mp);
        const std::vector<Outcome> b = run_all(*model, overlapped, reqs, &mo);
        ASSERT_EQ(a.size(), b.size());
        for (size_t i = 0; i < a.size(); ++i) EXPECT_EQ(a[i], b[i]) << "request " << i << ", max_num_seqs " << seqs;
        EXPECT_EQ(a[stop_index].reason, FinishReason::Stop);
        EXPECT_EQ(mp.overlapped_steps, 0);
        EXPECT_GT(mo.overlapped_steps, 0);
        EXPECT_EQ(mo.generated_tokens, mp.generated_tokens);
        EXPECT_EQ(mo.kv_blocks_in_use, 0);
    }
}

// Blocks become prefix-cache entries only once every token in them is known: a repeated prompt hits the cache
// and both runs give the same tokens.
TEST(Overlap, PrefixCacheSeesOnlyKnownTokens) {
    const Golden g = load_golden("llama");
    auto model = Model::load(g.dir);
    EngineConfig cfg = small_config(EngineConfig::Overlap::On);
    cfg.max_num_batched_tokens = 512;
    Engine engine(*model, cfg);
    engine.start();
    // The first request's generated tokens fill blocks while its next token is in flight; the second request's
    // prompt is the first one's prompt + output, so it can only hit blocks hashed over the right tokens.
    const std::vector<int32_t> first = collect(*engine.submit(greedy(g.prompts[0], 20)));
    ASSERT_EQ(first, std::vector<int32_t>(g.greedy[0].begin(), g.greedy[0].begin() + 20));
    std::vector<int32_t> longer = g.prompts[0];
    longer.insert(longer.end(), first.begin(), first.end());
    const std::vector<int32_t> second = collect(*engine.submit(greedy(longer, 4)));
    engine.stop(true);
    const EngineMetrics m = engine.metrics();
    EXPECT_GT(m.prefix_cache_hits, static_cast<int64_t>(g.prompts[0].size() / 4)) << "generated blocks were not reused";

    Engine fresh(*model, small_config(EngineConfig::Overlap::Off));
    fresh.start();
    EXPECT_EQ(second, collect(*fresh.submit(greedy(longer, 4))));
    fresh.stop(true);
}

TEST(Overlap, CancelWhileAStepIsInFlight) {
    const Golden g = load_golden("qwen3_moe");
    auto model = Model::load(g.dir);
    // The victim is cancelled after its third token while the engine keeps stepping. On a loaded machine this thread
    // can be descheduled long enough for the victim to reach its length limit first; then the scenario is run again.
    bool cancelled = false;
    for (int attempt = 0; attempt < 20 && !cancelled; ++attempt) {
        Engine engine(*model, small_config(EngineConfig::Overlap::On));
        engine.start();
        auto victim = engine.submit(greedy(g.prompts[0], 100));
        auto other = engine.submit(greedy(g.prompts[1], 24));
        std::vector<TokenEvent> evs;
        while (evs.size() < 3 && !victim->wait(evs, std::chrono::milliseconds(100))) {
        }
        victim->cancel();
        EXPECT_EQ(collect(*other), g.greedy[1]);
        while (!victim->wait(evs, std::chrono::milliseconds(100))) {
        }
        cancelled = victim->finish_reason() == FinishReason::Cancelled;
        if (!cancelled) {
            EXPECT_EQ(victim->finish_reason(), FinishReason::Length);
        }
        engine.stop(true);
        EXPECT_EQ(engine.metrics().kv_blocks_in_use, 0);
    }
    EXPECT_TRUE(cancelled) << "the victim finished before its cancellation in every attempt";
}

// The model half: a token id previous_row_token(r) feeds the previous launched step's summary row r.
TEST(Overlap, ModelFeedsThePreviousStepsRows) {
    const Golden g = load_golden("llama");
    auto model = Model::load(g.dir);
    const std::vector<int32_t> prompt = g.prompts[0];
    const int64_t n = static_cast<int64_t>(prompt.size());
    auto run = [&](bool by_reference) {
        auto kv = model->make_kv_cache(64, 4);
        std::vector<int32_t> table(64);
        for (int32_t i = 0; i < 64; ++i) table[i] = i;
        Batch prefill;
        prefill.add_sequence(prompt.data(), n, 0, table.data(), false);
        RowSummary first;
        model->launch_forward(prefill, *kv, nullptr, &first);
        const int32_t fed = by_reference ? Model::previous_row_token(0) : first.token;
        Batch decode;
        decode.add_sequence(&fed, 1, n, table.data(), false);
        RowSummary second;
        model->launch_forward(decode, *kv, nullptr, &second);
        model->finish_forward();
        model->finish_forward();
        return std::vector<int32_t>{first.token, second.token};
    };
    const std::vector<int32_t> direct = run(false);
    EXPECT_EQ(run(true), direct);
    EXPECT_EQ(direct, std::vector<int32_t>(g.greedy[0].begin(), g.greedy[0].begin() + 2));

    auto kv = model->make_kv_cache(8, 4);
    std::vector<int32_t> table{0, 1};
    Batch bad;
    const int32_t id = Model::previous_row_token(1);  // the last step had one summary row
    bad.add_sequence(&id, 1, 0, table.data(), false);
    try {
        model->forward(bad, *kv, nullptr, nullptr);
        FAIL() << "a reference past the previous step's rows must be refused";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("summary rows"), std::string::npos) << e.what();
    }
}

}  // namespace
}  // namespace moeinfer::test
