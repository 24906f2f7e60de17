// Sampler: greedy ties, seeded determinism, top-k / top-p / min-p / typical-p never leaving their allowed sets,
// empirical frequencies against the (filtered, biased) softmax (chi-square), parameter validation, logprobs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <set>
#include <stdexcept>
#include <vector>

#include "../ref/reference_ops.h"
#include "../ref/test_util.h"
#include "engine/sampler.h"
#include "models/model.h"

namespace moeinfer {
namespace {

using testing::random_vector;

SamplingParams params(float temperature, int32_t top_k = 0, float top_p = 1.f, float min_p = 0.f) {
    SamplingParams p;
    p.temperature = temperature;
    p.top_k = top_k;
    p.top_p = top_p;
    p.min_p = min_p;
    return p;
}

TEST(Sampler, GreedyIsArgmaxFirstOnTies) {
    const std::vector<float> logits = {0.1f, 2.f, -1.f, 2.f, 1.9f};
    std::mt19937_64 rng(1);
    EXPECT_EQ(sample_token(logits.data(), 5, params(0), rng, nullptr), 1);
    const std::vector<float> r = random_vector(769, 3);
    EXPECT_EQ(sample_token(r.data(), 769, params(0), rng, nullptr),
              std::max_element(r.begin(), r.end()) - r.begin());
}

TEST(Sampler, TopKOneIsGreedyAtAnyTemperature) {
    const std::vector<float> tie = {0.f, 5.f, 5.f, 1.f};
    for (float temp : {0.5f, 1.f, 10.f, 100.f}) {
        std::mt19937_64 rng(7);
        for (int i = 0; i < 200; ++i) {
            const std::vector<float> r = random_vector(33, uint32_t(i));
            ASSERT_EQ(sample_token(r.data(), 33, params(temp, 1), rng, nullptr),
                      std::max_element(r.begin(), r.end()) - r.begin());
            ASSERT_EQ(sample_token(tie.data(), 4, params(temp, 1), rng, nullptr), 1) << "tie must go to the lower id";
        }
    }
}

TEST(Sampler, SameSeedSameSequence) {
    const std::vector<float> logits = random_vector(50, 9);
    const SamplingParams p = params(0.8f, 20, 0.95f);
    auto draw = [&](uint64_t seed) {
        std::mt19937_64 rng(seed);
        std::vector<int32_t> out;
        for (int i = 0; i < 200; ++i) out.push_back(sample_token(logits.data(), 50, p, rng, nullptr));
        return out;
    };
    EXPECT_EQ(draw(42), draw(42));
    EXPECT_NE(draw(42), draw(43));
}

// Known distribution over 6 tokens, laid out unsorted so the filters must sort: probs by id.
const std::vector<double> kProbs = {0.05, 0.3, 0.02, 0.5, 0.03, 0.1};
std::vector<float> known_logits() {
    std::vector<float> l;
    for (double p : kProbs) l.push_back(float(std::log(p)) + 3.f);  // a shift must not matter
    return l;
}

std::set<int32_t> drawn_set(const SamplingParams& p, int n = 4000) {
    const std::vector<float> logits = known_logits();
    std::mt19937_64 rng(123);
    std::set<int32_t> seen;
    for (int i = 0; i < n; ++i) seen.insert(sample_token(logits.data(), int64_t(logits.size()), p, rng, nullptr));
    return seen;
}

TEST(Sampler, TopPKeepsTheSmallestPrefixReachingP) {
    EXPECT_EQ(drawn_set(params(1.f, 0, 0.7f)), (std::set<int32_t>{3, 1}));        // 0.5 + 0.3 >= 0.7
    EXPECT_EQ(drawn_set(params(1.f, 0, 0.85f)), (std::set<int32_t>{3, 1, 5}));    // + 0.1
    EXPECT_EQ(drawn_set(params(1.f, 0, 0.3f)), (std::set<int32_t>{3}));
    EXPECT_EQ(drawn_set(params(1.f, 2, 0.99f)), (std::set<int32_t>{3, 1}));       // top-k first
}

TEST(Sampler, MinPDropsTokensBelowFractionOfTheBest) {
    EXPECT_EQ(drawn_set(params(1.f, 0, 1.f, 0.25f)), (std::set<int32_t>{3, 1}));     // floor 0.125
    EXPECT_EQ(drawn_set(params(1.f, 0, 1.f, 0.15f)), (std::set<int32_t>{3, 1, 5}));  // floor 0.075
    EXPECT_EQ(drawn_set(params(1.f, 0, 1.f, 1.f)), (std::set<int32_t>{3}));
}

// Chi-square of `draws` samples against probabilities `want` (each cell expects >= ~100 draws).
double chi_square(const std::vector<float>& logits, const SamplingParams& p, const std::vector<double>& want,
                  int draws) {
    std::mt19937_64 rng(2024);
    std::vector<int> count(logits.size(), 0);
    for (int i = 0; i < draws; ++i) ++count[sample_token(logits.data(), int64_t(logits.size()), p, rng, nullptr)];
    double chi = 0;
    for (size_t i = 0; i < logits.size(); ++i) {
        const double e = want[i] * draws;
        if (e == 0) {
            EXPECT_EQ(count[i], 0) << "token " << i << " has probability 0";
            continue;
        }
        chi += (count[i] - e) * (count[i] - e) / e;
    }
    return chi;
}

// With 9 degrees of freedom P(chi² > 33.7) = 1e-4; the seed is fixed, so this is deterministic, and a wrong
// temperature or an off-by-one in the cumulative walk moves chi² into the hundreds.
TEST(Sampler, FrequenciesMatchSoftmax) {
    const std::vector<float> logits = random_vector(10, 31, 0.7f);
    const std::vector<double> p1 = ref::softmax(logits.data(), 10);
    EXPECT_LT(chi_square(logits, params(1.f), p1, 20000), 33.7);

    std::vector<float> scaled = logits;
    for (float& v : scaled) v /= 0.6f;
    const std::vector<double> p06 = ref::softmax(scaled.data(), 10);
    EXPECT_LT(chi_square(logits, params(0.6f), p06, 20000), 33.7);
    EXPECT_GT(chi_square(logits, params(1.f), p06, 20000), 100) << "the test must tell temperatures apart";

    // top_k = 4 renormalizes over the 4 best (3 degrees of freedom: P(chi² > 21.1) = 1e-4).
    std::vector<int> order(10);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int a, int b) { return logits[a] > logits[b]; });
    std::vector<double> pk(10, 0.0);
    double kept = 0;
    for (int i = 0; i < 4; ++i) kept += p1[order[i]];
    for (int i = 0; i < 4; ++i) pk[order[i]] = p1[order[i]] / kept;
    EXPECT_LT(chi_square(logits, params(1.f, 4), pk, 20000), 21.1);
}

