// gemv (skinny products), grouped_gemv / direct_expert_gemv (MoE experts, rows found on the device) and the
// tensor-core grouped GEMM (grouped_gemm: experts with a row or more each) against cpu::matmul with the same bf16
// weights, at odd sizes: rows 1..9 (crossing the 8-row pass), out not a multiple of the warp tile.
#include <gtest/gtest.h>

#include <random>

#include "backends/cpu/elementwise.h"
#include "backends/cpu/matmul.h"
#include "backends/cpu/moe.h"
#include "backends/cuda/ops.h"
#include "cuda/cuda_test_util.h"

namespace moeinfer::cuda {
namespace {

using namespace testing;

std::vector<uint16_t> to_bf16_bits(const std::vector<float>& w) {
    std::vector<uint16_t> b(w.size());
    for (size_t i = 0; i < w.size(); ++i) b[i] = fp32_to_bf16(w[i]);
    return b;
}

Tensor bf16_tensor(const uint16_t* data, int64_t rows, int64_t cols) {
    Tensor t;
    t.name = "w";
    t.dtype = DType::BF16;
    t.shape = {rows, cols};
    t.data = data;
    return t;
}

class GemvTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t>> {};  // (T, out, in)

TEST_P(GemvTest, MatchesCpuMatmul) {
    MOEINFER_REQUIRE_GPU();
    const auto [T, out, in] = GetParam();
    const std::vector<float> x = round_bf16(random_vector(T * in, 31));
    const std::vector<uint16_t> w = to_bf16_bits(random_vector(out * in, 32, 0.05f));
    std::vector<float> want(T * out);
    cpu::matmul(x.data(), T, bf16_tensor(w.data(), out, in), want.data());

    DeviceBuffer dx = to_device_bf16(x), dw = to_device(w);
    DeviceBuffer dy = poisoned(T * out, 2), dy32 = poisoned(T * out, 4);
    gemv(dx.as<bf16>(), T, dw.as<bf16>(), out, in, dy.as<bf16>(), nullptr);
    gemv(dx.as<bf16>(), T, dw.as<bf16>(), out, in, dy32.as<float>(), nullptr);
    expect_close(to_host_bf16(dy, T * out), want, kBf16Rtol, 1e-2 * rms(want) + 1e-6, "bf16 output");
    expect_close(to_host<float>(dy32, T * out), want, 1e-4, 1e-4 * rms(want), "fp32 output");
}

INSTANTIATE_TEST_SUITE_P(OddSizes, GemvTest,
                         ::testing::Values(std::make_tuple(1, 17, 8), std::make_tuple(1, 4096, 4096),
                                           std::make_tuple(3, 769, 1032), std::make_tuple(8, 33, 2048),
                                           std::make_tuple(9, 100, 4104), std::make_tuple(5, 1, 14336),
                                           std::make_tuple(1, 100, 14336), std::make_tuple(1, 33, 9000)));

// gemv_add adds the product into y: y0 + (the fp32 product gemv writes), at batch-1 and multi-row shapes.
TEST(GemvAdd, AddsTheProductIntoY) {
    MOEINFER_REQUIRE_GPU();
    for (const auto& [T, out, in] : {std::make_tuple(1, 2048, 4096), std::make_tuple(3, 77, 1032), std::make_tuple(1, 33, 768)}) {
        const std::vector<float> x = round_bf16(random_vector(T * in, 71)), y0 = random_vector(T * out, 72);
        const std::vector<uint16_t> w = to_bf16_bits(random_vector(out * in, 73, 0.05f));
        DeviceBuffer dx = to_device_bf16(x), dw = to_device(w), prod = poisoned(T * out, 4), dy = to_device(y0);
        gemv(dx.as<bf16>(), T, dw.as<bf16>(), out, in, prod.as<float>(), nullptr);
        gemv_add(dx.as<bf16>(), T, dw.as<bf16>(), out, in, dy.as<float>(), nullptr);
        std::vector<float> want = to_host<float>(prod, T * out);
        for (size_t i = 0; i < want.size(); ++i) want[i] += y0[i];
        EXPECT_EQ(to_host<float>(dy, T * out), want) << "T=" << T << " out=" << out << " in=" << in;
    }
}

// The fused SwiGLU input equals silu_mul followed by gemv, bit for bit (the same bf16 rounding of the activation).
TEST(GemvSwiglu, EqualsSiluMulThenGemv) {
    MOEINFER_REQUIRE_GPU();
    for (const auto& [T, out, ff] : {std::make_tuple(1, 64, 96), std::make_tuple(3, 200, 1024), std::make_tuple(8, 33, 768),
                                     std::make_tuple(1, 40, 9000)}) {
        const std::vector<float> gu = round_bf16(random_vector(T * 2 * ff, 51));
        const std::vector<uint16_t> w = to_bf16_bits(random_vector(out * ff, 52, 0.05f));
        DeviceBuffer dgu = to_device_bf16(gu), dw = to_device(w), act(T * ff * 2);
        DeviceBuffer fused = poisoned(T * out, 2), plain = poisoned(T * out, 2);
        gemv_swiglu(dgu.as<bf16>(), T, dw.as<bf16>(), out, ff, fused.as<bf16>(), nullptr);
        silu_mul(dgu.as<bf16>(), dgu.as<bf16>() + ff, 2 * ff, T, ff, act.as<bf16>(), nullptr);
        gemv(act.as<bf16>(), T, dw.as<bf16>(), out, ff, plain.as<bf16>(), nullptr);
        EXPECT_EQ(to_host<uint16_t>(fused, T * out), to_host<uint16_t>(plain, T * out)) << "T=" << T;
        // Added into fp32: y0 + the fp32 product of the same activation.
        const std::vector<float> y0 = random_vector(T * out, 53);
        DeviceBuffer prod = poisoned(T * out, 4), dy = to_device(y0);
        gemv(act.as<bf16>(), T, dw.as<bf16>(), out, ff, prod.as<float>(), nullptr);
        gemv_swiglu_add(dgu.as<bf16>(), T, dw.as<bf16>(), out, ff, dy.as<float>(), nullptr);
        std::vector<float> want = to_host<float>(prod, T * out);
        for (size_t i = 0; i < want.size(); ++i) want[i] += y0[i];
        EXPECT_EQ(to_host<float>(dy, T * out), want) << "T=" << T;
    }
}

// gemv_rms (the norm folded into the product) against rms_norm then gemv: the normalized rows may differ in the
// last bf16 bit where the sum of squares is added in another order, so the products agree to bf16 tolerance; and
// against the CPU's norm and product.
TEST(GemvRms, MatchesRmsNormThenGemv) {
    MOEINFER_REQUIRE_GPU();
    for (const auto& [T, out, in] : {std::make_tuple(1, 5120, 2048), std::make_tuple(3, 77, 1024), std::make_tuple(4, 33, 4096),
                                     std::make_tuple(2, 40, 256), std::make_tuple(1, 9, 12288)}) {
        const std::vector<float> x = random_vector(T * in, 81), nw = random_vector(in, 82);
        const std::vector<uint16_t> w = to_bf16_bits(random_vector(out * in, 83, 0.05f));
        const float eps = 1e-6f;
        std::vector<float> xn(T * in);
        cpu::rms_norm(x.data(), nw.data(), eps, T, in, xn.data());
        xn = round_bf16(xn);  // as the kernels round the normalized rows
        std::vector<float> want(T * out);
        cpu::matmul(xn.data(), T, bf16_tensor(w.data(), out, in), want.data());
        DeviceBuffer dx = to_device(x), dnw = to_device(nw), dw = to_device(w), dxn(T * in * 2);
        DeviceBuffer fused = poisoned(T * out, 2), plain = poisoned(T * out, 2);
        ASSERT_TRUE(gemv_rms_supported(T, in));
        gemv_rms(dx.as<float>(), dnw.as<float>(), eps, T, dw.as<bf16>(), out, in, fused.as<bf16>(), nullptr);
        DeviceBuffer fused32 = poisoned(T * out, 4);  // the fp32-output form (the lm_head's)
        gemv_rms(dx.as<float>(), dnw.as<float>(), eps, T, dw.as<bf16>(), out, in, fused32.as<float>(), nullptr);
        rms_norm(dx.as<float>(), dnw.as<float>(), eps, T, in, dxn.as<bf16>(), nullptr);
        gemv(dxn.as<bf16>(), T, dw.as<bf16>(), out, in, plain.as<bf16>(), nullptr);
        const std::string at = "T=" + std::to_string(T) + " out=" + std::to_string(out) + " in=" + std::to_string(in);
        expect_close(to_host_bf16(fused, T * out), want, kBf16Rtol, 1e-2 * rms(want) + 1e-6, "vs reference, " + at);
        expect_close(to_host_bf16(fused, T * out), to_host_bf16(plain, T * out), kBf16Rtol, 1e-2 * rms(want) + 1e-6,
                     "vs rms_norm + gemv, " + at);
        expect_close(to_host<float>(fused32, T * out), want, 1e-3, 1e-3 * rms(want) + 1e-6, "fp32 out vs reference, " + at);
    }
    EXPECT_FALSE(gemv_rms_supported(5, 2048));
    EXPECT_FALSE(gemv_rms_supported(1, 2040));
    EXPECT_THROW(gemv_rms(nullptr, nullptr, 1e-6f, 1, nullptr, 8, 2040, static_cast<bf16*>(nullptr), nullptr),
                 std::invalid_argument);
    EXPECT_THROW(gemv_rms(nullptr, nullptr, 1e-6f, 5, nullptr, 8, 2048, static_cast<float*>(nullptr), nullptr),
                 std::invalid_argument);
}

// [T, k] expert ids: k distinct experts per token, uniformly drawn.
std::vector<int32_t> random_topk_ids(int64_t T, int64_t E, int64_t k, unsigned seed) {
    std::mt19937 rng(seed);
    std::vector<int32_t> ids(T * k), all(E);
    for (int64_t t = 0; t < T; ++t) {
        for (int64_t e = 0; e < E; ++e) all[e] = int32_t(e);
        std::shuffle(all.begin(), all.end(), rng);
        std::sort(all.begin(), all.begin() + k);
        for (int64_t j = 0; j < k; ++j) ids[t * k + j] = all[j];
    }
    return ids;
}

// T tokens pick k of E experts; rows are permuted by expert on the device (moe_permute) and the grouped product
// must equal, row by row, x[token] · W[expert]ᵀ.
class GroupedGemvTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>> {};
// (T, E, k, out, in)

TEST_P(GroupedGemvTest, MatchesPerExpertCpuMatmul) {
    MOEINFER_REQUIRE_GPU();
    const auto [T, E, k, out, in] = GetParam();
    const std::vector<float> x = round_bf16(random_vector(T * in, 41));
    const std::vector<uint16_t> w = to_bf16_bits(random_vector(E * out * in, 42, 0.05f));
    const std::vector<int32_t> ids = random_topk_ids(T, E, k, 43);

    DeviceBuffer dx = to_device_bf16(x), dw = to_device(w), dids = to_device(ids);
    DeviceBuffer ws(size_t(std::max<int64_t>(1, moe_permute_workspace_ints(T * k, E))) * 4);
    DeviceBuffer offsets((E + 1) * 4), active(E * 4), row_token(T * k * 4), slot_row(T * k * 4);
    moe_permute(dids.as<int32_t>(), T, k, E, ws.as<int32_t>(), offsets.as<int32_t>(), active.as<int32_t>(),
                row_token.as<int32_t>(), slot_row.as<int32_t>(), nullptr);
    DeviceBuffer dy = poisoned(T * k * out, 2);
    grouped_gemv(dx.as<bf16>(), row_token.as<int32_t>(), offsets.as<int32_t>(), active.as<int32_t>(), E, T * k,
                 dw.as<bf16>(), out, in, false, dy.as<bf16>(), nullptr);
    // The direct form writes assignment a = t·k + j at row a, no permutation.
    DeviceBuffer dd = poisoned(T * k * out, 2);
    direct_expert_gemv(dx.as<bf16>(), k, dids.as<int32_t>(), T * k, dw.as<bf16>(), out, in, false, dd.as<bf16>(),
                       nullptr);
    const std::vector<float> direct = to_host_bf16(dd, T * k * out);
    // The tensor-core grouped GEMM (prefill, batched decode), reading the offsets on the device.
    DeviceBuffer dg = poisoned(T * k * out, 2);
    grouped_gemm(dx.as<bf16>(), row_token.as<int32_t>(), offsets.as<int32_t>(), E, T * k, dw.as<bf16>(), out, in,
                 dg.as<bf16>(), nullptr);
    const std::vector<float> grouped = to_host_bf16(dg, T * k * out);
    const std::vector<float> got = to_host_bf16(dy, T * k * out);
    const std::vector<int32_t> slot = to_host<int32_t>(slot_row, T * k);

    std::vector<float> want(out);
    for (int64_t a = 0; a < T * k; ++a) {
        const int64_t t = a / k, e = ids[a];
        cpu::matmul(x.data() + t * in, 1, bf16_tensor(w.data() + e * out * in, out, in), want.data());
        std::vector<float> row(got.begin() + slot[a] * out, got.begin() + (slot[a] + 1) * out);
        expect_close(row, want, kBf16Rtol, 1e-2 * rms(want) + 1e-6, "assignment " + std::to_string(a));
        std::vector<float> grow(grouped.begin() + slot[a] * out, grouped.begin() + (slot[a] + 1) * out);
        expect_close(grow, want, kBf16Rtol, 1e-2 * rms(want) + 1e-6, "grouped GEMM, assignment " + std::to_string(a));
        std::vector<float> drow(direct.begin() + a * out, direct.begin() + (a + 1) * out);
        expect_close(drow, want, kBf16Rtol, 1e-2 * rms(want) + 1e-6, "direct, assignment " + std::to_string(a));
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, GroupedGemvTest,
                         ::testing::Values(std::make_tuple(1, 8, 2, 96, 64), std::make_tuple(1, 128, 8, 1536, 2048),
                                           std::make_tuple(5, 8, 2, 33, 264), std::make_tuple(40, 4, 2, 70, 128),
                                           std::make_tuple(7, 60, 4, 129, 1024), std::make_tuple(1, 128, 8, 2048, 768),
                                           std::make_tuple(1, 16, 4, 40, 1272), std::make_tuple(16, 16, 4, 200, 2048),
                                           std::make_tuple(64, 32, 8, 96, 768),
                                           // many rows per expert (the grouped GEMM's 32-, 64- and 128-row tiles, partial
                                           // tiles, odd out and K not a multiple of its 64-wide steps)
                                           std::make_tuple(300, 8, 2, 200, 264), std::make_tuple(700, 4, 2, 129, 200),
                                           std::make_tuple(512, 16, 4, 384, 2048)));

// The grouped product with the SwiGLU input fused (the MoE down projection) equals silu_mul followed by the plain
// grouped product, bit for bit, on the tensor-core form (experts averaging ≥ 2 rows) and the gemv form (~1 row).
TEST(GroupedGemv, SwigluEqualsSiluMulThenProduct) {
    MOEINFER_REQUIRE_GPU();
    for (const auto& [T, E, k, out, ff] : {std::make_tuple(24, 8, 2, 70, 200), std::make_tuple(3, 16, 2, 40, 96)}) {
        const int64_t N = T * k;
        std::mt19937 rng(61);
        std::vector<int32_t> ids(N);
        for (int64_t t = 0; t < T; ++t)
            for (int64_t j = 0; j < k; ++j) ids[t * k + j] = int32_t((t + j * 5 + rng() % 3) % E);
        for (int64_t t = 0; t < T; ++t)  // distinct experts per token
            if (k == 2 && ids[t * k] == ids[t * k + 1]) ids[t * k + 1] = (ids[t * k + 1] + 1) % E;
        const std::vector<float> gu = round_bf16(random_vector(N * 2 * ff, 62));
        const std::vector<uint16_t> w = to_bf16_bits(random_vector(E * out * ff, 63, 0.05f));
        DeviceBuffer dids = to_device(ids), dgu = to_device_bf16(gu), dw = to_device(w), act(N * ff * 2);
        DeviceBuffer ws(size_t(std::max<int64_t>(1, moe_permute_workspace_ints(N, E))) * 4);
        DeviceBuffer offsets((E + 1) * 4), active(E * 4), row_token(N * 4), slot_row(N * 4);
        moe_permute(dids.as<int32_t>(), T, k, E, ws.as<int32_t>(), offsets.as<int32_t>(), active.as<int32_t>(),
                    row_token.as<int32_t>(), slot_row.as<int32_t>(), nullptr);
        DeviceBuffer fused = poisoned(N * out, 2), plain = poisoned(N * out, 2);
        grouped_gemv(dgu.as<bf16>(), nullptr, offsets.as<int32_t>(), active.as<int32_t>(), E, N, dw.as<bf16>(), out,
                     ff, true, fused.as<bf16>(), nullptr);
        silu_mul(dgu.as<bf16>(), dgu.as<bf16>() + ff, 2 * ff, N, ff, act.as<bf16>(), nullptr);
        grouped_gemv(act.as<bf16>(), nullptr, offsets.as<int32_t>(), active.as<int32_t>(), E, N, dw.as<bf16>(), out,
                     ff, false, plain.as<bf16>(), nullptr);
        EXPECT_EQ(to_host<uint16_t>(fused, N * out), to_host<uint16_t>(plain, N * out)) << "T=" << T;
    }
}

// The gate|up product with SwiGLU in the grouped GEMM's epilogue equals the plain grouped GEMM followed by silu_mul,
// bit for bit: 32-, 64- and 128-row tiles, ff not a multiple of the 64 features a block covers, odd ff.
TEST(GroupedGemm, SwigluEqualsGemmThenSiluMul) {
    MOEINFER_REQUIRE_GPU();
    for (const auto& [T, E, k, ff, in] : {std::make_tuple(16, 128, 8, 96, 256), std::make_tuple(300, 8, 2, 33, 200),
                                          std::make_tuple(700, 4, 2, 100, 264)}) {
        const int64_t N = T * k;
        const std::vector<int32_t> ids = random_topk_ids(T, E, k, 71);
        DeviceBuffer dx = to_device_bf16(round_bf16(random_vector(T * in, 72)));
        DeviceBuffer dw = to_device(to_bf16_bits(random_vector(E * 2 * ff * in, 73, 0.05f))), dids = to_device(ids);
        DeviceBuffer ws(size_t(std::max<int64_t>(1, moe_permute_workspace_ints(N, E))) * 4);
        DeviceBuffer offsets((E + 1) * 4), active(E * 4), row_token(N * 4), slot_row(N * 4);
        moe_permute(dids.as<int32_t>(), T, k, E, ws.as<int32_t>(), offsets.as<int32_t>(), active.as<int32_t>(),
                    row_token.as<int32_t>(), slot_row.as<int32_t>(), nullptr);
        DeviceBuffer gu = poisoned(N * 2 * ff, 2), plain = poisoned(N * ff, 2), fused = poisoned(N * ff, 2);
        grouped_gemm(dx.as<bf16>(), row_token.as<int32_t>(), offsets.as<int32_t>(), E, N, dw.as<bf16>(), 2 * ff, in,
                     gu.as<bf16>(), nullptr);
        silu_mul(gu.as<bf16>(), gu.as<bf16>() + ff, 2 * ff, N, ff, plain.as<bf16>(), nullptr);
        grouped_gemm_swiglu(dx.as<bf16>(), row_token.as<int32_t>(), offsets.as<int32_t>(), E, N, dw.as<bf16>(), ff,
                            in, fused.as<bf16>(), nullptr);
        EXPECT_EQ(to_host<uint16_t>(fused, N * ff), to_host<uint16_t>(plain, N * ff)) << "T=" << T << " ff=" << ff;
    }
}

}  // namespace
}  // namespace moeinfer::cuda
