// OpenAiServer: routes, the request wrapper (auth, ids, errors → OpenAI JSON, metrics, log line) and helpers
// shared by the endpoints.
#include "server/openai_server.h"

#include <cstdio>
#include <random>

#include "server/api_error.h"

namespace moeinfer::server {

OpenAiServer::OpenAiServer(Engine& engine, std::unique_ptr<Tokenizer> tok, ServeOptions options)
    : engine_(engine), tok_(std::move(tok)), options_(std::move(options)) {
    created_ = std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

void OpenAiServer::register_routes(Router& router) {
    router.set_error_formatter([this](int status, const std::string& message) {
        metrics_.record_request(status);  // HTTP-layer answers (404, 405, 408, 413, 431, ...) count too
        return error_response(status, message);
    });
    router.add("POST", "/v1/completions", wrap("cmpl", true, &OpenAiServer::completions));
    router.add("POST", "/v1/chat/completions", wrap("chatcmpl", true, &OpenAiServer::chat));
    router.add("GET", "/v1/models", wrap("models", true, &OpenAiServer::models));
    router.add("GET", "/health", wrap("health", false, &OpenAiServer::health));
    router.add("GET", "/metrics", wrap("metrics", false, &OpenAiServer::metrics_text));
    router.add("POST", "/tokenize", wrap("tok", true, &OpenAiServer::tokenize));
    router.add("POST", "/detokenize", wrap("detok", true, &OpenAiServer::detokenize));
}

Handler OpenAiServer::wrap(const char* id_prefix, bool needs_auth, Body body) {
    return [this, id_prefix, needs_auth, body](const HttpRequest& req, HttpExchange& ex) {
        const auto start = std::chrono::steady_clock::now();
        char id[48];
        std::snprintf(id, sizeof id, "%s-%08llx%06llx", id_prefix, static_cast<unsigned long long>(created_ & 0xffffffff),
                      static_cast<unsigned long long>(next_id_.fetch_add(1)));
        RequestContext ctx{id, req, ex};
        try {
            if (needs_auth && !options_.api_key.empty() && !bearer_matches(req.header("authorization"), options_.api_key))
                throw ApiError(401, "invalid or missing API key (send Authorization: Bearer KEY)");
            (this->*body)(ctx);
        } catch (const ApiError& e) {
            ctx.status = e.status;
            if (!ex.started()) ex.respond(error_response(e));
        } catch (const std::invalid_argument& e) {
            ctx.status = 400;
            if (!ex.started()) ex.respond(error_response(400, e.what()));
        } catch (const EngineFull& e) {
            ctx.status = 503;
            if (!ex.started()) ex.respond(error_response(ApiError(503, std::string("server busy: ") + e.what())));
        } catch (const std::exception& e) {
            ctx.status = 500;
            if (!ex.started()) ex.respond(error_response(500, std::string("internal error: ") + e.what()));
        }
        // 499 (nginx's "client closed request") when the client left before the answer was complete.
        const int status = ctx.client_gone ? 499 : ctx.status;
        metrics_.record_request(status);
        const double total = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        if (ctx.tokens_in || ctx.tokens_out) {
            metrics_.add_tokens(ctx.tokens_in, ctx.tokens_out);
            metrics_.observe_e2e(total);
        }
        if (options_.log_requests)
            std::fprintf(stderr, "moeinfer serve: %s %s %s %d in=%lld out=%lld ttft=%.1fms total=%.1fms\n", id,
                         req.method.c_str(), req.path.c_str(), status, static_cast<long long>(ctx.tokens_in),
                         static_cast<long long>(ctx.tokens_out), ctx.ttft * 1e3, total * 1e3);
    };
}

void OpenAiServer::respond_json(RequestContext& ctx, const json::Value& body) const {
    HttpResponse r;
    r.status = ctx.status;
    r.body = body.dump();
    ctx.ex.respond(r);
}

void OpenAiServer::check_model(const std::string& requested) const {
    if (!requested.empty() && requested != options_.model_name)
        throw ApiError(404, "the model '" + requested + "' does not exist; this server serves '" + options_.model_name + "'",
                       "model", "not_found_error");
}

std::vector<int32_t> OpenAiServer::encode_text(const std::string& text) const {
    if (!tok_) throw ApiError(400, "this model has no tokenizer: send token ids instead of text", "prompt");
    std::vector<int32_t> ids = tok_->encode(text, false);
    // Raw prompts get BOS the way HF/vLLM add it (the tokenizer config's add_bos_token), never twice.
    if (tok_->add_bos_token() && tok_->bos_id() && (ids.empty() || ids.front() != *tok_->bos_id()))
        ids.insert(ids.begin(), *tok_->bos_id());
    return ids;
}

int64_t OpenAiServer::default_max_tokens(size_t prompt_len, bool chat) const {
    const int64_t room = engine_.model_config().max_position - static_cast<int64_t>(prompt_len);
    if (room < 1)
        throw ApiError(400,
                       "the prompt has " + std::to_string(prompt_len) + " tokens but the model's context is " +
                           std::to_string(engine_.model_config().max_position) + " tokens",
                       chat ? "messages" : "prompt");
    // OpenAI's completions default is 16 tokens; chat runs to the end of the context (or EOS), as vLLM does.
    return chat ? room : std::min<int64_t>(16, room);
}

RequestOptions OpenAiServer::make_options(const GenerationSpec& g, std::vector<int32_t> prompt, int64_t max_tokens,
                                          int choice) const {
    thread_local std::mt19937_64 seeder{std::random_device{}()};
    RequestOptions o;
    o.prompt = std::move(prompt);
    o.max_tokens = max_tokens;
    o.sampling = g.sampling;
    // n choices must differ when sampling: seed + i keeps a seeded request reproducible choice by choice.
    o.sampling.seed = g.seed_given ? g.sampling.seed + static_cast<uint64_t>(choice) : seeder();
    o.stop_token_ids = g.stop_token_ids;
    if (!g.ignore_eos && tok_)
        for (int32_t id : tok_->eos_ids()) o.stop_token_ids.push_back(id);
    o.ignore_eos = g.ignore_eos;
    o.min_tokens = g.min_tokens;
    if (g.use_beam_search) {  // best_of beams, the n best returned
        o.beam_width = g.best_of;
        o.num_return_sequences = g.n;
        o.length_penalty = g.length_penalty;
        o.early_stopping = g.early_stopping;
    } else {
        o.n = g.n;  // n candidates sharing the prompt's prefill and KV blocks (candidate i: seed + i)
    }
    return o;
}

std::string OpenAiServer::token_string(int32_t id, bool as_id) const {
    if (as_id || !tok_) return "token_id:" + std::to_string(id);
    try {
        return tok_->decode({id}, false);
    } catch (const std::exception&) {
        return "token_id:" + std::to_string(id);
    }
}

}  // namespace moeinfer::server
