// Generator (see generator.h): an Engine sized for exactly these requests, driven to completion. The budget lets
// every prompt prefill in one ragged batch; decode then runs all live sequences together.
#include "engine/generator.h"

#include <algorithm>
#include <chrono>
#include <stdexcept>
#include <string>

#include "engine/engine.h"

namespace moeinfer {

Generator::Generator(Model& model, int32_t block_size, Model* draft)
    : model_(model), block_size_(block_size), draft_(draft) {}

std::vector<GenerationResult> Generator::generate(const std::vector<GenerationRequest>& requests,
                                                  const std::function<bool(size_t, int32_t)>& on_token,
                                                  GenerationStats* stats) {
    std::vector<GenerationResult> results(requests.size());
    if (requests.empty()) return results;
    int64_t prompt_tokens = 0, blocks = 0, seqs = 0, step_tokens = 0;
    for (const auto& r : requests) {
        prompt_tokens += static_cast<int64_t>(r.prompt.size());
        // Beams: the prompt once, a generated tail per beam (Engine::submit's worst case).
        // Drafts may run up to spec tokens past the end before they are rejected.
        blocks += (static_cast<int64_t>(r.prompt.size()) + block_size_ - 1) / block_size_ +
                  std::max({1, r.beam_width, r.n}) *
                      ((r.max_new_tokens + std::max(r.spec_ngram, r.spec_draft) + block_size_) / block_size_);
        seqs += std::max({1, r.beam_width, r.n});
        step_tokens += std::max({1, r.beam_width, r.n}) + std::max(r.spec_ngram, r.spec_draft);
    }
    const int64_t bytes_per_block = model_.kv_bytes_per_token() * block_size_;
    EngineConfig cfg;
    cfg.max_num_seqs = static_cast<int32_t>(seqs);
    cfg.max_num_batched_tokens = static_cast<int32_t>(std::max(prompt_tokens, step_tokens));
    cfg.block_size = block_size_;
    cfg.kv_cache_mib = (blocks * bytes_per_block + (1 << 20) - 1) >> 20;
    cfg.max_waiting = static_cast<int32_t>(requests.size());
    cfg.enable_prefix_caching = false;  // each request is computed in full (goldens compare exactly this)
    cfg.overlap = overlap_;
    Engine engine(model_, cfg);
    if (draft_) engine.set_draft_model(*draft_);

    std::vector<std::shared_ptr<RequestHandle>> handles;
    std::vector<std::pair<size_t, size_t>> owner;  // handle → (request, candidate)
    for (size_t i = 0; i < requests.size(); ++i) {
        const GenerationRequest& r = requests[i];
        RequestOptions o;
        o.prompt = r.prompt;
        o.max_tokens = r.max_new_tokens;
        o.sampling = r.sampling;
        o.stop_token_ids = r.stop_ids;
        o.min_tokens = r.min_tokens;
        o.ignore_eos = true;  // the caller lists every stop id it wants
        o.prompt_logprobs = r.prompt_logprobs;
        o.spec_ngram = r.spec_ngram;
        o.spec_draft = r.spec_draft;
        o.beam_width = r.beam_width;
        o.length_penalty = r.length_penalty;
        o.early_stopping = r.early_stopping;
        o.num_return_sequences = r.num_return_sequences;
        try {
            o.n = r.n;
            size_t k = 0;
            for (auto& h : engine.submit_n(std::move(o))) {
                handles.push_back(std::move(h));
                owner.emplace_back(i, k++);
            }
            if (r.n > 1) results[i].candidates.resize(r.n);
        } catch (const std::invalid_argument& e) {
            throw std::invalid_argument("request " + std::to_string(i) + ": " + e.what());
        }
    }
    const auto t0 = std::chrono::steady_clock::now();
    engine.start();
    double first_token_at = 0;
    std::vector<bool> done(handles.size(), false);
    for (size_t remaining = handles.size(); remaining > 0;) {
        for (size_t j = 0; j < handles.size(); ++j) {
            if (done[j]) continue;
            const auto [i, k] = owner[j];
            std::vector<TokenEvent> evs;
            const bool finished = handles[j]->wait(evs, std::chrono::milliseconds(remaining == 1 ? 100 : 1));
            for (auto& ev : evs) {
                if (handles[j]->cancelled()) break;  // on_token ended this request: later tokens are dropped
                if (first_token_at == 0)
                    first_token_at = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
                if (!results[i].candidates.empty()) {
                    results[i].candidates[k].tokens.push_back(ev.token);
                    results[i].candidates[k].logprobs.push_back(ev.logprob);
                }
                if (k > 0) continue;
                results[i].tokens.push_back(ev.token);
                results[i].logprobs.push_back(std::move(ev.logprob));
                if (on_token && !on_token(i, ev.token)) handles[j]->cancel();
            }
            if (!finished) continue;
            if (handles[j]->finish_reason() == FinishReason::Error) throw std::runtime_error(handles[j]->error());
            if (k == 0) {
                results[i].prompt_logprobs = handles[j]->prompt_logprobs();
                results[i].beams = handles[j]->beams();
            }
            done[j] = true;
            --remaining;
        }
    }
    engine.stop(true);
    if (stats) {
        const EngineMetrics m = engine.metrics();
        stats->spec_draft_tokens += m.spec_draft_tokens;
        stats->spec_accepted_tokens += m.spec_accepted_tokens;
        stats->beam_blocks_peak = std::max(stats->beam_blocks_peak, m.beam_blocks_peak);
        stats->beam_blocks_unshared_peak = std::max(stats->beam_blocks_unshared_peak, m.beam_blocks_unshared_peak);
        stats->kv_cow_copies += m.kv_cow_copies;
        stats->steps += m.steps;
        stats->loop_seconds += m.loop_seconds;
        stats->forward_seconds += m.forward_seconds;
        stats->device_gap_seconds += m.device_gap_seconds;
        stats->device_gaps += m.device_gaps;
        stats->overlapped_steps += m.overlapped_steps;
        const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        stats->prompt_tokens += prompt_tokens;
        stats->generated_tokens += m.generated_tokens;
        stats->prefill_seconds += first_token_at > 0 ? first_token_at : total;
        stats->decode_seconds += first_token_at > 0 ? total - first_token_at : 0;
    }
    return results;
}

}  // namespace moeinfer
