// write_kv + paged_attention on a ragged batch (prefill, chunked prefill, long-context decode, 1-token prompt) over
// shuffled non-contiguous block tables, against the contiguous per-sequence reference, for several GQA shapes,
// block sizes and sliding windows. Unused cache slots hold NaN, so any read outside the visible keys fails.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <tuple>
#include <vector>

#include "../../ref/reference_ops.h"
#include "../../ref/test_util.h"
#include "backends/cpu/attention.h"

namespace moeinfer {
namespace {

using testing::random_vector;

struct Seq {
    int64_t start, len;            // positions [0, start) are cached already; [start, len) are this step's tokens
    std::vector<float> k, v;       // [len, nkv, hd] keys/values for every position
    std::vector<float> q;          // [len - start, nh, hd]
    std::vector<int32_t> blocks;   // block table
};

// (block_size, group, head_dim, window)
class PagedAttentionTest : public ::testing::TestWithParam<std::tuple<int64_t, int64_t, int64_t, int64_t>> {};

TEST_P(PagedAttentionTest, RaggedBatchMatchesContiguousReference) {
    const auto [bs, group, hd, window] = GetParam();
    const int64_t nkv = 2, nh = nkv * group, width = nkv * hd;
    const cpu::AttentionShape shape{nh, nkv, hd, window, float(1.0 / std::sqrt(double(hd)))};

    std::vector<Seq> seqs = {{0, 23, {}, {}, {}, {}},    // prefill
                             {69, 70, {}, {}, {}, {}},   // decode: one token, long context
                             {9, 29, {}, {}, {}, {}},    // chunked prefill continuing a cached prefix
                             {0, 1, {}, {}, {}, {}}};    // one-token prompt
    int64_t total_blocks = 3;  // spare blocks that nobody owns
    for (const Seq& s : seqs) total_blocks += (s.len + bs - 1) / bs;
    std::vector<int32_t> ids(total_blocks);
    std::iota(ids.begin(), ids.end(), 0);
    std::mt19937 rng(1234);
    std::shuffle(ids.begin(), ids.end(), rng);
    size_t next_id = 0;
    uint32_t seed = 100;
    for (Seq& s : seqs) {
        s.k = random_vector(s.len * width, seed++);
        s.v = random_vector(s.len * width, seed++);
        s.q = random_vector((s.len - s.start) * nh * hd, seed++);
        for (int64_t b = 0; b < (s.len + bs - 1) / bs; ++b) s.blocks.push_back(ids[next_id++]);
    }
    std::vector<const int32_t*> tables;
    for (const Seq& s : seqs) tables.push_back(s.blocks.data());

    const float kNaN = std::numeric_limits<float>::quiet_NaN();
    std::vector<float> k_cache(total_blocks * bs * width, kNaN), v_cache(total_blocks * bs * width, kNaN);

    // Earlier steps: the cached prefixes, written one sequence after another.
    {
        std::vector<int32_t> pos, seq;
        std::vector<float> k, v;
        for (size_t si = 0; si < seqs.size(); ++si)
            for (int64_t p = 0; p < seqs[si].start; ++p) {
                pos.push_back(int32_t(p));
                seq.push_back(int32_t(si));
                k.insert(k.end(), seqs[si].k.begin() + p * width, seqs[si].k.begin() + (p + 1) * width);
                v.insert(v.end(), seqs[si].v.begin() + p * width, seqs[si].v.begin() + (p + 1) * width);
            }
        const cpu::PagedKvMeta meta{pos.data(), seq.data(), tables.data(), bs};
        cpu::write_kv(k.data(), v.data(), int64_t(pos.size()), meta, shape, k_cache.data(), v_cache.data());
    }

    // This step: tokens of all sequences interleaved round-robin, so nothing may assume a sequence is contiguous.
    std::vector<int32_t> pos, seq;
    std::vector<float> q, k, v;
    for (int64_t i = 0;; ++i) {
        bool any = false;
        for (size_t si = 0; si < seqs.size(); ++si) {
            const Seq& s = seqs[si];
            const int64_t p = s.start + i;
            if (p >= s.len) continue;
            any = true;
            pos.push_back(int32_t(p));
            seq.push_back(int32_t(si));
            q.insert(q.end(), s.q.begin() + i * nh * hd, s.q.begin() + (i + 1) * nh * hd);
            k.insert(k.end(), s.k.begin() + p * width, s.k.begin() + (p + 1) * width);
            v.insert(v.end(), s.v.begin() + p * width, s.v.begin() + (p + 1) * width);
        }
        if (!any) break;
    }
    const int64_t T = int64_t(pos.size());
    const cpu::PagedKvMeta meta{pos.data(), seq.data(), tables.data(), bs};
    cpu::write_kv(k.data(), v.data(), T, meta, shape, k_cache.data(), v_cache.data());

    // Every position of every sequence now sits in its slot: block table[p / bs], offset p % bs.
    for (const Seq& s : seqs)
        for (int64_t p = 0; p < s.len; ++p) {
            const int64_t slot = int64_t(s.blocks[p / bs]) * bs + p % bs;
            ASSERT_TRUE(testing::all_close(k_cache.data() + slot * width, s.k.data() + p * width, width, 0, 0));
            ASSERT_TRUE(testing::all_close(v_cache.data() + slot * width, s.v.data() + p * width, width, 0, 0));
        }

    std::vector<float> out(T * nh * hd, kNaN);
    cpu::paged_attention(q.data(), T, meta, shape, k_cache.data(), v_cache.data(), out.data());

    for (size_t si = 0; si < seqs.size(); ++si) {
        const Seq& s = seqs[si];
        const int64_t n = s.len - s.start;
        std::vector<int32_t> qpos(n);
        std::iota(qpos.begin(), qpos.end(), int32_t(s.start));
        std::vector<float> want(n * nh * hd);
        ref::attention(s.q.data(), n, qpos.data(), s.k.data(), s.v.data(), nh, nkv, hd, window, shape.scale,
                       want.data());
        for (int64_t t = 0; t < T; ++t) {
            if (seq[t] != int32_t(si)) continue;
            const int64_t i = pos[t] - s.start;
            ASSERT_TRUE(testing::all_close(out.data() + t * nh * hd, want.data() + i * nh * hd, nh * hd, 1e-5, 1e-5))
                << "sequence " << si << " position " << pos[t];
        }
    }
}

INSTANTIATE_TEST_SUITE_P(Shapes, PagedAttentionTest,
                         ::testing::Combine(::testing::Values(int64_t{16}, int64_t{4}),
                                            ::testing::Values(int64_t{1}, int64_t{2}, int64_t{4}),
                                            ::testing::Values(int64_t{16}, int64_t{64}),
                                            ::testing::Values(int64_t{0}, int64_t{1}, int64_t{5})),
                         [](const auto& info) {
                             return "bs" + std::to_string(std::get<0>(info.param)) + "_g" +
                                    std::to_string(std::get<1>(info.param)) + "_hd" +
                                    std::to_string(std::get<2>(info.param)) + "_win" +
                                    std::to_string(std::get<3>(info.param));
                         });

// Window 1 leaves only the query's own key: the output must be exactly its own value row, whatever the scores.
TEST(PagedAttention, WindowOneReturnsOwnValue) {
    const int64_t hd = 8, nkv = 1, nh = 2, bs = 4, len = 10;
    const cpu::AttentionShape shape{nh, nkv, hd, 1, 0.3f};
    const std::vector<int32_t> table = {2, 0, 1};
    const int32_t* tables[] = {table.data()};
    std::vector<int32_t> pos(len), seq(len, 0);
    std::iota(pos.begin(), pos.end(), 0);
    const std::vector<float> k = random_vector(len * hd, 1), v = random_vector(len * hd, 2),
                             q = random_vector(len * nh * hd, 3);
    std::vector<float> kc(3 * bs * hd), vc(3 * bs * hd), out(len * nh * hd);
    const cpu::PagedKvMeta meta{pos.data(), seq.data(), tables, bs};
    cpu::write_kv(k.data(), v.data(), len, meta, shape, kc.data(), vc.data());
    cpu::paged_attention(q.data(), len, meta, shape, kc.data(), vc.data(), out.data());
    for (int64_t t = 0; t < len; ++t)
        for (int64_t h = 0; h < nh; ++h)
            EXPECT_TRUE(testing::all_close(out.data() + (t * nh + h) * hd, v.data() + t * hd, hd, 1e-6, 0))
                << "token " << t << " head " << h;
}

}  // namespace
}  // namespace moeinfer
