// Dense MLP forward (see mlp.h).
#include "layers/mlp.h"

#include <vector>

#include "backends/cpu/elementwise.h"
#include "backends/cpu/matmul.h"

namespace moeinfer {

void mlp_forward(const MlpWeights& w, const float* x, int64_t T, float* out) {
    const int64_t ff = w.gate.rows();
    std::vector<float> g(T * ff), u(T * ff);
    cpu::matmul_jobs(x, {{&w.gate, 0, T, g.data(), ff}, {&w.up, 0, T, u.data(), ff}});  // one parallel region
    cpu::silu_mul(g.data(), u.data(), ff, T, ff, g.data());
    cpu::matmul(g.data(), T, w.down, out);
}

}  // namespace moeinfer
