// Server metrics: request/token counters and latency histograms recorded by the HTTP handlers, rendered in the
// Prometheus text format together with the engine's gauges (KV blocks, queue, prefix cache, expert routing).
#pragma once
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace moeinfer::server {

// Cumulative-bucket histogram (Prometheus semantics: bucket i counts observations <= bounds[i]).
class Histogram {
public:
    explicit Histogram(std::vector<double> bounds);
    void observe(double v);
    struct Snapshot {
        std::vector<double> bounds;
        std::vector<uint64_t> cumulative;  // one per bound, then +Inf
        double sum = 0;
        uint64_t count = 0;
    };
    Snapshot snapshot() const;

private:
    mutable std::mutex mu_;
    std::vector<double> bounds_;
    std::vector<uint64_t> counts_;  // per bucket (not cumulative), last = above every bound
    double sum_ = 0;
    uint64_t count_ = 0;
};

class ServerMetrics {
public:
    ServerMetrics();
    void record_request(int status);
    void add_tokens(int64_t prompt, int64_t generated);
    void observe_ttft(double seconds) { ttft_.observe(seconds); }
    void observe_itl(double seconds) { itl_.observe(seconds); }
    void observe_e2e(double seconds) { e2e_.observe(seconds); }

    // The whole exposition: our counters and histograms, then the engine's numbers.
    std::string prometheus(const EngineMetrics& engine, const std::string& model_name) const;

private:
    mutable std::mutex mu_;
    std::map<int, uint64_t> requests_;  // by HTTP status
    uint64_t prompt_tokens_ = 0, generated_tokens_ = 0;
    Histogram ttft_, itl_, e2e_;
};

// Prometheus text helpers (exposed for tests): a label value escaped (\\, \", \n) and a histogram block.
std::string prometheus_escape(const std::string& s);
std::string prometheus_histogram(const std::string& name, const std::string& help, const std::string& labels,
                                 const Histogram::Snapshot& h);

}  // namespace moeinfer::server
