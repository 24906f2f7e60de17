// matmul and grouped_matmul against the naive fp64 reference, for every weight dtype, odd shapes and several
// token counts; the reference multiplies by dequantize_row of the very same bytes, so only summation order differs.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <deque>
#include <tuple>
#include <vector>

#include "../../ref/reference_ops.h"
#include "../../exact_arithmetic.h"
#include "../../ref/test_util.h"
#include "backends/cpu/int8_gemm.h"
#include "backends/cpu/matmul.h"
#include "core/thread_pool.h"

namespace moeinfer {
namespace {

using testing::OwnedTensor;
using testing::random_vector;

// fp32 summation error grows with Σ|x·w|, not with |Σ x·w| (which can cancel to ~0), so bound by the former.
void expect_matches_reference(const std::vector<float>& y, const std::vector<float>& x, int64_t T,
                              const std::vector<float>& w, int64_t out, int64_t in) {
    std::vector<float> want(T * out), ax(x.size()), aw(w.size()), bound(T * out);
    ref::matmul(x.data(), T, w.data(), out, in, want.data());
    for (size_t i = 0; i < x.size(); ++i) ax[i] = std::fabs(x[i]);
    for (size_t i = 0; i < w.size(); ++i) aw[i] = std::fabs(w[i]);
    ref::matmul(ax.data(), T, aw.data(), out, in, bound.data());
    for (int64_t i = 0; i < T * out; ++i)
        ASSERT_LE(std::fabs(y[i] - want[i]), 1e-5 * bound[i] + 1e-30) << "row " << i / out << " col " << i % out;
}

// The activations the kernel really multiplies: Q8_0 / Q4_0 / Q4_K / Q5_K / Q6_K weights take int8-quantized
// activations (by design, as llama.cpp does); every other dtype takes x as is. The int8 products are exact, so the bound stays
// tight.
std::vector<float> kernel_activations(const std::vector<float>& x, int64_t T, int64_t in, DType dtype) {
    if (dtype != DType::Q8_0 && dtype != DType::Q4_0 && dtype != DType::Q4_K && dtype != DType::Q5_K &&
        dtype != DType::Q6_K)
        return x;
    cpu::Q8Activations q;
    cpu::quantize_activations(x.data(), T, in, q);
    std::vector<float> out(x.size());
    for (size_t i = 0; i < out.size(); ++i) out[i] = q.d[i / 32] * q.q[i];
    return out;
}

TEST(QuantizedActivations, StayWithinHalfAStepOfTheInput) {
    const std::vector<float> x = random_vector(3 * 64, 5);
    const std::vector<float> xe = kernel_activations(x, 3, 64, DType::Q8_0);
    for (size_t b = 0; b < x.size() / 32; ++b) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
        for (int j = 0; j < 32; ++j) EXPECT_LE(std::fabs(xe[b * 32 + j] - x[b * 32 + j]), amax / 127 * 0.5001f);
    }
}

// The bytes, scales and sums are exactly the scalar definition's (d = amax / 127, q = lrintf(x · 127 / amax)),
// whatever the vector path; a zero block gives d = 0 and q = 0.
TEST(QuantizedActivations, EqualTheScalarDefinition) {
    std::vector<float> x = random_vector(3 * 96, 8, 3.0f);
    std::fill(x.begin() + 32, x.begin() + 64, 0.0f);
    cpu::Q8Activations q;
    cpu::quantize_activations(x.data(), 3, 96, q);
    for (size_t b = 0; b < x.size() / 32; ++b) {
        float amax = 0;
        for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(x[b * 32 + j]));
        EXPECT_EQ(q.d[b], amax / 127.0f);
        const float inv = amax > 0 ? 127.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < 32; ++j) {
            const int8_t want = static_cast<int8_t>(std::lrintf(x[b * 32 + j] * inv));
            ASSERT_EQ(q.q[b * 32 + j], want) << "block " << b << " element " << j;
            ASSERT_EQ(q.qu[b * 32 + j], static_cast<uint8_t>(want) ^ 0x80);
            sum += want;
        }
        EXPECT_EQ(q.sum[b], sum);
    }
}

