// Engine: the serving loop. Requests are submitted from any thread; one engine thread runs continuous batching
// (scheduler → batch → forward → sample) and hands tokens to each request's RequestHandle, so HTTP threads
// never block the loop and the loop never waits on a client.
#pragma once
#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "engine/beam_search.h"
#include "engine/sampler.h"
#include "models/model.h"

namespace moeinfer {

struct EngineConfig {
    int32_t max_num_seqs = 64;             // running sequences at once
    int32_t max_num_batched_tokens = 512;  // tokens per forward step (decode tokens + prefill chunks)
    int64_t kv_cache_mib = 256;            // KV cache size
    int32_t block_size = 16;
    int32_t max_waiting = 1024;            // queue bound: submit() throws EngineFull beyond it
    bool enable_prefix_caching = true;
    // Overlapped steps (asynchronous decoding): step N+1 is planned and launched before step N's tokens are read,
    // feeding them on the device, so the device never waits on the host between steps. Auto: on for a device
    // model; on the CPU the forward uses every core and there is nothing to overlap with.
    enum class Overlap { Auto, On, Off } overlap = Overlap::Auto;
};

struct RequestOptions {
    std::vector<int32_t> prompt;
    int64_t max_tokens = 16;              // 0: only process the prompt (e.g. for prompt logprobs)
    SamplingParams sampling;
    std::vector<int32_t> stop_token_ids;  // in addition to the model's EOS unless ignore_eos
    bool ignore_eos = false;
    int64_t min_tokens = 0;               // EOS/stop ids are not honoured before this many tokens
    bool prompt_logprobs = false;         // report log-probabilities of prompt tokens (echo + logprobs)
    // Speculative decoding, verified in one target forward: greedy output is unchanged, and sampling keeps the
    // target distribution (rejection sampling). spec_ngram: up to this many draft tokens per step copied from
    // where the last tokens occurred earlier (prompt lookup); spec_draft: this many tokens proposed by the
    // engine's draft model (set_draft_model). 0 = off; at most one of the two.
    int32_t spec_ngram = 0;
    int32_t spec_draft = 0;
    // Beam search (HF generate(num_beams=W, do_sample=False) semantics) when beam_width > 1: sampling params other
    // than logprobs are ignored; stop_token_ids (and EOS unless ignore_eos) finish a hypothesis. The handle gets
    // the best num_return_sequences hypotheses; the best one's tokens are also streamed when the search ends.
    int32_t beam_width = 0;
    double length_penalty = 1.0;
    EarlyStopping early_stopping = EarlyStopping::Heuristic;
    int32_t num_return_sequences = 1;
    // Parallel sampling: n candidates from one prompt (submit_n). The prompt is prefilled once; then n sequences
    // share its KV blocks by refcount (the partial last block is copied on write) and decode in the same batches.
    // Candidate i samples with seed sampling.seed + i, so it produces exactly what an n = 1 request with that seed
    // would; each has its own stop/length state and frees its blocks when it finishes.
    int32_t n = 1;
};

enum class FinishReason { None, Length, Stop, Cancelled, Error };
const char* finish_reason_name(FinishReason r);  // "length", "stop", "cancelled", "error"

struct TokenEvent {
    int32_t token;
    TokenLogprob logprob;  // chosen token's logprob and top alternatives (as many as sampling.logprobs)
};

// Shared between the engine thread (producer) and the request's client thread (consumer).
class RequestHandle {
public:
    // Waits up to `timeout` for news; moves new tokens into `out`. Returns true once finished (and drained).
    bool wait(std::vector<TokenEvent>& out, std::chrono::milliseconds timeout);
    void cancel() { cancelled_.store(true); }  // the engine frees the request's blocks at its next step
    bool cancelled() const { return cancelled_.load(); }
    FinishReason finish_reason() const;
    std::string error() const;                 // set when finish_reason() == Error
    const std::vector<std::optional<TokenLogprob>>& prompt_logprobs() const { return prompt_logprobs_; }  // after finish
    int64_t prompt_tokens() const { return prompt_tokens_; }
    double ttft_seconds() const;               // submit → first token; 0 before it
    const std::vector<BeamHypothesis>& beams() const { return beams_; }  // beam search results, after finish

