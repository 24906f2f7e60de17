// Scheduler: continuous batching under a token budget. Each step: running decodes first (one token each), then
// chunked prefill of partly prefilled sequences, then new admissions in FCFS order — so a long prompt is split
// across steps and never stalls running decodes. When blocks run out, the most recently admitted sequence is
// preempted (its blocks freed, recomputed later). Full blocks go into the prefix cache as they fill.
#pragma once
#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <vector>

#include "engine/batch.h"
#include "engine/sequence.h"
#include "kv/kv_cache.h"

namespace moeinfer {

struct ScheduledChunk {
    Sequence* seq;
    int64_t start, length;  // tokens [start, start + length) are fed this step
    bool samples;           // the chunk reaches the end of the sequence: sample its next token
};

struct StepPlan {
    Batch batch;
    std::vector<ScheduledChunk> chunks;  // batch sequence i = chunks[i]
};

class Scheduler {
public:
    Scheduler(const EngineConfig& config, KvCache& kv, int64_t max_position);

    void add(std::unique_ptr<Sequence> seq);  // to the back of the waiting queue
    void add_running(std::unique_ptr<Sequence> seq);  // a new beam forked from a running one
    bool idle() const { return waiting_.empty() && running_.empty(); }
    int64_t num_running() const { return static_cast<int64_t>(running_.size()); }
    int64_t num_waiting() const { return static_cast<int64_t>(waiting_.size()); }
    int64_t preemptions() const { return preemptions_; }
    int64_t prefix_queries() const { return prefix_queries_; }
    int64_t prefix_hits() const { return prefix_hits_; }
    int64_t beam_blocks_peak() const { return beam_blocks_peak_; }
    int64_t beam_blocks_unshared_peak() const { return beam_blocks_unshared_peak_; }
    int64_t cow_copies() const { return cow_copies_; }

    // Drops cancelled sequences (freeing their blocks) and plans the next step; an empty plan means nothing fits.
    // schedule() chooses the chunks (draft-model drafts are left as -1 placeholders for the engine to fill);
    // build_batch() lays them out; plan() does both.
    StepPlan schedule();
    void build_batch(StepPlan& p);
    StepPlan plan() {
        StepPlan p = schedule();
        build_batch(p);
        return p;
    }
    // After the forward: `computed` tokens of s now have valid K/V (fewer than fed when draft tokens were
    // rejected); registers newly full blocks in the prefix cache.
    void commit(Sequence& s, int64_t computed);
    // Frees a finished sequence's blocks (full ones stay cached for prefix reuse) and takes it out of the queues.
    // The Sequence itself is retired, not destroyed: a step in flight may still name it (its results are skipped).
    void finish(Sequence* seq);
    // Ends everything queued or running with `reason` (shutdown without drain, or a failed step).
    void cancel_all(FinishReason reason = FinishReason::Cancelled, const std::string& error = {});
    // Retired sequences, oldest first: release_retired(n) destroys the first n, once no step in flight refers to them.
    size_t num_retired() const { return retired_.size(); }
    void release_retired(size_t n);

private:
    bool ensure_blocks(Sequence& s, int64_t num_tokens);  // preempting others if needed; false if impossible
    // Copy-on-write: if the block s writes next is shared (beams), gives s its own copy first. False if no block.
    bool make_writable(Sequence& s);
    // The newest preemptible sequence admitted after s, else s itself if preemptible, else null. Beams of a
    // started beam search are not preemptible (their shared blocks cannot be recomputed one beam at a time).
    Sequence* pick_victim(Sequence& s);
    // Schedules every beam of a started beam search together (one decode token each); false if it cannot run.
    bool schedule_beams(BeamGroup& g, StepPlan& p, int64_t& budget, int64_t& blocks_shared, int64_t& blocks_unshared);
    void preempt(Sequence& victim);
    void admit_prefix(Sequence& s);  // reuses cached full blocks of the prompt
    void register_full_blocks(Sequence& s);
    void retire(std::unique_ptr<Sequence> seq);
    // Prompt-lookup draft for a decoding sequence: the tokens that followed the latest earlier occurrence of its
    // last n tokens (n = 3, 2, 1), at most `max_len`.
    static std::vector<int32_t> propose_ngram(const std::vector<int32_t>& tokens, int64_t max_len);

    EngineConfig config_;
    KvCache& kv_;
    int64_t max_position_;
    std::deque<std::unique_ptr<Sequence>> waiting_;
    std::vector<std::unique_ptr<Sequence>> running_;  // admission order
    std::vector<std::unique_ptr<Sequence>> retired_;  // finished, oldest first
    int64_t preemptions_ = 0, prefix_queries_ = 0, prefix_hits_ = 0;
    int64_t beam_blocks_peak_ = 0, beam_blocks_unshared_peak_ = 0, cow_copies_ = 0;
};

}  // namespace moeinfer
