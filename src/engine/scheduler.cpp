// Scheduler (see scheduler.h).
#include "engine/scheduler.h"

#include <algorithm>

#include "core/check.h"

namespace moeinfer {

Scheduler::Scheduler(const EngineConfig& config, KvCache& kv, int64_t max_position)
    : config_(config), kv_(kv), max_position_(max_position) {}

void Scheduler::add(std::unique_ptr<Sequence> seq) { waiting_.push_back(std::move(seq)); }

void Scheduler::preempt(Sequence& victim) {
    victim.table.release(kv_.pool());
    victim.num_computed = 0;
    victim.num_hashed_blocks = 0;
    victim.last_block_hash = 0;
    victim.prompt_logprobs.clear();
    ++preemptions_;
    auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == &victim; });
    MOE_CHECK(it != running_.end(), "preempting a sequence that is not running");
    waiting_.push_front(std::move(*it));  // recomputed first when space frees up
    running_.erase(it);
}

bool Scheduler::ensure_blocks(Sequence& s, int64_t num_tokens) {
    while (!s.table.reserve(kv_.pool(), num_tokens, kv_.block_size())) {
        // Preempt the most recently admitted other sequence; if s is the newest, s itself waits.
        Sequence* victim = running_.back().get();
        preempt(*victim);
        if (victim == &s) return false;
    }
    return true;
}

void Scheduler::admit_prefix(Sequence& s) {
    if (!config_.enable_prefix_caching || s.opts.prompt_logprobs) return;  // echo needs every prompt row computed
    const int64_t bs = kv_.block_size();
    // At least the last token is recomputed, so the step produces logits for it.
    const int64_t max_blocks = (static_cast<int64_t>(s.tokens.size()) - 1) / bs;
    uint64_t h = 0;
    for (int64_t b = 0; b < max_blocks; ++b) {
        ++prefix_queries_;
        const int32_t* toks = s.tokens.data() + b * bs;
        const uint64_t next = chain_block_hash(h, toks, static_cast<int32_t>(bs));
        const int32_t block = kv_.pool().acquire_cached(next, toks, static_cast<int32_t>(bs));
        if (block < 0) break;
        ++prefix_hits_;
        s.table.blocks.push_back(block);
        h = next;
        s.num_hashed_blocks = b + 1;
        s.last_block_hash = h;
        s.num_computed = (b + 1) * bs;
    }
}

