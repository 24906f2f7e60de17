// Paged decode attention (GQA, sliding window, split-K) against cpu::write_kv + cpu::paged_attention on bf16-rounded
// data, over shuffled block tables with context lengths from 1 to 1000.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <numeric>
#include <random>

#include "backends/cpu/attention.h"
#include "backends/cuda/ops.h"
#include "cuda/cuda_test_util.h"

namespace moeinfer::cuda {
namespace {

using namespace testing;

// (block_size, group, head_dim, window, num_splits)
class DecodeAttentionTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t, int64_t, int>> {};

TEST_P(DecodeAttentionTest, MatchesCpuPagedAttention) {
    MOEINFER_REQUIRE_GPU();
    const auto [bs, group, hd, window, splits] = GetParam();
    const int64_t nkv = 2, nh = nkv * group, width = nkv * hd;
    const std::vector<int32_t> lens = {1, 17, 70, 300, 1000};
    const int64_t S = lens.size(), max_len = *std::max_element(lens.begin(), lens.end());
    const int64_t max_blocks = (max_len + bs - 1) / bs, num_blocks = max_blocks * S;
    std::vector<int32_t> ids(num_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::mt19937 rng(99);
    std::shuffle(ids.begin(), ids.end(), rng);
    std::vector<const int32_t*> tables;
    for (int64_t s = 0; s < S; ++s) tables.push_back(ids.data() + s * max_blocks);

    // Fill every sequence's cache through the CPU's write_kv (its layout is the contract), from bf16 values.
    std::vector<float> k_cache(num_blocks * bs * width, 0.0f), v_cache(num_blocks * bs * width, 0.0f);
    const cpu::AttentionShape shape{nh, nkv, hd, window, float(1.0 / std::sqrt(double(hd)))};
    uint32_t seed = 300;
    for (int64_t s = 0; s < S; ++s) {
        std::vector<int32_t> pos(lens[s]), seq(lens[s], int32_t(s));
        std::iota(pos.begin(), pos.end(), 0);
        const std::vector<float> k = round_bf16(random_vector(lens[s] * width, seed++, 2.0f));
        const std::vector<float> v = round_bf16(random_vector(lens[s] * width, seed++));
        const cpu::PagedKvMeta meta{pos.data(), seq.data(), tables.data(), bs};
        cpu::write_kv(k.data(), v.data(), lens[s], meta, shape, k_cache.data(), v_cache.data());
    }
    // One query per sequence at its last position.
    std::vector<int32_t> qpos(S), qseq(S);
    for (int64_t s = 0; s < S; ++s) {
        qpos[s] = lens[s] - 1;
        qseq[s] = int32_t(s);
    }
    const std::vector<float> q = round_bf16(random_vector(S * nh * hd, 7, 2.0f));
    std::vector<float> want(S * nh * hd);
    const cpu::PagedKvMeta qmeta{qpos.data(), qseq.data(), tables.data(), bs};
    cpu::paged_attention(q.data(), S, qmeta, shape, k_cache.data(), v_cache.data(), want.data());

    DeviceBuffer dq = to_device_bf16(q), dk = to_device_bf16(k_cache), dv = to_device_bf16(v_cache);
    DeviceBuffer dtab = to_device(ids), dlens = to_device(lens), dout = poisoned(S * nh * hd, 2);
    DeviceBuffer dws(sizeof(float) * decode_attention_workspace_floats(S, nh, hd, splits));
    DecodeAttentionArgs args{dq.as<bf16>(), dlens.as<int32_t>(), S, nh, window, shape.scale, max_len, splits,
                             dws.as<float>(), dout.as<bf16>()};
    const PagedKv kv{dtab.as<int32_t>(), max_blocks, bs, nkv, hd};
    paged_decode_attention(args, kv, dk.as<bf16>(), dv.as<bf16>(), nullptr);
    expect_close(to_host_bf16(dout, want.size()), want, kBf16Rtol, 1e-2 * rms(want), "decode attention");
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, DecodeAttentionTest,
    ::testing::Values(std::make_tuple(16, 1, 64, 0, 1), std::make_tuple(16, 4, 128, 0, 1),
                      std::make_tuple(16, 4, 128, 0, 7), std::make_tuple(7, 8, 128, 0, 3),
                      std::make_tuple(32, 2, 256, 0, 2), std::make_tuple(16, 4, 96, 33, 1),
                      std::make_tuple(1, 3, 64, 100, 5), std::make_tuple(16, 16, 128, 0, 40),
                      std::make_tuple(16, 2, 16, 0, 1), std::make_tuple(8, 4, 32, 5, 2)));

// Prefill attention (tensor cores) on a ragged batch: a fresh 100-token prompt, a 64-token chunk continuing at
// position 500, one decode token, a 7-token prompt; tiles cut as the model forward cuts them. Reference: the CPU's
// paged attention over the same cache (causal by position, sliding window, GQA).
class PrefillAttentionTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t, int64_t>> {};
// (block_size, group, head_dim, window)

TEST_P(PrefillAttentionTest, MatchesCpuPagedAttention) {
    MOEINFER_REQUIRE_GPU();
    const auto [bs, group, hd, window] = GetParam();
    const int64_t nkv = 2, nh = nkv * group, width = nkv * hd;
    const std::vector<std::pair<int32_t, int32_t>> spans = {{0, 100}, {500, 564}, {300, 301}, {0, 7}};  // [from, to)
    const int64_t S = spans.size(), max_len = 564;
    const int64_t max_blocks = (max_len + bs - 1) / bs, num_blocks = max_blocks * S;
    std::vector<int32_t> ids(num_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::mt19937 rng(17);
    std::shuffle(ids.begin(), ids.end(), rng);
    std::vector<const int32_t*> tables;
    for (int64_t s = 0; s < S; ++s) tables.push_back(ids.data() + s * max_blocks);
    std::vector<float> k_cache(num_blocks * bs * width, 0.0f), v_cache(num_blocks * bs * width, 0.0f);
    const cpu::AttentionShape shape{nh, nkv, hd, window, float(1.0 / std::sqrt(double(hd)))};
    std::vector<int32_t> qpos, qseq;
    for (int64_t s = 0; s < S; ++s) {  // the cache holds every position up to the span's end
        const int32_t len = spans[s].second;
        std::vector<int32_t> pos(len), seq(len, int32_t(s));
        std::iota(pos.begin(), pos.end(), 0);
        const std::vector<float> k = round_bf16(random_vector(len * width, 400 + s, 2.0f));
        const std::vector<float> v = round_bf16(random_vector(len * width, 500 + s));
        const cpu::PagedKvMeta meta{pos.data(), seq.data(), tables.data(), bs};
        cpu::write_kv(k.data(), v.data(), len, meta, shape, k_cache.data(), v_cache.data());
        for (int32_t p = spans[s].first; p < len; ++p) {
            qpos.push_back(p);
            qseq.push_back(int32_t(s));
        }
    }
    const int64_t T = qpos.size();
    const std::vector<float> q = round_bf16(random_vector(T * nh * hd, 8, 2.0f));
    std::vector<float> want(T * nh * hd);
    const cpu::PagedKvMeta qmeta{qpos.data(), qseq.data(), tables.data(), bs};
    cpu::paged_attention(q.data(), T, qmeta, shape, k_cache.data(), v_cache.data(), want.data());

    std::vector<PrefillTile> tiles;
    for (int64_t t = 0; t < T; ++t) {
        if (!tiles.empty() && tiles.back().seq_row == qseq[t] && tiles.back().count < 64 &&
            tiles.back().first_pos + tiles.back().count == qpos[t])
            ++tiles.back().count;
        else
            tiles.push_back({int32_t(t), 1, qseq[t], qpos[t]});
    }
    DeviceBuffer dq = to_device_bf16(q), dk = to_device_bf16(k_cache), dv = to_device_bf16(v_cache);
    DeviceBuffer dtab = to_device(ids), dtiles = to_device(tiles), dout = poisoned(T * nh * hd, 2);
    const PrefillAttentionArgs args{dq.as<bf16>(), dtiles.as<PrefillTile>(), int64_t(tiles.size()), nh, window,
                                    shape.scale, dout.as<bf16>()};
    const PagedKv kv{dtab.as<int32_t>(), max_blocks, bs, nkv, hd};
    paged_prefill_attention(args, kv, dk.as<bf16>(), dv.as<bf16>(), nullptr);
    expect_close(to_host_bf16(dout, want.size()), want, kBf16Rtol, 1e-2 * rms(want), "prefill attention");
}

INSTANTIATE_TEST_SUITE_P(Shapes, PrefillAttentionTest,
                         ::testing::Values(std::make_tuple(16, 4, 128, 0), std::make_tuple(16, 1, 64, 0),
                                           std::make_tuple(7, 8, 128, 33), std::make_tuple(32, 2, 64, 100)));

TEST(DecodeAttentionSplits, ChoiceFillsTheDeviceOnlyForLongContexts) {
    EXPECT_EQ(choose_decode_splits(64, 8, 8192, 16, 132), 1);   // 512 blocks already fill 132 SMs
    EXPECT_EQ(choose_decode_splits(1, 8, 300, 16, 132), 1);     // short context: one pass
    const int s = choose_decode_splits(1, 8, 32768, 16, 132);   // batch 1, long context
    EXPECT_GE(s * 8, 132);
    EXPECT_LE(s, 64);
}

}  // namespace
}  // namespace moeinfer::cuda
