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

struct Engine::Launched {
    StepPlan plan;
    bool summary_step = false;  // every chunk summary_only: rows come back as RowSummary, not logits
    std::vector<float> logits;
    std::vector<RowSummary> summaries;
    std::vector<std::vector<LogitAdjust>> adjust;  // per summary row: bias, penalties, bans (read during the launch)
    int64_t prompt_tokens = 0, blocks_in_use = 0;
    double forward_seconds = 0;  // time inside the model's launch and finish calls
    bool follows_work = false;   // launched with no idle wait since the previous launch: its device gap counts
};

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
    overlap_ = config_.overlap == EngineConfig::Overlap::On ||
               (config_.overlap == EngineConfig::Overlap::Auto && model_->device() != nullptr);
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
            const auto ready = [&] { return stopping_ || !inbox_.empty() || !scheduler_->idle() || in_flight_; };
            if (!ready()) went_idle_ = true;  // the device gap before the next step is not the host's doing
            cv_.wait(lock, ready);
            for (auto& s : inbox_) scheduler_->add(std::move(s));
            inbox_.clear();
            if (stopping_ && (!draining_ || scheduler_->idle())) break;
        }
        const auto t0 = std::chrono::steady_clock::now();
        try {
            step();
        } catch (const std::exception& e) {
            // A failed forward must not take the server down: fail the requests in flight, keep serving.
            if (in_flight_) {
                for (int i = 0; i < 2; ++i) try { model_->finish_forward(); } catch (...) {}  // ≤ 2 outstanding
                in_flight_.reset();
            }
            scheduler_->cancel_all(FinishReason::Error, std::string("engine step failed: ") + e.what());
            scheduler_->release_retired(scheduler_->num_retired());
            std::fprintf(stderr, "engine: step failed: %s\n", e.what());
        }
        update_metrics();
        const double busy = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::lock_guard<std::mutex> lock(mu_);
        metrics_.loop_seconds += busy;
    }
    if (in_flight_) finish_in_flight();  // stopping: nothing else may be launched behind it
}

bool Engine::can_overlap(const StepPlan& plan) const {
    return overlap_ && std::all_of(plan.chunks.begin(), plan.chunks.end(), [&](const ScheduledChunk& c) {
               return summary_only(c) && c.seq->opts.spec_ngram == 0 && c.seq->opts.spec_draft == 0 &&
                      !token_dependent(*c.seq);
           });
}

void Engine::step() {
    StepPlan plan = scheduler_->schedule();
    if (in_flight_ && !can_overlap(plan)) {
        // This plan needs what the step in flight will tell (tokens on the host, who finished): read that step
        // first and plan again next round. Nothing a plan changes is lost by planning twice (blocks stay reserved,
        // admitted sequences stay running; drafts are looked up again).
        finish_in_flight();
        return;
    }
    propose_drafts(plan);  // draft-model tokens for the chunks that asked for them
    scheduler_->build_batch(plan);
    if (plan.chunks.empty()) {
        if (in_flight_) return finish_in_flight();
        // Nothing fits right now (e.g. the cache is full of waiting work); yield instead of spinning hot.
        std::this_thread::sleep_for(std::chrono::milliseconds(1));
        return;
    }
    std::unique_ptr<Launched> next = launch(std::move(plan));
    if (in_flight_) {
        // Step N+1 is queued behind step N on the device; read step N while N+1 computes. Sequences finished
        // from here on may be named by N+1, so only those retired before are released.
        const size_t retired = scheduler_->num_retired();
        complete(*in_flight_);
        scheduler_->release_retired(retired);
        std::lock_guard<std::mutex> lock(mu_);
        ++metrics_.overlapped_steps;
    }
    in_flight_.reset();
    if (overlap_ && next->summary_step && can_overlap(next->plan)) {
        in_flight_ = std::move(next);
    } else {
        complete(*next);
        scheduler_->release_retired(scheduler_->num_retired());
    }
}

void Engine::finish_in_flight() {
    std::unique_ptr<Launched> last = std::move(in_flight_);
    complete(*last);
    scheduler_->release_retired(scheduler_->num_retired());
}