class ThreadCountGuard {
public:
    explicit ThreadCountGuard(int n) : saved_(num_threads()) { set_num_threads(n); }
    ~ThreadCountGuard() { set_num_threads(saved_); }

private:
    int saved_;
};

struct Case {
    DType dtype;
    int64_t out, in;
};

class MatmulTest : public ::testing::TestWithParam<std::tuple<Case, int64_t>> {};

TEST_P(MatmulTest, MatchesReferenceAndIsThreadCountInvariant) {
    const auto [c, T] = GetParam();
    const OwnedTensor w(c.dtype, c.out, c.in, 11 + c.out);
    const std::vector<float> x = random_vector(T * c.in, 7 + T);
    const std::vector<float> wf = ref::dequantize(w.tensor);

    std::vector<float> y1(T * c.out, NAN), y2(T * c.out, NAN);
    {
        ThreadCountGuard g(1);
        cpu::matmul(x.data(), T, w.tensor, y1.data());
    }
    {
        ThreadCountGuard g(2);
        cpu::matmul(x.data(), T, w.tensor, y2.data());
    }
    expect_matches_reference(y1, kernel_activations(x, T, c.in, c.dtype), T, wf, c.out, c.in);
    // Static partitioning promises bit-identical results whatever the thread count.
    EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)));
}

// Plain dtypes take any width; block types need multiples of 32. 33 output rows cross the 16-row tile boundary.
INSTANTIATE_TEST_SUITE_P(
    AllDtypes, MatmulTest,
    ::testing::Combine(::testing::Values(Case{DType::F32, 1, 1}, Case{DType::F32, 33, 769}, Case{DType::F32, 7, 7},
                                         Case{DType::F16, 33, 769}, Case{DType::F16, 1, 7},
                                         Case{DType::BF16, 33, 769}, Case{DType::BF16, 7, 1},
                                         Case{DType::Q8_0, 33, 800}, Case{DType::Q8_0, 1, 32},
                                         Case{DType::Q8_0, 7, 224}, Case{DType::Q4_0, 33, 800},
                                         Case{DType::Q4_0, 1, 32}, Case{DType::Q4_0, 7, 224},
                                         Case{DType::Q4_0, 35, 768}, Case{DType::Q4_0, 2, 128},
                                         Case{DType::Q8_0, 35, 768}, Case{DType::Q8_0, 3, 128},
                                         Case{DType::Q4_K, 33, 512}, Case{DType::Q4_K, 1, 256},
                                         Case{DType::Q6_K, 33, 512}, Case{DType::Q6_K, 7, 256},
                                         Case{DType::Q5_K, 5, 256}, Case{DType::Q5_K, 33, 512}),
                       ::testing::Values(int64_t{1}, int64_t{3}, int64_t{17})),
    [](const auto& info) {
        const Case c = std::get<0>(info.param);
        return std::string(dtype_name(c.dtype)) + "_" + std::to_string(c.out) + "x" + std::to_string(c.in) + "_T" +
               std::to_string(std::get<1>(info.param));
    });

// The prefill panels (panel_gemm.h) of every block type: 263 tokens (32 passes of 8 and a remainder of 7) pass
// every type's threshold (Q6_K's is 128); 37 rows are two panels and 5 rows for the row kernels; 1 and 2 threads
// agree bit for bit.
TEST(PanelGemm, EveryBlockTypeMatchesReference) {
    const int64_t T = 263, out = 37;
    for (DType dt : {DType::Q4_0, DType::Q8_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
        SCOPED_TRACE(dtype_name(dt));
        const int64_t in = dt == DType::Q4_0 || dt == DType::Q8_0 ? 224 : 512;
        const OwnedTensor w(dt, out, in, 5);
        const std::vector<float> x = random_vector(T * in, 9);
        std::vector<float> y1(T * out, NAN), y2(T * out, NAN);
        {
            ThreadCountGuard g(1);
            cpu::matmul(x.data(), T, w.tensor, y1.data());
        }
        {
            ThreadCountGuard g(2);
            cpu::matmul(x.data(), T, w.tensor, y2.data());
        }
        expect_matches_reference(y1, kernel_activations(x, T, in, dt), T, ref::dequantize(w.tensor), out, in);
        EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)));
    }
}

