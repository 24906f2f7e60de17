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

}  // namespace moeinfer::server
