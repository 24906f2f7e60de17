// StopMatcher: OpenAI `stop` strings over streamed text. Text arrives in pieces that need not align with the
// stop strings, so any tail that could still become a stop string is held back until it cannot.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace moeinfer::server {

class StopMatcher {
public:
    explicit StopMatcher(std::vector<std::string> stops = {});

    struct Result {
        std::string emit;      // text safe to send now (never any part of a stop string)
        bool stopped = false;  // a stop string was completed: emit ends right before it; ignore later text
    };
    Result push(std::string_view piece);
    std::string flush();  // at the end of generation without a stop: the held-back tail
    bool stopped() const { return stopped_; }

private:
    std::vector<std::string> stops_;
    std::string pending_;  // received, not yet emitted; shorter than the longest stop string unless stopped
    bool stopped_ = false;
};

}  // namespace moeinfer::server
