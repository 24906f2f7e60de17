// Engine loop and RequestHandle (see engine.h).
#include "engine/engine.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "engine/scheduler.h"

namespace moeinfer {

const char* finish_reason_name(FinishReason r) {
    switch (r) {
        case FinishReason::None: return "none";
        case FinishReason::Length: return "length";
        case FinishReason::Stop: return "stop";
        case FinishReason::Cancelled: return "cancelled";
        case FinishReason::Error: return "error";
    }
    return "?";
}

bool RequestHandle::wait(std::vector<TokenEvent>& out, std::chrono::milliseconds timeout) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, timeout, [&] { return !pending_.empty() || finish_ != FinishReason::None; });
    while (!pending_.empty()) {
        out.push_back(std::move(pending_.front()));
        pending_.pop_front();
    }
    return finish_ != FinishReason::None;
}

FinishReason RequestHandle::finish_reason() const {
    std::lock_guard<std::mutex> lock(mu_);
    return finish_;
}

std::string RequestHandle::error() const {
    std::lock_guard<std::mutex> lock(mu_);
    return error_;
}

double RequestHandle::ttft_seconds() const {
    std::lock_guard<std::mutex> lock(mu_);
    if (first_token_ == std::chrono::steady_clock::time_point{}) return 0;
    return std::chrono::duration<double>(first_token_ - submitted_).count();
}

void RequestHandle::push(TokenEvent ev) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (first_token_ == std::chrono::steady_clock::time_point{}) first_token_ = std::chrono::steady_clock::now();
        pending_.push_back(std::move(ev));
    }
    cv_.notify_all();
}

void RequestHandle::finish(FinishReason r, std::string error) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (finish_ != FinishReason::None) return;
        finish_ = r;
        error_ = std::move(error);
    }
    cv_.notify_all();
}

namespace {

int32_t kv_blocks(const EngineConfig& c, const Model& m) {
    return KvCache::blocks_for_bytes(c.kv_cache_mib << 20, c.block_size, m.kv_bytes_per_token());
}

}  // namespace

Engine::Engine(std::unique_ptr<Model> model, EngineConfig config) : Engine(*model, config) {
    owned_model_ = std::move(model);
}

Engine::Engine(Model& model, EngineConfig config) : model_(&model), config_(config) {
    if (config_.max_num_seqs < 1 || config_.max_num_batched_tokens < 1 || config_.block_size < 1 ||
        config_.kv_cache_mib < 1)
        throw std::invalid_argument("engine limits (max_num_seqs, max_num_batched_tokens, kv cache) must be positive");
    kv_ = model_->make_kv_cache(kv_blocks(config_, *model_), config_.block_size);
    scheduler_ = std::make_unique<Scheduler>(config_, *kv_, model_->config().max_position);
    for (int64_t id : model_->config().eos_token_ids) eos_ids_.push_back(static_cast<int32_t>(id));
    update_metrics();
}

Engine::~Engine() { stop(false); }

std::shared_ptr<RequestHandle> Engine::submit(RequestOptions o) {
    if (o.n != 1) throw std::invalid_argument("n: submit() takes n = 1; use submit_n for parallel sampling");
    return submit_n(std::move(o))[0];
}

