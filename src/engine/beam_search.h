// Beam search: the scoring and pruning rules of HF transformers' `generate(num_beams=W, do_sample=False)` as a
// small state machine over log-probability rows, and the BeamGroup that ties a request's beam Sequences together
// in the engine (beams share KV blocks by refcount; the scheduler copies a shared partial block before a write).
#pragma once
#include <cstdint>
#include <vector>

namespace moeinfer {

struct Sequence;

// HF's `early_stopping`: false = stop when the best running beam (at its current length) cannot beat the worst
// finished one; true = stop as soon as W hypotheses are finished; never = the same test as false but, with a
// positive length penalty, assuming the running beam could reach max length.
enum class EarlyStopping { Heuristic, Always, Never };

struct BeamHypothesis {
    std::vector<int32_t> tokens;  // generated tokens (the EOS that ended it included)
    double score = 0;             // sum of token logprobs / (number of tokens ^ length_penalty)
};

class BeamSearch {
public:
    // eos: ids that finish a hypothesis; max_new: generated tokens at which every hypothesis ends.
    BeamSearch(int32_t width, double length_penalty, EarlyStopping early_stopping, int64_t max_new,
               std::vector<int32_t> eos);

    struct Next {
        int32_t parent;  // index of the running beam this one extends
        int32_t token;
    };
    // One decoding step. rows[b]: logits [V] of running beam b (b < num_running()); history[b]: its generated
    // tokens so far. Returns the new running beams, best first (empty once done()).
    std::vector<Next> step(const std::vector<const float*>& rows, int64_t V,
                           const std::vector<std::vector<int32_t>>& history);
    int32_t num_running() const { return static_cast<int32_t>(running_.size()); }
    bool done() const { return done_; }
    // Finished hypotheses, best first (at most W).
    const std::vector<BeamHypothesis>& finished() const { return finished_; }

private:
    int32_t width_;
    double length_penalty_;
    EarlyStopping early_stopping_;
    int64_t max_new_;
    std::vector<int32_t> eos_;
    std::vector<double> running_ = {0.0};  // summed logprobs of the running beams; the prompt alone to start
    std::vector<BeamHypothesis> finished_;
    int64_t generated_ = 0;                // tokens each running beam has generated
    bool improvable_ = true;               // HF's is_early_stop_heuristic_unsatisfied (sticky once false)
    bool done_ = false;
};

// A beam-search request inside the engine: its live beams (each a Sequence in the scheduler's running list) and
// the search state. Until the first step the prompt's one Sequence (the root) is the only beam.
struct BeamGroup {
    BeamSearch search;
    std::vector<Sequence*> beams;           // running beam b of `search`; beams[0] leads scheduling
    std::vector<const float*> rows;         // this step's logits row per beam (set while the step's logits live)
    int64_t peak_blocks_shared = 0;         // most distinct KV blocks the beams held at once
    int64_t peak_blocks_unshared = 0;       // what copying the KV per beam would have held at that time
    bool forked = false;                    // the first step ran: beams share blocks and cannot be preempted
};

}  // namespace moeinfer
