// `moeinfer bench`: prompt processing (one batch of -p tokens) and generation (-n single-token steps) throughput,
// mean ± sd over -r repetitions, like llama-bench. Prompt ids are fixed pseudo-random, so runs are comparable.
// With -b B (default 1) generation decodes B sequences together, one token each per step (their prompts are
// prefilled one sequence at a time first), and reports B · n / time: the decode batch a server reaches with B
// concurrent requests, where MoE layers read many experts per step.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <random>
#include <stdexcept>

#include "args.h"
#include "commands.h"
#include "device.h"
#include "core/json.h"
#include "core/thread_pool.h"
#include "models/model.h"

namespace moeinfer::cli {
namespace {

struct MeanSd {
    double mean = 0, sd = 0;
};

MeanSd mean_sd(const std::vector<double>& v) {
    MeanSd m;
    for (double x : v) m.mean += x / v.size();
    for (double x : v) m.sd += (x - m.mean) * (x - m.mean);
    m.sd = v.size() > 1 ? std::sqrt(m.sd / (v.size() - 1)) : 0;
    return m;
}

double now() { return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count(); }

}  // namespace

int cmd_bench(int argc, char** argv) {
    Args args(argc, argv, {"model", "p", "n", "t", "r", "b", "device"}, {"json", "random-weights"});
    const int64_t p = args.get_int("p", 512), n = args.get_int("n", 128), reps = args.get_int("r", 3);
    const int64_t B = args.get_int("b", 1);
    if (p < 1 || n < 0 || reps < 1) throw std::invalid_argument("-p must be >= 1, -n >= 0, -r >= 1");
    if (B < 1 || B > 4096) throw std::invalid_argument("-b must be in 1..4096");
    set_num_threads(static_cast<int>(args.get_int("t", 0)));
    auto model = load_model_on(args.require("model"), args.get_or("device", "cpu"), args.has("random-weights"));
    const ModelConfig& c = model->config();
    if (p + n > c.max_position) throw std::invalid_argument("-p + -n exceeds the model's context length");
    const int32_t bs = 16;
    const int32_t blocks_per_seq = static_cast<int32_t>((p + n + bs - 1) / bs);
    auto kv_cache = model->make_kv_cache(blocks_per_seq * static_cast<int32_t>(B), bs);
    KvCache& kv = *kv_cache;
    std::vector<BlockTable> tables(B);
    for (BlockTable& table : tables) table.reserve(kv.pool(), p + n, bs);
    std::mt19937 rng(1234);
    std::vector<int32_t> prompt(p);
    for (auto& id : prompt) id = static_cast<int32_t>(rng() % c.vocab_size);
    std::vector<float> logits(c.vocab_size * B);
    std::vector<RowSummary> sums(B);  // device decode: each sequence's next token
    std::vector<double> pp, tg;
    for (int64_t r = 0; r <= reps; ++r) {  // repetition 0 warms caches and pages in the weights
        double t_pp = 0;
        for (int64_t s = 0; s < B; ++s) {  // the first sequence's prefill is the one timed
            Batch b;
            b.add_sequence(prompt.data(), p, 0, tables[s].blocks.data(), false);
            const double t0 = now();
            model->forward(b, kv, logits.data());
            if (s == 0) t_pp = now() - t0;
        }
        std::vector<int32_t> toks(B, prompt.back());
        const double t0 = now();
        for (int64_t i = 0; i < n; ++i) {
            Batch d;
            for (int64_t s = 0; s < B; ++s) d.add_sequence(&toks[s], 1, p + i, tables[s].blocks.data(), false);
            if (model->device()) {  // greedy on the device, as the engine does: no vocab-sized copy per token
                model->forward(d, kv, nullptr, sums.data());
                for (int64_t s = 0; s < B; ++s) toks[s] = sums[s].token;
            } else {
                model->forward(d, kv, logits.data());
                for (int64_t s = 0; s < B; ++s) {
                    const float* row = logits.data() + s * c.vocab_size;
                    toks[s] = static_cast<int32_t>(std::max_element(row, row + c.vocab_size) - row);
                }
            }
        }
        const double t_tg = now() - t0;
        if (r == 0) continue;
        pp.push_back(p / t_pp);
        if (n > 0) tg.push_back(double(B) * n / t_tg);
    }
    const MeanSd a = mean_sd(pp), g = mean_sd(tg);
    if (args.has("json")) {
        json::Value o = json::Value::object();
        o.set("model", args.require("model"));
        o.set("threads", int64_t(num_threads()));
        o.set("n_prompt", p);
        o.set("n_gen", n);
        o.set("n_batch", B);
        o.set("pp_tokens_per_s", a.mean);
        o.set("pp_sd", a.sd);
        o.set("tg_tokens_per_s", g.mean);
        o.set("tg_sd", g.sd);
        std::printf("%s\n", o.dump().c_str());
    } else {
        std::printf("| model | threads | test | tokens/s |\n|---|---|---|---|\n");
        std::printf("| %s | %d | pp%lld | %.2f ± %.2f |\n", args.require("model").c_str(), num_threads(), (long long)p,
                    a.mean, a.sd);
        if (n > 0)
            std::printf("| %s | %d | tg%lld | %.2f ± %.2f |\n", args.require("model").c_str(), num_threads(),
                        (long long)n, g.mean, g.sd);
    }
    return 0;
}

}  // namespace moeinfer::cli
