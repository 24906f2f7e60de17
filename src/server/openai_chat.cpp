// POST /v1/chat/completions: messages rendered with the model's chat template (ChatML when it has none),
// n choices (or use_beam_search: the n best of best_of beams), whole or streamed as chat.completion.chunk events,
// logprobs/top_logprobs in the chat format.
#include <chrono>

#include "server/api_error.h"
#include "server/generation.h"
#include "server/openai_server.h"
#include "server/response_flow.h"
#include "server/sse.h"
#include "tokenizer/chat_template.h"

namespace moeinfer::server {
namespace {

using json::Value;

int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

Value bytes_of(const std::string& s) {
    Value b = Value::array();
    for (unsigned char c : s) b.push_back(int64_t(c));
    return b;
}

}  // namespace

void OpenAiServer::chat(RequestContext& ctx) {
    const ModelConfig& mc = engine_.model_config();
    ChatSpec spec = parse_chat(parse_body(ctx.req.body), mc.vocab_size);
    check_model(spec.model);
    if (!tok_) throw ApiError(400, "this model has no tokenizer, so chat is unavailable; use /v1/completions with token ids", "messages");
    const ChatTemplateSource& src = tok_->chat_template();
    const std::string tmpl = src.template_text.empty() ? std::string(kChatMlTemplate) : src.template_text;
    std::string rendered;
    try {
        rendered = render_chat(tmpl, spec.messages, spec.tools, spec.add_generation_prompt, src.bos_token, src.eos_token);
    } catch (const std::exception& e) {
        throw ApiError(400, std::string("chat template: ") + e.what(), "messages");
    }
    // The template writes BOS and other special tokens itself; encode without adding more.
    std::vector<int32_t> prompt = tok_->encode(rendered, false);
    if (prompt.empty()) throw ApiError(400, "messages: the rendered prompt is empty", "messages");
    ctx.tokens_in = static_cast<int64_t>(prompt.size());
    const int64_t max_tokens = spec.max_tokens.value_or(default_max_tokens(prompt.size(), true));
    if (spec.use_beam_search && (spec.stream || spec.want_logprobs))
        throw ApiError(400, "use_beam_search: not supported with stream or logprobs", "use_beam_search");
    std::vector<RequestOptions> reqs;
    // One engine request: n candidates sharing the prompt's prefill and KV blocks, or one beam search.
    reqs.push_back(make_options(spec, prompt, max_tokens, 0));
    const std::vector<int32_t> reqs_stop_ids = reqs.back().stop_token_ids;
    GenerationRun run(engine_, tok_.get(), metrics_);
    run.submit(std::move(reqs), spec.stop);

    auto logprob_entries = [&](const std::vector<TokenEvent>& evs) {
        Value content = Value::array();
        for (const auto& ev : evs) {
            Value e = Value::object();
            const std::string s = token_string(ev.token, spec.return_tokens_as_token_ids);
            e.set("token", s);
            e.set("logprob", double(ev.logprob.logprob));
            e.set("bytes", bytes_of(s));
            Value top = Value::array();
            for (size_t k = 0; k < ev.logprob.top.size() && int32_t(k) < spec.sampling.logprobs; ++k) {
                Value t = Value::object();
                const std::string ts = token_string(ev.logprob.top[k].first, spec.return_tokens_as_token_ids);
                t.set("token", ts);
                t.set("logprob", double(ev.logprob.top[k].second));
                t.set("bytes", bytes_of(ts));
                top.push_back(std::move(t));
            }
            e.set("top_logprobs", std::move(top));
            content.push_back(std::move(e));
        }
        Value lp = Value::object();
        lp.set("content", std::move(content));
        return lp;
    };
    auto usage = [&] {
        Value u = Value::object();
        u.set("prompt_tokens", ctx.tokens_in);
        u.set("completion_tokens", run.completion_tokens());
        u.set("total_tokens", ctx.tokens_in + run.completion_tokens());
        return u;
    };
    auto envelope = [&](const char* object, Value choices) {
        Value o = Value::object();
        o.set("id", ctx.id);
        o.set("object", object);
        o.set("created", now_seconds());
        o.set("model", options_.model_name);
        o.set("choices", std::move(choices));
        return o;
    };

    if (spec.stream) {
        SseWriter sse(ctx.ex);
        auto chunk = [&](size_t index, Value delta, Value logprobs, const std::optional<std::string>& finish,
                         const std::vector<TokenEvent>* events = nullptr) {
            Value c = Value::object();
            if (spec.return_token_ids && events) {
                Value ids = Value::array();
                for (const auto& ev : *events) ids.push_back(int64_t(ev.token));
                c.set("token_ids", std::move(ids));
            }
            c.set("index", int64_t(index));
            c.set("delta", std::move(delta));
            c.set("logprobs", std::move(logprobs));
            c.set("finish_reason", finish ? Value(*finish) : Value());
            Value e = envelope("chat.completion.chunk", Value(Value::Array{std::move(c)}));
            if (spec.include_usage) e.set("usage", Value());
            return sse.send(e);
        };
        bool ok = true;
        for (size_t i = 0; i < run.size() && ok; ++i) {  // OpenAI opens every choice with the role
            Value delta = Value::object();
            delta.set("role", "assistant");
            delta.set("content", "");
            ok = chunk(i, std::move(delta), Value(), {});
        }
        ok = ok && drive(run, ctx.ex, [&](const ChoiceDelta& d) {
            Value delta = Value::object();
            if (!d.text.empty()) delta.set("content", d.text);
            Value lp = spec.want_logprobs && !d.events.empty() ? logprob_entries(d.events) : Value();
            if (d.text.empty() && lp.is_null() && !d.finish_reason && !spec.return_token_ids) return true;  // e.g. text held back by stop
            return chunk(d.index, std::move(delta), std::move(lp), d.finish_reason, &d.events);
        });
        Value last;
        if (spec.include_usage) {
            last = envelope("chat.completion.chunk", Value::array());
            last.set("usage", usage());
        }
        finish_stream(run, sse, ctx, ok, spec.include_usage ? &last : nullptr);
        return;
    }

    const std::optional<CollectedRun> got = collect_response(run, ctx);
    if (!got) return;
    const auto& [texts, finish, events] = *got;
    Value choices = Value::array();
    if (spec.use_beam_search) {  // the n best hypotheses, best first
        const BeamResults beams = beam_results(run, tok_.get(), reqs_stop_ids, spec.stop);
        for (const BeamChoice& bc : beams.choices) {
            Value msg = Value::object();
            msg.set("role", "assistant");
            msg.set("content", bc.text);
            Value c = Value::object();
            c.set("index", int64_t(choices.size()));
            c.set("message", std::move(msg));
            c.set("logprobs", Value());
            c.set("finish_reason", bc.finish);
            if (spec.return_token_ids) {
                Value ids = Value::array();
                for (int32_t t : bc.tokens) ids.push_back(int64_t(t));
                c.set("token_ids", std::move(ids));
            }
            choices.push_back(std::move(c));
        }
        Value body = envelope("chat.completion", std::move(choices));
        body.set("usage", beams.usage(ctx));
        respond_json(ctx, body);
        return;
    }
    for (size_t i = 0; i < run.size(); ++i) {
        Value msg = Value::object();
        msg.set("role", "assistant");
        msg.set("content", texts[i]);
        Value c = Value::object();
        c.set("index", int64_t(i));
        c.set("message", std::move(msg));
        c.set("logprobs", spec.want_logprobs ? logprob_entries(events[i]) : Value());
        c.set("finish_reason", finish[i] ? Value(*finish[i]) : Value());
        if (spec.return_token_ids) {
            Value ids = Value::array();
            for (const auto& ev : events[i]) ids.push_back(int64_t(ev.token));
            c.set("token_ids", std::move(ids));
        }
        choices.push_back(std::move(c));
    }
    Value body = envelope("chat.completion", std::move(choices));
    body.set("usage", usage());
    respond_json(ctx, body);
}

}  // namespace moeinfer::server
