// Generator (see generator.h). The KV cache is sized for exactly the requests at hand.
#include "engine/generator.h"

#include <chrono>
#include <stdexcept>
#include <string>

#include "core/check.h"
#include "kv/kv_cache.h"

namespace moeinfer {

Generator::Generator(Model& model, int32_t block_size) : model_(model), block_size_(block_size) {}

namespace {

double seconds_since(std::chrono::steady_clock::time_point t0) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

void validate_request(const GenerationRequest& r, size_t index, const ModelConfig& c) {
    const std::string who = "request " + std::to_string(index) + ": ";
    if (r.prompt.empty()) throw std::invalid_argument(who + "the prompt is empty");
    for (int32_t id : r.prompt)
        if (id < 0 || id >= c.vocab_size)
            throw std::invalid_argument(who + "prompt token id " + std::to_string(id) + " is out of range (vocab size " +
                                        std::to_string(c.vocab_size) + ")");
    if (r.max_new_tokens < 0) throw std::invalid_argument(who + "max_new_tokens must be >= 0");
    const int64_t total = static_cast<int64_t>(r.prompt.size()) + r.max_new_tokens;
    if (static_cast<int64_t>(r.prompt.size()) > c.max_position)
        throw std::invalid_argument(who + "the prompt has " + std::to_string(r.prompt.size()) +
                                    " tokens, more than the context length " + std::to_string(c.max_position));
    if (total > c.max_position)
        throw std::invalid_argument(who + "prompt (" + std::to_string(r.prompt.size()) + ") + max_new_tokens (" +
                                    std::to_string(r.max_new_tokens) + ") exceeds the context length " +
                                    std::to_string(c.max_position));
    try {
        r.sampling.validate();
    } catch (const std::invalid_argument& e) {
        throw std::invalid_argument(who + e.what());
    }
}

}  // namespace

std::vector<GenerationResult> Generator::generate(const std::vector<GenerationRequest>& requests,
                                                  const std::function<void(size_t, int32_t)>& on_token,
                                                  GenerationStats* stats) {
    const ModelConfig& c = model_.config();
    const int64_t V = c.vocab_size;
    int64_t blocks_needed = 0;
    for (size_t i = 0; i < requests.size(); ++i) {
        validate_request(requests[i], i, c);
        blocks_needed += (requests[i].prompt.size() + requests[i].max_new_tokens + block_size_ - 1) / block_size_;
    }
    std::vector<GenerationResult> results(requests.size());
    if (requests.empty()) return results;
    KvCache kv(static_cast<int32_t>(blocks_needed), block_size_, model_.kv_widths());

    struct Live {
        BlockTable table;
        std::mt19937_64 rng;
        int64_t length = 0;  // tokens in the cache
        int32_t next = -1;   // token to feed next step
        bool done = false;
    };
    std::vector<Live> live(requests.size());
    auto t0 = std::chrono::steady_clock::now();

    // Prefill: every prompt in one ragged batch.
    Batch batch;
    std::vector<size_t> first_logit_row(requests.size());
    for (size_t i = 0; i < requests.size(); ++i) {
        const GenerationRequest& r = requests[i];
        live[i].rng.seed(r.sampling.seed);
        const int64_t n = static_cast<int64_t>(r.prompt.size());
        MOE_CHECK(live[i].table.reserve(kv.pool(), n + r.max_new_tokens, block_size_), "KV cache sized too small");
        first_logit_row[i] = batch.logit_rows.size();
        batch.add_sequence(r.prompt.data(), n, 0, live[i].table.blocks.data(), r.prompt_logprobs);
        live[i].length = n;
    }
    std::vector<float> logits(batch.logit_rows.size() * V);
    model_.forward(batch, kv, logits.data());

    auto emit = [&](size_t i, const float* row) {
        const GenerationRequest& r = requests[i];
        TokenLogprob lp;
        const int32_t tok = sample_token(row, V, r.sampling, live[i].rng, &lp);
        results[i].tokens.push_back(tok);
        results[i].logprobs.push_back(std::move(lp));
        live[i].next = tok;
        if (on_token) on_token(i, tok);
        if (static_cast<int64_t>(results[i].tokens.size()) >= r.max_new_tokens) live[i].done = true;
        for (int32_t s : r.stop_ids) live[i].done |= tok == s;
    };
    for (size_t i = 0; i < requests.size(); ++i) {
        const GenerationRequest& r = requests[i];
        const int64_t n = static_cast<int64_t>(r.prompt.size());
        if (r.prompt_logprobs) {
            results[i].prompt_logprobs.emplace_back();  // nothing predicts the first token
            for (int64_t p = 1; p < n; ++p)
                results[i].prompt_logprobs.push_back(
                    token_logprob(&logits[(first_logit_row[i] + p - 1) * V], V, r.prompt[p], r.sampling.logprobs));
        }
        const size_t last_row = first_logit_row[i] + (r.prompt_logprobs ? n - 1 : 0);
        if (r.max_new_tokens == 0) {
            live[i].done = true;
            continue;
        }
        emit(i, &logits[last_row * V]);
    }
    const double prefill = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();

    // Decode: one token per live sequence per step, all in one batch.
    for (;;) {
        Batch step;
        std::vector<size_t> who;
        for (size_t i = 0; i < requests.size(); ++i) {
            if (live[i].done) continue;
            step.add_sequence(&live[i].next, 1, live[i].length, live[i].table.blocks.data(), false);
            who.push_back(i);
        }
        if (who.empty()) break;
        logits.resize(who.size() * V);
        model_.forward(step, kv, logits.data());
        for (size_t j = 0; j < who.size(); ++j) {
            ++live[who[j]].length;
            emit(who[j], &logits[j * V]);
        }
    }
    for (auto& l : live) l.table.release(kv.pool());
    if (stats) {
        for (size_t i = 0; i < requests.size(); ++i) {
            stats->prompt_tokens += requests[i].prompt.size();
            stats->generated_tokens += results[i].tokens.size();
        }
        stats->prefill_seconds += prefill;
        stats->decode_seconds += seconds_since(t0);
    }
    return results;
}

}  // namespace moeinfer
