// Batch::add_sequence bookkeeping: flat token layout, per-token positions and sequence ids, and which rows want logits.
#include <gtest/gtest.h>

#include <vector>

#include "engine/batch.h"

namespace moeinfer {
namespace {

TEST(Batch, AddSequenceLaysOutTokensPositionsAndLogitRows) {
    Batch b;
    const std::vector<int32_t> prompt = {11, 12, 13, 14}, decode = {99}, echo = {5, 6, 7};
    const std::vector<int32_t> t0 = {3}, t1 = {8, 9}, t2 = {1};

    EXPECT_EQ(b.add_sequence(prompt.data(), 4, 0, t0.data(), false), 0);  // prefill: only the last row
    EXPECT_EQ(b.add_sequence(decode.data(), 1, 37, t1.data(), false), 1);  // decode at position 37
    EXPECT_EQ(b.add_sequence(echo.data(), 3, 2, t2.data(), true), 2);      // chunk at 2..4, every row (prompt logprobs)

    EXPECT_EQ(b.num_tokens(), 8);
    EXPECT_EQ(b.token_ids, (std::vector<int32_t>{11, 12, 13, 14, 99, 5, 6, 7}));
    EXPECT_EQ(b.positions, (std::vector<int32_t>{0, 1, 2, 3, 37, 2, 3, 4}));
    EXPECT_EQ(b.token_seq, (std::vector<int32_t>{0, 0, 0, 0, 1, 2, 2, 2}));
    EXPECT_EQ(b.logit_rows, (std::vector<int32_t>{3, 4, 5, 6, 7}));
    ASSERT_EQ(b.block_tables.size(), 3u);
    EXPECT_EQ(b.block_tables[0], t0.data());
    EXPECT_EQ(b.block_tables[1], t1.data());
    EXPECT_EQ(b.block_tables[2], t2.data());
}

TEST(Batch, EmptyBatch) {
    Batch b;
    EXPECT_EQ(b.num_tokens(), 0);
    EXPECT_TRUE(b.logit_rows.empty());
}

}  // namespace
}  // namespace moeinfer