    // Engine side.
    void push(TokenEvent ev);
    void finish(FinishReason r, std::string error = {});
    void set_prompt_logprobs(std::vector<std::optional<TokenLogprob>> lp) { prompt_logprobs_ = std::move(lp); }
    void set_beams(std::vector<BeamHypothesis> b) { beams_ = std::move(b); }

private:
    friend class Engine;
    mutable std::mutex mu_;
    std::condition_variable cv_;
    std::deque<TokenEvent> pending_;
    FinishReason finish_ = FinishReason::None;
    std::string error_;
    std::atomic<bool> cancelled_{false};
    std::vector<std::optional<TokenLogprob>> prompt_logprobs_;
    std::vector<BeamHypothesis> beams_;
    int64_t prompt_tokens_ = 0;
    std::chrono::steady_clock::time_point submitted_, first_token_;
};

struct EngineFull : std::runtime_error {
    using std::runtime_error::runtime_error;
};

struct EngineMetrics {
    int64_t running = 0, waiting = 0;
    int64_t kv_blocks_total = 0, kv_blocks_in_use = 0, kv_blocks_cached = 0;
    int64_t prefix_cache_queries = 0, prefix_cache_hits = 0;  // in blocks
    int64_t prompt_tokens = 0, generated_tokens = 0, preemptions = 0, steps = 0;
    int64_t spec_draft_tokens = 0, spec_accepted_tokens = 0;  // speculative decoding
    // Beam search KV sharing: the most blocks the beams of all beam requests held in one step, and what copying
    // each beam's KV would have held in that step; and how many shared partial blocks were copied on write.
    int64_t beam_blocks_peak = 0, beam_blocks_unshared_peak = 0, kv_cow_copies = 0;
    int64_t kv_blocks_peak = 0;  // most blocks referenced at once (measured after each step's scheduling)
    // Loop thread time: all of its work per step (plan, forward, sampling, streaming, metrics) and the part spent
    // in the target's Model::forward; the difference is the time the model waits on the engine between forwards.
    double loop_seconds = 0, forward_seconds = 0;
    // Device idle time between consecutive steps while work was queued (the host preparing the next step), and the
    // number of such gaps measured (device models only; the device's own timers).
    double device_gap_seconds = 0;
    int64_t device_gaps = 0;
    int64_t overlapped_steps = 0;  // steps launched while the previous one was still computing
    std::vector<std::vector<uint64_t>> routed_tokens;  // [layer][expert]
};

class Scheduler;
class KvCache;
struct Sequence;
struct StepPlan;
struct ScheduledChunk;


class Engine {
public:
    Engine(std::unique_ptr<Model> model, EngineConfig config);
    Engine(Model& model, EngineConfig config);  // non-owning: `model` must outlive the engine
    ~Engine();  // stops the loop (cancelling what is left)

    const ModelConfig& model_config() const { return model_->config(); }
    Model& model() { return *model_; }
    const EngineConfig& config() const { return config_; }

    // Validates (throws std::invalid_argument naming the field: empty prompt, id ≥ vocab, max_tokens < 0, prompt + max_tokens
    // beyond the context, sampling ranges) and queues the request; throws EngineFull when the queue is full.
    // n must be 1 here (invalid_argument otherwise); submit_n returns one handle per candidate (index = position),
    // each cancellable on its own.
    std::shared_ptr<RequestHandle> submit(RequestOptions options);
    std::vector<std::shared_ptr<RequestHandle>> submit_n(RequestOptions options);

    // A smaller model with the same vocabulary that proposes spec_draft tokens; its KV cache mirrors the target's
    // block ids. Call before start(); `draft` must outlive the engine. Throws std::invalid_argument on a vocab mismatch.
    void set_draft_model(Model& draft);

