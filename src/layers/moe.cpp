// MoE layer forward (see moe.h). Expert GEMMs run as one parallel region over all active experts: gate and up
// together, then down.
#include "layers/moe.h"

#include <algorithm>
#include <cmath>

#include "backends/cpu/elementwise.h"
#include "backends/cpu/matmul.h"
#include "backends/cpu/moe.h"
#include "layers/mlp.h"

namespace moeinfer {

void moe_forward(const MoeWeights& w, const float* x, int64_t T, float* out, std::vector<uint64_t>& routed_counts) {
    const int64_t E = w.router.rows(), H = w.router.cols(), k = w.top_k;
    const int64_t ff = w.gate.empty() ? 0 : w.gate[0].rows();
    std::vector<float> logits(T * E), weights(T * k);
    std::vector<int32_t> ids(T * k);
    cpu::matmul(x, T, w.router, logits.data());
    cpu::route_topk(logits.data(), T, E, k, w.normalize_topk, ids.data(), weights.data());
    const cpu::ExpertPermutation perm = cpu::permute_by_expert(ids.data(), T, k, E);

    const int64_t R = T * k;
    std::vector<float> xp(R * H), g(R * ff), u(R * ff), y(R * H);
    std::vector<cpu::MatmulJob> gate_up;  // gate and up of every active expert: one parallel region
    std::vector<cpu::MatmulGroup> down_groups;
    for (int64_t e = 0; e < E; ++e) {
        const int64_t b = perm.offsets[e], end = perm.offsets[e + 1];
        routed_counts[e] += end - b;
        if (b == end) continue;  // inactive expert: its weights are never read
        gate_up.push_back({&w.gate[e], b, end, g.data() + b * ff, ff});
        gate_up.push_back({&w.up[e], b, end, u.data() + b * ff, ff});
        down_groups.push_back({&w.down[e], b, end});
    }
    cpu::gather_rows(x, perm, H, xp.data());
    cpu::matmul_jobs(xp.data(), gate_up);
    cpu::silu_mul(g.data(), u.data(), ff, R, ff, g.data());
    cpu::grouped_matmul(g.data(), down_groups, H, y.data());
    std::fill(out, out + T * H, 0.f);
    cpu::combine_rows(y.data(), perm, weights.data(), T, k, H, out);

    if (!w.has_shared) return;
    std::vector<float> shared(T * H);
    mlp_forward(w.shared, x, T, shared.data());
    std::vector<float> gate(T, 1.f);
    if (w.shared_gate.data) {
        cpu::matmul(x, T, w.shared_gate, gate.data());
        for (float& gv : gate) gv = 1.f / (1.f + std::exp(-gv));
    }
    for (int64_t t = 0; t < T; ++t)
        for (int64_t i = 0; i < H; ++i) out[t * H + i] += gate[t] * shared[t * H + i];
}

}  // namespace moeinfer