std::vector<std::shared_ptr<RequestHandle>> Engine::submit_n(RequestOptions o) {
    const ModelConfig& c = model_->config();
    if (o.prompt.empty()) throw std::invalid_argument("prompt: must not be empty");
    for (int32_t id : o.prompt)
        if (id < 0 || id >= c.vocab_size)
            throw std::invalid_argument("prompt: token id " + std::to_string(id) + " is out of range (vocab size " +
                                        std::to_string(c.vocab_size) + ")");
    if (o.max_tokens < 0) throw std::invalid_argument("max_tokens: must not be negative");
    const int64_t n = static_cast<int64_t>(o.prompt.size());
    if (n > c.max_position)
        throw std::invalid_argument("prompt: the prompt has " + std::to_string(n) +
                                    " tokens, more than the context length " + std::to_string(c.max_position));
    if (n + o.max_tokens > c.max_position)
        throw std::invalid_argument("prompt: " + std::to_string(n) + " prompt tokens + max_tokens " +
                                    std::to_string(o.max_tokens) + " exceed the context length " +
                                    std::to_string(c.max_position));
    if (o.beam_width < 0 || o.beam_width > 64) throw std::invalid_argument("beam_width: must be in [0, 64]");
    const bool beams = o.beam_width > 1;
    if (o.num_return_sequences < 1 || o.num_return_sequences > std::max(1, o.beam_width))
        throw std::invalid_argument("num_return_sequences: must be in [1, beam_width]");
    if (beams && (o.spec_ngram > 0 || o.spec_draft > 0))
        throw std::invalid_argument("spec_ngram: speculative decoding is not supported with beam search");
    if (o.spec_draft < 0 || o.spec_draft > 64) throw std::invalid_argument("spec_draft: must be in [0, 64]");
    if (o.spec_draft > 0 && !draft_) throw std::invalid_argument("spec_draft: the engine has no draft model");
    if (o.spec_draft > 0 && o.spec_ngram > 0)
        throw std::invalid_argument("spec_draft: choose one of spec_draft and spec_ngram");
    if (beams && o.prompt_logprobs) throw std::invalid_argument("prompt_logprobs: not supported with beam search");
    if (beams && o.max_tokens < 1) throw std::invalid_argument("max_tokens: beam search needs at least 1");
    if (!std::isfinite(o.length_penalty)) throw std::invalid_argument("length_penalty: must be finite");
    if (o.n < 1 || o.n > 128) throw std::invalid_argument("n: must be in [1, 128]");
    if (o.n > 1 && beams) throw std::invalid_argument("n: use num_return_sequences with beam search");
    // The draft model's KV mirrors the target's block ids; copy-on-write of shared blocks does not copy it.
    if (o.n > 1 && o.spec_draft > 0) throw std::invalid_argument("n: not supported with spec_draft");
    // Beams and candidates share the prompt's blocks, but in the worst case each holds its own generated tail.
    const int64_t bs = config_.block_size;
    const int64_t ways = beams ? o.beam_width : o.n;
    const int64_t blocks = ways > 1 ? (n + bs - 1) / bs + ways * ((o.max_tokens + bs) / bs)
                                    : (n + o.max_tokens + bs - 1) / bs;
    if (blocks > kv_->num_blocks())
        throw std::invalid_argument("prompt: the request needs " + std::to_string(blocks) +
                                    " KV blocks but the cache holds " + std::to_string(kv_->num_blocks()));
    if (o.min_tokens < 0) throw std::invalid_argument("min_tokens: must be >= 0");
    o.sampling.validate();
    for (const auto& [id, b] : o.sampling.logit_bias)
        if (id >= c.vocab_size)
            throw std::invalid_argument("logit_bias: token id " + std::to_string(id) + " is out of range (vocab size " +
                                        std::to_string(c.vocab_size) + ")");

    auto seq = std::make_unique<Sequence>();
    seq->handle = std::make_shared<RequestHandle>();
    seq->handle->submitted_ = std::chrono::steady_clock::now();
    seq->handle->prompt_tokens_ = n;
    seq->tokens = o.prompt;
    seq->num_prompt = n;
    seq->rng.seed(o.sampling.seed);
    std::vector<std::shared_ptr<RequestHandle>> handles{seq->handle};
    for (int32_t i = 1; i < o.n; ++i) {
        auto h = std::make_shared<RequestHandle>();
        h->submitted_ = seq->handle->submitted_;
        h->prompt_tokens_ = n;
        seq->pending_forks.push_back(h);
        handles.push_back(std::move(h));
    }
    if (beams) {
        std::vector<int32_t> eos = o.stop_token_ids;
        if (!o.ignore_eos) eos.insert(eos.end(), eos_ids_.begin(), eos_ids_.end());
        seq->beam = std::make_shared<BeamGroup>(BeamGroup{
            BeamSearch(o.beam_width, o.length_penalty, o.early_stopping, o.max_tokens, std::move(eos)), {seq.get()}, {}});
    }
    seq->opts = std::move(o);
    {
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) throw EngineFull("the server is shutting down");
        if (metrics_.waiting + static_cast<int64_t>(inbox_.size()) >= config_.max_waiting)
            throw EngineFull("the request queue is full (" + std::to_string(config_.max_waiting) + " waiting)");
        seq->id = next_id_++;
        inbox_.push_back(std::move(seq));
    }
    cv_.notify_all();
    return handles;
}

