// MoE routing kernels (route_topk, permute_by_expert, gather_rows, combine_rows) and the whole moe_forward layer
// against a textbook per-token reference that loops over each token's own experts.
#include <gtest/gtest.h>

#include <algorithm>
#include <deque>
#include <numeric>
#include <set>
#include <vector>

#include "../../ref/reference_ops.h"
#include "../../ref/test_util.h"
#include "backends/cpu/moe.h"
#include "layers/moe.h"

namespace moeinfer {
namespace {

using testing::OwnedTensor;
using testing::random_vector;

TEST(RouteTopk, MatchesReference) {
    const int64_t T = 7, E = 8;
    const std::vector<float> logits = random_vector(T * E, 21, 2.0f);
    for (int64_t k : {1, 2, 3, 8})
        for (bool normalize : {false, true}) {
            std::vector<int32_t> ids(T * k), want_ids(T * k);
            std::vector<float> w(T * k), want_w(T * k);
            cpu::route_topk(logits.data(), T, E, k, normalize, ids.data(), w.data());
            ref::route_topk(logits.data(), T, E, k, normalize, want_ids.data(), want_w.data());
            EXPECT_EQ(ids, want_ids) << "k = " << k << " normalize = " << normalize;
            EXPECT_TRUE(testing::all_close(w, want_w, 1e-6, 1e-7)) << "k = " << k << " normalize = " << normalize;
        }
}

// k == E: every expert, weighted by the full softmax, so weights sum to 1 even without renormalization.
TEST(RouteTopk, SoftRoutingUsesEveryExpert) {
    const int64_t T = 3, E = 5;
    const std::vector<float> logits = random_vector(T * E, 22);
    std::vector<int32_t> ids(T * E);
    std::vector<float> w(T * E);
    cpu::route_topk(logits.data(), T, E, E, false, ids.data(), w.data());
    for (int64_t t = 0; t < T; ++t) {
        std::vector<int32_t> sorted(ids.begin() + t * E, ids.begin() + (t + 1) * E);
        std::sort(sorted.begin(), sorted.end());
        for (int64_t e = 0; e < E; ++e) EXPECT_EQ(sorted[e], e);
        const double sum = std::accumulate(w.begin() + t * E, w.begin() + (t + 1) * E, 0.0);
        EXPECT_NEAR(sum, 1.0, 1e-6);
        for (int64_t s = 1; s < E; ++s) EXPECT_GE(w[t * E + s - 1], w[t * E + s]) << "best first";
    }
}

TEST(RouteTopk, TiesGoToLowerId) {
    const std::vector<float> logits = {1.f, 3.f, 3.f, 0.f, 3.f,   // three-way tie for the top
                                       2.f, 2.f, 2.f, 2.f, 2.f};  // all equal
    std::vector<int32_t> ids(2 * 3);
    std::vector<float> w(2 * 3);
    cpu::route_topk(logits.data(), 2, 5, 3, true, ids.data(), w.data());
    EXPECT_EQ(ids, (std::vector<int32_t>{1, 2, 4, 0, 1, 2}));
    for (float v : w) EXPECT_NEAR(v, 1.0 / 3, 1e-6);
}

TEST(PermuteByExpert, Invariants) {
    const int64_t T = 13, k = 3, E = 6;
    std::vector<int32_t> ids(T * k);
    std::mt19937 rng(5);
    for (int64_t t = 0; t < T; ++t) {  // k distinct experts per token, as routing gives; expert 5 never chosen
        std::vector<int32_t> e(E - 1);
        std::iota(e.begin(), e.end(), 0);
        std::shuffle(e.begin(), e.end(), rng);
        std::copy(e.begin(), e.begin() + k, ids.begin() + t * k);
    }
    const cpu::ExpertPermutation p = cpu::permute_by_expert(ids.data(), T, k, E);
    ASSERT_EQ(p.offsets.size(), size_t(E + 1));
    ASSERT_EQ(p.row_token.size(), size_t(T * k));
    ASSERT_EQ(p.slot_row.size(), size_t(T * k));
    EXPECT_EQ(p.offsets[0], 0);
    EXPECT_EQ(p.offsets[E], T * k);
    for (int64_t e = 0; e < E; ++e)
        EXPECT_EQ(p.offsets[e + 1] - p.offsets[e], std::count(ids.begin(), ids.end(), int32_t(e))) << "expert " << e;
    std::vector<int> hits(T * k, 0);
    for (int64_t t = 0; t < T; ++t)
        for (int64_t s = 0; s < k; ++s) {
            const int32_t row = p.slot_row[t * k + s], e = ids[t * k + s];
            ASSERT_GE(row, 0);
            ASSERT_LT(row, T * k);
            ++hits[row];
            EXPECT_GE(row, p.offsets[e]) << "assignment (" << t << "," << s << ") outside its expert's rows";
            EXPECT_LT(row, p.offsets[e + 1]) << "assignment (" << t << "," << s << ") outside its expert's rows";
            EXPECT_EQ(p.row_token[row], t);
        }
    for (int64_t r = 0; r < T * k; ++r) EXPECT_EQ(hits[r], 1) << "row " << r << " must hold exactly one assignment";
    for (int64_t e = 0; e < E; ++e)  // stable: token order within each expert's rows
        for (int64_t r = p.offsets[e] + 1; r < p.offsets[e + 1]; ++r) EXPECT_LT(p.row_token[r - 1], p.row_token[r]);
}

TEST(GatherCombine, MatchPerTokenLoops) {
    const int64_t T = 6, k = 2, E = 4, n = 7;
    const std::vector<int32_t> ids = {3, 0, 0, 1, 2, 3, 3, 2, 1, 0, 0, 2};
    const cpu::ExpertPermutation p = cpu::permute_by_expert(ids.data(), T, k, E);
    const std::vector<float> x = random_vector(T * n, 1), y = random_vector(T * k * n, 2), w = random_vector(T * k, 3);
    std::vector<float> xp(T * k * n);
    cpu::gather_rows(x.data(), p, n, xp.data());
    for (int64_t r = 0; r < T * k; ++r)
        for (int64_t i = 0; i < n; ++i) EXPECT_EQ(xp[r * n + i], x[p.row_token[r] * n + i]);

    std::vector<float> out = random_vector(T * n, 4), want = out;  // combine accumulates into out
    cpu::combine_rows(y.data(), p, w.data(), T, k, n, out.data());
    for (int64_t t = 0; t < T; ++t)
        for (int64_t s = 0; s < k; ++s)
            for (int64_t i = 0; i < n; ++i) want[t * n + i] += w[t * k + s] * y[p.slot_row[t * k + s] * n + i];
    EXPECT_TRUE(testing::all_close(out, want, 1e-6, 1e-6));
}

// Owns the expert tensors behind a MoeWeights (deque: stable addresses for the views).
struct MoeFixture {
    std::deque<OwnedTensor> owned;
    MoeWeights w;

