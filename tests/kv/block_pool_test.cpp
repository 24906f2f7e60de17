// BlockPool reference counting and BlockTable reserve/release: exhaustion, sharing, reuse, and all-or-nothing reserve.
#include <gtest/gtest.h>

#include <algorithm>
#include <set>
#include <stdexcept>
#include <vector>

#include "kv/block_pool.h"
#include "kv/kv_cache.h"

namespace moeinfer {
namespace {

TEST(BlockPool, AllocatesEveryBlockOnceThenReportsExhaustion) {
    BlockPool pool(7);
    EXPECT_EQ(pool.num_blocks(), 7);
    EXPECT_EQ(pool.num_free(), 7);
    std::set<int32_t> got;
    for (int i = 0; i < 7; ++i) {
        const int32_t b = pool.allocate();
        ASSERT_GE(b, 0);
        ASSERT_LT(b, 7);
        EXPECT_TRUE(got.insert(b).second) << "block " << b << " handed out twice";
        EXPECT_EQ(pool.refcount(b), 1);
    }
    EXPECT_EQ(pool.num_free(), 0);
    EXPECT_EQ(pool.allocate(), -1);
    EXPECT_EQ(pool.allocate(), -1);  // stays exhausted, no state corrupted by the failed call
    EXPECT_EQ(pool.num_free(), 0);
}

TEST(BlockPool, SharedBlockFreedOnlyAtLastOwner) {
    BlockPool pool(2);
    const int32_t b = pool.allocate();
    pool.incref(b);
    pool.incref(b);
    EXPECT_EQ(pool.refcount(b), 3);
    pool.decref(b);
    pool.decref(b);
    EXPECT_EQ(pool.refcount(b), 1);
    EXPECT_EQ(pool.num_free(), 1);
    pool.decref(b);
    EXPECT_EQ(pool.refcount(b), 0);
    EXPECT_EQ(pool.num_free(), 2);
}

TEST(BlockPool, FreedBlockIsReused) {
    BlockPool pool(3);
    const int32_t a = pool.allocate(), b = pool.allocate(), c = pool.allocate();
    EXPECT_EQ(pool.allocate(), -1);
    pool.decref(b);
    EXPECT_EQ(pool.allocate(), b);  // the only free block
    pool.decref(a);
    pool.decref(c);
    const int32_t first = pool.allocate();
    EXPECT_EQ(first, c) << "LIFO: the most recently freed block comes back first";
    EXPECT_EQ(pool.allocate(), a);
}

TEST(BlockPool, MisuseOfFreeBlockThrows) {
    BlockPool pool(2);
    EXPECT_THROW(pool.decref(0), std::logic_error);
    EXPECT_THROW(pool.incref(1), std::logic_error);
    const int32_t b = pool.allocate();
    pool.decref(b);
    EXPECT_THROW(pool.decref(b), std::logic_error) << "double free must not put the block on the free list twice";
    EXPECT_EQ(pool.num_free(), 2);
}

TEST(BlockTable, ReserveAllocatesCeilOfTokensOverBlockSize) {
    BlockPool pool(10);
    BlockTable t;
    EXPECT_TRUE(t.reserve(pool, 1, 4));
    EXPECT_EQ(t.blocks.size(), 1u);
    EXPECT_TRUE(t.reserve(pool, 4, 4));  // still fits in one block
    EXPECT_EQ(t.blocks.size(), 1u);
    EXPECT_TRUE(t.reserve(pool, 5, 4));
    EXPECT_EQ(t.blocks.size(), 2u);
    EXPECT_TRUE(t.reserve(pool, 17, 4));
    EXPECT_EQ(t.blocks.size(), 5u);
    EXPECT_TRUE(t.reserve(pool, 3, 4));  // shrinking requests never release
    EXPECT_EQ(t.blocks.size(), 5u);
    EXPECT_EQ(pool.num_free(), 5);
    std::set<int32_t> distinct(t.blocks.begin(), t.blocks.end());
    EXPECT_EQ(distinct.size(), 5u);
}

TEST(BlockTable, FailedReserveLeavesTableAndPoolUnchanged) {
    BlockPool pool(4);
    BlockTable t, other;
    ASSERT_TRUE(t.reserve(pool, 8, 4));      // 2 blocks
    ASSERT_TRUE(other.reserve(pool, 4, 4));  // 1 block; 1 left
    const std::vector<int32_t> before = t.blocks;
    EXPECT_FALSE(t.reserve(pool, 16, 4));    // needs 2 more, only 1 free
    EXPECT_EQ(t.blocks, before);
    EXPECT_EQ(pool.num_free(), 1);
    EXPECT_TRUE(t.reserve(pool, 12, 4));     // exactly the last block
    EXPECT_EQ(pool.num_free(), 0);
}

TEST(BlockTable, ReleaseReturnsEveryBlockButKeepsSharedOnes) {
    BlockPool pool(6);
    BlockTable a, b;
    ASSERT_TRUE(a.reserve(pool, 10, 4));  // 3 blocks
    b.blocks = {a.blocks[0]};             // b shares a's first block (prefix reuse)
    pool.incref(a.blocks[0]);
    const int32_t shared = a.blocks[0];
    a.release(pool);
    EXPECT_TRUE(a.blocks.empty());
    EXPECT_EQ(pool.num_free(), 5);
    EXPECT_EQ(pool.refcount(shared), 1) << "still owned by b";
    b.release(pool);
    EXPECT_EQ(pool.num_free(), 6);
    for (int32_t i = 0; i < 6; ++i) EXPECT_EQ(pool.refcount(i), 0);
}

TEST(KvCache, LayersAndKvHalvesDoNotOverlap) {
    KvCache cache(3, 4, {8, 16});
    EXPECT_EQ(cache.num_blocks(), 3);
    EXPECT_EQ(cache.block_size(), 4);
    // Layer l's K is [3 blocks, 4 tokens, width] followed by its V; write every float and read it back.
    const int64_t widths[] = {8, 16};
    for (int64_t l = 0; l < 2; ++l) {
        const int64_t n = 3 * 4 * widths[l];
        for (int64_t i = 0; i < n; ++i) {
            cache.k(l)[i] = float(l * 1000000 + i);
            cache.v(l)[i] = float(l * 1000000 + 500000 + i);
        }
    }
    for (int64_t l = 0; l < 2; ++l)
        for (int64_t i = 0; i < 3 * 4 * widths[l]; ++i) {
            ASSERT_EQ(cache.k(l)[i], float(l * 1000000 + i));
            ASSERT_EQ(cache.v(l)[i], float(l * 1000000 + 500000 + i));
        }
    EXPECT_THROW(KvCache(0, 4, {8}), std::runtime_error);
    EXPECT_EQ(KvCache::blocks_for_bytes(1000, 4, 10), 25);
    EXPECT_EQ(KvCache::blocks_for_bytes(1, 4, 10), 1);  // never zero blocks
}

}  // namespace
}  // namespace moeinfer
