// Small endpoints: GET /v1/models, /health, /metrics; POST /tokenize, /detokenize (vLLM's shapes).
#include "core/json.h"
#include "server/api_error.h"
#include "server/openai_server.h"
#include "tokenizer/chat_template.h"

namespace moeinfer::server {

using json::Value;

void OpenAiServer::models(RequestContext& ctx) {
    Value m = Value::object();
    m.set("id", options_.model_name);
    m.set("object", "model");
    m.set("created", created_);
    m.set("owned_by", "moeinfer");
    m.set("max_model_len", engine_.model_config().max_position);
    Value data = Value::array();
    data.push_back(std::move(m));
    Value body = Value::object();
    body.set("object", "list");
    body.set("data", std::move(data));
    respond_json(ctx, body);
}

void OpenAiServer::health(RequestContext& ctx) {
    HttpResponse r;
    r.content_type = "text/plain; charset=utf-8";
    r.body = "ok\n";
    ctx.ex.respond(r);
}

void OpenAiServer::metrics_text(RequestContext& ctx) {
    HttpResponse r;
    r.content_type = "text/plain; version=0.0.4; charset=utf-8";
    r.body = metrics_.prometheus(engine_.metrics(), options_.model_name);
    ctx.ex.respond(r);
}

void OpenAiServer::tokenize(RequestContext& ctx) {
    TokenizeSpec t = parse_tokenize(parse_body(ctx.req.body));
    if (!tok_) throw ApiError(400, "this model has no tokenizer");
    std::vector<int32_t> ids;
    if (t.has_messages) {
        ChatTemplateSource src = tok_->chat_template();
        const std::string& tmpl = src.template_text.empty() ? std::string(kChatMlTemplate) : src.template_text;
        std::string text;
        try {
            text = render_chat(tmpl, t.messages, Value(), t.add_generation_prompt, src.bos_token, src.eos_token);
        } catch (const std::exception& e) {
            throw ApiError(400, std::string("chat template: ") + e.what(), "messages");
        }
        ids = tok_->encode(text, t.add_special_tokens);
    } else {
        ids = t.add_special_tokens ? encode_text(t.prompt) : tok_->encode(t.prompt, false);
    }
    Value tokens = Value::array();
    for (int32_t id : ids) tokens.push_back(int64_t(id));
    Value body = Value::object();
    body.set("count", int64_t(ids.size()));
    body.set("max_model_len", engine_.model_config().max_position);
    body.set("tokens", std::move(tokens));
    respond_json(ctx, body);
}

void OpenAiServer::detokenize(RequestContext& ctx) {
    std::vector<int32_t> ids = parse_detokenize(parse_body(ctx.req.body), engine_.model_config().vocab_size);
    if (!tok_) throw ApiError(400, "this model has no tokenizer");
    std::string text;
    try {
        text = tok_->decode(ids, false);
    } catch (const std::exception& e) {
        throw ApiError(400, e.what(), "tokens");
    }
    Value body = Value::object();
    body.set("prompt", text);
    respond_json(ctx, body);
}

}  // namespace moeinfer::server
