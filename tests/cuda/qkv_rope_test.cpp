// qkv_rope_write_kv (bias + q/k RMSNorm + RoPE + paged KV write in one kernel) on a ragged batch with shuffled
// block tables (odd block sizes, positions past 1000, head_dim 16..256), against a host chain: bias add, bf16 rounding, per-head or whole-row RMSNorm, bf16 rounding, then
// cpu::apply_rope and cpu::write_kv.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>

#include "backends/cpu/attention.h"
#include "backends/cpu/rope.h"
#include "backends/cuda/ops.h"
#include "cuda/cuda_test_util.h"

namespace moeinfer::cuda {
namespace {

using namespace testing;

float rb(float v) { return bf16_to_fp32(fp32_to_bf16(v)); }

// x[0..n) = round(x · rsqrt(mean(x²) + eps) · w)
void host_rms(float* x, int64_t n, const float* w, float eps) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
    const float inv = float(1.0 / std::sqrt(ss / double(n) + eps));
    for (int64_t i = 0; i < n; ++i) x[i] = rb(x[i] * inv * w[i]);
}

class QkvRopeTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int, bool, bool, int64_t>> {};
// (head_dim, group, qk norm kind, bias, interleaved, block_size)

TEST_P(QkvRopeTest, MatchesHostChain) {
    MOEINFER_REQUIRE_GPU();
    const auto [hd, group, norm_kind, with_bias, interleaved, bs] = GetParam();
    const QkNormKind kind = QkNormKind(norm_kind);
    const int64_t nkv = 2, nh = nkv * group, qw = nh * hd, kvw = nkv * hd, width = qw + 2 * kvw;
    // A prefill from 0, a chunk at 300..332, one decode token, and a chunk at long positions (1000..1009): 53
    // tokens, a decode-sized step (the warp-per-head kernel where it applies).
    const std::vector<std::pair<int32_t, int32_t>> spans = {{0, 9}, {300, 333}, {77, 78}, {1000, 1010}};
    std::vector<int32_t> positions, token_seq;
    for (size_t s = 0; s < spans.size(); ++s)
        for (int32_t p = spans[s].first; p < spans[s].second; ++p) {
            positions.push_back(p);
            token_seq.push_back(int32_t(s));
        }
    const int64_t T = positions.size(), max_blocks = (1033 + bs - 1) / bs, num_blocks = max_blocks * int64_t(spans.size());
    std::vector<int32_t> ids(num_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::mt19937 rng(5);
    std::shuffle(ids.begin(), ids.end(), rng);
    std::vector<const int32_t*> tables;
    for (size_t s = 0; s < spans.size(); ++s) tables.push_back(ids.data() + s * max_blocks);

    std::vector<float> inv_freq(hd / 2);
    for (int64_t i = 0; i < hd / 2; ++i) inv_freq[i] = float(std::pow(10000.0, -2.0 * double(i) / double(hd)));
    const std::vector<float> qkv = round_bf16(random_vector(T * width, 61));
    const std::vector<float> bias = with_bias ? random_vector(width, 62, 0.3f) : std::vector<float>{};
    const int64_t qn = kind == QkNormKind::Full ? qw : hd, kn = kind == QkNormKind::Full ? kvw : hd;
    std::vector<float> q_norm = random_vector(qn, 63, 0.3f), k_norm = random_vector(kn, 64, 0.3f);
    for (float& w : q_norm) w += 1.0f;
    for (float& w : k_norm) w += 1.0f;

    // Host chain.
    std::vector<float> q(T * qw), k(T * kvw), v(T * kvw);
    for (int64_t t = 0; t < T; ++t) {
        std::vector<float> row(width);
        for (int64_t i = 0; i < width; ++i) row[i] = rb(qkv[t * width + i] + (with_bias ? bias[i] : 0.0f));
        if (kind == QkNormKind::PerHead) {
            for (int64_t h = 0; h < nh; ++h) host_rms(row.data() + h * hd, hd, q_norm.data(), 1e-6f);
            for (int64_t h = 0; h < nkv; ++h) host_rms(row.data() + qw + h * hd, hd, k_norm.data(), 1e-6f);
        } else if (kind == QkNormKind::Full) {
            host_rms(row.data(), qw, q_norm.data(), 1e-6f);
            host_rms(row.data() + qw, kvw, k_norm.data(), 1e-6f);
        }
        std::copy_n(row.begin(), qw, q.begin() + t * qw);
        std::copy_n(row.begin() + qw, kvw, k.begin() + t * kvw);
        std::copy_n(row.begin() + qw + kvw, kvw, v.begin() + t * kvw);
    }
    cpu::apply_rope(q.data(), T, nh, hd, positions.data(), inv_freq.data(), interleaved);
    cpu::apply_rope(k.data(), T, nkv, hd, positions.data(), inv_freq.data(), interleaved);
    const float kNaN = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> kc_want(num_blocks * bs * kvw, kNaN), vc_want(num_blocks * bs * kvw, kNaN);
    const cpu::PagedKvMeta meta{positions.data(), token_seq.data(), tables.data(), bs};
    const cpu::AttentionShape shape{nh, nkv, hd, 0, 1.0f};
    cpu::write_kv(k.data(), v.data(), T, meta, shape, kc_want.data(), vc_want.data());

    DeviceBuffer dqkv = to_device_bf16(qkv), dbias = to_device(bias), dqn = to_device(q_norm), dkn = to_device(k_norm);
    DeviceBuffer dpos = to_device(positions), dseq = to_device(token_seq), dtab = to_device(ids),
                 dfreq = to_device(inv_freq);
    DeviceBuffer dq = poisoned(T * qw, 2), dkc = poisoned(kc_want.size(), 2), dvc = poisoned(vc_want.size(), 2);
    QkvPost post;
    post.bias = with_bias ? dbias.as<float>() : nullptr;
    post.qk_norm = kind;
    post.q_norm = dqn.as<float>();
    post.k_norm = dkn.as<float>();
    post.inv_freq = dfreq.as<float>();
    post.interleaved = interleaved;
    const PagedKv kv{dtab.as<int32_t>(), max_blocks, bs, nkv, hd};
    qkv_rope_write_kv(dqkv.as<bf16>(), T, nh, dpos.as<int32_t>(), dseq.as<int32_t>(), post, kv, dq.as<bf16>(),
                      dkc.as<bf16>(), dvc.as<bf16>(), nullptr);

    expect_close(to_host_bf16(dq, q.size()), q, kBf16Rtol, 2e-2, "rotated q");
    const std::vector<float> kc = to_host_bf16(dkc, kc_want.size()), vc = to_host_bf16(dvc, vc_want.size());
    for (size_t i = 0; i < kc.size(); ++i) {
        if (std::isnan(kc_want[i])) {
            ASSERT_TRUE(std::isnan(kc[i]) && std::isnan(vc[i])) << "cache slot " << i << " written";
            continue;
        }
        ASSERT_NEAR(kc[i], kc_want[i], 2e-2 + kBf16Rtol * std::abs(kc_want[i])) << "k cache element " << i;
        ASSERT_EQ(vc[i], vc_want[i]) << "v cache element " << i;
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, QkvRopeTest,
                         ::testing::Values(std::make_tuple(16, 2, 0, false, false, 16), std::make_tuple(32, 2, 1, false, false, 16),
                                           std::make_tuple(128, 4, 1, true, true, 16), std::make_tuple(64, 2, 2, false, false, 16),
                                           std::make_tuple(128, 8, 0, true, false, 7), std::make_tuple(96, 3, 2, true, true, 1),
                                           std::make_tuple(256, 2, 0, false, true, 33), std::make_tuple(64, 1, 0, false, false, 16),
                                           std::make_tuple(128, 4, 1, true, false, 16)));  // Qwen3: per-head norm

}  // namespace
}  // namespace moeinfer::cuda