// The packed GEMM (f32_gemm.h) for F32 / F16 / BF16 from 4 tokens up: token counts around its ≤ 12-token blocks and
// 256-token chunks, row counts around its 32-row panels and 16-lane halves, K around its 16 × 16 transposes and
// 512-element blocks. Every (out, K) pair runs for each (dtype, T); 1 and 2 threads must agree bit for bit.
class PackedGemmTest : public ::testing::TestWithParam<std::tuple<DType, int64_t>> {};

TEST_P(PackedGemmTest, MatchesReferenceAtOddShapes) {
    const auto [dtype, T] = GetParam();
    for (int64_t out : {1, 15, 17, 33, 100})
        for (int64_t in : {1, 15, 16, 17, 100, 4096}) {
            if (T > 200 && in > 100 && out > 17) continue;  // keep the fp64 reference affordable
            SCOPED_TRACE("out " + std::to_string(out) + " in " + std::to_string(in));
            const OwnedTensor w(dtype, out, in, 3 + out + in);
            const std::vector<float> x = random_vector(T * in, 5 + T + in);
            std::vector<float> y1(T * out, NAN), y2(T * out, NAN);
            {
                ThreadCountGuard g(1);
                cpu::matmul(x.data(), T, w.tensor, y1.data());
            }
            {
                ThreadCountGuard g(2);
                cpu::matmul(x.data(), T, w.tensor, y2.data());
            }
            expect_matches_reference(y1, x, T, ref::dequantize(w.tensor), out, in);
            ASSERT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)));
        }
}

INSTANTIATE_TEST_SUITE_P(PlainDtypes, PackedGemmTest,
                         ::testing::Combine(::testing::Values(DType::F32, DType::F16, DType::BF16),
                                            ::testing::Values(int64_t{4}, int64_t{5}, int64_t{13}, int64_t{31},
                                                              int64_t{64}, int64_t{129}, int64_t{300})),
                         [](const auto& info) {
                             return std::string(dtype_name(std::get<0>(info.param))) + "_T" +
                                    std::to_string(std::get<1>(info.param));
                         });

// K past one 512-element block with a tail, rows past several panels, tokens past one 256-token chunk.
TEST(PackedGemm, SeveralKBlocksPanelsAndTokenChunks) {
    const int64_t T = 270, out = 70, in = 600;
    for (DType dtype : {DType::F32, DType::F16, DType::BF16}) {
        SCOPED_TRACE(dtype_name(dtype));
        const OwnedTensor w(dtype, out, in, 21);
        const std::vector<float> x = random_vector(T * in, 22);
        std::vector<float> y(T * out, NAN);
        cpu::matmul(x.data(), T, w.tensor, y.data());
        expect_matches_reference(y, x, T, ref::dequantize(w.tensor), out, in);
    }
}

// Round to bf16, nearest even (what VCVTNE2PS2BF16 does to finite values).
float round_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    u = (u + 0x7FFFu + ((u >> 16) & 1u)) & 0xFFFF0000u;
    std::memcpy(&f, &u, 4);
    return f;
}

