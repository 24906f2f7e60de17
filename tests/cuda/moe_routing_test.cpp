// MoE routing on the GPU against the CPU: route_topk (ids exact, weights to fp32 tolerance), the stable permutation
// (exact), gather_rows, combine_rows, combine_add_rms_norm and add_combined_rows.
#include <gtest/gtest.h>

#include <cmath>

#include "backends/cpu/moe.h"
#include "backends/cuda/ops.h"
#include "cuda/cuda_test_util.h"

namespace moeinfer::cuda {
namespace {

using namespace testing;

class MoeTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t, bool>> {};  // (T, E, k, norm)

// route_topk on the GPU against the CPU's: ids exact, weights to fp32 tolerance.
void expect_topk_matches_cpu(const std::vector<float>& logits, int64_t T, int64_t E, int64_t k, bool norm) {
    std::vector<int32_t> ids_want(T * k);
    std::vector<float> w_want(T * k);
    cpu::route_topk(logits.data(), T, E, k, norm, ids_want.data(), w_want.data());
    DeviceBuffer dl = to_device(logits), dids = poisoned(T * k, 4), dw = poisoned(T * k, 4);
    route_topk(dl.as<float>(), T, E, k, norm, dids.as<int32_t>(), dw.as<float>(), nullptr);
    EXPECT_EQ(to_host<int32_t>(dids, T * k), ids_want);
    expect_close(to_host<float>(dw, T * k), w_want, kFp32Rtol, 1e-7, "routing weights");
}

TEST_P(MoeTest, RouteTopkMatchesCpu) {
    MOEINFER_REQUIRE_GPU();
    const auto [T, E, k, norm] = GetParam();
    expect_topk_matches_cpu(random_vector(T * E, 31, 2.0f), T, E, k, norm);
}

// Many equal logits (five values, +0 beside -0) across and within lanes, up to the 32 logits a lane holds at
// E = 1000: the same experts as the CPU, whose ties go to the lower id.
TEST(MoeTopk, TiesGoToTheLowerIdAsOnTheCpu) {
    MOEINFER_REQUIRE_GPU();
    for (const auto& [T, E, k] : {std::make_tuple(4, 128, 8), std::make_tuple(3, 1000, 40), std::make_tuple(2, 70, 70)}) {
        SCOPED_TRACE("E " + std::to_string(E) + " k " + std::to_string(k));
        std::vector<float> logits = random_vector(T * E, 51, 2.0f);
        const float levels[] = {0.0f, -0.0f, 0.5f, -1.0f, 1.25f};
        for (size_t i = 0; i < logits.size(); ++i) logits[i] = levels[size_t(std::abs(logits[i]) * 1000.0f) % 5];
        for (const bool norm : {true, false}) expect_topk_matches_cpu(logits, T, E, k, norm);
    }
}

TEST_P(MoeTest, PermuteGatherCombineMatchCpu) {
    MOEINFER_REQUIRE_GPU();
    const auto [T, E, k, norm] = GetParam();
    const int64_t n = 67;
    const std::vector<float> logits = random_vector(T * E, 41, 2.0f);
    std::vector<int32_t> ids(T * k);
    std::vector<float> weights(T * k);
    cpu::route_topk(logits.data(), T, E, k, norm, ids.data(), weights.data());
    const cpu::ExpertPermutation perm = cpu::permute_by_expert(ids.data(), T, k, E);

    const int64_t N = T * k;
    DeviceBuffer dids = to_device(ids), dws(sizeof(int32_t) * moe_permute_workspace_ints(N, E));
    DeviceBuffer doff = poisoned(E + 1, 4), dact = poisoned(E, 4), drt = poisoned(N, 4), dsr = poisoned(N, 4);
    moe_permute(dids.as<int32_t>(), T, k, E, dws.as<int32_t>(), doff.as<int32_t>(), dact.as<int32_t>(),
                drt.as<int32_t>(), dsr.as<int32_t>(), nullptr);
    const std::vector<int32_t> off = to_host<int32_t>(doff, E + 1);
    EXPECT_EQ(std::vector<int64_t>(off.begin(), off.end()), perm.offsets);
    std::vector<int32_t> active;  // the experts with rows, ascending, then -1s
    for (int64_t e = 0; e < E; ++e)
        if (perm.offsets[e + 1] > perm.offsets[e]) active.push_back(int32_t(e));
    active.resize(E, -1);
    EXPECT_EQ(to_host<int32_t>(dact, E), active);
    EXPECT_EQ(to_host<int32_t>(drt, N), perm.row_token);
    EXPECT_EQ(to_host<int32_t>(dsr, N), perm.slot_row);

    // gather: bit-exact copies of bf16 rows.
    const std::vector<float> x = round_bf16(random_vector(T * n, 42));
    std::vector<float> xp_want(N * n);
    cpu::gather_rows(x.data(), perm, n, xp_want.data());
    DeviceBuffer dx = to_device_bf16(x), dxp = poisoned(N * n, 2);
    gather_rows(dx.as<bf16>(), drt.as<int32_t>(), N, n, dxp.as<bf16>(), nullptr);
    EXPECT_EQ(to_host_bf16(dxp, N * n), xp_want);

    // combine, accumulating onto a non-zero output as the CPU's += does.
    const std::vector<float> y = round_bf16(random_vector(N * n, 43));
    std::vector<float> out_want = random_vector(T * n, 44);
    DeviceBuffer dy = to_device_bf16(y), dwt = to_device(weights), dout = to_device(out_want);
    cpu::combine_rows(y.data(), perm, weights.data(), T, k, n, out_want.data());
    combine_rows(dy.as<bf16>(), dsr.as<int32_t>(), dwt.as<float>(), T, k, n, true, dout.as<float>(), nullptr);
    expect_close(to_host<float>(dout, T * n), out_want, kFp32Rtol, 1e-5, "combine_rows");
}

// combine_add_rms_norm == combine_rows into zeros, then add_rms_norm of that fp32 delta: bit-identical.
TEST(MoeCombine, AddNormEqualsCombineThenAddNorm) {
    MOEINFER_REQUIRE_GPU();
    const int64_t T = 3, k = 4, N = T * k, n = 1000;
    const std::vector<float> y = round_bf16(random_vector(N * n, 61)), res = random_vector(T * n, 62);
    const std::vector<float> weights = random_vector(N, 63), nw = random_vector(n, 64);
    std::vector<int32_t> slot_row(N);
    for (int64_t i = 0; i < N; ++i) slot_row[i] = int32_t((i * 5) % N);  // a permutation
    DeviceBuffer dy = to_device_bf16(y), dsr = to_device(slot_row), dwt = to_device(weights), dnw = to_device(nw);
    DeviceBuffer dres1 = to_device(res), dres2 = to_device(res), dsum = to_device(std::vector<float>(T * n, 0.0f));
    DeviceBuffer dxn1 = poisoned(T * n, 2), dxn2 = poisoned(T * n, 2);
    combine_rows(dy.as<bf16>(), dsr.as<int32_t>(), dwt.as<float>(), T, k, n, false, dsum.as<float>(), nullptr);
    add_rms_norm(dsum.as<float>(), dres1.as<float>(), dnw.as<float>(), 1e-5f, T, n, dxn1.as<bf16>(), nullptr);
    combine_add_rms_norm(dy.as<bf16>(), dsr.as<int32_t>(), dwt.as<float>(), k, dres2.as<float>(), dnw.as<float>(),
                         1e-5f, T, n, dxn2.as<bf16>(), nullptr);
    EXPECT_EQ(to_host<float>(dres2, T * n), to_host<float>(dres1, T * n));
    EXPECT_EQ(to_host_bf16(dxn2, T * n), to_host_bf16(dxn1, T * n));
    // add_combined_rows (decode steps, the norm left to the next product) leaves the same residual, bit for bit.
    DeviceBuffer dres3 = to_device(res);
    add_combined_rows(dy.as<bf16>(), dsr.as<int32_t>(), dwt.as<float>(), T, k, n, dres3.as<float>(), nullptr);
    EXPECT_EQ(to_host<float>(dres3, T * n), to_host<float>(dres1, T * n));
    // No slot_row: rows in (token, slot) order, as an identity slot_row gives them.
    std::vector<int32_t> identity(N);
    for (int64_t i = 0; i < N; ++i) identity[i] = int32_t(i);
    DeviceBuffer did = to_device(identity), dres4 = to_device(res), dres5 = to_device(res);
    add_combined_rows(dy.as<bf16>(), did.as<int32_t>(), dwt.as<float>(), T, k, n, dres4.as<float>(), nullptr);
    add_combined_rows(dy.as<bf16>(), nullptr, dwt.as<float>(), T, k, n, dres5.as<float>(), nullptr);
    EXPECT_EQ(to_host<float>(dres5, T * n), to_host<float>(dres4, T * n));
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, MoeTest,
    ::testing::Values(std::make_tuple(1, 8, 2, true), std::make_tuple(7, 8, 8, false),  // k == E: soft routing
                      std::make_tuple(33, 60, 4, false), std::make_tuple(769, 128, 8, true),
                      std::make_tuple(1, 1, 1, true), std::make_tuple(300, 256, 8, true),
                      std::make_tuple(5, 33, 33, true)));

}  // namespace
}  // namespace moeinfer::cuda
