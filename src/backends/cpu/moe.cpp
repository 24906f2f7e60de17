// MoE routing kernels (see moe.h).
#include "backends/cpu/moe.h"

#include <algorithm>
#include <cstring>
#include <numeric>

#include "backends/cpu/elementwise.h"
#include "core/thread_pool.h"

namespace moeinfer::cpu {

void route_topk(const float* logits, int64_t T, int64_t E, int64_t k, bool normalize, int32_t* ids, float* weights) {
    std::vector<float> p(E);
    std::vector<int32_t> order(E);
    for (int64_t t = 0; t < T; ++t) {
        std::copy(logits + t * E, logits + (t + 1) * E, p.begin());
        softmax_row(p.data(), E);
        std::iota(order.begin(), order.end(), 0);
        std::partial_sort(order.begin(), order.begin() + k, order.end(),
                          [&](int32_t a, int32_t b) { return p[a] > p[b] || (p[a] == p[b] && a < b); });
        double sum = 0;
        for (int64_t s = 0; s < k; ++s) sum += p[order[s]];
        for (int64_t s = 0; s < k; ++s) {
            ids[t * k + s] = order[s];
            weights[t * k + s] = normalize ? float(p[order[s]] / sum) : p[order[s]];
        }
    }
}

ExpertPermutation permute_by_expert(const int32_t* ids, int64_t T, int64_t k, int64_t E) {
    ExpertPermutation perm;
    perm.offsets.assign(E + 1, 0);
    for (int64_t i = 0; i < T * k; ++i) ++perm.offsets[ids[i] + 1];
    for (int64_t e = 0; e < E; ++e) perm.offsets[e + 1] += perm.offsets[e];
    std::vector<int64_t> next(perm.offsets.begin(), perm.offsets.end() - 1);
    perm.row_token.resize(T * k);
    perm.slot_row.resize(T * k);
    for (int64_t i = 0; i < T * k; ++i) {
        const int64_t row = next[ids[i]]++;
        perm.row_token[row] = static_cast<int32_t>(i / k);
        perm.slot_row[i] = static_cast<int32_t>(row);
    }
    return perm;
}

void gather_rows(const float* x, const ExpertPermutation& perm, int64_t n, float* xp) {
    const int64_t rows = static_cast<int64_t>(perm.row_token.size());
    for (int64_t r = 0; r < rows; ++r) std::memcpy(xp + r * n, x + int64_t(perm.row_token[r]) * n, n * sizeof(float));
}

void combine_rows(const float* y, const ExpertPermutation& perm, const float* weights, int64_t T, int64_t k,
                  int64_t n, float* out) {
    parallel_for(T, [&](int64_t b, int64_t e) {
        for (int64_t t = b; t < e; ++t)
            for (int64_t s = 0; s < k; ++s)
                axpy(weights[t * k + s], y + int64_t(perm.slot_row[t * k + s]) * n, out + t * n, n);
    });
}

}  // namespace moeinfer::cpu