StepPlan Scheduler::plan() {
    for (size_t i = 0; i < running_.size();) {
        if (running_[i]->handle->cancelled()) {
            running_[i]->handle->finish(FinishReason::Cancelled);
            finish(running_[i].get());
        } else {
            ++i;
        }
    }
    for (auto it = waiting_.begin(); it != waiting_.end();) {
        if ((*it)->handle->cancelled()) {
            (*it)->handle->finish(FinishReason::Cancelled);
            (*it)->table.release(kv_.pool());
            it = waiting_.erase(it);
        } else {
            ++it;
        }
    }

    StepPlan p;
    int64_t budget = config_.max_num_batched_tokens;
    // Running sequences in admission order: decodes (1 token) and the continuation of chunked prefills.
    for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
        Sequence& s = *running_[i];
        int64_t n = std::min<int64_t>(static_cast<int64_t>(s.tokens.size()) - s.num_computed, budget);
        if (n <= 0) continue;
        s.draft.clear();
        if (n == 1 && s.opts.spec_ngram > 0 && s.opts.sampling.temperature == 0) {
            // Room for the draft: the step budget, the tokens still allowed, and the context.
            const int64_t room = std::min({int64_t(s.opts.spec_ngram), budget - 1,
                                           s.opts.max_tokens - s.num_generated() - 1,
                                           max_position_ - static_cast<int64_t>(s.tokens.size()) - 1});
            if (room > 0) s.draft = propose_ngram(s.tokens, room);
            n += static_cast<int64_t>(s.draft.size());
        }
        if (!ensure_blocks(s, s.num_computed + n)) break;  // s itself was preempted (it was the newest)
        p.chunks.push_back({&s, s.num_computed, n, s.num_computed + n >= static_cast<int64_t>(s.tokens.size())});
        budget -= n;
    }
    // Admissions, first come first served: a request that does not fit blocks those behind it.
    while (!waiting_.empty() && budget > 0 && static_cast<int64_t>(running_.size()) < config_.max_num_seqs) {
        Sequence& s = *waiting_.front();
        s.draft.clear();
        if (s.table.blocks.empty()) admit_prefix(s);
        const int64_t n = std::min<int64_t>(static_cast<int64_t>(s.tokens.size()) - s.num_computed, budget);
        if (!s.table.reserve(kv_.pool(), s.num_computed + n, kv_.block_size())) {
            s.table.release(kv_.pool());  // give cached prefix blocks back; retried next step
            s.num_computed = s.num_hashed_blocks = 0;
            s.last_block_hash = 0;
            break;
        }
        running_.push_back(std::move(waiting_.front()));
        waiting_.pop_front();
        p.chunks.push_back({&s, s.num_computed, n, s.num_computed + n == static_cast<int64_t>(s.tokens.size())});
        budget -= n;
    }
    for (const ScheduledChunk& c : p.chunks) {
        Sequence& s = *c.seq;
        if (!s.draft.empty()) {  // [last token, draft...], every row's logits verify the next draft token
            std::vector<int32_t> ids{s.tokens.back()};
            ids.insert(ids.end(), s.draft.begin(), s.draft.end());
            p.batch.add_sequence(ids.data(), c.length, c.start, s.table.blocks.data(), true);
            continue;
        }
        const bool all_logits = s.opts.prompt_logprobs && c.start < s.num_prompt;
        p.batch.add_sequence(s.tokens.data() + c.start, c.length, c.start, s.table.blocks.data(), all_logits);
    }
    return p;
}

void Scheduler::register_full_blocks(Sequence& s) {
    if (!config_.enable_prefix_caching) return;
    const int64_t bs = kv_.block_size();
    while ((s.num_hashed_blocks + 1) * bs <= s.num_computed) {
        const int32_t* toks = s.tokens.data() + s.num_hashed_blocks * bs;
        s.last_block_hash = chain_block_hash(s.last_block_hash, toks, static_cast<int32_t>(bs));
        kv_.pool().register_block(s.table.blocks[s.num_hashed_blocks], s.last_block_hash, toks, static_cast<int32_t>(bs));
        ++s.num_hashed_blocks;
    }
}

void Scheduler::commit(Sequence& s, int64_t computed) {
    s.num_computed = computed;
    register_full_blocks(s);
}

std::vector<int32_t> Scheduler::propose_ngram(const std::vector<int32_t>& tokens, int64_t max_len) {
    const int64_t n_tok = static_cast<int64_t>(tokens.size());
    for (int64_t n = std::min<int64_t>(3, n_tok - 1); n >= 1; --n) {
        const int32_t* tail = tokens.data() + n_tok - n;
        for (int64_t pos = n_tok - n - 1; pos >= 0; --pos) {  // latest earlier occurrence first
            if (!std::equal(tail, tail + n, tokens.data() + pos)) continue;
            const int64_t from = pos + n, len = std::min(max_len, n_tok - from);
            return {tokens.begin() + from, tokens.begin() + from + len};
        }
    }
    return {};
}

void Scheduler::finish(Sequence* seq) {
    seq->table.release(kv_.pool());
    auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == seq; });
    if (it != running_.end()) running_.erase(it);
}

void Scheduler::cancel_all(FinishReason reason, const std::string& error) {
    for (auto& s : running_) {
        s->handle->finish(reason, error);
        s->table.release(kv_.pool());
    }
    for (auto& s : waiting_) {
        s->handle->finish(reason, error);
        s->table.release(kv_.pool());
    }
    running_.clear();
    waiting_.clear();
}

}  // namespace moeinfer