// The default bf16 arithmetic (MOEINFER_BF16_GEMM=0 turns it off): exactly the products of bf16-rounded activations
// and weights, summed in fp32, at odd shapes (odd K: the last pair ends in a zero), for decode-sized steps (the
// fused dot, T ≤ 3) and prefill (the packed GEMM), 1 and 2 threads bit-identical; and really taken: the rounding
// shows in the result against the exact fp32 form.
TEST(PackedGemm, Bf16ArithmeticMatchesRoundedReference) {
    if (!cpu::bf16_gemm_available()) GTEST_SKIP() << "this CPU has no AVX512-BF16";
    test::GemmArithGuard guard(cpu::GemmArith::Fp32);
    for (DType dtype : {DType::F16, DType::BF16})
        for (int64_t T : {1, 3, 4, 13, 64, 300})
            for (const auto& [out, in] : {std::pair<int64_t, int64_t>{17, 15}, {33, 100}, {70, 600}, {15, 4096}}) {
                SCOPED_TRACE(std::string(dtype_name(dtype)) + " T " + std::to_string(T) + " out " +
                             std::to_string(out) + " in " + std::to_string(in));
                const OwnedTensor w(dtype, out, in, 31 + out + in);
                const std::vector<float> x = random_vector(T * in, 32 + T + in);
                std::vector<float> y1(T * out, NAN), y2(T * out, NAN), exact(T * out, NAN);
                cpu::set_float_gemm_arith(cpu::GemmArith::Bf16);
                {
                    ThreadCountGuard g(1);
                    cpu::matmul(x.data(), T, w.tensor, y1.data());
                }
                {
                    ThreadCountGuard g(2);
                    cpu::matmul(x.data(), T, w.tensor, y2.data());
                }
                cpu::set_float_gemm_arith(cpu::GemmArith::Fp32);
                cpu::matmul(x.data(), T, w.tensor, exact.data());
                std::vector<float> xr = x, wr = ref::dequantize(w.tensor);
                for (float& v : xr) v = round_bf16(v);
                for (float& v : wr) v = round_bf16(v);
                expect_matches_reference(y1, xr, T, wr, out, in);
                ASSERT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)));
                if (in >= 100) {
                    EXPECT_NE(0, std::memcmp(y1.data(), exact.data(), y1.size() * sizeof(float)));
                }
            }
}

// grouped_matmul on 1 and on 2 threads into outputs prefilled with `fill`: the two must be bit-identical (rows are
// split differently); returns the first.
std::vector<float> grouped_on_1_and_2_threads(const std::vector<float>& x, const std::vector<cpu::MatmulGroup>& groups,
                                              int64_t out, int64_t rows, float fill) {
    std::vector<float> y1(rows * out, fill), y2(rows * out, fill);
    {
        ThreadCountGuard g(1);
        cpu::grouped_matmul(x.data(), groups, out, y1.data());
    }
    {
        ThreadCountGuard g(2);
        cpu::grouped_matmul(x.data(), groups, out, y2.data());
    }
    EXPECT_EQ(0, std::memcmp(y1.data(), y2.data(), y1.size() * sizeof(float)));
    return y1;
}

// Groups of rows of x, each against its own weight (possibly of different dtypes, same shape), including an empty
// group; rows no group covers must be left untouched.
TEST(GroupedMatmul, MatchesPerGroupReference) {
    const int64_t out = 33, in = 224, rows = 20;
    std::deque<OwnedTensor> ws;  // deque: stable addresses for the Tensor views
    ws.emplace_back(DType::Q8_0, out, in, 1);
    ws.emplace_back(DType::F32, out, in, 2);
    ws.emplace_back(DType::Q4_0, out, in, 3);
    ws.emplace_back(DType::BF16, out, in, 4);
    ws.emplace_back(DType::F16, out, in, 5);
    // Row ranges: [0,1) [1,1) empty [3,12) [12,19) [19,20); rows 1..2 belong to no group.
    const std::vector<cpu::MatmulGroup> groups = {{&ws[0].tensor, 0, 1},
                                                  {&ws[1].tensor, 1, 1},
                                                  {&ws[2].tensor, 3, 12},
                                                  {&ws[3].tensor, 12, 19},
                                                  {&ws[4].tensor, 19, 20}};
    const std::vector<float> x = random_vector(rows * in, 99);
    const float kSentinel = 12345.f;
    const std::vector<float> y1 = grouped_on_1_and_2_threads(x, groups, out, rows, kSentinel);

    for (const cpu::MatmulGroup& g : groups) {
        const int64_t n = g.row_end - g.row_begin;
        if (n == 0) continue;
        const std::vector<float> wf = ref::dequantize(*g.weight);
        const std::vector<float> xg(x.begin() + g.row_begin * in, x.begin() + g.row_end * in);
        const std::vector<float> yg(y1.begin() + g.row_begin * out, y1.begin() + g.row_end * out);
        SCOPED_TRACE(std::string("group of ") + dtype_name(g.weight->dtype));
        expect_matches_reference(yg, kernel_activations(xg, n, in, g.weight->dtype), n, wf, out, in);
    }
    for (int64_t r = 1; r < 3; ++r)
        for (int64_t o = 0; o < out; ++o) EXPECT_EQ(y1[r * out + o], kSentinel) << "uncovered row " << r;
}

