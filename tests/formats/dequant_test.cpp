// dequantize_row / quantize_row against naive byte-level references of the GGML block layouts, odd sizes.
#include "formats/dequant.h"

#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <random>
#include <stdexcept>
#include <vector>

#include "core/half.h"

namespace moeinfer {
namespace {

std::vector<float> random_row(int64_t n, uint32_t seed, float scale = 3.0f) {
    std::mt19937 rng(seed);
    std::normal_distribution<float> dist(0.0f, scale);
    std::vector<float> x(n);
    for (float& v : x) v = dist(rng);
    return x;
}

uint16_t u16_at(const uint8_t* p) {
    return static_cast<uint16_t>(p[0] | (p[1] << 8));
}

// Naive readers straight from the layout description.
std::vector<float> ref_dequant_q8_0(const std::vector<uint8_t>& b, int64_t n) {
    std::vector<float> y(n);
    for (int64_t i = 0; i < n; ++i) {
        const uint8_t* blk = b.data() + (i / 32) * 34;
        y[i] = static_cast<float>(static_cast<int8_t>(blk[2 + i % 32])) * fp16_to_fp32_scalar(u16_at(blk));
    }
    return y;
}

std::vector<float> ref_dequant_q4_0(const std::vector<uint8_t>& b, int64_t n) {
    std::vector<float> y(n);
    for (int64_t i = 0; i < n; ++i) {
        const uint8_t* blk = b.data() + (i / 32) * 18;
        const int j = static_cast<int>(i % 32);
        const int q = j < 16 ? (blk[2 + j] & 15) : (blk[2 + j - 16] >> 4);
        y[i] = static_cast<float>(q - 8) * fp16_to_fp32_scalar(u16_at(blk));
    }
    return y;
}

// Naive writers of GGML's reference quantizers, element by element.
std::vector<uint8_t> ref_quant_q8_0(const std::vector<float>& x) {
    std::vector<uint8_t> b(x.size() / 32 * 34);
    for (size_t blk = 0; blk < x.size() / 32; ++blk) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[blk * 32 + j]));
        const float d = amax / 127;
        const uint16_t dh = fp32_to_fp16_scalar(d);
        std::memcpy(&b[blk * 34], &dh, 2);
        for (int j = 0; j < 32; ++j)
            b[blk * 34 + 2 + j] =
                static_cast<uint8_t>(static_cast<int8_t>(d == 0 ? 0.0f : std::round(x[blk * 32 + j] * (1.0f / d))));
    }
    return b;
}

std::vector<uint8_t> ref_quant_q4_0(const std::vector<float>& x) {
    std::vector<uint8_t> b(x.size() / 32 * 18);
    for (size_t blk = 0; blk < x.size() / 32; ++blk) {
        const float* v = &x[blk * 32];
        int arg = 0;
        for (int j = 1; j < 32; ++j)
            if (std::fabs(v[j]) > std::fabs(v[arg])) arg = j;
        const float d = v[arg] / -8;
        const float id = d == 0 ? 0.0f : 1.0f / d;
        const uint16_t dh = fp32_to_fp16_scalar(d);
        std::memcpy(&b[blk * 18], &dh, 2);
        for (int j = 0; j < 32; ++j) {
            int q = static_cast<int8_t>(v[j] * id + 8.5f);
            q = std::min(q, 15);
            if (j < 16)
                b[blk * 18 + 2 + j] |= static_cast<uint8_t>(q);
            else
                b[blk * 18 + 2 + j - 16] |= static_cast<uint8_t>(q << 4);
        }
    }
    return b;
}

class BlockQuant : public ::testing::TestWithParam<int64_t> {};

TEST_P(BlockQuant, Q8_0MatchesReference) {
    const int64_t n = GetParam();
    const std::vector<float> x = random_row(n, static_cast<uint32_t>(n));
    std::vector<uint8_t> q(dtype_row_bytes(DType::Q8_0, n));
    quantize_row(DType::Q8_0, x.data(), q.data(), n);
    EXPECT_EQ(q, ref_quant_q8_0(x));
    std::vector<float> y(n);
    dequantize_row(DType::Q8_0, q.data(), y.data(), n);
    const std::vector<float> ref = ref_dequant_q8_0(q, n);
    for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(y[i], ref[i]) << i;
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[i / 32 * 32 + j]));
        // Half a step, plus the fp16 rounding of the scale times the largest code.
        ASSERT_LE(std::fabs(y[i] - x[i]), amax * (0.5f / 127 + 6e-4f)) << i;
    }
}