TEST(SamplingParams, ValidateRejectsOutOfRange) {
    auto bad = [](auto mutate) {
        SamplingParams p;
        mutate(p);
        EXPECT_THROW(p.validate(), std::invalid_argument);
    };
    bad([](SamplingParams& p) { p.temperature = -0.1f; });
    bad([](SamplingParams& p) { p.temperature = NAN; });
    bad([](SamplingParams& p) { p.temperature = INFINITY; });
    bad([](SamplingParams& p) { p.top_k = -1; });
    bad([](SamplingParams& p) { p.top_p = 0.f; });
    bad([](SamplingParams& p) { p.top_p = 1.01f; });
    bad([](SamplingParams& p) { p.top_p = NAN; });
    bad([](SamplingParams& p) { p.min_p = -0.01f; });
    bad([](SamplingParams& p) { p.min_p = 1.5f; });
    bad([](SamplingParams& p) { p.typical_p = 0.f; });
    bad([](SamplingParams& p) { p.typical_p = 1.5f; });
    bad([](SamplingParams& p) { p.typical_p = NAN; });
    bad([](SamplingParams& p) { p.logit_bias = {{-1, 0.f}}; });
    bad([](SamplingParams& p) { p.logit_bias = {{5, 100.5f}}; });
    bad([](SamplingParams& p) { p.logit_bias = {{5, NAN}}; });
    bad([](SamplingParams& p) { p.logprobs = -1; });
    bad([](SamplingParams& p) { p.logprobs = 21; });

    SamplingParams ok;
    EXPECT_NO_THROW(ok.validate());
    ok.temperature = 0;
    ok.top_p = 1;
    ok.min_p = 1;
    ok.top_k = 1;
    ok.logprobs = 20;
    EXPECT_NO_THROW(ok.validate());
    try {
        SamplingParams p;
        p.top_p = 0;
        p.validate();
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("top_p"), std::string::npos) << "message must name the parameter";
    }
}

