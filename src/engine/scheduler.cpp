// Scheduler (see scheduler.h).
#include "engine/scheduler.h"

#include <algorithm>

#include "core/check.h"

namespace moeinfer {

Scheduler::Scheduler(const EngineConfig& config, KvCache& kv, int64_t max_position)
    : config_(config), kv_(kv), max_position_(max_position) {}

void Scheduler::add(std::unique_ptr<Sequence> seq) { waiting_.push_back(std::move(seq)); }

void Scheduler::add_running(std::unique_ptr<Sequence> seq) { running_.push_back(std::move(seq)); }

void Scheduler::preempt(Sequence& victim) {
    victim.table.release(kv_.pool());
    victim.num_computed = 0;
    victim.draft_computed = 0;
    victim.num_hashed_blocks = 0;
    victim.last_block_hash = 0;
    victim.prompt_logprobs.clear();
    ++preemptions_;
    auto it = std::find_if(running_.begin(), running_.end(), [&](const auto& p) { return p.get() == &victim; });
    MOE_CHECK(it != running_.end(), "preempting a sequence that is not running");
    waiting_.push_front(std::move(*it));  // recomputed first when space frees up
    running_.erase(it);
}

Sequence* Scheduler::pick_victim(Sequence& s) {
    auto preemptible = [](const Sequence& q) { return !q.beam || !q.beam->forked; };
    for (auto it = running_.rbegin(); it != running_.rend() && it->get() != &s; ++it)
        if (preemptible(**it)) return it->get();
    return preemptible(s) ? &s : nullptr;
}

bool Scheduler::ensure_blocks(Sequence& s, int64_t num_tokens) {
    while (!s.table.reserve(kv_.pool(), num_tokens, kv_.block_size())) {
        // Preempt the most recently admitted other sequence; if s is the newest, s itself waits.
        Sequence* victim = pick_victim(s);
        if (!victim) return false;
        preempt(*victim);
        if (victim == &s) return false;
    }
    return true;
}

bool Scheduler::make_writable(Sequence& s) {
    BlockPool& pool = kv_.pool();
    const size_t b = static_cast<size_t>(s.num_computed / kv_.block_size());
    if (b >= s.table.blocks.size() || pool.refcount(s.table.blocks[b]) == 1) return true;
    int32_t copy;
    while ((copy = pool.allocate()) < 0) {
        Sequence* victim = pick_victim(s);
        if (!victim || victim == &s) return false;
        preempt(*victim);
    }
    kv_.copy_block(s.table.blocks[b], copy);
    pool.decref(s.table.blocks[b]);
    s.table.blocks[b] = copy;
    ++cow_copies_;
    return true;
}

bool Scheduler::schedule_beams(BeamGroup& g, StepPlan& p, int64_t& budget, int64_t& blocks_shared,
                               int64_t& blocks_unshared) {
    for (Sequence* b : g.beams) {
        MOE_CHECK(static_cast<int64_t>(b->tokens.size()) == b->num_computed + 1, "a beam decodes one token a step");
        if (!make_writable(*b) || !ensure_blocks(*b, b->num_computed + 1)) return false;
    }
    std::vector<int32_t> distinct;
    for (Sequence* b : g.beams) {
        p.chunks.push_back({b, b->num_computed, 1, true});
        distinct.insert(distinct.end(), b->table.blocks.begin(), b->table.blocks.end());
        blocks_unshared += static_cast<int64_t>(b->table.blocks.size());
    }
    std::sort(distinct.begin(), distinct.end());
    const int64_t shared = std::unique(distinct.begin(), distinct.end()) - distinct.begin();
    blocks_shared += shared;
    g.peak_blocks_shared = std::max(g.peak_blocks_shared, shared);
    g.peak_blocks_unshared = std::max<int64_t>(g.peak_blocks_unshared, blocks_unshared);
    budget -= static_cast<int64_t>(g.beams.size());
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

StepPlan Scheduler::schedule() {
    for (size_t i = 0; i < running_.size();) {
        if (running_[i]->cancelled()) {
            running_[i]->finish_handles(FinishReason::Cancelled);
            finish(running_[i].get());
        } else {
            ++i;
        }
    }
    for (size_t i = 0; i < waiting_.size();) {
        if (waiting_[i]->cancelled()) {
            waiting_[i]->finish_handles(FinishReason::Cancelled);
            finish(waiting_[i].get());
        } else {
            ++i;
        }
    }

    StepPlan p;
    int64_t budget = config_.max_num_batched_tokens;
    std::vector<std::shared_ptr<BeamGroup>> failed;
    int64_t blocks_shared = 0, blocks_unshared = 0;
    // Running sequences in admission order: decodes (1 token) and the continuation of chunked prefills.
    for (size_t i = 0; i < running_.size() && budget > 0; ++i) {
        Sequence& s = *running_[i];
        if (s.beam && s.beam->forked) {
            BeamGroup& g = *s.beam;
            if (g.beams[0] != &s || budget < static_cast<int64_t>(g.beams.size())) continue;  // leader schedules all
            int64_t sh = 0, un = 0;
            if (schedule_beams(g, p, budget, sh, un)) {
                blocks_shared += sh;
                blocks_unshared += un;
            } else {
                failed.push_back(s.beam);  // no chunk of it was added
            }
            continue;
        }
        int64_t n = std::min<int64_t>(static_cast<int64_t>(s.tokens.size()) - s.num_computed, budget);
        if (n <= 0 || s.awaiting_last) continue;
        s.draft.clear();
        if (n == 1 && (s.opts.spec_ngram > 0 || s.opts.spec_draft > 0)) {
            // Room for the draft: the step budget, the tokens still allowed, and the context.
            const int64_t room = std::min({int64_t(std::max(s.opts.spec_ngram, s.opts.spec_draft)), budget - 1,
                                           s.opts.max_tokens - s.num_generated() - 1,
                                           max_position_ - static_cast<int64_t>(s.tokens.size()) - 1});
            if (room > 0) s.draft = s.opts.spec_draft > 0 ? std::vector<int32_t>(room, -1) : propose_ngram(s.tokens, room);
            n += static_cast<int64_t>(s.draft.size());
        }
        // Parallel-sampling candidates share the prompt's partial last block: copy it before the first write.
        if (!make_writable(s)) {
            if (pick_victim(s) == &s) preempt(s);
            break;
        }
        if (!ensure_blocks(s, s.num_computed + n)) break;  // s itself was preempted (it was the newest)
        p.chunks.push_back({&s, s.num_computed, n, s.num_computed + n >= static_cast<int64_t>(s.tokens.size())});
        budget -= n;
    }
    // Admissions, first come first served: a request that does not fit blocks those behind it.
    while (!waiting_.empty() && budget > 0 && static_cast<int64_t>(running_.size()) < config_.max_num_seqs) {
        Sequence& s = *waiting_.front();
        if (s.awaiting_last) break;  // preempted while its last token was in flight: it ends when that is read
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
    beam_blocks_peak_ = std::max(beam_blocks_peak_, blocks_shared);
    beam_blocks_unshared_peak_ = std::max(beam_blocks_unshared_peak_, blocks_unshared);
    for (const auto& g : failed) {
        // Only other beam searches hold the blocks it needs (everything else was preempted): fail this one.
        g->beams[0]->handle->finish(FinishReason::Error, "the KV cache is too small for this beam search (width " +
                                                             std::to_string(g->beams.size()) + ")");
        for (Sequence* b : std::vector<Sequence*>(g->beams)) finish(b);
    }
    return p;
}

void Scheduler::build_batch(StepPlan& p) {
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
        // A token still pending is the one the step in flight chooses for this sequence: fed from its row.
        const int64_t first = p.batch.num_tokens() - c.length;
        for (int64_t t = first; s.pending > 0 && t < p.batch.num_tokens(); ++t)
            if (p.batch.token_ids[t] == kPendingToken) p.batch.token_ids[t] = Model::previous_row_token(s.pending_row);
    }
}

void Scheduler::register_full_blocks(Sequence& s) {
    if (!config_.enable_prefix_caching) return;
    const int64_t bs = kv_.block_size();
    // A block is hashed by its tokens, so none holding a pending placeholder is registered yet.
    const int64_t known = std::min(s.num_computed, static_cast<int64_t>(s.tokens.size()) - s.pending);
    while ((s.num_hashed_blocks + 1) * bs <= known) {
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

void Scheduler::retire(std::unique_ptr<Sequence> seq) {
    seq->finished = true;
    seq->table.release(kv_.pool());
    retired_.push_back(std::move(seq));
}

void Scheduler::finish(Sequence* seq) {
    auto same = [&](const auto& p) { return p.get() == seq; };
    if (auto it = std::find_if(running_.begin(), running_.end(), same); it != running_.end()) {
        retire(std::move(*it));
        running_.erase(it);
    } else if (auto w = std::find_if(waiting_.begin(), waiting_.end(), same); w != waiting_.end()) {
        retire(std::move(*w));  // preempted while its last token was in flight
        waiting_.erase(w);
    } else {  // in neither queue: nothing owns it here, only its blocks go
        seq->table.release(kv_.pool());
        seq->finished = true;
    }
}

void Scheduler::cancel_all(FinishReason reason, const std::string& error) {
    auto end_all = [&](auto& queue) {
        for (auto& s : queue) {
            s->finish_handles(reason, error);
            retire(std::move(s));
        }
    };
    end_all(running_);
    end_all(waiting_);
    running_.clear();
    waiting_.clear();
}

void Scheduler::release_retired(size_t n) {
    n = std::min(n, retired_.size());
    retired_.erase(retired_.begin(), retired_.begin() + static_cast<std::ptrdiff_t>(n));
}

}  // namespace moeinfer