    const Tensor& add(DType dt, int64_t rows, int64_t cols, uint32_t seed, float sd) {
        return owned.emplace_back(dt, rows, cols, seed, sd).tensor;
    }
    MoeFixture(DType dt, int64_t E, int64_t H, int64_t ff, int64_t k, bool normalize, bool shared, bool shared_gate) {
        uint32_t seed = 1000;
        w.router = add(DType::F32, E, H, seed++, 1.0f);
        for (int64_t e = 0; e < E; ++e) {
            w.gate.push_back(add(dt, ff, H, seed++, 0.3f));
            w.up.push_back(add(dt, ff, H, seed++, 0.3f));
            w.down.push_back(add(dt, H, ff, seed++, 0.3f));
        }
        w.top_k = k;
        w.normalize_topk = normalize;
        w.has_shared = shared;
        if (shared) {
            w.shared.gate = add(dt, 2 * ff, H, seed++, 0.3f);
            w.shared.up = add(dt, 2 * ff, H, seed++, 0.3f);
            w.shared.down = add(dt, H, 2 * ff, seed++, 0.3f);
            if (shared_gate) w.shared_gate = add(DType::F32, 1, H, seed++, 0.5f);
        }
    }
};

struct MoeCase {
    DType dtype;
    int64_t E, H, ff, k;
    bool normalize, shared, shared_gate;
};

class MoeForwardTest : public ::testing::TestWithParam<MoeCase> {};

TEST_P(MoeForwardTest, MatchesPerTokenReference) {
    const MoeCase c = GetParam();
    const MoeFixture f(c.dtype, c.E, c.H, c.ff, c.k, c.normalize, c.shared, c.shared_gate);
    const int64_t T = 9;
    const std::vector<float> x = random_vector(T * c.H, 77);

    // Precondition: tokens spread over several experts, so a combine that mixed tokens would be visible.
    std::vector<float> logits(T * c.E);
    ref::matmul(x.data(), T, ref::dequantize(f.w.router).data(), c.E, c.H, logits.data());
    std::set<int64_t> top1;
    for (int64_t t = 0; t < T; ++t)
        top1.insert(std::max_element(logits.begin() + t * c.E, logits.begin() + (t + 1) * c.E) - logits.begin() - t * c.E);
    ASSERT_GE(top1.size(), std::min<size_t>(3, c.E));

    std::vector<uint64_t> counts(c.E, 5), want_counts(c.E, 5);  // counts accumulate on top of earlier steps
    std::vector<float> out(T * c.H, 1e9f), want(T * c.H);      // out is overwritten, whatever it held
    moe_forward(f.w, x.data(), T, out.data(), counts);
    ref::moe(f.w, x.data(), T, want.data(), &want_counts);
    EXPECT_TRUE(testing::all_close(out, want, 1e-4, 1e-4));
    EXPECT_EQ(counts, want_counts);
    EXPECT_EQ(std::accumulate(counts.begin(), counts.end(), uint64_t{0}), uint64_t(5 * c.E + T * c.k));
}

INSTANTIATE_TEST_SUITE_P(
    Layers, MoeForwardTest,
    ::testing::Values(MoeCase{DType::F32, 8, 33, 7, 2, false, false, false},   // Mixtral-like, odd sizes
                      MoeCase{DType::F32, 8, 33, 7, 2, true, false, false},    // renormalized top-k
                      MoeCase{DType::F32, 6, 33, 7, 1, false, false, false},   // top-1
                      MoeCase{DType::F32, 4, 7, 1, 4, false, false, false},    // soft routing, ff = 1
                      MoeCase{DType::F32, 8, 33, 7, 2, false, true, true},     // Qwen2-MoE shared expert + gate
                      MoeCase{DType::F32, 8, 33, 7, 2, true, true, false},     // shared expert without a gate
                      MoeCase{DType::Q8_0, 8, 64, 32, 2, true, true, true},    // quantized experts
                      MoeCase{DType::Q4_0, 5, 32, 64, 3, false, false, false}),
    [](const auto& info) { return "case" + std::to_string(info.index); });

}  // namespace
}  // namespace moeinfer
