// Mixture-of-experts layer: router → top-k → permute tokens by expert → grouped expert GEMMs → weighted
// combine, plus the shared expert where the family has one. Never a loop over tokens calling experts.
#pragma once
#include <cstdint>
#include <vector>

#include "layers/layer_weights.h"

namespace moeinfer {

// x: [T, H]; out: [T, H] (overwritten). routed_counts (size E) gains the number of tokens routed to each expert.
void moe_forward(const MoeWeights& w, const float* x, int64_t T, float* out, std::vector<uint64_t>& routed_counts);

}  // namespace moeinfer