    void start();               // runs the loop on its own thread
    void stop(bool drain);      // drain: finish in-flight and queued requests first; else cancel them
    EngineMetrics metrics() const;

private:
    struct Launched;  // a step whose forward has been launched (engine.cpp)
    void loop();
    void step();  // one scheduling round: plan, launch, then read the results of this or the previous step
    // Chunks that can be launched before the step in flight is read: all summary_only and none speculative
    // (drafts are looked up in tokens the host does not have yet).
    bool can_overlap(const StepPlan& plan) const;
    std::unique_ptr<Launched> launch(StepPlan plan);
    void complete(Launched& step);  // waits for its forward, then samples, streams and finishes sequences
    void finish_in_flight();        // completes in_flight_ with nothing launched behind it
    int32_t choose_token(Sequence& s, const float* logits);       // penalties, min_tokens bans, sampling
    std::vector<float> adjusted_logits(const Sequence& s, const float* logits) const;  // bias, penalties, bans
    std::vector<LogitAdjust> adjustments(const Sequence& s) const;  // the same, sparse (empty: none)
    // Penalties that depend on the generated tokens' values: such a row cannot be planned before they are read.
    static bool token_dependent(const Sequence& s);
    // After s.tokens[len - 1] became known (later tokens may still be pending).
    FinishReason finish_check(const Sequence& s, int64_t len) const;
    // Appends and streams `token`, its logprob from the logits row; true when s finished (and was freed).
    bool emit(Sequence& s, int32_t token, const float* row);
    // Streams s.tokens[len - 1] (just known) with this logprob event; true when s finished (and was freed).
    bool deliver(Sequence& s, int64_t len, TokenEvent ev);
    // A chunk whose next token a RowSummary can give (bias, penalties and bans included): greedy, or on a device
    // temperature / top-k / top-p / min-p sampling; no typical-p, logprob alternatives, beams, drafts, forks or
    // prompt logprobs.
    bool summary_only(const ScheduledChunk& c) const;
    // Speculative decoding (speculative.cpp). verify_draft: greedy accepts the longest prefix of s.draft that greedy
    // decoding agrees with, sampling accepts draft token d with probability min(1, p(d) / q(d)) and otherwise
    // draws from max(0, p - q); then one more token. logits holds the rows of the chunk [last token, draft...]
    // that started at position `start`. propose_drafts fills draft-model placeholders (-1) in the plan's drafts.
    void verify_draft(Sequence& s, int64_t start, const float* logits);
    void propose_drafts(const StepPlan& plan);
    // Runs one beam-search step for a group whose beams all have this step's logits rows (engine_beams.cpp).
    void advance_beams(BeamGroup& g);
    // Parallel sampling (engine_beams.cpp): when the root's prompt is computed, forks a sequence per other
    // candidate that shares the root's blocks; returns them (the root first) to sample from the same logits row.
    std::vector<Sequence*> fork_candidates(Sequence& root);
    void update_metrics();  // publishes the loop's state for metrics()

    std::unique_ptr<Model> owned_model_;
    Model* model_;
    EngineConfig config_;
    std::unique_ptr<KvCache> kv_;
    Model* draft_ = nullptr;                // speculative draft model (optional)
    std::unique_ptr<KvCache> draft_kv_;     // the draft's K/V, same block ids as kv_
    std::unique_ptr<Scheduler> scheduler_;  // touched only by the loop thread
    std::vector<int32_t> eos_ids_;
    bool overlap_ = false;                  // config_.overlap resolved for this model
    std::unique_ptr<Launched> in_flight_;   // launched, results not read yet (overlapped steps)
    bool went_idle_ = true;                 // the loop waited for work since the last launch
    mutable std::mutex mu_;                 // guards inbox_, metrics_, stopping_, draining_, next_id_
    std::condition_variable cv_;
    std::vector<std::unique_ptr<Sequence>> inbox_;
    EngineMetrics metrics_;
    int64_t next_id_ = 0;
    std::thread thread_;
    bool stopping_ = false, draining_ = false;
};

}  // namespace moeinfer
