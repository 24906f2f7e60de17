// cuBLASLt bf16 GEMM (y = x · Wᵀ, bf16 and fp32 outputs) against cpu::matmul with the same bf16 weights.
#include <gtest/gtest.h>

#include "backends/cpu/matmul.h"
#include "backends/cuda/gemm.h"
#include "cuda/cuda_test_util.h"

namespace moeinfer::cuda {
namespace {

using namespace testing;

class GemmTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};  // (T, out, in)

TEST_P(GemmTest, MatchesCpuMatmul) {
    MOEINFER_REQUIRE_GPU();
    const auto [T, out, in] = GetParam();
    const std::vector<float> x = round_bf16(random_vector(T * in, 21));
    const std::vector<float> w = random_vector(out * in, 22, 0.05f);
    std::vector<uint16_t> w_bf16(w.size());
    for (size_t i = 0; i < w.size(); ++i) w_bf16[i] = fp32_to_bf16(w[i]);
    Tensor wt;
    wt.name = "w";
    wt.dtype = DType::BF16;
    wt.shape = {out, in};
    wt.data = w_bf16.data();
    std::vector<float> want(T * out);
    cpu::matmul(x.data(), T, wt, want.data());

    Gemm gemm;
    DeviceBuffer dx = to_device_bf16(x), dw = to_device(w_bf16);
    DeviceBuffer dy = poisoned(T * out, 2), dy32 = poisoned(T * out, 4);
    gemm.matmul(dx.as<bf16>(), T, dw.as<bf16>(), out, in, dy.as<bf16>(), nullptr);
    gemm.matmul(dx.as<bf16>(), T, dw.as<bf16>(), out, in, dy32.as<float>(), nullptr);
    const double atol = 1e-2 * rms(want) + 1e-6;
    expect_close(to_host_bf16(dy, T * out), want, kBf16Rtol, atol, "bf16 output");
    // fp32 output: only the summation order differs from the CPU, so the tolerance is tight relative to the data.
    expect_close(to_host<float>(dy32, T * out), want, 1e-4, 1e-4 * rms(want), "fp32 output");
    // A second call reuses the cached plan and must give the same bits.
    DeviceBuffer dy2 = poisoned(T * out, 2);
    gemm.matmul(dx.as<bf16>(), T, dw.as<bf16>(), out, in, dy2.as<bf16>(), nullptr);
    EXPECT_EQ(to_host<uint16_t>(dy2, T * out), to_host<uint16_t>(dy, T * out));
}

INSTANTIATE_TEST_SUITE_P(OddSizes, GemmTest,
                         ::testing::Values(std::make_tuple(1, 769, 64), std::make_tuple(7, 33, 768),
                                           std::make_tuple(33, 64, 33), std::make_tuple(1, 4096, 4096),
                                           std::make_tuple(128, 769, 1024), std::make_tuple(769, 256, 512)));

}  // namespace
}  // namespace moeinfer::cuda
