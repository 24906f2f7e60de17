// StopMatcher (see stop_matcher.h).
#include "server/stop_matcher.h"

#include <algorithm>

namespace moeinfer::server {

StopMatcher::StopMatcher(std::vector<std::string> stops) {
    for (auto& s : stops)
        if (!s.empty()) stops_.push_back(std::move(s));
}

StopMatcher::Result StopMatcher::push(std::string_view piece) {
    Result r;
    if (stopped_) return r;
    pending_.append(piece);
    // No stop string can start inside text already emitted: that text was emitted only because no suffix of it
    // was a prefix of a stop string. So searching `pending_` alone finds the earliest complete stop.
    size_t best = std::string::npos;
    for (const auto& s : stops_) best = std::min(best, pending_.find(s));
    if (best != std::string::npos) {
        r.emit = pending_.substr(0, best);
        r.stopped = stopped_ = true;
        pending_.clear();
        return r;
    }
    // Hold back the longest tail that is a proper prefix of some stop string.
    size_t hold = 0;
    for (const auto& s : stops_) {
        for (size_t k = std::min(s.size() - 1, pending_.size()); k > hold; --k) {
            if (pending_.compare(pending_.size() - k, k, s, 0, k) == 0) {
                hold = k;
                break;
            }
        }
    }
    r.emit = pending_.substr(0, pending_.size() - hold);
    pending_.erase(0, pending_.size() - hold);
    return r;
}

std::string StopMatcher::flush() {
    std::string out;
    out.swap(pending_);
    return stopped_ ? std::string() : out;
}

}  // namespace moeinfer::server
