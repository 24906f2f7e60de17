// Speculative decoding in the engine: draft-model proposals and verification of drafts against the target's
// rows (see speculative.h for the acceptance rule and engine.h for the flow).
#include "engine/speculative.h"

#include <algorithm>

#include "engine/engine.h"
#include "engine/scheduler.h"

namespace moeinfer {

int32_t accept_or_resample(const std::vector<double>& p, int32_t d, const std::vector<double>* q, std::mt19937_64& rng,
                           bool* accepted) {
    const double qd = q ? (*q)[d] : 1.0;
    const double u = std::uniform_real_distribution<double>(0.0, 1.0)(rng);
    if (qd > 0 && u * qd < p[d]) {
        *accepted = true;
        return d;
    }
    *accepted = false;
    std::vector<double> residual(p.size());
    double sum = 0;
    for (size_t i = 0; i < p.size(); ++i) {
        const double qi = q ? (*q)[i] : (static_cast<int32_t>(i) == d ? 1.0 : 0.0);
        sum += residual[i] = std::max(0.0, p[i] - qi);
    }
    // p == q up to rounding leaves no residual mass; then rejection had probability ~0 and p itself is right.
    return sample_from(sum > 0 ? residual : p, rng);
}

void Engine::set_draft_model(Model& draft) {
    if (thread_.joinable()) throw std::logic_error("set_draft_model: the engine is already running");
    if (draft.config().vocab_size != model_->config().vocab_size)
        throw std::invalid_argument("draft model: vocab size " + std::to_string(draft.config().vocab_size) +
                                    " differs from the target's " + std::to_string(model_->config().vocab_size));
    draft_ = &draft;
    draft_kv_ = draft.make_kv_cache(kv_->num_blocks(), kv_->block_size());
}

void Engine::propose_drafts(const StepPlan& plan) {
    std::vector<Sequence*> seqs;
    size_t k_max = 0;
    for (const ScheduledChunk& c : plan.chunks)
        if (!c.seq->draft.empty() && c.seq->draft[0] < 0) {
            seqs.push_back(c.seq);
            k_max = std::max(k_max, c.seq->draft.size());
        }
    if (seqs.empty()) return;
    const int64_t V = model_->config().vocab_size;
    // Pass j feeds each sequence's catch-up tokens (j = 0: whatever the draft has not seen, usually the last one
    // or two) or its previous draft token, all sequences in one draft batch, and picks draft token j.
    for (size_t j = 0; j < k_max; ++j) {
        Batch b;
        std::vector<Sequence*> in;
        for (Sequence* s : seqs) {
            if (j >= s->draft.size()) continue;
            const int64_t L = static_cast<int64_t>(s->tokens.size());
            if (j == 0)
                b.add_sequence(s->tokens.data() + s->draft_computed, L - s->draft_computed, s->draft_computed,
                               s->table.blocks.data(), false);
            else
                b.add_sequence(&s->draft[j - 1], 1, L + static_cast<int64_t>(j) - 1, s->table.blocks.data(), false);
            in.push_back(s);
        }
        std::vector<float> logits(in.size() * V);
        draft_->forward(b, *draft_kv_, logits.data());
        for (size_t i = 0; i < in.size(); ++i) {
            Sequence& s = *in[i];
            const float* row = &logits[i * V];
            if (s.opts.sampling.temperature == 0) {
                s.draft[j] = static_cast<int32_t>(std::max_element(row, row + V) - row);
            } else {
                s.draft_q.push_back(sampling_probs(row, V, s.opts.sampling));
                s.draft[j] = sample_from(s.draft_q.back(), s.rng);
            }
            s.draft_computed = static_cast<int64_t>(s.tokens.size() + j);
        }
    }
}

void Engine::verify_draft(Sequence& s, int64_t start, const float* logits) {
    const int64_t V = model_->config().vocab_size, k = static_cast<int64_t>(s.draft.size());
    const int64_t L = static_cast<int64_t>(s.tokens.size());
    const bool greedy = s.opts.sampling.temperature == 0;
    // Row by row as plain decoding would (each choice sees the tokens before it: penalties, min_tokens), stopping
    // at the first rejected draft token or at a finishing token.
    std::vector<int32_t> chosen;
    for (int64_t i = 0; i <= k; ++i) {
        const float* row = logits + i * V;
        int32_t t;
        bool ok = false;
        if (greedy) {
            t = choose_token(s, row);
            ok = i < k && t == s.draft[i];
        } else {
            const std::vector<float> adjusted = adjusted_logits(s, row);
            const std::vector<double> p = sampling_probs(adjusted.data(), V, s.opts.sampling);
            t = i < k ? accept_or_resample(p, s.draft[i], s.draft_q.empty() ? nullptr : &s.draft_q[i], s.rng, &ok)
                      : sample_from(p, s.rng);
        }
        chosen.push_back(t);
        s.tokens.push_back(t);
        if (finish_check(s, static_cast<int64_t>(s.tokens.size())) != FinishReason::None || !ok) break;
    }
    s.tokens.resize(L);
    const int64_t accepted = static_cast<int64_t>(chosen.size()) - 1;
    {
        std::lock_guard<std::mutex> lock(mu_);
        metrics_.spec_draft_tokens += k;
        metrics_.spec_accepted_tokens += accepted;
    }
    // K/V are valid for the last token and the accepted draft tokens; rejected slots get overwritten later.
    scheduler_->commit(s, start + 1 + accepted);
    s.draft_computed = std::min(s.draft_computed, L + accepted);  // the draft's K/V of rejected tokens is stale
    s.draft.clear();
    s.draft_q.clear();
    for (size_t i = 0; i < chosen.size(); ++i)
        if (emit(s, chosen[i], logits + i * V)) return;
}

}  // namespace moeinfer
