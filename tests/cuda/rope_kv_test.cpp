// rope_write_kv on a ragged batch with shuffled block tables, against cpu::apply_rope (q and k) + cpu::write_kv.
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

class RopeKvTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t, bool>> {};
// (head_dim, group, block_size, interleaved)

TEST_P(RopeKvTest, MatchesCpuRopeAndWriteKv) {
    MOEINFER_REQUIRE_GPU();
    const auto [hd, group, bs, interleaved] = GetParam();
    const int64_t nkv = 3, nh = nkv * group, width = nkv * hd;
    // Three sequences: a prefill of 7 from 0, a chunk 1000..1033 (long positions), one decode token at 769.
    const std::vector<std::pair<int32_t, int32_t>> spans = {{0, 7}, {1000, 1033}, {769, 770}};
    std::vector<int32_t> positions, token_seq;
    for (size_t s = 0; s < spans.size(); ++s)
        for (int32_t p = spans[s].first; p < spans[s].second; ++p) {
            positions.push_back(p);
            token_seq.push_back(int32_t(s));
        }
    const int64_t T = positions.size();
    const int64_t max_blocks = (1033 + bs - 1) / bs, num_blocks = max_blocks * int64_t(spans.size());
    std::vector<int32_t> ids(num_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::mt19937 rng(7);
    std::shuffle(ids.begin(), ids.end(), rng);  // table row s = ids[s·max_blocks ...]
    std::vector<const int32_t*> tables;
    for (size_t s = 0; s < spans.size(); ++s) tables.push_back(ids.data() + s * max_blocks);

    std::vector<float> inv_freq(hd / 2);
    for (int64_t i = 0; i < hd / 2; ++i) inv_freq[i] = float(std::pow(500000.0, -2.0 * double(i) / double(hd)));
    const std::vector<float> q = round_bf16(random_vector(T * nh * hd, 11));
    const std::vector<float> k = round_bf16(random_vector(T * width, 12));
    const std::vector<float> v = round_bf16(random_vector(T * width, 13));

    std::vector<float> q_want = q, k_rot = k;
    cpu::apply_rope(q_want.data(), T, nh, hd, positions.data(), inv_freq.data(), interleaved);
    cpu::apply_rope(k_rot.data(), T, nkv, hd, positions.data(), inv_freq.data(), interleaved);
    const float kNaN = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> kc_want(num_blocks * bs * width, kNaN), vc_want(num_blocks * bs * width, kNaN);
    const cpu::PagedKvMeta meta{positions.data(), token_seq.data(), tables.data(), bs};
    const cpu::AttentionShape shape{nh, nkv, hd, 0, 1.0f};
    cpu::write_kv(k_rot.data(), v.data(), T, meta, shape, kc_want.data(), vc_want.data());

    DeviceBuffer dq = to_device_bf16(q), dk = to_device_bf16(k), dv = to_device_bf16(v);
    DeviceBuffer dpos = to_device(positions), dseq = to_device(token_seq), dtab = to_device(ids),
                 dfreq = to_device(inv_freq);
    DeviceBuffer dkc = poisoned(kc_want.size(), 2), dvc = poisoned(vc_want.size(), 2);
    const PagedKv kv{dtab.as<int32_t>(), max_blocks, bs, nkv, hd};
    rope_write_kv(dq.as<bf16>(), dk.as<bf16>(), dv.as<bf16>(), T, nh, dpos.as<int32_t>(), dseq.as<int32_t>(),
                  dfreq.as<float>(), interleaved, kv, dkc.as<bf16>(), dvc.as<bf16>(), nullptr);

    expect_close(to_host_bf16(dq, q.size()), q_want, kBf16Rtol, 1e-2, "rotated q");
    const std::vector<float> kc = to_host_bf16(dkc, kc_want.size()), vc = to_host_bf16(dvc, vc_want.size());
    for (size_t i = 0; i < kc.size(); ++i) {
        if (std::isnan(kc_want[i])) {  // a slot no token owns must stay untouched
            ASSERT_TRUE(std::isnan(kc[i]) && std::isnan(vc[i])) << "cache slot " << i << " written";
            continue;
        }
        ASSERT_NEAR(kc[i], kc_want[i], 1e-2 + kBf16Rtol * std::abs(kc_want[i])) << "k cache element " << i;
        ASSERT_EQ(vc[i], vc_want[i]) << "v cache element " << i;  // v is copied bit for bit
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, RopeKvTest,
                         ::testing::Values(std::make_tuple(64, 1, 16, false), std::make_tuple(128, 4, 16, true),
                                           std::make_tuple(128, 8, 7, false), std::make_tuple(256, 2, 33, true),
                                           std::make_tuple(96, 3, 1, false)));

}  // namespace
}  // namespace moeinfer::cuda
