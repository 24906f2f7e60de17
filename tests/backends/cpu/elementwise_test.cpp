// rms_norm, silu_mul, add_inplace, softmax_row and log_softmax_row against fp64 references, at odd widths and with
// large-magnitude and -inf inputs where a naive exp overflows or a float normalizer loses precision.
#include <gtest/gtest.h>

#include <cmath>
#include <limits>
#include <vector>

#include "../../ref/reference_ops.h"
#include "../../ref/test_util.h"
#include "backends/cpu/elementwise.h"

namespace moeinfer {
namespace {

using testing::random_vector;

TEST(RmsNorm, MatchesReferenceAtOddWidths) {
    for (int64_t n : {1, 7, 33, 769}) {
        const int64_t rows = 5;
        const std::vector<float> x = random_vector(rows * n, uint32_t(n), 3.0f), w = random_vector(n, uint32_t(n + 1));
        std::vector<float> y(rows * n), want(rows * n);
        cpu::rms_norm(x.data(), w.data(), 1e-6f, rows, n, y.data());
        ref::rms_norm(x.data(), w.data(), 1e-6f, rows, n, want.data());
        EXPECT_TRUE(testing::all_close(y, want, 1e-5, 1e-6)) << "n = " << n;

        std::vector<float> inplace = x;  // y may alias x
        cpu::rms_norm(inplace.data(), w.data(), 1e-6f, rows, n, inplace.data());
        EXPECT_EQ(inplace, y) << "n = " << n;
    }
}

// eps matters for tiny rows: a zero row must give zeros, not NaN, and eps must be inside the sqrt.
TEST(RmsNorm, EpsInsideSqrt) {
    const std::vector<float> zero(8, 0.f), w(8, 1.f), tiny(8, 1e-3f);
    std::vector<float> y(8), want(8);
    cpu::rms_norm(zero.data(), w.data(), 1e-5f, 1, 8, y.data());
    for (float v : y) EXPECT_EQ(v, 0.f);
    cpu::rms_norm(tiny.data(), w.data(), 1e-5f, 1, 8, y.data());
    ref::rms_norm(tiny.data(), w.data(), 1e-5f, 1, 8, want.data());
    EXPECT_TRUE(testing::all_close(y, want, 1e-5, 0));  // 1e-3 / sqrt(1e-6 + 1e-5) ≈ 0.3015
}

TEST(SiluMul, MatchesReferenceWithStridedInput) {
    const int64_t rows = 3, n = 33, stride = 70;  // gate/up packed in one [rows, 70] buffer, as after a fused GEMM
    const std::vector<float> buf = random_vector(rows * stride, 8, 4.0f);
    const float* gate = buf.data();
    const float* up = buf.data() + 35;
    std::vector<float> out(rows * n), want(rows * n);
    cpu::silu_mul(gate, up, stride, rows, n, out.data());
    for (int64_t r = 0; r < rows; ++r)
        for (int64_t i = 0; i < n; ++i) want[r * n + i] = float(ref::silu(gate[r * stride + i]) * up[r * stride + i]);
    EXPECT_TRUE(testing::all_close(out, want, 1e-5, 1e-6));
}

TEST(SiluMul, ExtremeGates) {
    const std::vector<float> gate = {-100.f, -1e4f, 100.f, 0.f}, up = {2.f, 2.f, 2.f, 2.f};
    std::vector<float> out(4);
    cpu::silu_mul(gate.data(), up.data(), 4, 1, 4, out.data());
    EXPECT_NEAR(out[0], 0.f, 1e-30);
    EXPECT_EQ(out[1], 0.f);  // exp(1e4) overflows to inf; x / inf must be -0, not NaN
    EXPECT_FLOAT_EQ(out[2], 200.f);
    EXPECT_EQ(out[3], 0.f);
}

TEST(AddInplace, Adds) {
    std::vector<float> x = random_vector(7, 1);
    const std::vector<float> y = random_vector(7, 2), x0 = x;
    cpu::add_inplace(x.data(), y.data(), 7);
    for (int i = 0; i < 7; ++i) EXPECT_EQ(x[i], x0[i] + y[i]);
}

void expect_softmax_matches(std::vector<float> x, double atol) {
    const std::vector<double> p = ref::softmax(x.data(), int64_t(x.size()));
    const std::vector<double> lp = ref::log_softmax(x.data(), int64_t(x.size()));
    std::vector<float> s = x, l = x;
    cpu::softmax_row(s.data(), int64_t(s.size()));
    cpu::log_softmax_row(l.data(), int64_t(l.size()));
    double sum = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        EXPECT_NEAR(s[i], p[i], 1e-6 + 1e-6 * p[i]) << "softmax index " << i;
        if (std::isinf(float(lp[i])))  // beyond the fp32 range: must round to -inf
            EXPECT_EQ(l[i], float(lp[i])) << "log_softmax index " << i;
        else
            EXPECT_NEAR(l[i], lp[i], atol + 1e-7 * std::fabs(lp[i])) << "log_softmax index " << i;  // + fp32 rounding
        sum += s[i];
    }
    EXPECT_NEAR(sum, 1.0, 1e-5);
}

TEST(Softmax, RandomOddSizes) {
    for (int64_t n : {1, 7, 33, 769}) expect_softmax_matches(random_vector(n, uint32_t(n), 5.0f), 1e-5);
}

// exp(1000) overflows fp32 and fp64: the max must be subtracted first. log_softmax must stay precise too: x - max
// is exact, so rounding max + log(sum) to fp32 first (fp32 spacing is 6e-5 at 1000) is an avoidable error.
TEST(Softmax, LargeMagnitudes) {
    expect_softmax_matches({1000.f, 999.f, -1000.f, 998.5f}, 1e-5);
    expect_softmax_matches({-1000.f, -1001.f, -1003.f}, 1e-5);
    expect_softmax_matches({1e4f, 1e4f - 3.f, -1e4f, 1e4f - 0.5f}, 1e-5);
    expect_softmax_matches({3e38f, -3e38f, 3e38f}, 1e-5);
}

TEST(Softmax, NegativeInfinityGetsZero) {
    const float ninf = -std::numeric_limits<float>::infinity();
    expect_softmax_matches({ninf, 0.f, 1.f, ninf}, 1e-6);
    std::vector<float> x = {ninf, 2.f, ninf};
    cpu::softmax_row(x.data(), 3);
    EXPECT_EQ(x[0], 0.f);
    EXPECT_EQ(x[1], 1.f);
}

TEST(Softmax, EqualLogitsAreUniform) {
    std::vector<float> x(769, 50000.f);
    cpu::softmax_row(x.data(), 769);
    for (float v : x) EXPECT_NEAR(v, 1.0 / 769, 1e-9);
}

}  // namespace
}  // namespace moeinfer

namespace moeinfer {
namespace {

// The vector exp of the attention softmax against std::exp: relative error at float rounding, the shift applied,
// tails shorter than a vector, very negative inputs going to 0 and the returned sum.
TEST(ExpShifted, MatchesStdExp) {
    for (int64_t n : {1, 15, 16, 17, 100}) {
        std::vector<float> x = testing::random_vector(n, 40 + n, 30.0f);
        if (n > 2) x[1] = -1e30f;
        const float m = 3.5f;
        std::vector<float> got = x;
        const double sum = cpu::exp_shifted_sum(got.data(), m, n);
        double want_sum = 0;
        for (int64_t i = 0; i < n; ++i) {
            const double want = std::exp(double(x[i] - m));  // the argument rounded to float, as the kernel has it
            want_sum += want;
            EXPECT_NEAR(got[i], want, 4e-7 * want + 1e-30) << "x = " << x[i];
        }
        EXPECT_NEAR(sum, want_sum, 1e-6 * want_sum);
    }
}

}  // namespace
}  // namespace moeinfer