std::unique_ptr<Engine::Launched> Engine::launch(StepPlan plan) {
    auto st = std::make_unique<Launched>();
    st->plan = std::move(plan);
    const StepPlan& p = st->plan;
    const int64_t V = model_->config().vocab_size, R = static_cast<int64_t>(p.batch.logit_rows.size());
    st->blocks_in_use = kv_->pool().num_in_use();
    st->follows_work = !went_idle_;
    went_idle_ = false;
    // Chunks whose next token needs no more than RowSummary offers (see summary_only): when every chunk is one, the
    // model returns only (token, logprob) per row — a device model then moves 8 bytes per row instead of the
    // vocab-sized logits and nothing is sampled on the host.
    st->summary_step = std::all_of(p.chunks.begin(), p.chunks.end(), [&](const ScheduledChunk& c) { return summary_only(c); });
    st->logits.resize(st->summary_step ? 0 : R * V);
    st->summaries.resize(st->summary_step ? R : 0);
    st->adjust.resize(st->summaries.size());
    for (const ScheduledChunk& c : p.chunks)  // counted now: the results may finish (and free) sequences
        st->prompt_tokens += std::max<int64_t>(0, std::min(c.start + c.length, c.seq->num_prompt) - c.start);
    if (st->summary_step) {
        for (size_t i = 0; i < p.chunks.size(); ++i) {  // one row per chunk
            const ScheduledChunk& c = p.chunks[i];
            Sequence& s = *c.seq;
            // The chunk's K/V is as good as written (later steps run after it on the device), and its token
            // becomes a placeholder the next step can feed before the host has read it.
            scheduler_->commit(s, c.start + c.length);
            if (!c.samples) continue;
            st->adjust[i] = adjustments(s);  // before the placeholder joins the generated tokens
            st->summaries[i].adjust = st->adjust[i].data();
            st->summaries[i].num_adjust = static_cast<int32_t>(st->adjust[i].size());
            s.tokens.push_back(kPendingToken);
            ++s.pending;
            s.pending_row = static_cast<int32_t>(i);
            s.awaiting_last = s.num_generated() >= s.opts.max_tokens ||
                              static_cast<int64_t>(s.tokens.size()) >= model_->config().max_position;
            const SamplingParams& sp = s.opts.sampling;
            if (sp.temperature == 0) continue;
            st->summaries[i].temperature = sp.temperature;
            st->summaries[i].min_p = sp.min_p;
            st->summaries[i].top_k = sp.top_k;
            st->summaries[i].top_p = sp.top_p;
            // Below 1 after rounding to float, so the inverse CDF always lands inside the distribution.
            st->summaries[i].u = std::min(static_cast<float>(std::uniform_real_distribution<double>(0.0, 1.0)(s.rng)),
                                          std::nextafter(1.0f, 0.0f));
        }
    }
    const auto f0 = std::chrono::steady_clock::now();
    model_->launch_forward(p.batch, *kv_, st->summary_step ? nullptr : st->logits.data(),
                           st->summary_step ? st->summaries.data() : nullptr);
    st->forward_seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - f0).count();
    return st;
}

