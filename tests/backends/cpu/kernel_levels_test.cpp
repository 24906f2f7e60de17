// Every CPU kernel level this machine runs (backends/cpu/kernel_isa.h) against the generic level's code, in one
// process: whatever level MOEINFER_CPU_KERNELS gives the rest of the suite, the AVX2 and AVX-512 kernels are
// compared here with the portable reference on the same inputs (odd sizes, tails, every block type).
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <limits>
#include <stdexcept>
#include <string>
#include <vector>

#include "../../ref/reference_ops.h"
#include "../../ref/test_util.h"
#include "backends/cpu/kernel_isa.h"
#include "backends/cpu/kernel_table.h"

namespace moeinfer {
namespace {

using cpu::CpuKernels;
using cpu::KernelIsa;
using testing::OwnedTensor;
using testing::random_vector;

const CpuKernels& generic() { return cpu::kernel_table(KernelIsa::Generic); }

// The levels above generic this CPU runs (none on a CPU without AVX2: the tests below then check nothing but say so).
std::vector<KernelIsa> vector_levels() {
    std::vector<KernelIsa> out;
    for (KernelIsa isa : cpu::supported_kernel_isas())
        if (isa != KernelIsa::Generic) out.push_back(isa);
    return out;
}

// Σ_k |x[t, k] · w[r, k]| for every output [T, out] (the reference product of the magnitudes): what summation
// order can move a result by a few ulps of — not |result|, which can cancel to ~0.
std::vector<float> magnitude_bound(std::vector<float> x, int64_t T, std::vector<float> w, int64_t out, int64_t in) {
    for (float& v : x) v = std::fabs(v);
    for (float& v : w) v = std::fabs(v);
    std::vector<float> bound(T * out);
    ref::matmul(x.data(), T, w.data(), out, in, bound.data());
    return bound;
}

// |got − want| ≤ rtol · bound for each of the T × out outputs, stored `stride` apart per token in got and want.
void expect_close(const std::vector<float>& got, const std::vector<float>& want, const std::vector<float>& bound,
                  int64_t out, int64_t stride, double rtol, const std::string& what) {
    ASSERT_EQ(got.size(), want.size());
    for (size_t t = 0; t < bound.size() / out; ++t)
        for (int64_t r = 0; r < out; ++r)
            ASSERT_LE(std::fabs(double(got[t * stride + r]) - want[t * stride + r]), rtol * bound[t * out + r] + 1e-30)
                << what << " token " << t << " row " << r;
}

TEST(KernelLevels, ActiveIsTheBestSupportedOrTheOneAskedFor) {
    const std::vector<KernelIsa> levels = cpu::supported_kernel_isas();
    ASSERT_FALSE(levels.empty());
    EXPECT_EQ(levels.front(), KernelIsa::Generic);
    const char* env = std::getenv("MOEINFER_CPU_KERNELS");
    if (env && *env)
        EXPECT_STREQ(cpu::kernel_isa_name(cpu::active_kernel_isa()), env);
    else
        EXPECT_EQ(cpu::active_kernel_isa(), levels.back());
}

// A level this CPU lacks is refused with an error, never handed out (natively on an AVX-512 CPU every level is there;
// `make test-emulated` runs this on a CPU without AVX-512).
TEST(KernelLevels, UnsupportedLevelsThrow) {
    const std::vector<KernelIsa> levels = cpu::supported_kernel_isas();
    for (KernelIsa isa : {KernelIsa::Generic, KernelIsa::Avx2, KernelIsa::Avx512Vnni, KernelIsa::Avx512}) {
        if (std::find(levels.begin(), levels.end(), isa) != levels.end())
            EXPECT_NO_THROW(cpu::kernel_table(isa)) << cpu::kernel_isa_name(isa);
        else
            EXPECT_THROW(cpu::kernel_table(isa), std::runtime_error) << cpu::kernel_isa_name(isa);
    }
}

TEST(KernelLevels, QuantizedActivationsAreTheSameBytes) {
    for (int64_t T : {1, 3, 17}) {  // 17: the panels' token tiles too
        std::vector<float> x = random_vector(T * 256, 40 + T, 2.0f);
        std::fill(x.begin() + 32, x.begin() + 64, 0.0f);  // a zero block: d = 0, q = 0
        cpu::Q8Activations want;
        generic().quantize_activations(x.data(), T, 256, want);
        for (KernelIsa isa : vector_levels()) {
            cpu::Q8Activations got;
            cpu::kernel_table(isa).quantize_activations(x.data(), T, 256, got);
            const std::string at = std::string(cpu::kernel_isa_name(isa)) + " T " + std::to_string(T);
            EXPECT_EQ(got.q, want.q) << at;
            EXPECT_EQ(got.qu, want.qu) << at;
            EXPECT_EQ(got.d, want.d) << at;
            EXPECT_EQ(got.sum, want.sum) << at;
            EXPECT_EQ(got.q4i, want.q4i) << at;
            EXPECT_EQ(got.q_tiles, want.q_tiles) << at;
            EXPECT_EQ(got.dsum_tiles, want.dsum_tiles) << at;
        }
    }
}

// int8_gemm / kquant_gemm of every block type, 7 rows (not a multiple of any row block) × 1-5 tokens (decode and the
// multi-token kernels with their remainders), written into a strided output.
TEST(KernelLevels, BlockProductsAgreeWithGeneric) {
    constexpr int64_t kOut = 7, kIn = 512, kStride = 9;
    for (DType dt : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q5_K, DType::Q6_K}) {
        const OwnedTensor w(dt, kOut, kIn, 3);
        const bool kquant = dt == DType::Q4_K || dt == DType::Q5_K || dt == DType::Q6_K;
        const std::vector<float> wf = ref::dequantize(w.tensor);
        for (int64_t T : {1, 2, 3, 5}) {
            const std::vector<float> x = random_vector(T * kIn, 50 + T);
            cpu::Q8Activations a;
            generic().quantize_activations(x.data(), T, kIn, a);
            std::vector<float> xq(T * kIn);  // the activations the kernels multiply
            for (int64_t i = 0; i < T * kIn; ++i) xq[i] = a.d[i / 32] * a.q[i];
            const std::vector<float> bound = magnitude_bound(xq, T, wf, kOut, kIn);
            auto run = [&](const CpuKernels& kt) {
                std::vector<float> y(T * kStride, 0.0f);
                (kquant ? kt.kquant_gemm : kt.int8_gemm)(w.tensor, 0, kOut, a, 0, T, y.data(), kStride);
                return y;
            };
            const std::vector<float> want = run(generic());
            for (KernelIsa isa : vector_levels())
                expect_close(run(cpu::kernel_table(isa)), want, bound, kOut, kStride, 1e-5,
                             std::string(cpu::kernel_isa_name(isa)) + " " + dtype_name(dt) + " T " + std::to_string(T));
        }
    }
}

TEST(KernelLevels, HalfRowDotsAndRowConversionAgreeWithGeneric) {
    constexpr int64_t kRows = 6, kN = 77;  // 4 + 2 rows; 77 = 64 + 13: vector steps and a scalar tail
    const std::vector<float> x = random_vector(kN, 60);
    for (DType dt : {DType::F16, DType::BF16}) {
        const OwnedTensor w(dt, kRows, kN, 61);
        const auto* wp = static_cast<const uint16_t*>(w.tensor.data);
        const std::vector<float> bound = magnitude_bound(x, 1, ref::dequantize(w.tensor), kRows, kN);
        auto run = [&](const CpuKernels& kt) {
            std::vector<float> y(kRows);
            kt.dot_rows_half(dt, cpu::GemmArith::Fp32, x.data(), wp, kN, kRows, kN, y.data());
            return y;
        };
        const std::vector<float> want = run(generic());
        std::vector<float> row_want(kN), row_got(kN);
        generic().row_to_f32(dt, w.tensor.row(5), row_want.data(), kN);
        for (KernelIsa isa : vector_levels()) {
            const std::string at = std::string(cpu::kernel_isa_name(isa)) + " " + dtype_name(dt);
            expect_close(run(cpu::kernel_table(isa)), want, bound, kRows, kRows, 1e-6, at);
            cpu::kernel_table(isa).row_to_f32(dt, w.tensor.row(5), row_got.data(), kN);
            EXPECT_EQ(row_got, row_want) << at;  // a conversion: exact
        }
    }
}

TEST(KernelLevels, MicroGemmAgreesWithGeneric) {
    constexpr int64_t kK = 37;  // 32 + 5: vector steps and a tail
    const std::vector<float> w = random_vector(4 * kK, 70), x = random_vector(4 * kK, 71);
    for (int64_t nr = 1; nr <= 4; ++nr)
        for (int64_t nt = 1; nt <= 4; ++nt) {
            const std::vector<float> bound = magnitude_bound({x.begin(), x.begin() + nt * kK}, nt, w, nr, kK);
            auto run = [&](const CpuKernels& kt) {
                std::vector<float> y(4 * nr, 0.0f);
                kt.micro_gemm(w.data(), nr, x.data(), kK, nt, kK, y.data(), nr);
                return y;
            };
            const std::vector<float> want = run(generic());
            for (KernelIsa isa : vector_levels())
                expect_close(run(cpu::kernel_table(isa)), want, bound, nr, nr, 1e-6,
                             std::string(cpu::kernel_isa_name(isa)) + " " + std::to_string(nr) + "x" + std::to_string(nt));
        }
}

TEST(KernelLevels, ElementwiseAgreesWithGeneric) {
    constexpr int64_t kN = 45;  // 32 + 8 + 5
    const std::vector<float> a = random_vector(kN, 80, 3.0f), b = random_vector(kN, 81, 3.0f);
    const float inf = std::numeric_limits<float>::infinity();
    // The vector exp's edges: −inf and below −87 give (nearly) 0, above 88.7 +inf (a masked softmax and silu rely on them).
    std::vector<float> e = random_vector(kN, 82, 4.0f);
    e[0] = -inf, e[1] = -100.0f, e[2] = -87.5f, e[3] = 100.0f, e[4] = 0.0f, e[9] = 80.0f, e[10] = -80.0f;
    std::vector<float> want_e = e;
    const double want_sum = generic().exp_shifted_sum(want_e.data(), 0.0f, kN);
    std::vector<float> g = e;  // silu's gates: the edges but −inf (−inf / (1 + inf) is NaN at every level)
    g[0] = -50.0f;
    std::vector<float> want_silu(kN), want_axpy = b, want_norm(kN);
    generic().silu_mul(g.data(), b.data(), kN, 1, kN, want_silu.data());
    generic().axpy(0.5f, a.data(), want_axpy.data(), kN);
    generic().rms_norm(a.data(), b.data(), 1e-6f, 1, kN, want_norm.data());
    const float want_dot = generic().dot(a.data(), b.data(), kN);
    float abs_dot = 0;
    for (int64_t i = 0; i < kN; ++i) abs_dot += std::fabs(a[i] * b[i]);
    for (KernelIsa isa : vector_levels()) {
        const CpuKernels& kt = cpu::kernel_table(isa);
        const std::string at = cpu::kernel_isa_name(isa);
        std::vector<float> got_e = e;
        const double got_sum = kt.exp_shifted_sum(got_e.data(), 0.0f, kN);
        for (int64_t i = 0; i < kN; ++i) {
            if (std::isinf(want_e[i]))
                EXPECT_EQ(got_e[i], want_e[i]) << at << " exp of " << e[i];
            else  // below e^−87 the levels differ (0, a subnormal, e^−88) by less than the smallest normal float
                EXPECT_NEAR(got_e[i], want_e[i], 3e-7 * want_e[i] + std::numeric_limits<float>::min()) << at << " exp of " << e[i];
        }
        EXPECT_EQ(std::isinf(got_sum), std::isinf(want_sum)) << at;
        std::vector<float> got_silu(kN), got_axpy = b, got_norm(kN);
        kt.silu_mul(g.data(), b.data(), kN, 1, kN, got_silu.data());
        kt.axpy(0.5f, a.data(), got_axpy.data(), kN);
        kt.rms_norm(a.data(), b.data(), 1e-6f, 1, kN, got_norm.data());
        for (int64_t i = 0; i < kN; ++i) {
            EXPECT_NEAR(got_silu[i], want_silu[i], 1e-6 * (std::fabs(want_silu[i]) + 1e-30)) << at << " silu " << i;
            EXPECT_FLOAT_EQ(got_axpy[i], want_axpy[i]) << at << " axpy " << i;
            EXPECT_FLOAT_EQ(got_norm[i], want_norm[i]) << at << " rms_norm " << i;
        }
        EXPECT_NEAR(kt.dot(a.data(), b.data(), kN), want_dot, 1e-6 * abs_dot) << at;
    }
}

}  // namespace
}  // namespace moeinfer
