// RMSNorm (plain and fused with the residual add) and SwiGLU on the GPU against cpu::rms_norm / cpu::silu_mul.
#include <gtest/gtest.h>

#include "backends/cpu/elementwise.h"
#include "backends/cuda/ops.h"
#include "cuda/cuda_test_util.h"

namespace moeinfer::cuda {
namespace {

using namespace testing;

class RowsTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t>> {};  // (rows, n)

TEST_P(RowsTest, RmsNormMatchesCpu) {
    MOEINFER_REQUIRE_GPU();
    const auto [rows, n] = GetParam();
    const std::vector<float> x = random_vector(rows * n, 1, 3.0f), w = random_vector(n, 2);
    std::vector<float> want(rows * n);
    cpu::rms_norm(x.data(), w.data(), 1e-6f, rows, n, want.data());
    DeviceBuffer dx = to_device(x), dw = to_device(w), dy = poisoned(rows * n, 2);
    rms_norm(dx.as<float>(), dw.as<float>(), 1e-6f, rows, n, dy.as<bf16>(), nullptr);
    expect_close(to_host_bf16(dy, rows * n), want, kBf16Rtol, 1e-2 * rms(want), "rms_norm");
}

TEST_P(RowsTest, AddRmsNormMatchesCpu) {
    MOEINFER_REQUIRE_GPU();
    const auto [rows, n] = GetParam();
    const std::vector<float> res = random_vector(rows * n, 3), w = random_vector(n, 4);
    const std::vector<float> delta = round_bf16(random_vector(rows * n, 5));
    std::vector<float> sum(rows * n), want(rows * n);
    for (int64_t i = 0; i < rows * n; ++i) sum[i] = res[i] + delta[i];
    cpu::rms_norm(sum.data(), w.data(), 1e-5f, rows, n, want.data());

    DeviceBuffer dres = to_device(res), dw = to_device(w), dd = to_device_bf16(delta), dy = poisoned(rows * n, 2);
    add_rms_norm(dd.as<bf16>(), dres.as<float>(), dw.as<float>(), 1e-5f, rows, n, dy.as<bf16>(), nullptr);
    expect_close(to_host<float>(dres, rows * n), sum, kFp32Rtol, 1e-6, "add_rms_norm residual (bf16 delta)");
    expect_close(to_host_bf16(dy, rows * n), want, kBf16Rtol, 1e-2 * rms(want), "add_rms_norm y (bf16 delta)");

    // fp32 delta (e.g. the MoE combine output) takes the same path.
    DeviceBuffer dres2 = to_device(res), dd2 = to_device(delta), dy2 = poisoned(rows * n, 2);
    add_rms_norm(dd2.as<float>(), dres2.as<float>(), dw.as<float>(), 1e-5f, rows, n, dy2.as<bf16>(), nullptr);
    expect_close(to_host<float>(dres2, rows * n), sum, kFp32Rtol, 1e-6, "add_rms_norm residual (fp32 delta)");
    expect_close(to_host_bf16(dy2, rows * n), want, kBf16Rtol, 1e-2 * rms(want), "add_rms_norm y (fp32 delta)");
}

TEST_P(RowsTest, SiluMulMatchesCpuOnFusedGateUp) {
    MOEINFER_REQUIRE_GPU();
    const auto [rows, n] = GetParam();
    const std::vector<float> gu = round_bf16(random_vector(rows * 2 * n, 6, 2.0f));  // [rows, 2n]: gate | up
    std::vector<float> want(rows * n);
    cpu::silu_mul(gu.data(), gu.data() + n, 2 * n, rows, n, want.data());
    DeviceBuffer dgu = to_device_bf16(gu), dout = poisoned(rows * n, 2);
    silu_mul(dgu.as<bf16>(), dgu.as<bf16>() + n, 2 * n, rows, n, dout.as<bf16>(), nullptr);
    expect_close(to_host_bf16(dout, rows * n), want, kBf16Rtol, 1e-2 * rms(want), "silu_mul");
}

INSTANTIATE_TEST_SUITE_P(OddSizes, RowsTest,
                         ::testing::Values(std::make_tuple(1, 1), std::make_tuple(1, 7), std::make_tuple(7, 33),
                                           std::make_tuple(33, 769), std::make_tuple(3, 4096),
                                           std::make_tuple(2, 5000)));

}  // namespace
}  // namespace moeinfer::cuda