// Groups big enough for the packed GEMM (several row panels, token counts off its block sizes), one per plain dtype.
TEST(GroupedMatmul, PackedGroupsMatchReference) {
    const int64_t out = 100, in = 300, rows = 60;
    std::deque<OwnedTensor> ws;
    ws.emplace_back(DType::F16, out, in, 7);
    ws.emplace_back(DType::BF16, out, in, 8);
    ws.emplace_back(DType::F32, out, in, 9);
    const std::vector<cpu::MatmulGroup> groups = {{&ws[0].tensor, 0, 5}, {&ws[1].tensor, 5, 42}, {&ws[2].tensor, 42, 60}};
    const std::vector<float> x = random_vector(rows * in, 31);
    const std::vector<float> y1 = grouped_on_1_and_2_threads(x, groups, out, rows, NAN);
    for (const cpu::MatmulGroup& g : groups) {
        const int64_t n = g.row_end - g.row_begin;
        const std::vector<float> xg(x.begin() + g.row_begin * in, x.begin() + g.row_end * in);
        const std::vector<float> yg(y1.begin() + g.row_begin * out, y1.begin() + g.row_end * out);
        SCOPED_TRACE(std::string("group of ") + dtype_name(g.weight->dtype));
        expect_matches_reference(yg, xg, n, ref::dequantize(*g.weight), out, in);
    }
}

// The packed GEMM through matmul_rows: a row range that starts and ends inside 32-row panels, a wider y stride.
TEST(MatmulRows, PackedWritesOnlyItsRangeWithStride) {
    const int64_t out = 80, in = 37, T = 9, stride = 85, rb = 5, re = 71;
    const OwnedTensor w(DType::F16, out, in, 15);
    const std::vector<float> x = random_vector(T * in, 16), wf = ref::dequantize(w.tensor);
    std::vector<float> y(T * stride, -1.f), want(T * out);
    cpu::matmul_rows(x.data(), T, w.tensor, rb, re, y.data(), stride);
    ref::matmul(x.data(), T, wf.data(), out, in, want.data());
    for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < stride; ++c) {
            if (c >= rb && c < re)
                EXPECT_NEAR(y[t * stride + c], want[t * out + c], 1e-4) << t << "," << c;
            else
                EXPECT_EQ(y[t * stride + c], -1.f) << "wrote outside its rows at " << t << "," << c;
        }
}

// matmul_rows computes only its row range and honours the output stride.
TEST(MatmulRows, WritesOnlyItsRangeWithStride) {
    const int64_t out = 40, in = 7, T = 3, stride = 45;
    const OwnedTensor w(DType::F32, out, in, 5);
    const std::vector<float> x = random_vector(T * in, 6);
    std::vector<float> y(T * stride, -1.f), want(T * out);
    cpu::matmul_rows(x.data(), T, w.tensor, 5, 29, y.data(), stride);
    ref::matmul(x.data(), T, static_cast<const float*>(w.tensor.data), out, in, want.data());
    for (int64_t t = 0; t < T; ++t)
        for (int64_t c = 0; c < stride; ++c) {
            if (c >= 5 && c < 29)
                EXPECT_NEAR(y[t * stride + c], want[t * out + c], 1e-5) << t << "," << c;
            else
                EXPECT_EQ(y[t * stride + c], -1.f) << "wrote outside its rows at " << t << "," << c;
        }
}

}  // namespace
}  // namespace moeinfer
