// apply_rope against the reference rotation for both pair conventions, plus properties that hold whatever the
// implementation: position 0 is the identity, pair norms are kept, and q·k depends only on the position offset.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "../../ref/reference_ops.h"
#include "../../ref/test_util.h"
#include "backends/cpu/rope.h"

namespace moeinfer {
namespace {

using testing::random_vector;

std::vector<float> make_inv_freq(int64_t head_dim, double theta = 10000.0) {
    std::vector<float> f(head_dim / 2);
    for (int64_t i = 0; i < head_dim / 2; ++i) f[i] = float(std::pow(theta, -2.0 * double(i) / double(head_dim)));
    return f;
}

class RopeTest : public ::testing::TestWithParam<std::tuple<int64_t, bool>> {};

TEST_P(RopeTest, MatchesReference) {
    const auto [hd, interleaved] = GetParam();
    const int64_t T = 7, nh = 3;
    const std::vector<int32_t> pos = {0, 1, 2, 5, 33, 769, 4095};
    const std::vector<float> inv = make_inv_freq(hd);
    std::vector<float> x = random_vector(T * nh * hd, 17), want = x;
    cpu::apply_rope(x.data(), T, nh, hd, pos.data(), inv.data(), interleaved);
    ref::rope(want.data(), T, nh, hd, pos.data(), inv.data(), interleaved);
    EXPECT_TRUE(testing::all_close(x, want, 1e-5, 1e-5));
}

INSTANTIATE_TEST_SUITE_P(HeadDims, RopeTest,
                         ::testing::Combine(::testing::Values(int64_t{2}, int64_t{16}, int64_t{64}, int64_t{128}),
                                            ::testing::Bool()));

TEST(Rope, PositionZeroIsIdentity) {
    const int64_t hd = 16, nh = 2;
    const std::vector<float> inv = make_inv_freq(hd);
    const int32_t pos = 0;
    for (bool interleaved : {false, true}) {
        const std::vector<float> x0 = random_vector(nh * hd, 3);
        std::vector<float> x = x0;
        cpu::apply_rope(x.data(), 1, nh, hd, &pos, inv.data(), interleaved);
        EXPECT_EQ(x, x0);
    }
}

// The two conventions rotate different pairs: interleaved on x equals half-split on x with its pairs de-interleaved
// (x[2i] → slot i, x[2i+1] → slot i + d/2). A kernel with the conventions swapped fails this.
TEST(Rope, InterleavedIsHalfSplitOnDeinterleavedLayout) {
    const int64_t hd = 16, half = hd / 2;
    const std::vector<float> inv = make_inv_freq(hd);
    const int32_t pos = 7;
    const std::vector<float> x = random_vector(hd, 4);
    std::vector<float> a = x, b(hd);
    for (int64_t i = 0; i < half; ++i) {
        b[i] = x[2 * i];
        b[i + half] = x[2 * i + 1];
    }
    cpu::apply_rope(a.data(), 1, 1, hd, &pos, inv.data(), true);
    cpu::apply_rope(b.data(), 1, 1, hd, &pos, inv.data(), false);
    for (int64_t i = 0; i < half; ++i) {
        EXPECT_FLOAT_EQ(a[2 * i], b[i]);
        EXPECT_FLOAT_EQ(a[2 * i + 1], b[i + half]);
    }
    EXPECT_FALSE(testing::all_close(a, x, 1e-3, 1e-3)) << "rotation at position 7 changed nothing";
}

// RoPE's point: <rope(q, m), rope(k, n)> depends only on m - n. Also each rotated pair keeps its length.
TEST(Rope, RelativePositionAndNormInvariance) {
    const int64_t hd = 64;
    const std::vector<float> inv = make_inv_freq(hd);
    const std::vector<float> q = random_vector(hd, 5), k = random_vector(hd, 6);
    for (bool interleaved : {false, true}) {
        auto dot_at = [&](int32_t m, int32_t n) {
            std::vector<float> a = q, b = k;
            cpu::apply_rope(a.data(), 1, 1, hd, &m, inv.data(), interleaved);
            cpu::apply_rope(b.data(), 1, 1, hd, &n, inv.data(), interleaved);
            double d = 0;
            for (int64_t i = 0; i < hd; ++i) d += double(a[i]) * b[i];
            return d;
        };
        EXPECT_NEAR(dot_at(10, 3), dot_at(107, 100), 1e-3);
        EXPECT_NEAR(dot_at(3, 10), dot_at(50, 57), 1e-3);

        std::vector<float> r = q;
        const int32_t p = 123;
        cpu::apply_rope(r.data(), 1, 1, hd, &p, inv.data(), interleaved);
        for (int64_t i = 0; i < hd / 2; ++i) {
            const int64_t a = interleaved ? 2 * i : i, b = interleaved ? 2 * i + 1 : i + hd / 2;
            EXPECT_NEAR(std::hypot(r[a], r[b]), std::hypot(q[a], q[b]), 1e-5) << "pair " << i;
        }
    }
}

}  // namespace
}  // namespace moeinfer
