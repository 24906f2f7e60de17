// The endings that /v1/completions and /v1/chat/completions share: after a streamed run (error event or usage
// chunk, then [DONE]) and after a non-streamed one (collect every choice or notice the client left).
#pragma once
#include <optional>

#include "core/json.h"
#include "server/generation.h"
#include "server/openai_server.h"
#include "server/sse.h"

namespace moeinfer::server {

// `ok` is what drive() returned. Records tokens out and TTFT in ctx; when the client is still there, sends the
// engine error as an event, or `usage_chunk` (if not null), then [DONE].
void finish_stream(GenerationRun& run, SseWriter& sse, RequestContext& ctx, bool ok, const json::Value* usage_chunk);

// Runs a non-streamed request to the end. nullopt (ctx.client_gone set) when the client disconnected; throws
// ApiError(500) when the engine failed a choice.
std::optional<CollectedRun> collect_response(GenerationRun& run, RequestContext& ctx);

// Beam search results (after collect_response): every run's hypotheses, best first, as choices. The text is cut
// at the first stop string; finish is "stop" when a stop string or stop id ended it, else "length".
struct BeamChoice {
    size_t run = 0;  // which engine request (prompt) it belongs to
    std::vector<int32_t> tokens;
    std::string text;
    const char* finish = "length";
};
struct BeamResults {
    std::vector<BeamChoice> choices;
    int64_t generated = 0;  // tokens over all returned hypotheses
    json::Value usage(RequestContext& ctx) const;  // {prompt, completion, total}_tokens; sets ctx.tokens_out
};
BeamResults beam_results(const GenerationRun& run, const Tokenizer* tok, const std::vector<int32_t>& stop_ids,
                         const std::vector<std::string>& stops);

}  // namespace moeinfer::server