void Engine::complete(Launched& st) {
    const auto f0 = std::chrono::steady_clock::now();
    model_->finish_forward();
    st.forward_seconds += std::chrono::duration<double>(std::chrono::steady_clock::now() - f0).count();
    const double gap = model_->last_step_gap_seconds();
    {
        std::lock_guard<std::mutex> lock(mu_);
        ++metrics_.steps;
        metrics_.kv_blocks_peak = std::max(metrics_.kv_blocks_peak, st.blocks_in_use);
        metrics_.prompt_tokens += st.prompt_tokens;
        metrics_.forward_seconds += st.forward_seconds;
        if (gap >= 0 && st.follows_work) {
            metrics_.device_gap_seconds += gap;
            ++metrics_.device_gaps;
        }
    }
    const int64_t V = model_->config().vocab_size;
    const std::vector<float>& logits = st.logits;
    if (st.summary_step) {
        for (size_t i = 0; i < st.plan.chunks.size(); ++i) {
            const ScheduledChunk& c = st.plan.chunks[i];
            Sequence& s = *c.seq;
            if (!c.samples || s.finished) continue;  // finished while this step was in flight: its row is unused
            const int64_t at = c.start + c.length;    // the placeholder this row fills
            const RowSummary& sum = st.summaries[i];
            s.tokens[at] = sum.token;
            --s.pending;
            scheduler_->commit(s, s.num_computed);  // blocks that were waiting on this token can be registered
            TokenEvent ev;
            ev.token = sum.token;
            ev.logprob.token = sum.token;
            ev.logprob.logprob = sum.logprob;
            deliver(s, at + 1, std::move(ev));
        }
        return;
    }
    size_t row = 0;
    std::vector<std::shared_ptr<BeamGroup>> beam_groups;  // those with a logits row this step
    for (const ScheduledChunk& c : st.plan.chunks) {
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
}

int32_t Engine::choose_token(Sequence& s, const float* row) {
    const std::vector<float> logits = adjusted_logits(s, row);
    return sample_token(logits.data(), model_->config().vocab_size, s.opts.sampling, s.rng, nullptr);
}

std::vector<LogitAdjust> Engine::adjustments(const Sequence& s) const {
    const SamplingParams& p = s.opts.sampling;
    std::vector<int32_t> banned;
    if (s.num_generated() < s.opts.min_tokens) {  // EOS and stop ids are banned until min_tokens
        banned = s.opts.stop_token_ids;
        if (!s.opts.ignore_eos) banned.insert(banned.end(), eos_ids_.begin(), eos_ids_.end());
    }
    const bool penalties = token_dependent(s);
    if (banned.empty() && p.logit_bias.empty() && !penalties) return {};
    return logit_adjustments(p, penalties ? s.prompt() : std::vector<int32_t>{},
                             penalties ? s.generated() : std::vector<int32_t>{}, banned);
}

std::vector<float> Engine::adjusted_logits(const Sequence& s, const float* row) const {
    std::vector<float> logits(row, row + model_->config().vocab_size);
    const std::vector<LogitAdjust> a = adjustments(s);
    apply_adjustments(logits.data(), a.data(), static_cast<int64_t>(a.size()));
    return logits;
}

FinishReason Engine::finish_check(const Sequence& s, int64_t len) const {
    const int32_t t = s.tokens[len - 1];
    const int64_t generated = len - s.num_prompt;
    const bool early = generated <= s.opts.min_tokens;  // the token just added was chosen under the ban
    const bool is_eos = std::find(eos_ids_.begin(), eos_ids_.end(), t) != eos_ids_.end();
    const bool is_stop = std::find(s.opts.stop_token_ids.begin(), s.opts.stop_token_ids.end(), t) != s.opts.stop_token_ids.end();
    if (!early && ((is_eos && !s.opts.ignore_eos) || is_stop)) return FinishReason::Stop;
    if (generated >= s.opts.max_tokens || len >= model_->config().max_position) return FinishReason::Length;
    return FinishReason::None;
}

bool Engine::summary_only(const ScheduledChunk& c) const {
    const Sequence& s = *c.seq;
    const SamplingParams& p = s.opts.sampling;
    // Sampling on the device draws its own way (RowSummary), so the host sampler keeps CPU runs as they were.
    const bool device_sampling = model_->device() && p.typical_p == 1;
    return !s.beam && s.draft.empty() && s.pending_forks.empty() && !(s.opts.prompt_logprobs && c.start < s.num_prompt) &&
           (p.temperature == 0 || device_sampling) && p.logprobs == 0 && (!c.samples || s.opts.max_tokens > 0);
}

bool Engine::token_dependent(const Sequence& s) {
    const SamplingParams& p = s.opts.sampling;
    return p.repetition_penalty != 1 || p.presence_penalty != 0 || p.frequency_penalty != 0;
}

bool Engine::emit(Sequence& s, int32_t token, const float* row) {
    TokenEvent ev;
    ev.token = token;
    // Logprobs are reported from the model's distribution, before penalties (as vLLM's default).
    ev.logprob = token_logprob(row, model_->config().vocab_size, token, s.opts.sampling.logprobs);
    s.tokens.push_back(token);
    return deliver(s, static_cast<int64_t>(s.tokens.size()), std::move(ev));
}

bool Engine::deliver(Sequence& s, int64_t len, TokenEvent ev) {
    s.handle->push(std::move(ev));
    {
        std::lock_guard<std::mutex> lock(mu_);
        ++metrics_.generated_tokens;
    }
    const FinishReason reason = finish_check(s, len);
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
