// Speculative decoding's acceptance rule (rejection sampling, Leviathan et al. 2023 / Chen et al. 2023): a draft
// token d drawn from q is kept with probability min(1, p(d) / q(d)); otherwise a token is drawn from the residual
// max(0, p - q), renormalized. The emitted token is then distributed exactly as p, whatever q is.
#pragma once
#include <cstdint>
#include <random>
#include <vector>

namespace moeinfer {

// p: the target's sampling distribution at this position (dense [V]); q: the draft's, or null when the draft
// token was chosen deterministically (prompt lookup: q is one-hot at d). Sets *accepted; returns the token.
int32_t accept_or_resample(const std::vector<double>& p, int32_t d, const std::vector<double>* q, std::mt19937_64& rng,
                           bool* accepted);

}  // namespace moeinfer