TEST(TokenLogprob, TopListIsSortedAndMatchesLogSoftmax) {
    const int64_t V = 769;
    const std::vector<float> logits = random_vector(V, 55, 3.0f);
    const std::vector<double> lp = ref::log_softmax(logits.data(), V);
    const TokenLogprob r = token_logprob(logits.data(), V, 17, 5);
    EXPECT_EQ(r.token, 17);
    EXPECT_NEAR(r.logprob, lp[17], 1e-5);
    ASSERT_EQ(r.top.size(), 5u);
    std::vector<int> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::stable_sort(order.begin(), order.end(), [&](int a, int b) { return lp[a] > lp[b]; });
    for (size_t i = 0; i < 5; ++i) {
        EXPECT_EQ(r.top[i].first, order[i]);
        EXPECT_NEAR(r.top[i].second, lp[order[i]], 1e-5);
        if (i > 0) {
            EXPECT_GE(r.top[i - 1].second, r.top[i].second);
        }
    }

    const TokenLogprob all = token_logprob(logits.data(), 7, 0, 100);  // top_k > V: the whole vocabulary
    ASSERT_EQ(all.top.size(), 7u);
    double sum = 0;
    for (const auto& [id, l] : all.top) sum += std::exp(double(l));
    EXPECT_NEAR(sum, 1.0, 1e-5);
    EXPECT_TRUE(token_logprob(logits.data(), V, 3, 0).top.empty());
}

// sample_token reports log-probabilities of the raw distribution, not of the temperature-scaled one.
TEST(TokenLogprob, SampleTokenReportsUnmodifiedDistribution) {
    const std::vector<float> logits = random_vector(33, 8);
    const std::vector<double> lp = ref::log_softmax(logits.data(), 33);
    SamplingParams p = params(0.5f, 10);
    p.logprobs = 3;
    std::mt19937_64 rng(4);
    for (int i = 0; i < 20; ++i) {
        TokenLogprob out;
        const int32_t t = sample_token(logits.data(), 33, p, rng, &out);
        EXPECT_EQ(out.token, t);
        EXPECT_NEAR(out.logprob, lp[t], 1e-5);
        EXPECT_EQ(out.top.size(), 3u);
    }
}

// kProbs has entropy 1.2713 nats; |surprisal - entropy| orders the ids 1 (0.067), 3 (0.578), 5 (1.03), 0, 4, 2.
// So typical-p can drop the most likely token (id 3) when the mass is small.
TEST(Sampler, TypicalPKeepsTokensNearestTheEntropy) {
    auto typical = [](float mass) {
        SamplingParams p = params(1.f);
        p.typical_p = mass;
        return p;
    };
    EXPECT_EQ(drawn_set(typical(0.2f)), (std::set<int32_t>{1}));
    EXPECT_EQ(drawn_set(typical(0.7f)), (std::set<int32_t>{1, 3}));
    EXPECT_EQ(drawn_set(typical(0.85f)), (std::set<int32_t>{1, 3, 5}));
    EXPECT_EQ(drawn_set(typical(1.f)).size(), 6u);
    // Measured on what top-k kept: over {3, 1} (0.625 / 0.375) the entropy is 0.66, and id 3 (surprisal 0.47) is
    // nearer to it than id 1 (0.98) — the reverse of the full distribution's order.
    SamplingParams k2 = typical(0.3f);
    k2.top_k = 2;
    EXPECT_EQ(drawn_set(k2), (std::set<int32_t>{3}));

    // Frequencies inside the kept set follow the renormalized softmax (2 dof: P(chi² > 18.4) = 1e-4).
    const std::vector<double> want = {0, 0.3 / 0.9, 0, 0.5 / 0.9, 0, 0.1 / 0.9};
    EXPECT_LT(chi_square(known_logits(), typical(0.85f), want, 20000), 18.4);
    const std::vector<double> unfiltered = kProbs;
    EXPECT_GT(chi_square(known_logits(), typical(0.85f), unfiltered, 20000), 100) << "the test must see the filter";
}

