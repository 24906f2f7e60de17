// The model forward's glue kernels (model_ops.cu) against host references: embedding lookup, fp32 router logits
// (RMSNorm + product), the gated shared-expert add, next-token selection (greedy and sampled) and random fill.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>

#include "backends/cuda/ops.h"
#include "cuda/cuda_test_util.h"
#include "models/model.h"

namespace moeinfer::cuda {
namespace {

using namespace testing;

TEST(ModelOps, EmbedRowsGathersAsFp32) {
    MOEINFER_REQUIRE_GPU();
    const int64_t V = 37, H = 24;
    const std::vector<float> table = round_bf16(random_vector(V * H, 1));
    // -1 - r: the previous step's token for row r (here [9, 31, 2]).
    const std::vector<int32_t> ids = {5, 0, -3, 36, -1, 5}, previous = {9, 31, 2}, looked_up = {5, 0, 2, 36, 9, 5};
    DeviceBuffer dt = to_device_bf16(table), di = to_device(ids), dp = to_device(previous),
                 out = poisoned(ids.size() * H, 4);
    embed_rows(dt.as<bf16>(), di.as<int32_t>(), dp.as<int32_t>(), int64_t(ids.size()), H, out.as<float>(), nullptr);
    std::vector<float> want;
    for (int32_t id : looked_up) want.insert(want.end(), table.begin() + id * H, table.begin() + (id + 1) * H);
    EXPECT_EQ(to_host<float>(out, want.size()), want);
}

TEST(ModelOps, RouterLogitsNormalizeThenMultiplyInFp32) {
    MOEINFER_REQUIRE_GPU();
    // Per-token blocks (T < 16) and token tiles (T >= 16, a partial last tile, H not a multiple of 8).
    for (const auto& [T, E, H] : {std::make_tuple(1, 128, 2048), std::make_tuple(5, 60, 72), std::make_tuple(3, 8, 4096),
                                  std::make_tuple(37, 128, 2048), std::make_tuple(19, 12, 100)}) {
        const std::vector<float> x = random_vector(T * H, 2), nw = random_vector(H, 3, 0.3f);
        const std::vector<float> w = round_bf16(random_vector(E * H, 4, 0.1f));
        std::vector<float> want(T * E);
        for (int64_t t = 0; t < T; ++t) {
            double ss = 0;
            for (int64_t i = 0; i < H; ++i) ss += double(x[t * H + i]) * x[t * H + i];
            const double inv = 1.0 / std::sqrt(ss / H + 1e-6);
            for (int64_t e = 0; e < E; ++e) {
                double s = 0;
                for (int64_t i = 0; i < H; ++i) s += x[t * H + i] * inv * nw[i] * w[e * H + i];
                want[t * E + e] = float(s);
            }
        }
        DeviceBuffer dx = to_device(x), dn = to_device(nw), dw = to_device_bf16(w), out = poisoned(T * E, 4);
        router_logits(dx.as<float>(), dn.as<float>(), 1e-6f, dw.as<bf16>(), T, E, H, out.as<float>(), nullptr);
        expect_close(to_host<float>(out, want.size()), want, 1e-4, 1e-4 * rms(want), "router logits");
    }
}

// route_decode == router_logits, then route_topk, then rms_norm for the experts' input: the same logits, ids and
// weights bit for bit (one launch, the top-k by each token's first block from the mailbox), xn as rms_norm writes it
// (to a rounding). Three launches on the same mailbox: each must leave it empty for the next; the last one without
// the optional logits output.
TEST(ModelOps, RouteDecodeEqualsRouterLogitsThenTopk) {
    MOEINFER_REQUIRE_GPU();
    for (const auto& [T, E, k, H, norm] : {std::make_tuple(1, 128, 8, 2048, true), std::make_tuple(3, 60, 4, 72, false),
                                           std::make_tuple(8, 256, 8, 1024, true), std::make_tuple(2, 8, 8, 4096, true)}) {
        SCOPED_TRACE("T " + std::to_string(T) + " E " + std::to_string(E) + " H " + std::to_string(H));
        const std::vector<float> x = random_vector(T * H, 12), nw = random_vector(H, 13, 0.3f);
        const std::vector<float> w = round_bf16(random_vector(E * H, 14, 0.1f));
        DeviceBuffer dx = to_device(x), dn = to_device(nw), dw = to_device_bf16(w);
        DeviceBuffer logits1 = poisoned(T * E, 4), ids1 = poisoned(T * k, 4), w1 = poisoned(T * k, 4), xn1 = poisoned(T * H, 2);
        router_logits(dx.as<float>(), dn.as<float>(), 1e-6f, dw.as<bf16>(), T, E, H, logits1.as<float>(), nullptr);
        route_topk(logits1.as<float>(), T, E, k, norm, ids1.as<int32_t>(), w1.as<float>(), nullptr);
        rms_norm(dx.as<float>(), dn.as<float>(), 1e-6f, T, H, xn1.as<bf16>(), nullptr);
        const int64_t box_floats = kRouteDecodeMaxTokens * E;
        DeviceBuffer mailbox(sizeof(float) * box_floats);
        fill_mailbox(mailbox.as<float>(), box_floats, nullptr);
        for (int launch = 0; launch < 3; ++launch) {
            DeviceBuffer logits2 = poisoned(T * E, 4), ids2 = poisoned(T * k, 4), w2 = poisoned(T * k, 4), xn2 = poisoned(T * H, 2);
            route_decode(dx.as<float>(), dn.as<float>(), 1e-6f, dw.as<bf16>(), T, E, H, k, norm,
                         launch < 2 ? logits2.as<float>() : nullptr, ids2.as<int32_t>(), w2.as<float>(), xn2.as<bf16>(),
                         mailbox.as<float>(), nullptr);
            if (launch < 2) {
                EXPECT_EQ(to_host<float>(logits2, T * E), to_host<float>(logits1, T * E));
            }
            EXPECT_EQ(to_host<int32_t>(ids2, T * k), to_host<int32_t>(ids1, T * k));
            EXPECT_EQ(to_host<float>(w2, T * k), to_host<float>(w1, T * k));
            // Its own sum of squares (another order than rms_norm's): one bf16 rounding apart at most.
            expect_close(to_host_bf16(xn2, T * H), to_host_bf16(xn1, T * H), kBf16Rtol, 1e-6, "experts' input");
        }
        EXPECT_EQ(to_host<uint32_t>(mailbox, box_floats), std::vector<uint32_t>(box_floats, kMailboxEmpty));
    }
}

TEST(ModelOps, AddGatedAddsSigmoidWeightedRows) {
    MOEINFER_REQUIRE_GPU();
    const int64_t T = 3, H = 40;
    const std::vector<float> base = random_vector(T * H, 5), shared = round_bf16(random_vector(T * H, 6));
    const std::vector<float> gate = {-2.0f, 0.0f, 3.0f};
    for (bool gated : {false, true}) {
        DeviceBuffer out = to_device(base), ds = to_device_bf16(shared), dg = to_device(gate);
        add_gated(out.as<float>(), ds.as<bf16>(), gated ? dg.as<float>() : nullptr, T, H, nullptr);
        std::vector<float> want(T * H);
        for (int64_t t = 0; t < T; ++t)
            for (int64_t i = 0; i < H; ++i)
                want[t * H + i] = base[t * H + i] + (gated ? 1.0f / (1.0f + std::exp(-gate[t])) : 1.0f) * shared[t * H + i];
        expect_close(to_host<float>(out, want.size()), want, 1e-6, 1e-6, gated ? "gated" : "ungated");
    }
}

// summarize_rows with a workspace of its own; tokens into `ids`, logprobs into `lp`.
void summarize(SummarizeArgs a, DeviceBuffer& ids, DeviceBuffer& lp) {
    DeviceBuffer ws(summarize_workspace_bytes(a.rows, a.V));
    a.workspace = ws.get();
    a.token = ids.as<int32_t>();
    a.logprob = lp.as<float>();
    summarize_rows(a, nullptr);
    MOEINFER_CUDA_CHECK(cudaDeviceSynchronize());  // before the workspace goes
}

TEST(ModelOps, SummarizeRowsGivesArgmaxAndItsLogprob) {
    MOEINFER_REQUIRE_GPU();
    const int64_t V = 151936, R = 3;
    std::vector<float> logits = random_vector(R * V, 7, 3.0f);
    logits[1 * V + 77] = logits[1 * V + 99] = 50.0f;  // a tie: the lower id wins
    logits[2 * V + 9000] = logits[2 * V + 150000] = 40.0f;  // a tie between chunks
    DeviceBuffer dl = to_device(logits), ids = poisoned(R, 4), lp = poisoned(R, 4);
    DeviceBuffer params = to_device(std::vector<float>(kSummaryParams * R, 0.0f));  // temperature 0: greedy
    // Every pass, then the greedy-only path (no cut, no kept weights), each into fresh poisoned outputs.
    for (bool all_greedy : {false, true}) {
        SummarizeArgs a{dl.as<float>(), R, V, params.as<float>()};
        a.all_greedy = all_greedy;
        MOEINFER_CUDA_CHECK(cudaMemset(ids.get(), 0xff, ids.bytes()));
        MOEINFER_CUDA_CHECK(cudaMemset(lp.get(), 0xff, lp.bytes()));
        summarize(a, ids, lp);
        const std::vector<int32_t> got_ids = to_host<int32_t>(ids, R);
        const std::vector<float> got_lp = to_host<float>(lp, R);
        for (int64_t r = 0; r < R; ++r) {
            const float* row = logits.data() + r * V;
            const int64_t best = std::max_element(row, row + V) - row;
            double sum = 0;
            for (int64_t i = 0; i < V; ++i) sum += std::exp(double(row[i]) - row[best]);
            EXPECT_EQ(got_ids[r], best) << "row " << r << (all_greedy ? ", greedy path" : "");
            EXPECT_NEAR(got_lp[r], -std::log(sum), 1e-4) << "row " << r << (all_greedy ? ", greedy path" : "");
        }
        EXPECT_EQ(got_ids[1], 77);
        EXPECT_EQ(got_ids[2], 9000);
    }
}

// Sampling: N rows of the same logits at u = (i + ½)/N must hit token t about p_t·N times (a uniform grid through the
// inverse CDF: within one count per token, plus float rounding at interval ends), tokens outside the kept set
// (top-k, then top-p of what top-k kept, then min_p; ids sorted by logit desc, ties → lower id) never, and the host
// form (summarize_row, double) must pick the same tokens. V = 10000 spans three chunks of the device's passes (the CDF
// crosses chunk boundaries); "ties" rounds the logits to quarters so the top-k / top-p boundaries fall inside ties.
struct SamplingCase {
    int64_t V;
    int32_t top_k;
    float top_p;
    bool ties;
};

class SummarizeSampling : public ::testing::TestWithParam<SamplingCase> {};

TEST_P(SummarizeSampling, SamplesTheKeptTemperedDistribution) {
    MOEINFER_REQUIRE_GPU();
    const SamplingCase c = GetParam();
    const int64_t V = c.V, N = 4096;
    const float temperature = 0.7f, min_p = 0.02f;
    std::vector<float> row = random_vector(V, 9, 1.5f);
    if (c.ties)
        for (float& x : row) x = std::round(x * 4) / 4;
    std::vector<float> logits, params;
    for (int64_t i = 0; i < N; ++i) {
        logits.insert(logits.end(), row.begin(), row.end());
        params.insert(params.end(), {temperature, min_p, float((i + 0.5) / N), float(c.top_k), c.top_p});
    }
    ASSERT_EQ(params.size(), size_t(N * kSummaryParams));
    DeviceBuffer dl = to_device(logits), dp = to_device(params), ids = poisoned(N, 4), lp = poisoned(N, 4);
    summarize(SummarizeArgs{dl.as<float>(), N, V, dp.as<float>()}, ids, lp);
    const std::vector<int32_t> got = to_host<int32_t>(ids, N);

    // The kept set, straight from its definition.
    const float top = *std::max_element(row.begin(), row.end());
    auto weight = [&](int64_t t) { return std::exp((double(row[t]) - top) / temperature); };
    std::vector<int32_t> order(V);
    std::iota(order.begin(), order.end(), 0);
    std::sort(order.begin(), order.end(), [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
    int64_t n = c.top_k > 0 ? std::min<int64_t>(c.top_k, V) : V;
    double mass = 0, cum = 0;
    for (int64_t i = 0; i < n; ++i) mass += weight(order[i]);
    for (int64_t i = 0; c.top_p < 1 && i < n; ++i)
        if ((cum += weight(order[i])) >= c.top_p * mass) n = i + 1;
    std::vector<double> p(V, 0.0);
    double Z = 0;
    for (int64_t i = 0; i < n; ++i)
        if (weight(order[i]) >= min_p) Z += p[order[i]] = weight(order[i]);

    std::vector<int64_t> count(V, 0);
    int64_t host_equal = 0;
    for (int64_t i = 0; i < N; ++i) {
        ASSERT_GE(got[i], 0);
        ASSERT_LT(got[i], V);
        ++count[got[i]];
        RowSummary s;
        s.temperature = temperature;
        s.min_p = min_p;
        s.u = params[kSummaryParams * i + 2];
        s.top_k = c.top_k;
        s.top_p = c.top_p;
        summarize_row(row.data(), V, s);
        host_equal += s.token == got[i];
    }
    for (int64_t t = 0; t < V; ++t) {
        if (p[t] == 0) {
            EXPECT_EQ(count[t], 0) << "token " << t << " is not in the kept set";
        }
        EXPECT_NEAR(double(count[t]), p[t] / Z * N, 2.0) << "token " << t;
    }
    EXPECT_GE(host_equal, N - 4);  // boundaries may round differently on the device and the host
}

INSTANTIATE_TEST_SUITE_P(Params, SummarizeSampling,
                         ::testing::Values(SamplingCase{1000, 0, 1.0f, false}, SamplingCase{10000, 0, 1.0f, false},
                                           SamplingCase{10000, 50, 1.0f, false}, SamplingCase{10000, 0, 0.9f, false},
                                           SamplingCase{1000, 40, 0.8f, false}, SamplingCase{10000, 37, 0.8f, true},
                                           SamplingCase{10000, 0, 0.5f, true}),
                         [](const auto& info) {
                             const SamplingCase& c = info.param;
                             std::string name = "V";
                             name += std::to_string(c.V) + "_k" + std::to_string(c.top_k);
                             name += "_p" + std::to_string(int(c.top_p * 100));
                             if (c.ties) name += "_ties";
                             return name;
                         });

// Logit bias, penalties and bans applied on the device (LogitAdjust, per row) choose what the host form chooses on
// the adjusted row, and the reported logprob stays the raw row's — greedy and sampled rows, with and without entries.
TEST(ModelOps, SummarizeRowsAppliesAdjustments) {
    MOEINFER_REQUIRE_GPU();
    const int64_t V = 9000, R = 6;
    const std::vector<float> logits = random_vector(R * V, 21, 2.0f);
    std::vector<std::vector<LogitAdjust>> adjust(R);
    for (int64_t r = 0; r < R; ++r) {
        if (r == 3) continue;  // a row without adjustments between rows with them
        const int32_t best = int32_t(std::max_element(logits.begin() + r * V, logits.begin() + (r + 1) * V) -
                                     (logits.begin() + r * V));
        adjust[r].push_back({best, 0, 1, std::numeric_limits<float>::infinity()});  // ban the raw argmax
        adjust[r].push_back({int32_t(100 + r), 8.0f, 1, 0});                        // boost another
        adjust[r].push_back({int32_t(5000 + r), 0, 1.5f, 0.5f});                    // repetition + presence
    }
    std::vector<float> params;
    std::vector<int32_t> offsets{0};
    std::vector<LogitAdjust> flat;
    for (int64_t r = 0; r < R; ++r) {
        params.insert(params.end(), {r % 2 ? 0.9f : 0.0f, 0.0f, 0.37f, float(r == 5 ? 10 : 0), 1.0f});
        flat.insert(flat.end(), adjust[r].begin(), adjust[r].end());
        offsets.push_back(int32_t(flat.size()));
    }
    DeviceBuffer dl = to_device(logits), dp = to_device(params), doff = to_device(offsets), raw(flat.size() * 4),
                 ids = poisoned(R, 4), lp = poisoned(R, 4);
    DeviceBuffer da(flat.size() * sizeof(LogitAdjust));
    MOEINFER_CUDA_CHECK(cudaMemcpy(da.get(), flat.data(), flat.size() * sizeof(LogitAdjust), cudaMemcpyHostToDevice));
    summarize(SummarizeArgs{dl.as<float>(), R, V, dp.as<float>(), da.as<LogitAdjust>(), doff.as<int32_t>(), raw.as<float>()},
              ids, lp);
    const std::vector<int32_t> got = to_host<int32_t>(ids, R);
    const std::vector<float> got_lp = to_host<float>(lp, R);
    for (int64_t r = 0; r < R; ++r) {
        RowSummary s;
        s.temperature = params[kSummaryParams * r];
        s.u = params[kSummaryParams * r + 2];
        s.top_k = int32_t(params[kSummaryParams * r + 3]);
        s.adjust = adjust[r].data();
        s.num_adjust = int32_t(adjust[r].size());
        summarize_row(logits.data() + r * V, V, s);
        EXPECT_EQ(got[r], s.token) << "row " << r;
        EXPECT_NEAR(got_lp[r], s.logprob, 1e-4) << "row " << r;
        if (r != 3 && s.temperature == 0) {
            EXPECT_EQ(got[r], 100 + r) << "the boosted id wins the greedy row " << r;
        }
    }
}

TEST(ModelOps, FillRandomIsReproducibleAndBounded) {
    MOEINFER_REQUIRE_GPU();
    const int64_t n = 100003;
    DeviceBuffer a(n * 2), b(n * 2), c(n * 2);
    fill_random(a.as<bf16>(), n, 42, 0.5f, nullptr);
    fill_random(b.as<bf16>(), n, 42, 0.5f, nullptr);
    fill_random(c.as<bf16>(), n, 43, 0.5f, nullptr);
    const std::vector<float> va = to_host_bf16(a, n), vc = to_host_bf16(c, n);
    EXPECT_EQ(to_host<uint16_t>(a, n), to_host<uint16_t>(b, n));
    EXPECT_NE(va, vc);
    double mean = 0;
    for (float v : va) {
        ASSERT_LE(std::fabs(v), 0.5f);
        mean += v / n;
    }
    EXPECT_NEAR(mean, 0.0, 0.01);
    EXPECT_NEAR(rms(va), 0.5 / std::sqrt(3.0), 0.01);  // uniform on [-a, a]: rms a/√3
}

}  // namespace
}  // namespace moeinfer::cuda
