// Dense gated MLP (SwiGLU): out = down(silu(gate(x)) * up(x)).
#pragma once
#include <cstdint>

#include "layers/layer_weights.h"

namespace moeinfer {

// x: [T, H]; out: [T, H] (overwritten).
void mlp_forward(const MlpWeights& w, const float* x, int64_t T, float* out);

}  // namespace moeinfer