TEST(Sampler, LogitBiasShiftsTheDistribution) {
    const std::vector<float> logits = random_vector(10, 77, 0.7f);
    SamplingParams p = params(1.f);
    p.logit_bias = {{3, 1.5f}, {7, -2.f}, {0, -100.f}};
    std::vector<float> biased = logits;
    apply_logit_bias(biased.data(), 10, p);
    EXPECT_FLOAT_EQ(biased[3], logits[3] + 1.5f);
    EXPECT_FLOAT_EQ(biased[7], logits[7] - 2.f);
    EXPECT_FLOAT_EQ(biased[5], logits[5]);
    std::vector<float> shifted = logits;
    shifted[3] += 1.5f;
    shifted[7] -= 2.f;
    shifted[0] -= 100.f;
    const std::vector<double> want = ref::softmax(shifted.data(), 10);
    EXPECT_LT(chi_square(biased, p, want, 20000), 33.7);
    EXPECT_GT(chi_square(logits, p, want, 20000), 100) << "the test must tell biased from unbiased";

    // Greedy: a +100 bias forces a token, -100 bans the argmax.
    SamplingParams g = params(0);
    const int32_t best = int32_t(std::max_element(logits.begin(), logits.end()) - logits.begin());
    g.logit_bias = {{best, -100.f}};
    std::vector<float> banned = logits;
    apply_logit_bias(banned.data(), 10, g);
    std::mt19937_64 rng(1);
    EXPECT_NE(sample_token(banned.data(), 10, g, rng, nullptr), best);
    g.logit_bias = {{(best + 1) % 10, 100.f}};
    std::vector<float> forced = logits;
    apply_logit_bias(forced.data(), 10, g);
    EXPECT_EQ(sample_token(forced.data(), 10, g, rng, nullptr), (best + 1) % 10);
}

// sample_token's heap path (no full sort) draws the same tokens as a plain sort-then-walk reference, seed for
// seed, across filter combinations, ties and a vocabulary large enough that only a prefix is ever popped.
TEST(Sampler, LazyPathEqualsSortedReference) {
    auto reference = [](const std::vector<float>& l, const SamplingParams& p, std::mt19937_64& rng) {
        const int64_t V = int64_t(l.size());
        std::vector<int32_t> idx(V);
        std::iota(idx.begin(), idx.end(), 0);
        std::sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return l[a] > l[b] || (l[a] == l[b] && a < b); });
        int64_t n = p.top_k > 0 ? std::min<int64_t>(p.top_k, V) : V;
        std::vector<double> w(n);
        double sum = 0;
        for (int64_t i = 0; i < n; ++i) sum += w[i] = std::exp(double(l[idx[i]]) / p.temperature - double(l[idx[0]]) / p.temperature);
        double cum = 0;
        for (int64_t i = 0; p.top_p < 1 && i < n; ++i)
            if ((cum += w[i] / sum) >= p.top_p) n = i + 1;
        while (p.min_p > 0 && n > 1 && w[n - 1] < p.min_p) --n;
        double kept = 0;
        for (int64_t i = 0; i < n; ++i) kept += w[i];
        double u = std::uniform_real_distribution<double>(0.0, kept)(rng);
        int64_t i = 0;
        for (; i < n - 1; ++i)
            if ((u -= w[i]) < 0) break;
        return idx[i];
    };
    int mismatches = 0, draws = 0;
    for (int trial = 0; trial < 300; ++trial) {
        std::vector<float> l = random_vector(trial % 3 == 0 ? 4099 : 37, uint32_t(trial), 2.f);
        if (trial % 5 == 0)
            for (size_t i = 0; i < l.size(); i += 3) l[i] = l[0];  // many exact ties
        SamplingParams p = params(0.3f + 0.1f * float(trial % 9), trial % 4 == 1 ? 1 + trial % 40 : 0,
                                  trial % 3 == 2 ? 0.5f + 0.05f * float(trial % 10) : 1.f,
                                  trial % 7 == 3 ? 0.01f * float(trial % 5) : 0.f);
        std::mt19937_64 a{uint64_t(trial)}, b{uint64_t(trial)};
        for (int k = 0; k < 20; ++k, ++draws)
            mismatches += sample_token(l.data(), int64_t(l.size()), p, a, nullptr) != reference(l, p, b);
    }
    EXPECT_EQ(mismatches, 0) << "of " << draws;
}

