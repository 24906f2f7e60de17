// K-quant (Q4_K, Q5_K, Q6_K) and Q5_0/Q5_1 formats against reference blocks made by GGML's own code
// (tests/data/kquants/README.md): our dequantization must equal llama.cpp's bit for bit, and our quantizer
// must be as accurate as the reference one on the same data.
#include <gtest/gtest.h>

#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <string>
#include <vector>

#include "core/dtype.h"
#include "formats/dequant.h"
#include "formats/kquants.h"

#ifndef MOEINFER_SOURCE_DIR
#define MOEINFER_SOURCE_DIR "."
#endif

namespace moeinfer {
namespace {

struct Fixture {
    DType type = DType::Unknown;
    std::vector<float> x;        // [n] input
    std::vector<uint8_t> blocks;  // GGML's quantize_row_*_ref(x)
    std::vector<float> y;        // [n] GGML's dequantize_row_*(blocks)
};

Fixture load_fixture(const std::string& name) {
    const std::string path = std::string(MOEINFER_SOURCE_DIR) + "/tests/data/kquants/" + name + ".bin";
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open " + path);
    char magic[8];
    uint32_t type, n;
    f.read(magic, 8);
    f.read(reinterpret_cast<char*>(&type), 4);
    f.read(reinterpret_cast<char*>(&n), 4);
    if (std::memcmp(magic, "KQREF1\0\0", 8) != 0) throw std::runtime_error(path + ": bad magic");
    Fixture fx;
    fx.type = dtype_from_ggml(type);
    fx.x.resize(n);
    fx.y.resize(n);
    fx.blocks.resize(dtype_row_bytes(fx.type, n));
    f.read(reinterpret_cast<char*>(fx.x.data()), n * 4);
    f.read(reinterpret_cast<char*>(fx.blocks.data()), fx.blocks.size());
    f.read(reinterpret_cast<char*>(fx.y.data()), n * 4);
    if (!f) throw std::runtime_error(path + ": truncated");
    return fx;
}

double rms_error(const std::vector<float>& a, const std::vector<float>& b, size_t count) {
    double e = 0;
    for (size_t i = 0; i < count; ++i) e += double(a[i] - b[i]) * (a[i] - b[i]);
    return std::sqrt(e / count);
}

class KQuantRef : public ::testing::TestWithParam<const char*> {};

TEST_P(KQuantRef, DequantizeIsBitExactWithGgml) {
    const Fixture fx = load_fixture(GetParam());
    std::vector<float> y(fx.x.size());
    dequantize_row(fx.type, fx.blocks.data(), y.data(), int64_t(y.size()));
    for (size_t i = 0; i < y.size(); ++i)
        ASSERT_EQ(std::memcmp(&y[i], &fx.y[i], 4), 0) << GetParam() << " element " << i << ": " << y[i] << " vs "
                                                     << fx.y[i];
}

TEST_P(KQuantRef, QuantizerMatchesReferenceAccuracy) {
    const Fixture fx = load_fixture(GetParam());
    const int64_t n = int64_t(fx.x.size());
    std::vector<uint8_t> blocks(fx.blocks.size());
    std::vector<float> y(n);
    quantize_row(fx.type, fx.x.data(), blocks.data(), n);
    dequantize_row(fx.type, blocks.data(), y.data(), n);
    const size_t gauss = size_t(n) - 256;  // the last super-block holds edge cases
    const double ours = rms_error(fx.x, y, gauss), ref = rms_error(fx.x, fx.y, gauss);
    EXPECT_LE(ours, ref * 1.01) << GetParam();
    // Edge cases: zeros stay zero, everything is finite and no worse than 1.01x the reference per element group.
    for (int64_t i = gauss; i < n; ++i) ASSERT_TRUE(std::isfinite(y[i])) << GetParam() << " element " << i;
    for (int64_t i = gauss; i < gauss + 32; ++i) EXPECT_EQ(y[i], 0.0f) << GetParam() << " element " << i;
    for (int64_t g = int64_t(gauss); g < n; g += 32) {
        double eo = 0, er = 0;
        for (int64_t i = g; i < g + 32; ++i) {
            eo += double(fx.x[i] - y[i]) * (fx.x[i] - y[i]);
            er += double(fx.x[i] - fx.y[i]) * (fx.x[i] - fx.y[i]);
        }
        EXPECT_LE(std::sqrt(eo), std::sqrt(er) * 1.01 + 1e-12) << GetParam() << " edge group at " << g;
    }
}

INSTANTIATE_TEST_SUITE_P(Types, KQuantRef, ::testing::Values("q4_k", "q5_k", "q6_k", "q5_0", "q5_1"));

// Round trips on odd row counts and scales: error relative to the data's RMS stays at the format's level
// (measured against GGML's reference on 2^20 Gaussian values: Q4_K 0.071, Q5_K 0.036, Q6_K 0.018, Q5_0 0.043,
// Q5_1 0.038).
TEST(KQuant, RoundTripRelativeError) {
    const std::pair<DType, double> limits[] = {{DType::Q4_K, 0.075}, {DType::Q5_K, 0.038}, {DType::Q6_K, 0.019},
                                               {DType::Q5_0, 0.045}, {DType::Q5_1, 0.040}};
    std::mt19937 rng(7);
    for (const auto& [t, limit] : limits) {
        for (int64_t blocks : {1, 3, 7}) {
            // Q6_K's d is fp16: with weights much below 0.01 it goes subnormal and loses precision (as in GGML).
            for (float sigma : {0.02f, 1.0f, 300.0f}) {
                const int64_t n = blocks * 256;
                std::normal_distribution<float> g(0.0f, sigma);
                std::vector<float> x(n), y(n);
                for (float& v : x) v = g(rng);
                std::vector<uint8_t> buf(dtype_row_bytes(t, n));
                quantize_row(t, x.data(), buf.data(), n);
                dequantize_row(t, buf.data(), y.data(), n);
                double e = 0, s = 0;
                for (int64_t i = 0; i < n; ++i) {
                    e += double(x[i] - y[i]) * (x[i] - y[i]);
                    s += double(x[i]) * x[i];
                }
                EXPECT_LT(std::sqrt(e / s), limit * (blocks == 1 ? 1.25 : 1.1))
                    << dtype_name(t) << " blocks " << blocks << " sigma " << sigma;
            }
        }
    }
}

// The word-wide unpacking (the int8 GEMM's) agrees with the per-sub-block one (the dequantizer's) on random bytes.
TEST(KQuant, UnpackScalesMinsMatchesPerSubBlock) {
    std::mt19937 rng(5);
    for (int trial = 0; trial < 1000; ++trial) {
        uint8_t s[12];
        for (uint8_t& b : s) b = static_cast<uint8_t>(rng());
        uint64_t scales, mins;
        unpack_scales_mins(s, scales, mins);
        for (int j = 0; j < 8; ++j) {
            int sc, m;
            unpack_scale_min(s, j, sc, m);
            ASSERT_EQ(int((scales >> (8 * j)) & 0xff), sc) << "trial " << trial << " sub-block " << j;
            ASSERT_EQ(int((mins >> (8 * j)) & 0xff), m) << "trial " << trial << " sub-block " << j;
        }
    }
}

TEST(KQuant, AllZeroAndSizeErrors) {
    for (DType t : {DType::Q4_K, DType::Q5_K, DType::Q6_K, DType::Q5_0, DType::Q5_1}) {
        std::vector<float> x(256, 0.0f), y(256, 1.0f);
        std::vector<uint8_t> buf(dtype_row_bytes(t, 256));
        quantize_row(t, x.data(), buf.data(), 256);
        dequantize_row(t, buf.data(), y.data(), 256);
        for (float v : y) EXPECT_EQ(v, 0.0f) << dtype_name(t);
        EXPECT_THROW(dequantize_row(t, buf.data(), y.data(), 16), std::invalid_argument) << dtype_name(t);
    }
}

}  // namespace
}  // namespace moeinfer
