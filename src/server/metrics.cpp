// Server metrics and their Prometheus exposition (see metrics.h).
#include "server/metrics.h"

#include <algorithm>

#include "core/json.h"

namespace moeinfer::server {
namespace {

std::string num(double v) { return json::format_number(v); }

void header(std::string& out, const std::string& name, const std::string& type, const std::string& help) {
    out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

void sample(std::string& out, const std::string& name, const std::string& labels, double v) {
    out += name + (labels.empty() ? "" : "{" + labels + "}") + " " + num(v) + "\n";
}

void single(std::string& out, const std::string& name, const std::string& type, const std::string& help,
            const std::string& labels, double v) {
    header(out, name, type, help);
    sample(out, name, labels, v);
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds) : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::observe(double v) {
    size_t i = std::lower_bound(bounds_.begin(), bounds_.end(), v) - bounds_.begin();  // first bound >= v
    std::lock_guard<std::mutex> lock(mu_);
    counts_[i]++;
    sum_ += v;
    count_++;
}

Histogram::Snapshot Histogram::snapshot() const {
    std::lock_guard<std::mutex> lock(mu_);
    Snapshot s;
    s.bounds = bounds_;
    uint64_t acc = 0;
    for (uint64_t c : counts_) s.cumulative.push_back(acc += c);
    s.sum = sum_;
    s.count = count_;
    return s;
}

std::string prometheus_escape(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == '"') out += "\\\"";
        else if (c == '\n') out += "\\n";
        else out += c;
    }
    return out;
}

std::string prometheus_histogram(const std::string& name, const std::string& help, const std::string& labels,
                                 const Histogram::Snapshot& h) {
    std::string out;
    header(out, name, "histogram", help);
    const std::string sep = labels.empty() ? "" : labels + ",";
    for (size_t i = 0; i < h.bounds.size(); ++i)
        out += name + "_bucket{" + sep + "le=\"" + num(h.bounds[i]) + "\"} " + std::to_string(h.cumulative[i]) + "\n";
    out += name + "_bucket{" + sep + "le=\"+Inf\"} " + std::to_string(h.cumulative.back()) + "\n";
    sample(out, name + "_sum", labels, h.sum);
    out += name + "_count" + (labels.empty() ? "" : "{" + labels + "}") + " " + std::to_string(h.count) + "\n";
    return out;
}

ServerMetrics::ServerMetrics()
    : ttft_({0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80}),
      itl_({0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3, 0.4, 0.5, 0.75, 1, 2.5, 5}),
      e2e_({0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 20, 40, 80, 160}) {}

void ServerMetrics::record_request(int status) {
    std::lock_guard<std::mutex> lock(mu_);
    requests_[status]++;
}

void ServerMetrics::add_tokens(int64_t prompt, int64_t generated) {
    std::lock_guard<std::mutex> lock(mu_);
    prompt_tokens_ += static_cast<uint64_t>(prompt);
    generated_tokens_ += static_cast<uint64_t>(generated);
}

std::string ServerMetrics::prometheus(const EngineMetrics& e, const std::string& model_name) const {
    const std::string model = "model_name=\"" + prometheus_escape(model_name) + "\"";
    std::string out;
    {
        std::lock_guard<std::mutex> lock(mu_);
        header(out, "moeinfer_requests_total", "counter", "HTTP requests answered, by status code.");
        for (const auto& [status, n] : requests_)
            sample(out, "moeinfer_requests_total", model + ",status=\"" + std::to_string(status) + "\"", double(n));
        single(out, "moeinfer_prompt_tokens_total", "counter", "Prompt tokens of finished requests.", model,
               double(prompt_tokens_));
        single(out, "moeinfer_generation_tokens_total", "counter", "Tokens generated for finished requests.", model,
               double(generated_tokens_));
    }
    out += prometheus_histogram("moeinfer_time_to_first_token_seconds", "Submit to first generated token.", model,
                                ttft_.snapshot());
    out += prometheus_histogram("moeinfer_inter_token_latency_seconds", "Time between consecutive tokens of a request.",
                                model, itl_.snapshot());
    out += prometheus_histogram("moeinfer_e2e_request_latency_seconds", "Request received to last token.", model,
                                e2e_.snapshot());
    single(out, "moeinfer_num_requests_running", "gauge", "Sequences scheduled in the running batch.", model,
           double(e.running));
    single(out, "moeinfer_num_requests_waiting", "gauge", "Sequences queued for admission.", model, double(e.waiting));
    single(out, "moeinfer_kv_blocks_total", "gauge", "KV cache blocks in the pool.", model, double(e.kv_blocks_total));
    single(out, "moeinfer_kv_blocks_in_use", "gauge", "KV blocks referenced by live requests.", model,
           double(e.kv_blocks_in_use));
    single(out, "moeinfer_kv_blocks_cached", "gauge", "Unreferenced KV blocks kept for prefix reuse.", model,
           double(e.kv_blocks_cached));
    single(out, "moeinfer_kv_blocks_free", "gauge", "KV blocks neither in use nor cached.", model,
           double(std::max<int64_t>(0, e.kv_blocks_total - e.kv_blocks_in_use - e.kv_blocks_cached)));
    single(out, "moeinfer_prefix_cache_queries_total", "counter", "Full prompt blocks looked up in the prefix cache.",
           model, double(e.prefix_cache_queries));
    single(out, "moeinfer_prefix_cache_hits_total", "counter", "Full prompt blocks found in the prefix cache.", model,
           double(e.prefix_cache_hits));
    single(out, "moeinfer_prefix_cache_hit_ratio", "gauge", "Prefix cache hits / queries since start (blocks).", model,
           e.prefix_cache_queries > 0 ? double(e.prefix_cache_hits) / double(e.prefix_cache_queries) : 0.0);
    single(out, "moeinfer_engine_prompt_tokens_total", "counter", "Prompt tokens computed by the engine.", model,
           double(e.prompt_tokens));
    single(out, "moeinfer_engine_generation_tokens_total", "counter", "Tokens sampled by the engine.", model,
           double(e.generated_tokens));
    single(out, "moeinfer_preemptions_total", "counter", "Sequences preempted (recomputed later) for lack of blocks.",
           model, double(e.preemptions));
    single(out, "moeinfer_engine_steps_total", "counter", "Engine scheduling steps run.", model, double(e.steps));
    single(out, "moeinfer_engine_overlapped_steps_total", "counter",
           "Steps launched while the previous step was still computing.", model, double(e.overlapped_steps));
    single(out, "moeinfer_device_step_gap_seconds_total", "counter",
           "Device idle time between consecutive steps while work was queued.", model, e.device_gap_seconds);
    single(out, "moeinfer_device_step_gaps_total", "counter", "Step gaps measured on the device.", model,
           double(e.device_gaps));
    header(out, "moeinfer_expert_routed_tokens_total", "counter", "Tokens routed to each expert, per MoE layer.");
    for (size_t l = 0; l < e.routed_tokens.size(); ++l)
        for (size_t x = 0; x < e.routed_tokens[l].size(); ++x)
            sample(out, "moeinfer_expert_routed_tokens_total",
                   model + ",layer=\"" + std::to_string(l) + "\",expert=\"" + std::to_string(x) + "\"",
                   double(e.routed_tokens[l][x]));
    return out;
}

}  // namespace moeinfer::server
