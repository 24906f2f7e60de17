// Shared response endings (see response_flow.h).
#include "server/response_flow.h"

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

}  // namespace moeinfer::server
