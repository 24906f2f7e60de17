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

// Sequences s of lens[s] tokens (positions 0 .. lens[s] − 1) in a paged cache whose block ids are shuffled, filled
// through the CPU's write_kv (its layout is the contract) from bf16-rounded random K and V; sequence s draws K with
// seed k_seed + seed_step·s and V with v_seed + seed_step·s.
struct PagedCache {
    std::vector<int32_t> ids;             // every sequence's block table, max_blocks each
    std::vector<const int32_t*> tables;   // into ids
    int64_t max_blocks = 0;
    std::vector<float> k, v;              // [blocks · block_size, kv width]
};

PagedCache make_paged_cache(const std::vector<int32_t>& lens, int64_t bs, const cpu::AttentionShape& shape,
                            uint32_t shuffle_seed, uint32_t k_seed, uint32_t v_seed, uint32_t seed_step) {
    PagedCache c;
    const int64_t S = lens.size(), width = shape.num_kv_heads * shape.head_dim;
    c.max_blocks = (*std::max_element(lens.begin(), lens.end()) + bs - 1) / bs;
    c.ids.resize(c.max_blocks * S);
    std::iota(c.ids.begin(), c.ids.end(), 0);
    std::mt19937 rng(shuffle_seed);
    std::shuffle(c.ids.begin(), c.ids.end(), rng);
    for (int64_t s = 0; s < S; ++s) c.tables.push_back(c.ids.data() + s * c.max_blocks);
    c.k.assign(c.ids.size() * bs * width, 0.0f);
    c.v.assign(c.ids.size() * bs * width, 0.0f);
    for (int64_t s = 0; s < S; ++s) {
        std::vector<int32_t> pos(lens[s]), seq(lens[s], int32_t(s));
        std::iota(pos.begin(), pos.end(), 0);
        const std::vector<float> k = round_bf16(random_vector(lens[s] * width, uint32_t(k_seed + seed_step * s), 2.0f));
        const std::vector<float> v = round_bf16(random_vector(lens[s] * width, uint32_t(v_seed + seed_step * s)));
        const cpu::PagedKvMeta meta{pos.data(), seq.data(), c.tables.data(), bs};
        cpu::write_kv(k.data(), v.data(), lens[s], meta, shape, c.k.data(), c.v.data());
    }
    return c;
}

// (block_size, group, head_dim, window, num_splits)
class DecodeAttentionTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t, int64_t, int>> {};

TEST_P(DecodeAttentionTest, MatchesCpuPagedAttention) {
    MOEINFER_REQUIRE_GPU();
    const auto [bs, group, hd, window, splits] = GetParam();
    const int64_t nkv = 2, nh = nkv * group;
    const std::vector<int32_t> lens = {1, 17, 70, 300, 1000};
    const int64_t S = lens.size(), max_len = *std::max_element(lens.begin(), lens.end());
    const cpu::AttentionShape shape{nh, nkv, hd, window, float(1.0 / std::sqrt(double(hd)))};
    const PagedCache cache = make_paged_cache(lens, bs, shape, 99, 300, 301, 2);
    const auto& [ids, tables, max_blocks, k_cache, v_cache] = cache;
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
    // Warps splitting the keys, then the small-batch form (the tensor-core kernel for head_dim 64 and 128, warps
    // over heads otherwise), then that form copying the keys before the newest one ahead of its wait.
    const char* what[] = {"decode attention, warps over keys", "decode attention, small batch",
                          "decode attention, small batch, older keys first"};
    for (int variant = 0; variant < 3; ++variant) {
        args.split_heads = variant > 0;
        if (variant == 2) args.fresh_keys = 1;
        // Poisoned before each launch: each output must come from its own run.
        MOEINFER_CUDA_CHECK(cudaMemset(dout.get(), 0xff, dout.bytes()));
        paged_decode_attention(args, kv, dk.as<bf16>(), dv.as<bf16>(), nullptr);
        expect_close(to_host_bf16(dout, want.size()), want, kBf16Rtol, 1e-2 * rms(want), what[variant]);
    }
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
    const int64_t nkv = 2, nh = nkv * group;
    const std::vector<std::pair<int32_t, int32_t>> spans = {{0, 100}, {500, 564}, {300, 301}, {0, 7}};  // [from, to)
    const int64_t S = spans.size();
    const cpu::AttentionShape shape{nh, nkv, hd, window, float(1.0 / std::sqrt(double(hd)))};
    std::vector<int32_t> lens;  // the cache holds every position up to the span's end
    for (const auto& [from, to] : spans) lens.push_back(to);
    const PagedCache cache = make_paged_cache(lens, bs, shape, 17, 400, 500, 1);
    const auto& [ids, tables, max_blocks, k_cache, v_cache] = cache;
    std::vector<int32_t> qpos, qseq;
    for (int64_t s = 0; s < S; ++s) {
        for (int32_t p = spans[s].first; p < lens[s]; ++p) {
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

TEST(DecodeAttentionSplits, ChoiceSpreadsSmallBatchesOverTheDevice) {
    EXPECT_EQ(choose_decode_splits(64, 8, 8192, 16, 132), 1);   // 512 blocks already fill 132 SMs
    EXPECT_EQ(choose_decode_splits(1, 8, 30, 16, 132), 1);      // one tile: one pass
    EXPECT_EQ(choose_decode_splits(1, 4, 518, 16, 132), 17);    // batch 1: a split per 32-key tile ...
    EXPECT_EQ(choose_decode_splits(2, 8, 4096, 16, 132), 9);    // ... up to about one block per SM
    EXPECT_TRUE(choose_decode_split_heads(1, 8, 132));
    EXPECT_FALSE(choose_decode_split_heads(64, 8, 132));
    const int s = choose_decode_splits(1, 8, 32768, 16, 132);   // batch 1, long context
    EXPECT_GE(s * 8, 132);
    EXPECT_LE(s, 64);
}

}  // namespace
}  // namespace moeinfer::cuda
