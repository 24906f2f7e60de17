// POST /v1/completions: prompts (text or token ids, one or many) × n choices, whole or streamed as SSE, with
// legacy-format logprobs (tokens, token_logprobs, top_logprobs, text_offset) and echo.
#include <algorithm>
#include <chrono>

#include "server/api_error.h"
#include "server/generation.h"
#include "server/openai_server.h"
#include "server/response_flow.h"
#include "server/sse.h"

namespace moeinfer::server {
namespace {

using json::Value;

// Legacy logprobs accumulated per choice; `offset` continues across stream chunks.
struct LegacyLogprobs {
    Value tokens = Value::array(), token_logprobs = Value::array(), top = Value::array(), offsets = Value::array();
    int64_t offset = 0;
    Value take() {
        Value o = Value::object();
        o.set("tokens", std::move(tokens));
        o.set("token_logprobs", std::move(token_logprobs));
        o.set("top_logprobs", std::move(top));
        o.set("text_offset", std::move(offsets));
        *this = LegacyLogprobs{Value::array(), Value::array(), Value::array(), Value::array(), offset};
        return o;
    }
};

int64_t now_seconds() {
    return std::chrono::duration_cast<std::chrono::seconds>(std::chrono::system_clock::now().time_since_epoch()).count();
}

}  // namespace

void OpenAiServer::completions(RequestContext& ctx) {
    const ModelConfig& mc = engine_.model_config();
    CompletionSpec spec = parse_completion(parse_body(ctx.req.body), mc.vocab_size);
    check_model(spec.model);
    if (spec.stream && spec.echo && spec.want_logprobs)
        throw ApiError(400, "echo with logprobs is not supported when streaming", "echo");

    std::vector<std::vector<int32_t>> prompts;
    std::vector<std::string> prompt_texts;
    for (const PromptSpec& ps : spec.prompts) {
        prompts.push_back(ps.is_text ? encode_text(ps.text) : ps.ids);
        if (prompts.back().empty()) throw ApiError(400, "prompt: empty after tokenization", "prompt");
        std::string text = ps.text;
        if (!ps.is_text && tok_ && spec.echo) text = tok_->decode(ps.ids, false);
        prompt_texts.push_back(std::move(text));
        ctx.tokens_in += static_cast<int64_t>(prompts.back().size());
    }
    std::vector<RequestOptions> reqs;
    std::vector<size_t> prompt_of;  // choice → prompt index (beam search: run → prompt index, one run per prompt)
    for (size_t p = 0; p < prompts.size(); ++p) {
        const int64_t max_tokens = spec.max_tokens.value_or(default_max_tokens(prompts[p].size(), false));
        // One engine request per prompt: its n candidates share the prompt's prefill and KV blocks.
        reqs.push_back(make_options(spec, prompts[p], max_tokens, 0));
        reqs.back().prompt_logprobs = spec.echo && spec.want_logprobs;
        // Beam search: one run per prompt; else its n candidates come out in order.
        prompt_of.insert(prompt_of.end(), spec.use_beam_search ? 1 : static_cast<size_t>(spec.n), p);
    }
    const std::vector<int32_t> stop_ids = make_options(spec, {}, 0, 0).stop_token_ids;
    GenerationRun run(engine_, tok_.get(), metrics_);
    run.submit(std::move(reqs), spec.stop);
    const size_t n_choices = run.size();

    // Appends a generated token's legacy logprob entry, advancing text_offset by the token's text.
    auto add_logprob = [&](LegacyLogprobs& lp, int32_t token, const std::optional<TokenLogprob>& l) {
        const std::string s = token_string(token, spec.return_tokens_as_token_ids);
        lp.tokens.push_back(s);
        lp.offsets.push_back(lp.offset);
        lp.offset += static_cast<int64_t>(s.size());
        if (!l) {
            lp.token_logprobs.push_back(Value());
            lp.top.push_back(Value());
            return;
        }
        lp.token_logprobs.push_back(double(l->logprob));
        Value top = Value::object();
        for (const auto& [id, v] : l->top) top.set(token_string(id, spec.return_tokens_as_token_ids), double(v));
        if (!top.find(s)) top.set(s, double(l->logprob));
        lp.top.push_back(std::move(top));
    };
    auto usage = [&] {
        Value u = Value::object();
        u.set("prompt_tokens", ctx.tokens_in);
        u.set("completion_tokens", run.completion_tokens());
        u.set("total_tokens", ctx.tokens_in + run.completion_tokens());
        return u;
    };
    // Without a tokenizer the text is empty, so the ids are the output (vLLM's return_token_ids shape).
    const bool with_ids = spec.return_token_ids || !tok_;
    auto choice_json = [&](size_t index, std::string text, Value logprobs, const std::optional<std::string>& finish,
                           const std::vector<TokenEvent>* events) {
        Value c = Value::object();
        c.set("index", int64_t(index));
        c.set("text", std::move(text));
        c.set("logprobs", std::move(logprobs));
        c.set("finish_reason", finish ? Value(*finish) : Value());
        if (with_ids && events) {
            Value ids = Value::array();
            for (const auto& ev : *events) ids.push_back(int64_t(ev.token));
            c.set("token_ids", std::move(ids));
        }
        return c;
    };
    auto envelope = [&](Value choices) {
        Value o = Value::object();
        o.set("id", ctx.id);
        o.set("object", "text_completion");
        o.set("created", now_seconds());
        o.set("model", options_.model_name);
        o.set("choices", std::move(choices));
        return o;
    };

    std::vector<LegacyLogprobs> lps(n_choices);
    if (spec.stream) {
        SseWriter sse(ctx.ex);
        bool ok = true;
        if (spec.echo)
            for (size_t i = 0; i < n_choices && ok; ++i)
                ok = sse.send(envelope(Value(Value::Array{choice_json(i, prompt_texts[prompt_of[i]], Value(), {}, nullptr)})));
        ok = ok && drive(run, ctx.ex, [&](const ChoiceDelta& d) {
            Value lp;
            if (spec.want_logprobs && !d.events.empty()) {
                for (const auto& ev : d.events) add_logprob(lps[d.index], ev.token, ev.logprob);
                lp = lps[d.index].take();
            }
            Value chunk = envelope(Value(Value::Array{choice_json(d.index, d.text, std::move(lp), d.finish_reason, &d.events)}));
            if (spec.include_usage) chunk.set("usage", Value());
            return sse.send(chunk);
        });
        Value last;
        if (spec.include_usage) {
            last = envelope(Value::array());
            last.set("usage", usage());
        }
        finish_stream(run, sse, ctx, ok, spec.include_usage ? &last : nullptr);
        return;
    }

    const std::optional<CollectedRun> got = collect_response(run, ctx);
    if (!got) return;
    const auto& [texts, finish, events] = *got;
    Value choices = Value::array();
    if (spec.use_beam_search) {  // each prompt's n best hypotheses, best first
        const BeamResults beams = beam_results(run, tok_.get(), stop_ids, spec.stop);
        for (const BeamChoice& b : beams.choices) {
            std::vector<TokenEvent> evs;
            for (int32_t t : b.tokens) evs.push_back(TokenEvent{t, {}});
            choices.push_back(choice_json(choices.size(), (spec.echo ? prompt_texts[prompt_of[b.run]] : std::string()) + b.text,
                                          Value(), std::string(b.finish), &evs));
        }
        Value body = envelope(std::move(choices));
        body.set("usage", beams.usage(ctx));
        respond_json(ctx, body);
        return;
    }
    for (size_t i = 0; i < n_choices; ++i) {
        Value lp;
        if (spec.want_logprobs) {
            if (spec.echo) {
                const auto& plp = run.handle(i).prompt_logprobs();
                const auto& ids = prompts[prompt_of[i]];
                for (size_t t = 0; t < ids.size(); ++t)
                    add_logprob(lps[i], ids[t], t < plp.size() ? plp[t] : std::nullopt);
            }
            for (const auto& ev : events[i]) add_logprob(lps[i], ev.token, ev.logprob);
            lp = lps[i].take();
        }
        choices.push_back(choice_json(i, (spec.echo ? prompt_texts[prompt_of[i]] : std::string()) + texts[i],
                                      std::move(lp), finish[i], &events[i]));
    }
    Value body = envelope(std::move(choices));
    body.set("usage", usage());
    respond_json(ctx, body);
}

}  // namespace moeinfer::server
