// Thread pool: every index covered exactly once at any thread count, nested calls run inline, and resizing /
// shutting down right after start never hangs (a worker that starts late must still see the stop).
#include <gtest/gtest.h>

#include <atomic>
#include <vector>

#include "core/thread_pool.h"

namespace moeinfer {
namespace {

TEST(ThreadPool, CoversEveryIndexOnce) {
    for (int threads : {1, 2, 3, 5}) {
        set_num_threads(threads);
        for (int64_t n : {1, 7, 100, 769}) {
            std::vector<std::atomic<int>> hits(n);
            parallel_for(n, [&](int64_t b, int64_t e) {
                for (int64_t i = b; i < e; ++i) hits[i]++;
            });
            for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "threads " << threads << " n " << n;
        }
    }
    set_num_threads(2);
}

// Jobs smaller than the pool leave some workers out; back-to-back jobs of different sizes must still run every
// index exactly once (a worker that sat one job out must not take the next job's chunk count with the old job).
TEST(ThreadPool, VaryingJobSizesRunEachIndexOnce) {
    set_num_threads(5);
    for (int round = 0; round < 3000; ++round) {
        const int64_t n = 2 + round % 4;  // 2..5 chunks on a pool of 5
        std::vector<std::atomic<int>> hits(n);
        parallel_for(n, [&](int64_t b, int64_t e) {
            for (int64_t i = b; i < e; ++i) hits[i]++;
        });
        for (int64_t i = 0; i < n; ++i) ASSERT_EQ(hits[i].load(), 1) << "round " << round << " index " << i;
    }
    set_num_threads(2);
}

TEST(ThreadPool, NestedCallsRunInline) {
    set_num_threads(2);
    std::atomic<int64_t> sum{0};
    parallel_for(4, [&](int64_t b, int64_t e) {
        for (int64_t i = b; i < e; ++i) parallel_for(10, [&](int64_t b2, int64_t e2) { sum += e2 - b2; });
    });
    EXPECT_EQ(sum.load(), 40);
}

TEST(ThreadPool, RapidResizeDoesNotHang) {
    for (int i = 0; i < 200; ++i) set_num_threads(1 + i % 4);
    set_num_threads(2);
    EXPECT_EQ(num_threads(), 2);
}

}  // namespace
}  // namespace moeinfer
