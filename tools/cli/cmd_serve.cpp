// `moeinfer serve`: the OpenAI-compatible HTTP server over the continuous-batching Engine. SIGINT/SIGTERM stop
// accepting connections, let in-flight requests finish, drain the engine and exit 0.
#include <csignal>
#include <cstdio>
#include <filesystem>
#include <pthread.h>

#include "args.h"
#include "commands.h"
#include "device.h"
#include "core/thread_pool.h"
#include "engine/engine.h"
#include "models/model.h"
#include "server/http_server.h"
#include "server/openai_server.h"

namespace moeinfer::cli {

int cmd_serve(int argc, char** argv) {
    Args args(argc, argv,
              {"model", "host", "port", "api-key", "served-model-name", "max-num-seqs", "max-num-batched-tokens",
               "kv-cache-mib", "threads", "max-body-mib", "request-timeout-ms", "max-waiting", "device"},
              {"no-prefix-caching", "quiet", "random-weights", "no-overlap"});
    const std::string model_path = args.require("model");
    set_num_threads(static_cast<int>(args.get_int("threads", 0)));

    EngineConfig ec;
    ec.max_num_seqs = static_cast<int32_t>(args.get_int("max-num-seqs", ec.max_num_seqs));
    ec.max_num_batched_tokens = static_cast<int32_t>(args.get_int("max-num-batched-tokens", ec.max_num_batched_tokens));
    ec.kv_cache_mib = args.get_int("kv-cache-mib", ec.kv_cache_mib);
    ec.max_waiting = static_cast<int32_t>(args.get_int("max-waiting", ec.max_waiting));  // beyond: 503
    ec.enable_prefix_caching = !args.has("no-prefix-caching");
    if (args.has("no-overlap")) ec.overlap = EngineConfig::Overlap::Off;

    server::HttpServerConfig hc;
    hc.host = args.get_or("host", "127.0.0.1");
    const int64_t port = args.get_int("port", 8080);
    if (port < 0 || port > 65535) throw std::invalid_argument("--port must be in [0, 65535]");
    hc.port = static_cast<int>(port);
    hc.max_body_bytes = static_cast<size_t>(args.get_int("max-body-mib", 8)) << 20;
    hc.request_timeout_ms = static_cast<int>(args.get_int("request-timeout-ms", hc.request_timeout_ms));

    server::ServeOptions so;
    so.api_key = args.get_or("api-key", "");
    so.log_requests = !args.has("quiet");
    std::string name = std::filesystem::path(model_path).filename().string();
    if (name.empty()) name = std::filesystem::path(model_path).parent_path().filename().string();
    so.model_name = args.get_or("served-model-name", name);

    // Token-id prompts work without a tokenizer; text endpoints then answer 400.
    std::unique_ptr<Tokenizer> tok;
    try {
        tok = Tokenizer::from_file(model_path);
    } catch (const std::exception& e) {
        std::fprintf(stderr, "moeinfer serve: no tokenizer (%s); serving token-id prompts only\n", e.what());
    }

    // Signals go to sigwait below only: every thread started from here inherits the blocked mask.
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGINT);
    sigaddset(&sigs, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &sigs, nullptr);

    Engine engine(load_model_on(model_path, args.get_or("device", "cpu"), args.has("random-weights")), ec);
    engine.start();
    server::OpenAiServer api(engine, std::move(tok), so);
    server::Router router;
    api.register_routes(router);
    server::HttpServer http(hc, router);
    http.start();
    std::fprintf(stderr, "moeinfer serve: '%s' on http://%s:%d (max_num_seqs %d, max_num_batched_tokens %d, kv cache %lld MiB, threads %d)\n",
                 so.model_name.c_str(), hc.host.c_str(), http.port(), ec.max_num_seqs, ec.max_num_batched_tokens,
                 static_cast<long long>(ec.kv_cache_mib), num_threads());

    int sig = 0;
    sigwait(&sigs, &sig);
    std::fprintf(stderr, "moeinfer serve: %s: finishing %d open connection(s)\n", sig == SIGINT ? "SIGINT" : "SIGTERM",
                 http.active_connections());
    http.stop();        // no new connections; handlers return once their requests are done
    engine.stop(true);  // nothing should be left, but drain whatever is
    std::fprintf(stderr, "moeinfer serve: stopped\n");
    return 0;
}

}  // namespace moeinfer::cli
