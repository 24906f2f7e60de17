// Beam search: tokens and length-normalized scores equal HF transformers' generate(num_beams=W) on the golden
// models (tests/data/goldens/beams.json, made by tools/make_beam_goldens.py), with every case of a family in one
// engine (all beams of all requests batched together); beams share KV blocks, measured against copying per beam.
#include <gtest/gtest.h>

#include <cmath>
#include <map>

#include "../models/golden_util.h"
#include "engine/engine.h"
#include "engine/generator.h"

namespace moeinfer::test {
namespace {

struct BeamCase {
    std::string family;
    GenerationRequest req;
    std::vector<std::vector<int32_t>> sequences;
    std::vector<double> scores;
};

std::vector<BeamCase> load_beam_cases() {
    const json::Value j = json::parse_file(std::string(MOEINFER_SOURCE_DIR) + "/tests/data/goldens/beams.json");
    auto ids = [](const json::Value& a) {
        std::vector<int32_t> v;
        for (const auto& e : a.as_array()) v.push_back(static_cast<int32_t>(e.as_int()));
        return v;
    };
    std::vector<BeamCase> out;
    for (const auto& c : j.at("cases").as_array()) {
        BeamCase b;
        b.family = c.at("family").as_string();
        b.req.prompt = ids(c.at("prompt"));
        b.req.max_new_tokens = c.at("max_new_tokens").as_int();
        b.req.beam_width = static_cast<int32_t>(c.at("num_beams").as_int());
        b.req.length_penalty = c.at("length_penalty").as_number();
        const json::Value& es = c.at("early_stopping");
        b.req.early_stopping = es.is_string() ? EarlyStopping::Never
                               : es.as_bool() ? EarlyStopping::Always
                                              : EarlyStopping::Heuristic;
        b.req.num_return_sequences = static_cast<int32_t>(c.at("num_return_sequences").as_int());
        b.req.stop_ids = ids(c.at("eos_token_ids"));
        for (const auto& s : c.at("sequences").as_array()) b.sequences.push_back(ids(s));
        for (const auto& s : c.at("scores").as_array()) b.scores.push_back(s.as_number());
        out.push_back(std::move(b));
    }
    return out;
}

TEST(BeamSearch, MatchesHfGoldensAllCasesBatched) {
    const std::vector<BeamCase> cases = load_beam_cases();
    ASSERT_EQ(cases.size(), 120u);
    std::map<std::string, std::vector<const BeamCase*>> by_family;
    for (const auto& c : cases) by_family[c.family].push_back(&c);
    int checked = 0;
    for (const auto& [family, fc] : by_family) {
        auto model = Model::load(golden_dir(family));
        std::vector<GenerationRequest> reqs;
        for (const BeamCase* c : fc) reqs.push_back(c->req);
        Generator gen(*model, /*block_size=*/4);  // small blocks: beams fork inside partial blocks (copy-on-write)
        GenerationStats stats;
        const auto results = gen.generate(reqs, {}, &stats);
        for (size_t i = 0; i < fc.size(); ++i) {
            const BeamCase& c = *fc[i];
            const std::string where = family + " case " + std::to_string(i) + " W=" +
                                      std::to_string(c.req.beam_width);
            ASSERT_EQ(results[i].beams.size(), c.sequences.size()) << where;
            for (size_t k = 0; k < c.sequences.size(); ++k) {
                EXPECT_EQ(results[i].beams[k].tokens, c.sequences[k]) << where << " beam " << k;
                EXPECT_NEAR(results[i].beams[k].score, c.scores[k], 2e-4) << where << " beam " << k;
            }
            EXPECT_EQ(results[i].tokens, c.sequences[0]) << where << ": the best beam is streamed";
            ++checked;
        }
        EXPECT_GT(stats.kv_cow_copies, 0) << family;
        EXPECT_LT(stats.beam_blocks_peak, stats.beam_blocks_unshared_peak) << family;
    }
    EXPECT_EQ(checked, 120);
}

// One request, a 29-token prompt in 4-token blocks, 4 beams: the 7 full prompt blocks exist once, not 4 times.
TEST(BeamSearch, BeamsShareBlocksAndFreeThemWhenDone) {
    const Golden g = load_golden("qwen3_moe");
    EngineConfig cfg;
    cfg.block_size = 4;
    Engine engine(Model::load(g.dir), cfg);
    engine.start();
    RequestOptions o;
    o.prompt = g.prompts[2];
    o.max_tokens = 12;
    o.beam_width = 4;
    o.num_return_sequences = 4;
    auto h = engine.submit(o);
    std::vector<TokenEvent> evs;
    while (!h->wait(evs, std::chrono::milliseconds(100))) {
    }
    ASSERT_EQ(h->finish_reason(), FinishReason::Length);
    ASSERT_EQ(h->beams().size(), 4u);
    for (size_t k = 1; k < 4; ++k) EXPECT_GE(h->beams()[k - 1].score, h->beams()[k].score);
    engine.stop(true);
    const EngineMetrics m = engine.metrics();
    EXPECT_EQ(m.kv_blocks_in_use, 0) << "every beam's blocks are released";
    // Copying per beam holds 4 × (29 + 12) / 4 ≈ 44 blocks at the end; sharing saves at least 3 × 7 prompt blocks.
    EXPECT_LE(m.beam_blocks_peak, m.beam_blocks_unshared_peak - 3 * 7);
    EXPECT_GT(m.kv_cow_copies, 0);
}

// Hand-made rows (logits = log-probabilities) over V = 4 with EOS 3, W = 2, length_penalty 3 (long favoured).
// After step 2 the finished set is full: (3) -0.51 and (0,3) -1.897/8; early_stopping=true stops there, while
// the heuristic sees the running beam (0,0) at -2.12/8 > -0.51 and continues to max length (3 tokens).
TEST(BeamSearch, EarlyStoppingRulesOnHandMadeRows) {
    auto row = [](std::vector<double> p) {
        std::vector<float> r;
        for (double q : p) r.push_back(float(std::log(q)));
        return r;
    };
    const std::vector<float> root = row({.3, .05, .05, .6}), b0 = row({.4, .05, .05, .5}),
                             uniform = row({.25, .25, .25, .25}), b00 = row({.05, .025, .025, .9});
    bool stopped_early = false;
    auto run = [&](EarlyStopping es) {
        BeamSearch bs(2, 3.0, es, 3, {3});
        auto next = bs.step({root.data()}, 4, {{}});
        EXPECT_EQ(next.size(), 2u);
        EXPECT_EQ(next[0].token, 0);
        EXPECT_EQ(next[1].token, 1);  // ties (ids 1, 2) go to the lower id
        next = bs.step({b0.data(), uniform.data()}, 4, {{0}, {1}});
        stopped_early = bs.done();
        if (!bs.done()) {
            EXPECT_EQ(next[0].token, 0);
            EXPECT_EQ(next[0].parent, 0);
            EXPECT_EQ(next[1].token, 1);
            bs.step({b00.data(), uniform.data()}, 4, {{0, 0}, {0, 1}});
        }
        EXPECT_TRUE(bs.done());
        return bs.finished();
    };
    const auto always = run(EarlyStopping::Always);
    EXPECT_TRUE(stopped_early) << "early_stopping=true ends once W hypotheses are finished";
    ASSERT_EQ(always.size(), 2u);
    EXPECT_EQ(always[0].tokens, (std::vector<int32_t>{0, 3}));
    EXPECT_NEAR(always[0].score, (std::log(.3) + std::log(.5)) / 8, 1e-6);
    EXPECT_EQ(always[1].tokens, (std::vector<int32_t>{3}));
    EXPECT_NEAR(always[1].score, std::log(.6), 1e-6);
    const auto heuristic = run(EarlyStopping::Heuristic);
    EXPECT_FALSE(stopped_early);
    ASSERT_EQ(heuristic.size(), 2u);
    EXPECT_EQ(heuristic[0].tokens, (std::vector<int32_t>{0, 0, 3}));
    EXPECT_NEAR(heuristic[0].score, (std::log(.3) + std::log(.4) + std::log(.9)) / 27, 1e-6);
    // At max length every top-W candidate finishes: (0,0,0) at -5.12 beats (0,1,*) at -5.59.
    EXPECT_EQ(heuristic[1].tokens, (std::vector<int32_t>{0, 0, 0}));
    EXPECT_NEAR(heuristic[1].score, (std::log(.3) + std::log(.4) + std::log(.05)) / 27, 1e-6);
}

// Beam requests next to greedy ones in a cache small enough that the greedy requests get preempted and chunked:
// every output still equals its golden, and the pool is empty afterwards.
TEST(BeamSearch, SharesTheEngineWithPreemptedGreedyRequests) {
    const Golden g = load_golden("llama");
    std::vector<const BeamCase*> beam_cases;
    const std::vector<BeamCase> cases = load_beam_cases();
    for (const auto& c : cases)
        if (c.family == "llama" && c.req.beam_width >= 4) beam_cases.push_back(&c);
    ASSERT_GE(beam_cases.size(), 6u);
    EngineConfig cfg;
    cfg.block_size = 4;
    cfg.kv_cache_mib = 1;  // 2048 tokens of llama KV (512 B/token): 512 blocks
    cfg.max_num_batched_tokens = 128;
    cfg.max_num_seqs = 128;
    Engine engine(Model::load(g.dir), cfg);
    // Everything is queued before the loop starts, so the schedule (and which requests get preempted) does not
    // depend on how submissions interleave with engine steps on a loaded machine.
    std::vector<std::shared_ptr<RequestHandle>> beams, greedy;
    for (const BeamCase* c : beam_cases) {
        RequestOptions o;
        o.prompt = c->req.prompt;
        o.max_tokens = c->req.max_new_tokens;
        o.beam_width = c->req.beam_width;
        o.length_penalty = c->req.length_penalty;
        o.early_stopping = c->req.early_stopping;
        o.num_return_sequences = c->req.num_return_sequences;
        o.stop_token_ids = c->req.stop_ids;
        beams.push_back(engine.submit(o));
        for (int k = 0; k < 16; ++k) {
            RequestOptions gr;
            gr.prompt = g.prompts[2];
            gr.max_tokens = 24;
            gr.sampling.temperature = 0;
            greedy.push_back(engine.submit(gr));
        }
    }
    engine.start();
    for (size_t i = 0; i < beams.size(); ++i) {
        std::vector<TokenEvent> evs;
        while (!beams[i]->wait(evs, std::chrono::milliseconds(100))) {
        }
        ASSERT_EQ(beams[i]->finish_reason() == FinishReason::Error, false) << beams[i]->error();
        ASSERT_EQ(beams[i]->beams().size(), beam_cases[i]->sequences.size()) << i;
        for (size_t k = 0; k < beam_cases[i]->sequences.size(); ++k)
            EXPECT_EQ(beams[i]->beams()[k].tokens, beam_cases[i]->sequences[k]) << i << " beam " << k;
    }
    for (auto& h : greedy) {
        std::vector<TokenEvent> evs;
        while (!h->wait(evs, std::chrono::milliseconds(100))) {
        }
        std::vector<int32_t> toks;
        for (const auto& e : evs) toks.push_back(e.token);
        EXPECT_EQ(toks, g.greedy[2]);
    }
    engine.stop(true);
    const EngineMetrics m = engine.metrics();
    EXPECT_EQ(m.kv_blocks_in_use, 0);
    EXPECT_GT(m.preemptions, 0) << "the cache must be tight enough to preempt (" << m.kv_blocks_total << " blocks)";
}

TEST(BeamSearch, RejectsBadOptions) {
    const Golden g = load_golden("llama");
    Engine engine(Model::load(g.dir), EngineConfig{});
    RequestOptions o;
    o.prompt = {1, 2};
    o.beam_width = 2;
    o.num_return_sequences = 3;
    EXPECT_THROW(engine.submit(o), std::invalid_argument);
    o.num_return_sequences = 1;
    o.spec_ngram = 2;
    EXPECT_THROW(engine.submit(o), std::invalid_argument);
    o.spec_ngram = 0;
    o.beam_width = 65;
    EXPECT_THROW(engine.submit(o), std::invalid_argument);
    engine.stop(false);
}

}  // namespace
}  // namespace moeinfer::test
