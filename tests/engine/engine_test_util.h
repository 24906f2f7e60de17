// Helpers shared by the engine tests.
#pragma once
#include <chrono>
#include <cstdint>
#include <vector>

#include "engine/engine.h"

namespace moeinfer::test {

// Waits for a request to finish and returns every token it produced.
inline std::vector<int32_t> collect(RequestHandle& h) {
    std::vector<int32_t> out;
    std::vector<TokenEvent> evs;
    while (!h.wait(evs, std::chrono::milliseconds(100))) {
    }
    for (const auto& e : evs) out.push_back(e.token);
    return out;
}

inline RequestOptions greedy(const std::vector<int32_t>& prompt, int64_t n) {
    RequestOptions o;
    o.prompt = prompt;
    o.max_tokens = n;
    o.sampling.temperature = 0;
    return o;
}

}  // namespace moeinfer::test