TEST_P(BlockQuant, Q4_0MatchesReference) {
    const int64_t n = GetParam();
    const std::vector<float> x = random_row(n, static_cast<uint32_t>(n) + 7);
    std::vector<uint8_t> q(dtype_row_bytes(DType::Q4_0, n));
    quantize_row(DType::Q4_0, x.data(), q.data(), n);
    EXPECT_EQ(q, ref_quant_q4_0(x));
    std::vector<float> y(n);
    dequantize_row(DType::Q4_0, q.data(), y.data(), n);
    const std::vector<float> ref = ref_dequant_q4_0(q, n);
    for (int64_t i = 0; i < n; ++i) {
        ASSERT_EQ(y[i], ref[i]) << i;
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[i / 32 * 32 + j]));
        // One full step (d = amax/8) at worst: the side opposite the extreme clamps at code 15.
        ASSERT_LE(std::fabs(y[i] - x[i]), amax / 8 * 1.01f) << i;
    }
}

INSTANTIATE_TEST_SUITE_P(Sizes, BlockQuant, ::testing::Values(32, 7 * 32, 769 * 32));

TEST(Dequant, Q4_0NibbleOrder) {
    std::vector<uint8_t> blk(18, 0x88);  // every code 8 -> 0
    const uint16_t d = fp32_to_fp16_scalar(0.5f);
    std::memcpy(blk.data(), &d, 2);
    blk[2] = 0x1f;  // element 0 = code 15, element 16 = code 1
    float y[32];
    dequantize_row(DType::Q4_0, blk.data(), y, 32);
    EXPECT_EQ(y[0], 3.5f);
    EXPECT_EQ(y[16], -3.5f);
    EXPECT_EQ(y[1], 0.0f);
}

TEST(Dequant, ZeroBlocks) {
    const std::vector<float> x(64, 0.0f);
    std::vector<uint8_t> q8(68), q4(36);
    quantize_row(DType::Q8_0, x.data(), q8.data(), 64);
    quantize_row(DType::Q4_0, x.data(), q4.data(), 64);
    std::vector<float> y(64, 1.0f);
    dequantize_row(DType::Q8_0, q8.data(), y.data(), 64);
    for (float v : y) EXPECT_EQ(v, 0.0f);
    dequantize_row(DType::Q4_0, q4.data(), y.data(), 64);
    for (float v : y) EXPECT_EQ(v, 0.0f);
}

TEST(Dequant, FloatTypesOddSizes) {
    for (int64_t n : {1, 7, 769}) {
        const std::vector<float> x = random_row(n, 3);
        std::vector<float> y(n);
        std::vector<uint8_t> buf(n * 4);
        quantize_row(DType::F32, x.data(), buf.data(), n);
        dequantize_row(DType::F32, buf.data(), y.data(), n);
        EXPECT_EQ(x, y);
        quantize_row(DType::F16, x.data(), buf.data(), n);
        dequantize_row(DType::F16, buf.data(), y.data(), n);
        for (int64_t i = 0; i < n; ++i) {
            EXPECT_EQ(y[i], fp16_to_fp32_scalar(fp32_to_fp16_scalar(x[i])));
            EXPECT_NEAR(y[i], x[i], std::fabs(x[i]) * 4.9e-4f + 1e-7f);
        }
        quantize_row(DType::BF16, x.data(), buf.data(), n);
        dequantize_row(DType::BF16, buf.data(), y.data(), n);
        for (int64_t i = 0; i < n; ++i) EXPECT_NEAR(y[i], x[i], std::fabs(x[i]) * 3.91e-3f);
    }
}

TEST(Dequant, RejectsUnsupportedTypesAndSizes) {
    float x[256] = {};
    uint8_t buf[1024] = {};
    try {
        dequantize_row(DType::Q3_K, buf, x, 256);
        FAIL() << "no exception";
    } catch (const std::invalid_argument& e) {
        EXPECT_NE(std::string(e.what()).find("Q3_K"), std::string::npos) << e.what();
    }
    EXPECT_THROW(quantize_row(DType::Q2_K, x, buf, 256), std::invalid_argument);
    EXPECT_THROW(quantize_row(DType::Q4_K, x, buf, 255), std::invalid_argument);
    EXPECT_THROW(quantize_row(DType::I32, x, buf, 4), std::invalid_argument);
    EXPECT_THROW(quantize_row(DType::Q8_0, x, buf, 33), std::invalid_argument);
    EXPECT_THROW(dequantize_row(DType::Q4_0, buf, x, 48), std::invalid_argument);
}

}  // namespace
}  // namespace moeinfer
