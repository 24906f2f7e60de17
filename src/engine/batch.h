// Batch: one forward step over a ragged list of token spans, one per sequence (prefill and decode alike),
// laid out flat so the same arrays can feed CPU kernels and, later, fixed-capacity device buffers.
#pragma once
#include <cstdint>
#include <vector>

namespace moeinfer {

// A logits row reduced where it was computed (on a device the vocab-sized row never crosses PCIe) to the next token
// and its log-probability under the raw distribution. In: temperature 0 picks the argmax (ties → lower id);
// otherwise the token is drawn at uniform `u` ∈ [0, 1) from softmax(logits / temperature) restricted to the kept
// tokens (inverse CDF in token-id order). Kept: among the top_k best (0: all; ties → lower id first), the shortest
// best-first prefix whose probability reaches top_p of theirs, and of those the ones with probability ≥ min_p × the
// top one — the sets the host sampler keeps.
// One logit changed before the next token is chosen (logit bias, penalties, bans): l ← l + bias; then, where
// rep ≠ 1, l ← l > 0 ? l / rep : l · rep; then l ← l − sub (sub = +inf bans the token).
struct LogitAdjust {
    int32_t id = 0;
    float bias = 0, rep = 1, sub = 0;
};

struct RowSummary {
    float temperature = 0, min_p = 0, u = 0;  // in
    int32_t top_k = 0;                        // in
    float top_p = 1;                          // in
    // in: changes to apply before choosing (ids unique; valid during the launch); the reported logprob stays the
    // raw distribution's.
    const LogitAdjust* adjust = nullptr;
    int32_t num_adjust = 0;
    int32_t token = -1;                       // out
    float logprob = 0;                        // out
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
