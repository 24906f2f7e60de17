// Shared response endings (see response_flow.h).
#include "server/response_flow.h"

#include <algorithm>

#include "server/api_error.h"
#include "server/openai_request.h"

namespace moeinfer::server {

void finish_stream(GenerationRun& run, SseWriter& sse, RequestContext& ctx, bool ok, const json::Value* usage_chunk) {
    ctx.tokens_out = run.completion_tokens();
    ctx.ttft = run.ttft_seconds();
    if (!ok) {
        ctx.client_gone = true;
        return;
    }
    if (std::string err = run.error(); !err.empty())
        sse.send(parse_body(error_body(500, err)));
    else if (usage_chunk)
        sse.send(*usage_chunk);
    if (!sse.done()) ctx.client_gone = true;
}

std::optional<CollectedRun> collect_response(GenerationRun& run, RequestContext& ctx) {
    std::optional<CollectedRun> got = collect(run, ctx.ex);
    ctx.tokens_out = run.completion_tokens();
    ctx.ttft = run.ttft_seconds();
    if (!got) {
        ctx.client_gone = true;
        return std::nullopt;
    }
    if (std::string err = run.error(); !err.empty()) throw ApiError(500, "generation failed: " + err);
    return got;
}

BeamResults beam_results(const GenerationRun& run, const Tokenizer* tok, const std::vector<int32_t>& stop_ids,
                         const std::vector<std::string>& stops) {
    BeamResults out;
    for (size_t r = 0; r < run.size(); ++r) {
        for (const BeamHypothesis& h : run.handle(r).beams()) {
            BeamChoice c;
            c.run = r;
            c.tokens = h.tokens;
            c.text = tok ? tok->decode(h.tokens, true) : std::string();
            bool stopped = !h.tokens.empty() && std::find(stop_ids.begin(), stop_ids.end(), h.tokens.back()) != stop_ids.end();
            for (const std::string& st : stops) {
                const size_t at = st.empty() ? std::string::npos : c.text.find(st);
                if (at != std::string::npos) {
                    c.text.resize(at);
                    stopped = true;
                }
            }
            c.finish = stopped ? "stop" : "length";
            out.generated += static_cast<int64_t>(h.tokens.size());
            out.choices.push_back(std::move(c));
        }
    }
    return out;
}

json::Value BeamResults::usage(RequestContext& ctx) const {
    json::Value u = json::Value::object();
    u.set("prompt_tokens", ctx.tokens_in);
    u.set("completion_tokens", generated);
    u.set("total_tokens", ctx.tokens_in + generated);
    ctx.tokens_out = generated;
    return u;
}

}  // namespace moeinfer::server
