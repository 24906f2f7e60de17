// OpenAiServer: the OpenAI-compatible API over an Engine — routes, authentication, request ids, error mapping,
// metrics and the per-request log line. Endpoint bodies live in openai_completions.cpp, openai_chat.cpp and
// openai_misc.cpp.
#pragma once
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "core/json.h"
#include "engine/engine.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/openai_request.h"
#include "tokenizer/tokenizer.h"

namespace moeinfer::server {

struct ServeOptions {
    std::string model_name;  // what /v1/models lists and requests may name
    std::string api_key;     // empty: no authentication
    bool log_requests = true;
};

// What a handler fills in for the log line and metrics.
struct RequestContext {
    std::string id;
    const HttpRequest& req;
    HttpExchange& ex;
    int status = 200;
    int64_t tokens_in = 0, tokens_out = 0;
    double ttft = 0;
    bool client_gone = false;
};

class OpenAiServer {
public:
    // `tok` may be null: then only token-id prompts work and outputs carry ids with empty text.
    OpenAiServer(Engine& engine, std::unique_ptr<Tokenizer> tok, ServeOptions options);
    void register_routes(Router& router);
    ServerMetrics& metrics() { return metrics_; }

private:
    using Body = void (OpenAiServer::*)(RequestContext&);
    Handler wrap(const char* id_prefix, bool needs_auth, Body body);

    void completions(RequestContext& ctx);
    void chat(RequestContext& ctx);
    void models(RequestContext& ctx);
    void health(RequestContext& ctx);
    void metrics_text(RequestContext& ctx);
    void tokenize(RequestContext& ctx);
    void detokenize(RequestContext& ctx);

    // Shared by completions and chat.
    void check_model(const std::string& requested) const;
    std::vector<int32_t> encode_text(const std::string& text) const;  // BOS as the model's config asks
    // Engine options of one prompt: sampling, stops, and n candidates or (use_beam_search) the beam settings.
    RequestOptions make_options(const GenerationSpec& g, std::vector<int32_t> prompt, int64_t max_tokens,
                                int choice) const;
    int64_t default_max_tokens(size_t prompt_len, bool chat) const;
    std::string token_string(int32_t id, bool as_id) const;  // how a logprob entry names a token
    void respond_json(RequestContext& ctx, const json::Value& body) const;

    Engine& engine_;
    std::unique_ptr<Tokenizer> tok_;
    ServeOptions options_;
    ServerMetrics metrics_;
    std::atomic<uint64_t> next_id_{1};
    int64_t created_;
};

}  // namespace moeinfer::server
