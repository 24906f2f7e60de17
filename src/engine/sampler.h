// Sampler: turns one row of logits into the next token (greedy, or temperature / top-k / top-p / min-p / typical-p
// with a per-sequence seeded RNG), applies logit bias and penalties, and reports log-probabilities of the model's
// raw distribution.
#pragma once
#include <cstdint>
#include <random>
#include <utility>
#include <vector>

#include "engine/batch.h"

namespace moeinfer {

struct SamplingParams {
    float temperature = 1.0f;  // 0 = greedy
    int32_t top_k = 0;         // 0 = off
    float top_p = 1.0f;        // 1 = off
    float min_p = 0.0f;        // 0 = off
    float typical_p = 1.0f;    // locally typical sampling (Meister et al.): 1 = off
    uint64_t seed = 0;
    int32_t logprobs = 0;      // how many top alternatives to report per token (0: only the chosen token's)
    // OpenAI/vLLM penalties: presence/frequency over generated tokens (additive), repetition over prompt and
    // generated tokens (divides positive logits, multiplies negative ones). 0 / 0 / 1 = off.
    float presence_penalty = 0.0f;
    float frequency_penalty = 0.0f;
    float repetition_penalty = 1.0f;
    // OpenAI logit_bias: added to the logit of each listed token id before penalties and sampling (also greedy).
    // Values in [-100, 100]; ids are checked against the vocabulary by the engine.
    std::vector<std::pair<int32_t, float>> logit_bias;

    // Throws std::invalid_argument naming the parameter when a value is out of range.
    void validate() const;
};

struct TokenLogprob {
    int32_t token = -1;
    float logprob = 0;
    std::vector<std::pair<int32_t, float>> top;  // best first
};

// What logit bias, penalties and bans (`banned`: -inf, e.g. stop ids before min_tokens) change in a row, one entry
// per touched id, in the order apply_logit_bias → apply_penalties → bans; sparse, so a device can apply them to its
// own row. apply_adjustments does it on the host.
std::vector<LogitAdjust> logit_adjustments(const SamplingParams& params, const std::vector<int32_t>& prompt,
                                           const std::vector<int32_t>& generated, const std::vector<int32_t>& banned);
void apply_adjustments(float* logits, const LogitAdjust* adjust, int64_t n);

// The dense forms (the reference for logit_adjustments): adds params.logit_bias to logits [V] in place (ids >= V
// are ignored: the engine rejects them at submit).
void apply_logit_bias(float* logits, int64_t V, const SamplingParams& params);

// Applies the penalties of `params` in place to logits [V], given the prompt and the tokens generated so far.
void apply_penalties(float* logits, int64_t V, const SamplingParams& params, const std::vector<int32_t>& prompt,
                     const std::vector<int32_t>& generated);

// The chosen token for `logits` [V]. `logprob_out`, when given, receives the chosen token's log-probability and
// the top `params.logprobs` alternatives under the unmodified distribution.
int32_t sample_token(const float* logits, int64_t V, const SamplingParams& params, std::mt19937_64& rng,
                     TokenLogprob* logprob_out);

// The distribution sample_token draws from, dense over [V]: temperature, top-k, top-p, min-p and typical-p
// applied and renormalized (greedy: one-hot at the argmax). Speculative decoding's rejection sampling needs it.
std::vector<double> sampling_probs(const float* logits, int64_t V, const SamplingParams& params);

// Draws an index from unnormalized non-negative weights (at least one positive).
int32_t sample_from(const std::vector<double>& weights, std::mt19937_64& rng);

// Log-probability of `token` and the top-k alternatives for a logits row (used for prompt logprobs too).
TokenLogprob token_logprob(const float* logits, int64_t V, int32_t token, int32_t top_k);

}  // namespace moeinfer
