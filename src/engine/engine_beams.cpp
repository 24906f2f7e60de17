// Engine::advance_beams: one beam-search step for a request. New beams take over their parents' block tables by
// refcount (no K/V is copied here; the scheduler copies a shared partial block only when a beam writes into it),
// and the old tables are released at once, so blocks only pruned beams held go back to the pool this step.
// Engine::fork_candidates: parallel sampling (n > 1) forks candidates off the prompt's blocks the same way.
#include <algorithm>

#include "engine/engine.h"
#include "core/check.h"
#include "engine/scheduler.h"

namespace moeinfer {

void Engine::advance_beams(BeamGroup& g) {
    const int64_t V = model_->config().vocab_size;
    MOE_CHECK(g.rows.size() == g.beams.size(), "beam step without a row per beam");
    for (const float* r : g.rows) MOE_CHECK(r != nullptr, "beam step without a row per beam");
    const std::shared_ptr<BeamGroup> keep = g.beams[0]->beam;  // finishing the last beam would free g
    std::vector<std::vector<int32_t>> history;
    for (const Sequence* b : g.beams) history.push_back(b->generated());
    const std::vector<BeamSearch::Next> next = g.search.step(g.rows, V, history);
    g.rows.clear();
    const std::vector<Sequence*> old = g.beams;
    Sequence& lead = *old[0];

    if (g.search.done()) {
        const auto& fin = g.search.finished();
        std::vector<BeamHypothesis> out(fin.begin(),
                                        fin.begin() + std::min<size_t>(fin.size(), lead.opts.num_return_sequences));
        const std::vector<int32_t> eos = [&] {
            std::vector<int32_t> e = lead.opts.stop_token_ids;
            if (!lead.opts.ignore_eos) e.insert(e.end(), eos_ids_.begin(), eos_ids_.end());
            return e;
        }();
        FinishReason reason = FinishReason::Length;
        if (!out.empty()) {
            // Streamed as the request's tokens (per-token logprobs are not tracked for beams: 0).
            for (int32_t t : out[0].tokens) {
                TokenEvent ev;
                ev.token = t;
                ev.logprob.token = t;
                lead.handle->push(std::move(ev));
            }
            if (std::find(eos.begin(), eos.end(), out[0].tokens.back()) != eos.end()) reason = FinishReason::Stop;
            std::lock_guard<std::mutex> lock(mu_);
            metrics_.generated_tokens += static_cast<int64_t>(out[0].tokens.size());
        }
        lead.handle->set_beams(std::move(out));
        lead.handle->finish(reason);
        for (Sequence* b : old) scheduler_->finish(b);
        return;
    }

    // New tables first (incref), then release the old ones: shared blocks never drop to zero in between.
    BlockPool& pool = kv_->pool();
    struct State {
        std::vector<int32_t> tokens, blocks;
        int64_t num_computed, num_hashed_blocks;
        uint64_t last_block_hash;
    };
    std::vector<State> states;
    for (const BeamSearch::Next& n : next) {
        const Sequence& p = *old[n.parent];
        State st{p.tokens, p.table.blocks, p.num_computed, p.num_hashed_blocks, p.last_block_hash};
        st.tokens.push_back(n.token);
        for (int32_t b : st.blocks) pool.incref(b);
        states.push_back(std::move(st));
    }
    for (Sequence* b : old) b->table.release(pool);
    g.beams.clear();
    for (size_t j = 0; j < states.size(); ++j) {
        Sequence* s = j < old.size() ? old[j] : nullptr;
        if (!s) {
            auto fresh = std::make_unique<Sequence>();
            fresh->id = lead.id;
            fresh->opts = lead.opts;
            fresh->handle = lead.handle;
            fresh->num_prompt = lead.num_prompt;
            fresh->beam = keep;
            s = fresh.get();
            scheduler_->add_running(std::move(fresh));
        }
        s->tokens = std::move(states[j].tokens);
        s->table.blocks = std::move(states[j].blocks);
        s->num_computed = states[j].num_computed;
        s->num_hashed_blocks = states[j].num_hashed_blocks;
        s->last_block_hash = states[j].last_block_hash;
        g.beams.push_back(s);
    }
    for (size_t j = states.size(); j < old.size(); ++j) scheduler_->finish(old[j]);  // tables already released
    g.forked = true;
}

std::vector<Sequence*> Engine::fork_candidates(Sequence& root) {
    BlockPool& pool = kv_->pool();
    std::vector<Sequence*> out;
    const bool root_cancelled = root.handle->cancelled();
    if (!root_cancelled) out.push_back(&root);
    std::vector<std::shared_ptr<RequestHandle>> pending = std::move(root.pending_forks);
    root.pending_forks.clear();
    for (size_t i = 0; i < pending.size(); ++i) {
        if (pending[i]->cancelled()) {
            pending[i]->finish(FinishReason::Cancelled);
            continue;
        }
        auto f = std::make_unique<Sequence>();
        f->id = root.id;
        f->opts = root.opts;
        f->fork_index = static_cast<int32_t>(i + 1);
        // Candidate i draws exactly as an n = 1 request seeded seed + i would.
        f->opts.sampling.seed = root.opts.sampling.seed + static_cast<uint64_t>(f->fork_index);
        f->opts.n = 1;
        f->rng.seed(f->opts.sampling.seed);
        f->handle = std::move(pending[i]);
        f->tokens = root.tokens;
        f->num_prompt = root.num_prompt;
        f->num_computed = root.num_computed;
        f->num_hashed_blocks = root.num_hashed_blocks;
        f->last_block_hash = root.last_block_hash;
        f->prompt_logprobs = root.prompt_logprobs;
        f->table.blocks = root.table.blocks;  // shared; the scheduler copies the partial block before a write
        for (int32_t b : f->table.blocks) pool.incref(b);
        out.push_back(f.get());
        scheduler_->add_running(std::move(f));
    }
    if (root_cancelled) {  // its blocks stay with the forks
        root.handle->finish(FinishReason::Cancelled);
        scheduler_->finish(&root);
    }
    return out;
}

}  // namespace moeinfer
