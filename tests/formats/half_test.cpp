// fp16 / bf16 conversion tests: exhaustive fp16 round trip, edge values, and round-to-nearest-even properties.
#include "core/half.h"

#include <gtest/gtest.h>

#include <bit>
#include <cmath>
#include <limits>
#include <random>

namespace moeinfer {
namespace {

uint16_t h_of(float f) {
    return fp32_to_fp16_scalar(f);
}
float f_of(uint16_t h) {
    return fp16_to_fp32_scalar(h);
}

TEST(Half, Fp16RoundTripsEveryValue) {
    for (uint32_t h = 0; h < 65536; ++h) {
        const float f = f_of(static_cast<uint16_t>(h));
        const bool nan = (h & 0x7c00) == 0x7c00 && (h & 0x3ff) != 0;
        if (nan) {
            EXPECT_TRUE(std::isnan(f)) << h;
            EXPECT_TRUE(std::isnan(f_of(h_of(f)))) << h;
        } else {
            EXPECT_EQ(h_of(f), h) << h;
        }
        // The dispatching versions (F16C when compiled in) agree bit for bit.
        if (!nan) {
            EXPECT_EQ(std::bit_cast<uint32_t>(fp16_to_fp32(static_cast<uint16_t>(h))), std::bit_cast<uint32_t>(f)) << h;
            EXPECT_EQ(fp32_to_fp16(f), h) << h;
        }
    }
}

TEST(Half, Fp16EdgeValues) {
    EXPECT_EQ(h_of(1.0f), 0x3c00);
    EXPECT_EQ(h_of(-2.0f), 0xc000);
    EXPECT_EQ(h_of(0.0f), 0x0000);
    EXPECT_EQ(h_of(-0.0f), 0x8000);
    EXPECT_EQ(h_of(65504.0f), 0x7bff);    // largest finite
    EXPECT_EQ(h_of(65519.996f), 0x7bff);  // just below the rounding midpoint
    EXPECT_EQ(h_of(65520.0f), 0x7c00);    // midpoint ties to even = inf
    EXPECT_EQ(h_of(1e10f), 0x7c00);
    EXPECT_EQ(h_of(-1e10f), 0xfc00);
    EXPECT_EQ(h_of(std::numeric_limits<float>::infinity()), 0x7c00);
    EXPECT_EQ(h_of(-std::numeric_limits<float>::infinity()), 0xfc00);
    EXPECT_EQ(h_of(std::ldexp(1.0f, -14)), 0x0400);  // smallest normal
    EXPECT_EQ(h_of(std::ldexp(1.0f, -24)), 0x0001);  // smallest subnormal
    EXPECT_EQ(h_of(std::ldexp(1023.0f, -24)), 0x03ff);
    EXPECT_EQ(h_of(std::ldexp(1.0f, -25)), 0x0000);     // tie to even (zero)
    EXPECT_EQ(h_of(std::ldexp(1.5f, -25)), 0x0001);     // above the tie
    EXPECT_EQ(h_of(std::ldexp(3.0f, -25)), 0x0002);     // 1.5 units ties to even 2
    EXPECT_EQ(h_of(std::ldexp(2047.0f, -25)), 0x0400);  // 1023.5 units rounds up into the normals
    EXPECT_EQ(h_of(std::ldexp(1.0f, -30)), 0x0000);
    EXPECT_EQ(h_of(-std::ldexp(1.0f, -24)), 0x8001);
    EXPECT_EQ(h_of(1.0f + std::ldexp(1.0f, -11)), 0x3c00);      // tie to even (down)
    EXPECT_EQ(h_of(1.0f + 3 * std::ldexp(1.0f, -11)), 0x3c02);  // tie to even (up)
    EXPECT_EQ(h_of(1.0f + std::ldexp(1.0f, -11) + std::ldexp(1.0f, -20)), 0x3c01);
    EXPECT_TRUE(std::isnan(f_of(h_of(std::numeric_limits<float>::quiet_NaN()))));
    EXPECT_TRUE(std::isnan(f_of(h_of(std::bit_cast<float>(0x7f800001u)))));  // payload only in low bits stays NaN
    EXPECT_EQ(f_of(0x7c00), std::numeric_limits<float>::infinity());
    EXPECT_EQ(f_of(0x0001), std::ldexp(1.0f, -24));
    EXPECT_EQ(std::bit_cast<uint32_t>(f_of(0x8000)), 0x80000000u);
}

// For random floats the result must be a nearest fp16, ties broken to even.
TEST(Half, Fp16RoundsToNearestEven) {
    std::mt19937 rng(1);
    for (int i = 0; i < 200000; ++i) {
        const float x = std::bit_cast<float>(static_cast<uint32_t>(rng()));
        if (std::isnan(x) || std::fabs(x) >= 65520.0f) continue;
        const uint16_t h = h_of(x);
        const double err = std::fabs(static_cast<double>(f_of(h)) - x);
        for (int delta : {-1, 1}) {
            const int n = (h & 0x7fff) + delta;
            if (n < 0 || n > 0x7bff) continue;
            const double nerr = std::fabs(static_cast<double>(f_of(static_cast<uint16_t>((h & 0x8000) | n))) - x);
            ASSERT_LE(err, nerr) << x;
            if (err == nerr) {
                ASSERT_EQ(h & 1, 0) << x;
            }
        }
        ASSERT_EQ(fp32_to_fp16(x), h) << x;
    }
}

TEST(Half, Bf16) {
    EXPECT_EQ(fp32_to_bf16(1.0f), 0x3f80);
    EXPECT_EQ(fp32_to_bf16(-2.0f), 0xc000);
    EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f808000u)), 0x3f80);  // tie, even stays
    EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f818000u)), 0x3f82);  // tie, odd rounds up
    EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f808001u)), 0x3f81);  // above the tie
    EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x3f807fffu)), 0x3f80);
    EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::infinity()), 0x7f80);
    EXPECT_EQ(fp32_to_bf16(std::numeric_limits<float>::max()), 0x7f80);  // rounds past the largest finite bf16
    EXPECT_EQ(fp32_to_bf16(-0.0f), 0x8000);
    EXPECT_EQ(fp32_to_bf16(std::bit_cast<float>(0x00000001u)), 0x0000);  // smallest subnormal
    EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(std::bit_cast<float>(0x7f800001u)))));
    EXPECT_TRUE(std::isnan(bf16_to_fp32(fp32_to_bf16(std::bit_cast<float>(0xffffffffu)))));
    for (uint32_t b = 0; b < 65536; ++b) {
        const float f = bf16_to_fp32(static_cast<uint16_t>(b));
        if (!std::isnan(f)) {
            EXPECT_EQ(fp32_to_bf16(f), b);
        }
    }
}

}  // namespace
}  // namespace moeinfer