void Engine::start() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!thread_.joinable()) thread_ = std::thread([this] { loop(); });
}

void Engine::stop(bool drain) {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stopping_ = true;
        draining_ = drain;
    }
    cv_.notify_all();
    if (thread_.joinable()) thread_.join();
    // Whatever the loop did not take (or everything, if it never ran) is cancelled.
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& s : inbox_) s->finish_handles(FinishReason::Cancelled);
    inbox_.clear();
    scheduler_->cancel_all();
}

void Engine::loop() {
    for (;;) {
        {
            std::unique_lock<std::mutex> lock(mu_);
            cv_.wait(lock, [&] { return stopping_ || !inbox_.empty() || !scheduler_->idle(); });
            for (auto& s : inbox_) scheduler_->add(std::move(s));
            inbox_.clear();
            if (stopping_ && (!draining_ || scheduler_->idle())) break;
        }
        const auto t0 = std::chrono::steady_clock::now();
        try {
            step();
        } catch (const std::exception& e) {
            // A failed forward must not take the server down: fail the requests in flight, keep serving.
            scheduler_->cancel_all(FinishReason::Error, std::string("engine step failed: ") + e.what());
            std::fprintf(stderr, "engine: step failed: %s\n", e.what());
        }
        update_metrics();
        const double busy = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::lock_guard<std::mutex> lock(mu_);
        metrics_.loop_seconds += busy;
    }
}

