// Generator: offline batched generation for the CLI and tests. All requests prefill together in one ragged
// batch, then decode together, one token per live sequence per step, each with its own paged KV blocks.
#pragma once
#include <cstdint>
#include <functional>
#include <optional>
#include <vector>

#include "engine/beam_search.h"
#include "engine/engine.h"
#include "engine/sampler.h"
#include "models/model.h"

namespace moeinfer {

struct GenerationRequest {
    std::vector<int32_t> prompt;
    int64_t max_new_tokens = 16;
    SamplingParams sampling;
    bool prompt_logprobs = false;     // also report log-probabilities of the prompt tokens (echo)
    std::vector<int32_t> stop_ids;    // generation ends after emitting one of these
    int64_t min_tokens = 0;           // stop ids are not honoured before this many tokens
    int32_t spec_ngram = 0;           // prompt-lookup speculative decoding, draft tokens per step
    int32_t spec_draft = 0;           // draft-model speculative decoding, draft tokens per step (needs a draft model)
    // Beam search when beam_width > 1 (see RequestOptions); stop_ids finish hypotheses.
    int32_t beam_width = 0;
    double length_penalty = 1.0;
    EarlyStopping early_stopping = EarlyStopping::Heuristic;
    int32_t num_return_sequences = 1;
    int32_t n = 1;  // parallel sampling: n candidates sharing the prompt's KV (candidate i: seed + i)
};

struct GenerationResult {
    std::vector<int32_t> tokens;                              // generated ids (stop token included)
    std::vector<TokenLogprob> logprobs;                       // one per generated token
    std::vector<std::optional<TokenLogprob>> prompt_logprobs; // [prompt len], entry 0 empty (when asked for)
    std::vector<BeamHypothesis> beams;                        // beam search: best first (tokens = beams[0])
    struct Candidate {
        std::vector<int32_t> tokens;
        std::vector<TokenLogprob> logprobs;
    };
    std::vector<Candidate> candidates;  // n > 1: every candidate in index order (tokens/logprobs = candidate 0)
};

struct GenerationStats {
    int64_t prompt_tokens = 0, generated_tokens = 0;
    double prefill_seconds = 0, decode_seconds = 0;
    int64_t spec_draft_tokens = 0, spec_accepted_tokens = 0;
    int64_t beam_blocks_peak = 0, beam_blocks_unshared_peak = 0, kv_cow_copies = 0;
    int64_t steps = 0;
    double loop_seconds = 0, forward_seconds = 0;  // EngineMetrics: engine-thread time, and the forwards in it
    double device_gap_seconds = 0;                 // EngineMetrics: device idle between steps, over device_gaps
    int64_t device_gaps = 0, overlapped_steps = 0;
};

class Generator {
public:
    // `draft`: optional draft model for requests with spec_draft > 0 (same vocabulary; must outlive the call).
    explicit Generator(Model& model, int32_t block_size = 16, Model* draft = nullptr);

    // Validates every request first (non-empty prompt, ids < vocab, prompt + max_new_tokens within the context,
    // sampling ranges), throwing std::invalid_argument naming the request and problem.
    // on_token(request index, token) is called as each token is chosen (streaming; candidate 0 only when n > 1);
    // returning false ends that request there (e.g. a stop string was completed).
    std::vector<GenerationResult> generate(const std::vector<GenerationRequest>& requests,
                                           const std::function<bool(size_t, int32_t)>& on_token = {},
                                           GenerationStats* stats = nullptr);
    // Overlapped steps of the engine it runs (EngineConfig::overlap); Auto unless set.
    void set_overlap(EngineConfig::Overlap o) { overlap_ = o; }

private:
    Model& model_;
    int32_t block_size_;
    Model* draft_;
    EngineConfig::Overlap overlap_ = EngineConfig::Overlap::Auto;
};

}  // namespace moeinfer
