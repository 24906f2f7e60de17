// SSE framing (see sse.h).
#include "server/sse.h"

#include <vector>

namespace moeinfer::server {

std::string sse_event(std::string_view data) {
    std::string out;
    size_t start = 0;
    for (;;) {
        size_t nl = data.find('\n', start);
        out += "data: ";
        out.append(data.substr(start, nl == std::string_view::npos ? std::string_view::npos : nl - start));
        out += '\n';
        if (nl == std::string_view::npos) break;
        start = nl + 1;
    }
    out += '\n';
    return out;
}

std::vector<std::string> sse_parse(std::string_view stream) {
    std::vector<std::string> events;
    std::string data;
    bool have = false;
    size_t pos = 0;
    while (pos < stream.size()) {
        size_t nl = stream.find('\n', pos);
        if (nl == std::string_view::npos) break;  // incomplete line: not an event yet
        std::string_view line = stream.substr(pos, nl - pos);
        if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
        pos = nl + 1;
        if (line.empty()) {
            if (have) events.push_back(data);
            data.clear();
            have = false;
        } else if (line.rfind("data:", 0) == 0) {
            std::string_view v = line.substr(5);
            if (!v.empty() && v.front() == ' ') v.remove_prefix(1);
            if (have) data += '\n';
            data.append(v);
            have = true;
        }
    }
    return events;
}

bool SseWriter::begin() {
    if (!begun_) {
        begun_ = true;
        ok_ = ex_.begin_stream(200, "text/event-stream; charset=utf-8", {{"X-Accel-Buffering", "no"}});
    }
    return ok_;
}

bool SseWriter::send(const json::Value& event) {
    if (!begin()) return false;
    ok_ = ex_.write(sse_event(event));
    return ok_;
}

bool SseWriter::done() {
    if (!begin()) return false;
    ok_ = ex_.write(sse_done());
    return ok_;
}

}  // namespace moeinfer::server