void Engine::step() {
    StepPlan plan = scheduler_->schedule();
    propose_drafts(plan);  // draft-model tokens for the chunks that asked for them
    scheduler_->build_batch(plan);
    const int64_t blocks_in_use = kv_->pool().num_in_use();
    if (plan.chunks.empty()) {
        // Nothing fits right now (e.g. the cache is full of waiting work); yield instead of spinning hot.
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return;
    }
    const int64_t V = model_->config().vocab_size;
    // Chunks whose next token needs no more than RowSummary offers (greedy, or on a device plain temperature /
    // min-p sampling): when every chunk is one, the model returns only (token, logprob) per row — a device model
    // then moves 8 bytes per row instead of the vocab-sized logits and nothing is sampled on the host.
    const bool summary_step = std::all_of(plan.chunks.begin(), plan.chunks.end(),
                                          [&](const ScheduledChunk& c) { return summary_only(c); });
    std::vector<float> logits(summary_step ? 0 : plan.batch.logit_rows.size() * V);
    std::vector<RowSummary> summaries(summary_step ? plan.batch.logit_rows.size() : 0);
    for (size_t i = 0; summary_step && i < plan.chunks.size(); ++i) {  // one row per chunk
        Sequence& s = *plan.chunks[i].seq;
        const SamplingParams& p = s.opts.sampling;
        if (!plan.chunks[i].samples || p.temperature == 0) continue;
        summaries[i].temperature = p.temperature;
        summaries[i].min_p = p.min_p;
        // Below 1 after rounding to float, so the inverse CDF always lands inside the distribution.
        summaries[i].u = std::min(static_cast<float>(std::uniform_real_distribution<double>(0.0, 1.0)(s.rng)),
                                  std::nextafter(1.0f, 0.0f));
    }
    const auto f0 = std::chrono::steady_clock::now();
    model_->forward(plan.batch, *kv_, summary_step ? nullptr : logits.data(), summary_step ? summaries.data() : nullptr);
    const double forward = std::chrono::duration<double>(std::chrono::steady_clock::now() - f0).count();
    // Counted now: sampling below may finish (and free) sequences of this plan.
    int64_t prompt_tokens = 0;
    for (const ScheduledChunk& c : plan.chunks)
        prompt_tokens += std::max<int64_t>(0, std::min(c.start + c.length, c.seq->num_prompt) - c.start);
    size_t row = 0;
    std::vector<std::shared_ptr<BeamGroup>> beam_groups;  // those with a logits row this step
    for (const ScheduledChunk& c : plan.chunks) {
        Sequence& s = *c.seq;
        if (s.beam) {  // the root's prefill chunks, then one decode token per beam
            scheduler_->commit(s, c.start + c.length);
            row += 1;
            if (!c.samples) continue;
            BeamGroup& g = *s.beam;
            g.rows.resize(g.beams.size(), nullptr);
            const size_t b = std::find(g.beams.begin(), g.beams.end(), &s) - g.beams.begin();
            g.rows[b] = &logits[(row - 1) * V];
            if (std::find(beam_groups.begin(), beam_groups.end(), s.beam) == beam_groups.end())
                beam_groups.push_back(s.beam);
            continue;
        }
        if (!s.draft.empty()) {
            verify_draft(s, c.start, &logits[row * V]);  // commits and streams what it accepts
            row += c.length;
            continue;
        }
        scheduler_->commit(s, c.start + c.length);
        if (summary_step) {  // one row per chunk (summary_only)
            const RowSummary& sum = summaries[row++];
            if (c.samples) emit(s, sum.token, nullptr, sum.logprob);
            continue;
        }
        const bool all_rows = s.opts.prompt_logprobs && c.start < s.num_prompt;
        if (all_rows) {
            if (c.start == 0) s.prompt_logprobs.assign(1, std::nullopt);
            for (int64_t i = 0; i < c.length; ++i) {
                const int64_t next = c.start + i + 1;  // the row after token i predicts token `next`
                if (next < s.num_prompt)
                    s.prompt_logprobs.push_back(token_logprob(&logits[(row + i) * V], V, s.tokens[next], s.opts.sampling.logprobs));
            }
            row += c.length;
        } else {
            row += 1;
        }
        if (!c.samples) continue;
        // Parallel sampling: every candidate samples its first token from the prompt's one logits row.
        const std::vector<Sequence*> cands = s.pending_forks.empty() ? std::vector<Sequence*>{&s} : fork_candidates(s);
        for (Sequence* q : cands) {
            if (q->opts.max_tokens == 0) {  // prompt only
                q->handle->set_prompt_logprobs(std::move(q->prompt_logprobs));
                q->handle->finish(FinishReason::Length);
                scheduler_->finish(q);
            } else {
                const float* last = &logits[(row - 1) * V];
                emit(*q, choose_token(*q, last), last);
            }
        }
    }
    // After every chunk: a finished beam search frees all its beams, which may appear in later chunks.
    for (const auto& g : beam_groups) advance_beams(*g);
    std::lock_guard<std::mutex> lock(mu_);
    ++metrics_.steps;
    metrics_.kv_blocks_peak = std::max(metrics_.kv_blocks_peak, blocks_in_use);
    metrics_.prompt_tokens += prompt_tokens;
    metrics_.forward_seconds += forward;
}

int32_t Engine::choose_token(Sequence& s, const float* row) {
    const std::vector<float> logits = adjusted_logits(s, row);
    return sample_token(logits.data(), model_->config().vocab_size, s.opts.sampling, s.rng, nullptr);
}

std::vector<float> Engine::adjusted_logits(const Sequence& s, const float* row) const {
    const int64_t V = model_->config().vocab_size;
    std::vector<float> logits(row, row + V);
    apply_logit_bias(logits.data(), V, s.opts.sampling);
    apply_penalties(logits.data(), V, s.opts.sampling, s.prompt(), s.generated());
    if (s.num_generated() < s.opts.min_tokens) {  // EOS and stop ids are banned until min_tokens
        for (int32_t id : s.opts.stop_token_ids) logits[id] = -std::numeric_limits<float>::infinity();
        if (!s.opts.ignore_eos)
            for (int32_t id : eos_ids_) logits[id] = -std::numeric_limits<float>::infinity();
    }
    return logits;
}

