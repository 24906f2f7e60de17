// GenerationRun: the engine requests behind one API call (n choices × prompts). Collects each choice's tokens,
// detokenizes them incrementally, applies stop strings (cancelling the engine request on a match) and hands
// out per-choice deltas, so completions and chat only format JSON.
#pragma once
#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "engine/engine.h"
#include "server/http.h"
#include "server/metrics.h"
#include "server/stop_matcher.h"
#include "tokenizer/tokenizer.h"

namespace moeinfer::server {

struct ChoiceDelta {
    int index = 0;
    std::vector<TokenEvent> events;             // newly accepted tokens (with logprobs)
    std::string text;                           // new text, stop strings already cut
    std::optional<std::string> finish_reason;   // set on the choice's last delta: "stop", "length", "abort", "error"
};

class GenerationRun {
public:
    GenerationRun(Engine& engine, const Tokenizer* tok, ServerMetrics& metrics) : engine_(engine), tok_(tok), metrics_(metrics) {}
    ~GenerationRun();  // cancels whatever is still running (e.g. the client went away)

    // Submits every request; one with n > 1 gives n consecutive choices (its candidates, in order). On failure
    // cancels those already queued and throws ApiError (400 for invalid_argument, 503 for EngineFull).
    void submit(std::vector<RequestOptions> requests, const std::vector<std::string>& stops);
    // Waits up to `timeout` for news; appends deltas to `out`. Returns true once every choice has finished.
    bool poll(std::vector<ChoiceDelta>& out, std::chrono::milliseconds timeout);
    void cancel();

    size_t size() const { return choices_.size(); }
    const RequestHandle& handle(size_t i) const { return *choices_[i].handle; }
    int64_t completion_tokens() const;
    double ttft_seconds() const;  // the first choice's
    std::string error() const;    // the first engine error, if a choice ended with one

private:
    struct Choice {
        std::shared_ptr<RequestHandle> handle;
        std::unique_ptr<StreamDecoder> decoder;
        StopMatcher stop;
        int64_t tokens = 0;
        bool done = false;
        std::chrono::steady_clock::time_point last_token;
    };
    void drain(size_t i, std::vector<TokenEvent>& events, bool finished, std::vector<ChoiceDelta>& out);

    Engine& engine_;
    const Tokenizer* tok_;
    ServerMetrics& metrics_;
    std::vector<Choice> choices_;
    size_t next_wait_ = 0;
};

// Runs `run` to its end, passing each delta to `on_delta` (false = the client is gone). Between waits it checks
// whether the client disconnected; then every request is cancelled and drive returns false.
bool drive(GenerationRun& run, HttpExchange& ex, const std::function<bool(const ChoiceDelta&)>& on_delta);

// A finished run gathered for a non-streaming response, per choice.
struct CollectedRun {
    std::vector<std::string> texts;
    std::vector<std::optional<std::string>> finish;
    std::vector<std::vector<TokenEvent>> events;
};
// drive() to the end collecting every delta; nullopt when the client disconnected.
std::optional<CollectedRun> collect(GenerationRun& run, HttpExchange& ex);

}  // namespace moeinfer::server