// RowSummary's rule (the device's sampler; summarize_row is its host form) keeps the same tokens as the host sampler
// and draws them with the same probabilities: an inverse-CDF grid of u over summarize_row reproduces sampling_probs
// for temperature / top-k / top-p / min-p, ties at the top-k boundary included.
TEST(Sampler, RowSummaryDrawsTheSamplersDistribution) {
    const int64_t V = 300, N = 20000;
    std::vector<float> row = random_vector(V, 5, 2.0f);
    for (int64_t i = 0; i < V; i += 3) row[i] = std::round(row[i] * 2) / 2;  // ties
    for (const SamplingParams& sp : {params(0.7f, 25), params(1.0f, 0, 0.8f), params(0.9f, 40, 0.9f, 0.05f),
                                     params(1.3f, 1), params(0.5f, 0, 0.01f)}) {
        const std::vector<double> want = sampling_probs(row.data(), V, sp);
        std::vector<int64_t> count(V, 0);
        for (int64_t i = 0; i < N; ++i) {
            RowSummary s;
            s.temperature = sp.temperature;
            s.top_k = sp.top_k;
            s.top_p = sp.top_p;
            s.min_p = sp.min_p;
            s.u = float((i + 0.5) / N);
            summarize_row(row.data(), V, s);
            ++count[s.token];
        }
        for (int64_t t = 0; t < V; ++t) {
            if (want[t] == 0) {
                EXPECT_EQ(count[t], 0) << "token " << t << " is outside the sampler's kept set (k " << sp.top_k
                                       << ", p " << sp.top_p << ")";
            }
            EXPECT_NEAR(double(count[t]), want[t] * N, 2.0) << "token " << t;
        }
    }
}

// The sparse adjustments (what a device applies to its own row) equal the dense host forms applied in the engine's
// order: logit bias, penalties, then bans.
TEST(Sampler, SparseAdjustmentsEqualTheDenseForms) {
    const int64_t V = 500;
    std::mt19937_64 rng(3);
    for (int trial = 0; trial < 20; ++trial) {
        std::vector<float> row = random_vector(V, 100 + trial, 3.0f);
        SamplingParams p = params(1.0f);
        p.repetition_penalty = trial % 3 ? 1.3f : 1.0f;
        p.presence_penalty = trial % 2 ? 0.5f : 0.0f;
        p.frequency_penalty = trial % 4 ? 0.25f : 0.0f;
        if (trial % 5) p.logit_bias = {{7, 2.5f}, {int32_t(rng() % V), -1.0f}};
        std::vector<int32_t> prompt, generated, banned;
        for (int i = 0; i < 40; ++i) prompt.push_back(int32_t(rng() % V));
        for (int i = 0; i < 30; ++i) generated.push_back(int32_t(rng() % 60));  // repeats
        if (trial % 2) banned = {int32_t(rng() % V), 7};
        std::vector<float> dense = row;
        apply_logit_bias(dense.data(), V, p);
        apply_penalties(dense.data(), V, p, prompt, generated);
        for (int32_t id : banned) dense[id] = -std::numeric_limits<float>::infinity();
        const std::vector<LogitAdjust> a = logit_adjustments(p, prompt, generated, banned);
        std::vector<float> sparse = row;
        apply_adjustments(sparse.data(), a.data(), static_cast<int64_t>(a.size()));
        EXPECT_EQ(sparse, dense) << "trial " << trial;
        std::set<int32_t> ids;
        for (const LogitAdjust& x : a) EXPECT_TRUE(ids.insert(x.id).second) << "id " << x.id << " listed twice";
    }
}

}  // namespace
}  // namespace moeinfer
