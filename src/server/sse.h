// Server-sent events as OpenAI streams them: `data: <json>\n\n` per event and a final `data: [DONE]\n\n`.
#pragma once
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "server/http.h"

namespace moeinfer::server {

std::string sse_event(std::string_view data);  // one event; multi-line data is split into several data: lines
inline std::string sse_event(const json::Value& v) { return sse_event(std::string_view(v.dump())); }
inline const char* sse_done() { return "data: [DONE]\n\n"; }

// Splits a received SSE byte stream into the data payloads of complete events (used by tests and clients).
std::vector<std::string> sse_parse(std::string_view stream);

// A handler's stream: sends the SSE head on first use; every write reports whether the client is still there.
class SseWriter {
public:
    explicit SseWriter(HttpExchange& ex) : ex_(ex) {}
    bool send(const json::Value& event);
    bool done();
    bool ok() const { return ok_; }

private:
    bool begin();
    HttpExchange& ex_;
    bool begun_ = false, ok_ = true;
};

}  // namespace moeinfer::server
