// `moeinfer perplexity`: perplexity of a model over a text file, llama.cpp-style: non-overlapping windows of --ctx
// tokens, each one prefill batch from an empty context; every token after a window's first is scored.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

#include "args.h"
#include "commands.h"
#include "device.h"
#include "core/thread_pool.h"
#include "models/model.h"
#include "tokenizer/tokenizer.h"

namespace moeinfer::cli {
namespace {

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot read --file '" + path + "'");
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

// -log p(target) from one row of logits, in double so that summing tens of thousands of terms loses nothing.
double token_nll(const float* logits, int64_t vocab, int32_t target) {
    float mx = logits[0];
    for (int64_t i = 1; i < vocab; ++i) mx = std::max(mx, logits[i]);
    double sum = 0;
    for (int64_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - mx);
    return std::log(sum) + mx - logits[target];
}

}  // namespace

int cmd_perplexity(int argc, char** argv) {
    Args args(argc, argv, {"model", "file", "ctx", "chunks", "threads", "device"}, {});
    const std::string model_path = args.require("model");
    set_num_threads(static_cast<int>(args.get_int("threads", 0)));
    const std::string text = read_file(args.require("file"));
    auto tok = Tokenizer::from_file(model_path);
    auto model = load_model_on(model_path, args.get_or("device", "cpu"));
    const ModelConfig& c = model->config();

    int64_t ctx = args.get_int("ctx", 512);
    if (ctx < 2) throw std::invalid_argument("--ctx must be >= 2");
    if (ctx > c.max_position) {
        std::fprintf(stderr, "perplexity: --ctx %lld clipped to the model's context %lld\n", (long long)ctx,
                     (long long)c.max_position);
        ctx = c.max_position;
    }
    // No BOS/EOS: the score is over the file's own tokens, the same ids PyTorch's reference sees.
    const std::vector<int32_t> ids = tok->encode(text, false);
    int64_t n_chunks = static_cast<int64_t>(ids.size()) / ctx;  // a final partial window is dropped
    const int64_t max_chunks = args.get_int("chunks", -1);
    if (max_chunks > 0) n_chunks = std::min(n_chunks, max_chunks);
    if (n_chunks < 1)
        throw std::invalid_argument("--file has " + std::to_string(ids.size()) + " tokens, fewer than --ctx " +
                                    std::to_string(ctx));
    std::fprintf(stderr, "perplexity: %zu tokens, %lld chunks of %lld, %d threads\n", ids.size(),
                 (long long)n_chunks, (long long)ctx, num_threads());

    // One window's worth of cache, reused: each window starts at position 0 and overwrites what the last one left.
    const int32_t bs = 16;
    auto kv_cache = model->make_kv_cache(static_cast<int32_t>((ctx + bs - 1) / bs), bs);
    KvCache& kv = *kv_cache;
    BlockTable table;
    if (!table.reserve(kv.pool(), ctx, bs)) throw std::runtime_error("perplexity: KV cache allocation failed");
    const int64_t V = c.vocab_size;
    std::vector<float> logits(static_cast<size_t>(ctx) * V);  // [ctx, V]
    double nll = 0, nll2 = 0;
    int64_t count = 0;
    const double t0 = now();
    for (int64_t k = 0; k < n_chunks; ++k) {
        const int32_t* w = ids.data() + k * ctx;
        Batch b;
        b.add_sequence(w, ctx, 0, table.blocks.data(), true);
        model->forward(b, kv, logits.data());
        for (int64_t i = 0; i + 1 < ctx; ++i) {
            const double x = token_nll(logits.data() + i * V, V, w[i + 1]);
            nll += x;
            nll2 += x * x;
            ++count;
        }
        std::printf("[%lld]%.4f,", (long long)(k + 1), std::exp(nll / count));  // running estimate, as llama.cpp
        std::fflush(stdout);
    }
    const double secs = now() - t0;
    const double mean = nll / count;
    // Standard error of the mean NLL carried to PPL (first order): PPL * sd / sqrt(n).
    const double var = std::max(0.0, nll2 / count - mean * mean);
    const double ppl = std::exp(mean);
    std::printf("\n%lld tokens in %.2f s: %.1f tokens/s\n", (long long)(n_chunks * ctx), secs, n_chunks * ctx / secs);
    std::printf("Final estimate: PPL = %.4f +/- %.4f\n", ppl, ppl * std::sqrt(var / count));
    return 0;
}

}  // namespace moeinfer::cli
