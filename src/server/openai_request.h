// Parsing and validation of OpenAI request bodies (/v1/completions, /v1/chat/completions, /tokenize,
// /detokenize) into plain structs; every problem is an ApiError(400) naming the parameter. Needs no engine.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "core/json.h"
#include "engine/beam_search.h"
#include "engine/sampler.h"
#include "server/api_error.h"

namespace moeinfer::server {

// Fields shared by completions and chat.
struct GenerationSpec {
    std::string model;                  // empty when the client did not name one
    std::optional<int64_t> max_tokens;  // absent: the endpoint's default
    SamplingParams sampling;            // logprobs = top alternatives to report
    bool seed_given = false;
    int32_t n = 1;
    // Beam search (vLLM's use_beam_search): best_of beams, the n best returned. Not streamed, no logprobs.
    bool use_beam_search = false;
    int32_t best_of = 1;
    double length_penalty = 1.0;
    EarlyStopping early_stopping = EarlyStopping::Heuristic;
    std::vector<std::string> stop;
    std::vector<int32_t> stop_token_ids;
    bool ignore_eos = false;
    int64_t min_tokens = 0;
    bool stream = false, include_usage = false;
    bool want_logprobs = false;  // completions: logprobs given; chat: logprobs true
    bool return_tokens_as_token_ids = false;
    bool return_token_ids = false;  // vLLM: each choice also carries "token_ids" (always on without a tokenizer)
};

// One prompt of /v1/completions: text (tokenized by the handler) or token ids.
struct PromptSpec {
    bool is_text = false;
    std::string text;
    std::vector<int32_t> ids;
};

struct CompletionSpec : GenerationSpec {
    std::vector<PromptSpec> prompts;
    bool echo = false;
};

struct ChatSpec : GenerationSpec {
    json::Value messages;  // array of {role, content(string; text parts joined), ...}
    json::Value tools;     // array or null
    bool add_generation_prompt = true;
};

// Parses the body as one JSON object (400 "invalid JSON ..." otherwise).
json::Value parse_body(const std::string& body);

// `vocab_size` bounds token ids in prompts and stop_token_ids.
CompletionSpec parse_completion(const json::Value& body, int64_t vocab_size);
ChatSpec parse_chat(const json::Value& body, int64_t vocab_size);

// /tokenize: {"prompt": "..."} or {"messages": [...]} (+ add_special_tokens, add_generation_prompt).
struct TokenizeSpec {
    std::string prompt;
    bool has_messages = false;
    json::Value messages;
    bool add_special_tokens = true, add_generation_prompt = true;
};
TokenizeSpec parse_tokenize(const json::Value& body);
// /detokenize: {"tokens": [ids]}.
std::vector<int32_t> parse_detokenize(const json::Value& body, int64_t vocab_size);

// Constant-time comparison of a request's "Authorization: Bearer KEY" value against the key.
bool bearer_matches(const std::string* authorization, const std::string& key);

}  // namespace moeinfer::server
