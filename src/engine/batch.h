// Batch: one forward step over a ragged list of token spans, one per sequence (prefill and decode alike),
// laid out flat so the same arrays can feed CPU kernels and, later, fixed-capacity device buffers.
#pragma once
#include <cstdint>
#include <vector>

namespace moeinfer {

// What greedy decoding needs from a logits row, computable where the logits are (on the device: the vocab-sized
// row never crosses PCIe): the argmax (ties → lower id) and its log-probability.
struct RowSummary {
    int32_t argmax = -1;
    float logprob = 0;
};

struct Batch {
    std::vector<int32_t> token_ids;   // [T]
    std::vector<int32_t> positions;   // [T] position of each token within its sequence
    std::vector<int32_t> token_seq;   // [T] index into block_tables
    std::vector<const int32_t*> block_tables;  // [S] each sequence's block ids (must cover its positions)
    std::vector<int32_t> logit_rows;  // token rows whose next-token logits the caller wants, in output order

    int64_t num_tokens() const { return static_cast<int64_t>(token_ids.size()); }
    // Appends `n` tokens of one sequence starting at position `start`; returns the sequence's index.
    int32_t add_sequence(const int32_t* ids, int64_t n, int64_t start, const int32_t* block_table,
                         bool want_all_logits);
};

}  // namespace moeinfer
