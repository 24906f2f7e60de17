// GenerationRun and drive (see generation.h).
#include "server/generation.h"

#include <cctype>

#include "server/api_error.h"

namespace moeinfer::server {

namespace {

// Engine validation messages start with the parameter ("prompt: ..."); keep it for the error's "param".
std::string param_of(const std::string& message) {
    size_t colon = message.find(':');
    if (colon == std::string::npos || colon == 0 || colon > 32) return {};
    for (size_t i = 0; i < colon; ++i)
        if (!(std::isalnum(static_cast<unsigned char>(message[i])) || message[i] == '_')) return {};
    return message.substr(0, colon);
}

const char* finish_name(FinishReason r) {
    switch (r) {
        case FinishReason::Length: return "length";
        case FinishReason::Stop: return "stop";
        case FinishReason::Error: return "error";
        default: return "abort";
    }
}

}  // namespace

GenerationRun::~GenerationRun() { cancel(); }

void GenerationRun::submit(std::vector<RequestOptions> requests, const std::vector<std::string>& stops) {
    choices_.reserve(requests.size());
    try {
        for (auto& r : requests) {
            for (auto& h : engine_.submit_n(std::move(r))) {  // one choice per candidate, in candidate order
                Choice c;
                c.handle = std::move(h);
                if (tok_) c.decoder = std::make_unique<StreamDecoder>(*tok_);
                c.stop = StopMatcher(stops);
                c.last_token = std::chrono::steady_clock::now();
                choices_.push_back(std::move(c));
            }
        }
    } catch (const EngineFull& e) {
        cancel();
        throw ApiError(503, std::string("server busy: ") + e.what());
    } catch (const std::invalid_argument& e) {
        cancel();
        throw ApiError(400, e.what(), param_of(e.what()));
    }
}

void GenerationRun::cancel() {
    for (auto& c : choices_)
        if (!c.done) c.handle->cancel();
}

int64_t GenerationRun::completion_tokens() const {
    int64_t n = 0;
    for (const auto& c : choices_) n += c.tokens;
    return n;
}

double GenerationRun::ttft_seconds() const { return choices_.empty() ? 0 : choices_[0].handle->ttft_seconds(); }

std::string GenerationRun::error() const {
    for (const auto& c : choices_)
        if (c.handle->finish_reason() == FinishReason::Error) return c.handle->error();
    return {};
}

void GenerationRun::drain(size_t i, std::vector<TokenEvent>& events, bool finished, std::vector<ChoiceDelta>& out) {
    Choice& c = choices_[i];
    if (c.done) return;
    ChoiceDelta d;
    d.index = static_cast<int>(i);
    auto now = std::chrono::steady_clock::now();
    for (auto& ev : events) {
        if (c.tokens == 0) metrics_.observe_ttft(c.handle->ttft_seconds());
        else metrics_.observe_itl(std::chrono::duration<double>(now - c.last_token).count());
        c.last_token = now;
        c.tokens++;
        d.events.push_back(std::move(ev));
        if (!c.decoder) continue;
        StopMatcher::Result r = c.stop.push(c.decoder->push(d.events.back().token));
        d.text += r.emit;
        if (r.stopped) {
            // The engine does not know stop strings: end the request here; later tokens are dropped.
            c.handle->cancel();
            d.finish_reason = "stop";
            break;
        }
    }
    if (!d.finish_reason && finished) {
        if (c.decoder) d.text += c.stop.push(c.decoder->flush()).emit + c.stop.flush();
        d.finish_reason = finish_name(c.handle->finish_reason());
    }
    c.done = d.finish_reason.has_value();
    if (!d.events.empty() || !d.text.empty() || d.finish_reason) out.push_back(std::move(d));
}

bool GenerationRun::poll(std::vector<ChoiceDelta>& out, std::chrono::milliseconds timeout) {
    // Block on one unfinished choice (rotating), then sweep the rest without waiting.
    size_t n = choices_.size();
    bool waited = false;
    for (size_t k = 0; k < n; ++k) {
        size_t i = (next_wait_ + k) % n;
        if (choices_[i].done) continue;
        std::vector<TokenEvent> events;
        auto t = waited ? std::chrono::milliseconds(0) : (n > 1 ? std::min(timeout, std::chrono::milliseconds(10)) : timeout);
        waited = true;
        bool finished = choices_[i].handle->wait(events, t);
        drain(i, events, finished, out);
    }
    next_wait_ = n ? (next_wait_ + 1) % n : 0;
    for (const auto& c : choices_)
        if (!c.done) return false;
    return true;
}

bool drive(GenerationRun& run, HttpExchange& ex, const std::function<bool(const ChoiceDelta&)>& on_delta) {
    std::vector<ChoiceDelta> deltas;
    auto last_check = std::chrono::steady_clock::now();
    for (;;) {
        deltas.clear();
        bool done = run.poll(deltas, std::chrono::milliseconds(50));
        for (const auto& d : deltas)
            if (!on_delta(d)) {
                run.cancel();
                return false;
            }
        if (done) return true;
        // A write failure only shows a disconnect when we write; non-streamed responses write at the end, so
        // look at the socket every 50 ms too (a cheap poll), whether or not tokens keep coming.
        auto now = std::chrono::steady_clock::now();
        if (now - last_check >= std::chrono::milliseconds(50)) {
            last_check = now;
            if (ex.client_gone()) {
                run.cancel();
                return false;
            }
        }
    }
}

std::optional<CollectedRun> collect(GenerationRun& run, HttpExchange& ex) {
    CollectedRun c;
    c.texts.resize(run.size());
    c.finish.resize(run.size());
    c.events.resize(run.size());
    const bool ok = drive(run, ex, [&](const ChoiceDelta& d) {
        c.texts[d.index] += d.text;
        c.events[d.index].insert(c.events[d.index].end(), d.events.begin(), d.events.end());
        if (d.finish_reason) c.finish[d.index] = d.finish_reason;
        return true;
    });
    if (!ok) return std::nullopt;
    return c;
}

}  // namespace moeinfer::server