FinishReason Engine::finish_check(const Sequence& s) const {
    const int32_t t = s.tokens.back();
    const bool early = s.num_generated() <= s.opts.min_tokens;  // the token just added was chosen under the ban
    const bool is_eos = std::find(eos_ids_.begin(), eos_ids_.end(), t) != eos_ids_.end();
    const bool is_stop = std::find(s.opts.stop_token_ids.begin(), s.opts.stop_token_ids.end(), t) != s.opts.stop_token_ids.end();
    if (!early && ((is_eos && !s.opts.ignore_eos) || is_stop)) return FinishReason::Stop;
    if (s.num_generated() >= s.opts.max_tokens || static_cast<int64_t>(s.tokens.size()) >= model_->config().max_position)
        return FinishReason::Length;
    return FinishReason::None;
}

bool Engine::summary_only(const ScheduledChunk& c) const {
    const Sequence& s = *c.seq;
    const SamplingParams& p = s.opts.sampling;
    // Sampling on the device draws its own way (RowSummary), so the host sampler keeps CPU runs as they were.
    const bool device_sampling = model_->device() && p.top_k == 0 && p.top_p == 1 && p.typical_p == 1;
    return !s.beam && s.draft.empty() && s.pending_forks.empty() && !(s.opts.prompt_logprobs && c.start < s.num_prompt) &&
           (p.temperature == 0 || device_sampling) && p.logprobs == 0 && p.logit_bias.empty() && p.presence_penalty == 0 &&
           p.frequency_penalty == 0 && p.repetition_penalty == 1 && s.num_generated() >= s.opts.min_tokens &&
           (!c.samples || s.opts.max_tokens > 0);
}

bool Engine::emit(Sequence& s, int32_t token, const float* row, float logprob) {
    TokenEvent ev;
    ev.token = token;
    // Logprobs are reported from the model's distribution, before penalties (as vLLM's default).
    if (row) {
        ev.logprob = token_logprob(row, model_->config().vocab_size, token, s.opts.sampling.logprobs);
    } else {
        ev.logprob.token = token;
        ev.logprob.logprob = logprob;
    }
    s.tokens.push_back(token);
    s.handle->push(std::move(ev));
    {
        std::lock_guard<std::mutex> lock(mu_);
        ++metrics_.generated_tokens;
    }
    const FinishReason reason = finish_check(s);
    if (reason == FinishReason::None) return false;
    s.handle->set_prompt_logprobs(std::move(s.prompt_logprobs));
    s.handle->finish(reason);
    scheduler_->finish(&s);
    return true;
}

void Engine::update_metrics() {
    std::lock_guard<std::mutex> lock(mu_);
    metrics_.running = scheduler_->num_running();
    metrics_.waiting = scheduler_->num_waiting();
    metrics_.kv_blocks_total = kv_->num_blocks();
    metrics_.kv_blocks_cached = kv_->pool().num_cached();
    metrics_.kv_blocks_in_use = kv_->pool().num_in_use();
    metrics_.prefix_cache_queries = scheduler_->prefix_queries();
    metrics_.prefix_cache_hits = scheduler_->prefix_hits();
    metrics_.preemptions = scheduler_->preemptions();
    metrics_.beam_blocks_peak = scheduler_->beam_blocks_peak();
    metrics_.beam_blocks_unshared_peak = scheduler_->beam_blocks_unshared_peak();
    metrics_.kv_cow_copies = scheduler_->cow_copies();
    metrics_.routed_tokens = model_->routed_counts();
}

EngineMetrics Engine::metrics() const {
    std::lock_guard<std::mutex> lock(mu_);
    EngineMetrics m = metrics_;
    m.waiting += static_cast<int64_t>(inbox_.size());
    return m;
}

}  // namespace moeinfer
