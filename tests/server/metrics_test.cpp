// Prometheus exposition: histogram buckets are cumulative with +Inf, label escaping, and the engine gauges the
// issue names (moeinfer_kv_blocks_*) plus per-layer per-expert routing counters.
#include <gtest/gtest.h>

#include "server/metrics.h"

namespace moeinfer::server {
namespace {

TEST(Metrics, HistogramIsCumulative) {
    Histogram h({0.1, 1});
    for (double v : {0.05, 0.1, 0.5, 2.0}) h.observe(v);
    auto s = h.snapshot();
    EXPECT_EQ(s.cumulative, (std::vector<uint64_t>{2, 3, 4}));  // le=0.1 includes 0.1 itself
    EXPECT_EQ(s.count, 4u);
    EXPECT_DOUBLE_EQ(s.sum, 2.65);
    std::string text = prometheus_histogram("x_seconds", "help", "a=\"b\"", s);
    EXPECT_NE(text.find("# TYPE x_seconds histogram\n"), std::string::npos);
    EXPECT_NE(text.find("x_seconds_bucket{a=\"b\",le=\"0.1\"} 2\n"), std::string::npos);
    EXPECT_NE(text.find("x_seconds_bucket{a=\"b\",le=\"+Inf\"} 4\n"), std::string::npos);
    EXPECT_NE(text.find("x_seconds_count{a=\"b\"} 4\n"), std::string::npos);
}

TEST(Metrics, EscapesLabelValues) { EXPECT_EQ(prometheus_escape("a\"b\\c\nd"), "a\\\"b\\\\c\\nd"); }

TEST(Metrics, ExpositionHasEveryFamily) {
    ServerMetrics m;
    m.record_request(200);
    m.record_request(200);
    m.record_request(400);
    m.add_tokens(10, 5);
    m.observe_ttft(0.02);
    m.observe_itl(0.004);
    EngineMetrics e;
    e.running = 2;
    e.waiting = 1;
    e.kv_blocks_total = 100;
    e.kv_blocks_in_use = 7;
    e.kv_blocks_cached = 3;
    e.prefix_cache_queries = 4;
    e.prefix_cache_hits = 1;
    e.routed_tokens = {{}, {5, 6}};
    std::string text = m.prometheus(e, "my\"model");
    const std::string l = "model_name=\"my\\\"model\"";
    for (const std::string line :
         {"moeinfer_requests_total{" + l + ",status=\"200\"} 2", "moeinfer_requests_total{" + l + ",status=\"400\"} 1",
          "moeinfer_prompt_tokens_total{" + l + "} 10", "moeinfer_generation_tokens_total{" + l + "} 5",
          "moeinfer_num_requests_running{" + l + "} 2", "moeinfer_num_requests_waiting{" + l + "} 1",
          "moeinfer_kv_blocks_total{" + l + "} 100", "moeinfer_kv_blocks_in_use{" + l + "} 7",
          "moeinfer_kv_blocks_cached{" + l + "} 3", "moeinfer_kv_blocks_free{" + l + "} 90",
          "moeinfer_prefix_cache_hit_ratio{" + l + "} 0.25",
          "moeinfer_expert_routed_tokens_total{" + l + ",layer=\"1\",expert=\"1\"} 6",
          "moeinfer_time_to_first_token_seconds_count{" + l + "} 1",
          "moeinfer_inter_token_latency_seconds_bucket{" + l + ",le=\"0.005\"} 1"}) {
        EXPECT_NE(text.find(line + "\n"), std::string::npos) << line;
    }
    // Every sample line belongs to a family declared with # TYPE before it.
    std::set<std::string> declared;
    size_t pos = 0;
    while (pos < text.size()) {
        size_t nl = text.find('\n', pos);
        std::string line = text.substr(pos, nl - pos);
        pos = nl + 1;
        if (line.rfind("# TYPE ", 0) == 0) {
            declared.insert(line.substr(7, line.find(' ', 7) - 7));
        } else if (line[0] != '#') {
            std::string name = line.substr(0, line.find_first_of("{ "));
            for (const char* suffix : {"_bucket", "_sum", "_count"})
                if (!declared.count(name) && name.size() > strlen(suffix) &&
                    name.compare(name.size() - strlen(suffix), std::string::npos, suffix) == 0)
                    name.resize(name.size() - strlen(suffix));
            EXPECT_TRUE(declared.count(name)) << line;
        }
    }
}

}  // namespace
}  // namespace moeinfer::server
