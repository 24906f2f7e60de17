// MoE routing kernels: softmax top-k gating, permutation of token rows into expert-contiguous order, and the
// weighted combine back to token order. The expert GEMMs themselves are grouped_matmul (matmul.h).
#pragma once
#include <cstdint>
#include <vector>

namespace moeinfer::cpu {

// logits: [T, E] router scores. For each token: p = softmax(logits) over all E experts (fp32), choose the k
// largest (ties → lower expert id), weights = their p, divided by their sum when `normalize`.
// ids, weights: [T, k], best first. k == E is soft routing (every expert, weighted by the full softmax).
void route_topk(const float* logits, int64_t T, int64_t E, int64_t k, bool normalize, int32_t* ids, float* weights);

// Expert-contiguous order of the T·k (token, slot) assignments; stable in token order within an expert.
struct ExpertPermutation {
    std::vector<int64_t> offsets;    // [E + 1]: rows of expert e are [offsets[e], offsets[e + 1])
    std::vector<int32_t> row_token;  // [T·k]: token of each permuted row
    std::vector<int32_t> slot_row;   // [T·k]: permuted row of assignment (t, slot) at t·k + slot
};
ExpertPermutation permute_by_expert(const int32_t* ids, int64_t T, int64_t k, int64_t E);

// xp[r, :] = x[row_token[r], :] for every permuted row. x: [T, n]; xp: [T·k, n].
void gather_rows(const float* x, const ExpertPermutation& perm, int64_t n, float* xp);

// out[t, :] += Σ_slot weights[t, slot] · y[slot_row[t·k + slot], :]. y: [T·k, n]; per token, so each token gets
// only its own experts' outputs (never a sum over other tokens).
void combine_rows(const float* y, const ExpertPermutation& perm, const float* weights, int64_t T, int64_t k,
                  int64_t n, float* out);

}  // namespace moeinfer::cpu
