// Sequence: one request's state inside the engine — its tokens, how many have KV in the cache, its blocks,
// its RNG and the handle that streams results to the client.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "engine/beam_search.h"
#include "engine/engine.h"
#include "kv/block_pool.h"

namespace moeinfer {

// Placeholder for a token chosen on the device and not yet read back (see Sequence::pending).
constexpr int32_t kPendingToken = -1;

struct Sequence {
    int64_t id = 0;
    RequestOptions opts;
    std::shared_ptr<RequestHandle> handle;
    std::vector<int32_t> tokens;  // prompt then generated
    int64_t num_prompt = 0;
    int64_t num_computed = 0;     // tokens whose K/V are in the cache
    int64_t num_hashed_blocks = 0;  // leading full blocks registered in the prefix cache
    uint64_t last_block_hash = 0;   // hash of block num_hashed_blocks - 1
    BlockTable table;
    std::mt19937_64 rng;
    std::vector<std::optional<TokenLogprob>> prompt_logprobs;
    std::vector<int32_t> draft;  // speculative tokens fed after the last token this step (empty: none)
    std::vector<std::vector<double>> draft_q;  // sampling with a draft model: the distribution each was drawn from
    int64_t draft_computed = 0;  // tokens whose K/V are in the draft model's cache
    std::shared_ptr<BeamGroup> beam;  // set for beam-search requests: the group this beam belongs to
    // Parallel sampling: handles of candidates 1..n-1 still to be forked from this (the root) once its prompt is
    // computed; fork_index is this sequence's candidate index (its seed offset).
    std::vector<std::shared_ptr<RequestHandle>> pending_forks;
    int32_t fork_index = 0;
    // Overlapped steps (engine.h): the newest `pending` tokens were chosen by a step whose results the host has not
    // read yet; they hold kPendingToken until then, and the device takes the token from that step's summary row
    // `pending_row` when a later step feeds it. awaiting_last: the pending token ends the sequence by length, so
    // nothing more is scheduled for it. finished: freed by the scheduler, kept alive while a step refers to it.
    int64_t pending = 0;
    int32_t pending_row = -1;
    bool awaiting_last = false;
    bool finished = false;

    // Ends this sequence's handle and those of candidates not forked yet.
    void finish_handles(FinishReason r, const std::string& error = {}) {
        handle->finish(r, error);
        for (auto& h : pending_forks) h->finish(r, error);
        pending_forks.clear();
    }
    // A root with unforked candidates is dropped only when every one of them was cancelled.
    bool cancelled() const {
        if (!handle->cancelled()) return false;
        for (const auto& h : pending_forks)
            if (!h->cancelled()) return false;
        return true;
    }

    int64_t num_generated() const { return static_cast<int64_t>(tokens.size()) - num_prompt; }
    std::vector<int32_t> generated() const { return {tokens.begin() + num_prompt, tokens.end()}; }
    std::vector<int32_t> prompt() const { return {tokens.begin(), tokens.begin() + num_prompt}; }
};

}  // namespace moeinfer
