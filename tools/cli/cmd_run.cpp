// `moeinfer run`: one prompt (text or token ids) through the Generator; streams text or prints one JSON object.
#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <random>
#include <stdexcept>

#include "args.h"
#include "commands.h"
#include "device.h"
#include "core/json.h"
#include "core/thread_pool.h"
#include "engine/generator.h"
#include "models/model.h"
#include "server/stop_matcher.h"
#include "text_io.h"

namespace moeinfer::cli {
namespace {

json::Value logprob_json(const TokenLogprob& lp) {
    json::Value o = json::Value::object();
    o.set("token", int64_t(lp.token));
    o.set("logprob", double(lp.logprob));
    json::Value top = json::Value::array();
    for (const auto& [id, v] : lp.top) top.push_back(json::Value(json::Value::Array{int64_t(id), double(v)}));
    o.set("top", std::move(top));
    return o;
}

json::Value ids_json(const std::vector<int32_t>& ids) {
    json::Value a = json::Value::array();
    for (int32_t id : ids) a.push_back(int64_t(id));
    return a;
}

// "ID=BIAS,ID=BIAS" (ids are checked against the vocabulary when the request is submitted).
std::vector<std::pair<int32_t, float>> parse_logit_bias(const std::string& spec) {
    std::vector<std::pair<int32_t, float>> out;
    size_t pos = 0;
    while (pos <= spec.size()) {
        const size_t comma = std::min(spec.find(',', pos), spec.size());
        const std::string item = spec.substr(pos, comma - pos);
        const size_t eq = item.find('=');
        char* end1 = nullptr;
        char* end2 = nullptr;
        const long id = eq == std::string::npos ? -1 : std::strtol(item.c_str(), &end1, 10);
        const float b = eq == std::string::npos ? 0.f : std::strtof(item.c_str() + eq + 1, &end2);
        if (eq == std::string::npos || end1 != item.c_str() + eq || eq == 0 || *end2 != '\0' || eq + 1 == item.size() ||
            id < 0)
            throw std::invalid_argument("--logit-bias: expected ID=BIAS[,ID=BIAS...], got \"" + item + "\"");
        out.emplace_back(static_cast<int32_t>(id), b);
        pos = comma + 1;
    }
    return out;
}

}  // namespace

int cmd_run(int argc_in, char** argv_in) {
    // `-n` is max tokens, so Args would read `--n` as the same flag: take `--n N` (candidates) out first.
    int32_t n_candidates = 1;
    std::vector<char*> kept;
    for (int i = 0; i < argc_in; ++i) {
        if (std::string(argv_in[i]) == "--n") {
            if (i + 1 >= argc_in) throw std::invalid_argument("--n needs a value");
            n_candidates = static_cast<int32_t>(std::strtol(argv_in[++i], nullptr, 10));
            if (n_candidates < 1 || n_candidates > 128) throw std::invalid_argument("--n must be in [1, 128]");
            continue;
        }
        kept.push_back(argv_in[i]);
    }
    int argc = static_cast<int>(kept.size());
    char** argv = kept.data();
    Args args(argc, argv,
              {"model", "prompt", "prompt-tokens", "messages", "n", "temperature", "top-k", "top-p", "min-p", "seed",
               "logprobs", "threads", "spec-ngram", "typical-p", "logit-bias",
               "beam-width", "length-penalty", "early-stopping", "num-return-sequences",
               "draft-model", "spec-draft", "presence-penalty", "frequency-penalty", "repetition-penalty",
               "min-tokens", "stop", "stop-token-ids", "device"},
              {"echo", "json", "ignore-eos", "timing", "random-weights", "no-overlap"});
    const std::string model_path = args.require("model");
    if (args.has("prompt") + args.has("prompt-tokens") + args.has("messages") != 1)
        throw std::invalid_argument("give exactly one of --prompt TEXT, --messages FILE.json or --prompt-tokens 1,2,3");
    set_num_threads(static_cast<int>(args.get_int("threads", 0)));

    GenerationRequest req;
    req.max_new_tokens = args.get_int("n", 32);
    if (req.max_new_tokens < 0) throw std::invalid_argument("-n must be >= 0");
    req.sampling.temperature = static_cast<float>(args.get_double("temperature", 0.8));
    req.sampling.top_k = static_cast<int32_t>(args.get_int("top-k", 0));
    req.sampling.top_p = static_cast<float>(args.get_double("top-p", 1.0));
    req.sampling.min_p = static_cast<float>(args.get_double("min-p", 0.0));
    req.sampling.typical_p = static_cast<float>(args.get_double("typical-p", 1.0));
    if (args.has("logit-bias")) req.sampling.logit_bias = parse_logit_bias(args.require("logit-bias"));
    req.sampling.seed = args.has("seed") ? static_cast<uint64_t>(args.get_int("seed", 0)) : std::random_device{}();
    req.sampling.logprobs = static_cast<int32_t>(args.get_int("logprobs", 0));
    req.sampling.presence_penalty = static_cast<float>(args.get_double("presence-penalty", 0.0));
    req.sampling.frequency_penalty = static_cast<float>(args.get_double("frequency-penalty", 0.0));
    req.sampling.repetition_penalty = static_cast<float>(args.get_double("repetition-penalty", 1.0));
    req.sampling.validate();
    req.min_tokens = args.get_int("min-tokens", 0);
    if (req.min_tokens < 0) throw std::invalid_argument("--min-tokens must be >= 0");
    if (args.has("stop-token-ids")) req.stop_ids = parse_id_list(args.require("stop-token-ids"), "--stop-token-ids");
    // A stop string (matched on the streamed text across token boundaries, not printed) ends generation.
    server::StopMatcher stop(args.has("stop") ? std::vector<std::string>{args.require("stop")} : std::vector<std::string>{});
    req.prompt_logprobs = args.has("echo");
    req.spec_ngram = static_cast<int32_t>(args.get_int("spec-ngram", 0));
    if (req.spec_ngram < 0 || req.spec_ngram > 64) throw std::invalid_argument("--spec-ngram must be in [0, 64]");
    req.spec_draft = static_cast<int32_t>(args.get_int("spec-draft", args.has("draft-model") ? 4 : 0));
    if (req.spec_draft < 0 || req.spec_draft > 64) throw std::invalid_argument("--spec-draft must be in [0, 64]");
    if (req.spec_draft > 0 && !args.has("draft-model")) throw std::invalid_argument("--spec-draft needs --draft-model PATH");
    req.beam_width = static_cast<int32_t>(args.get_int("beam-width", 0));
    if (req.beam_width < 0 || req.beam_width > 64) throw std::invalid_argument("--beam-width must be in [0, 64]");
    req.length_penalty = args.get_double("length-penalty", 1.0);
    const std::string es = args.has("early-stopping") ? args.require("early-stopping") : "false";
    if (es != "true" && es != "false" && es != "never")
        throw std::invalid_argument("--early-stopping must be true, false or never");
    req.early_stopping = es == "true" ? EarlyStopping::Always : es == "never" ? EarlyStopping::Never : EarlyStopping::Heuristic;
    req.num_return_sequences = static_cast<int32_t>(args.get_int("num-return-sequences", 1));
    req.n = n_candidates;
    if (req.n > 1 && req.beam_width > 1) throw std::invalid_argument("--n: use --num-return-sequences with --beam-width");
    // n > 1 prints every candidate at the end (like beams) instead of streaming one.
    const bool beams = req.beam_width > 1 || req.n > 1;
    if (req.num_return_sequences < 1 || req.num_return_sequences > std::max(1, req.beam_width))
        throw std::invalid_argument("--num-return-sequences must be in [1, --beam-width]");
    // Token-id prompts work without a tokenizer; then output is ids and "text" is empty.
    std::unique_ptr<Tokenizer> tok;
    if (args.has("prompt-tokens")) {
        req.prompt = parse_id_list(args.require("prompt-tokens"), "--prompt-tokens");
        try {
            tok = Tokenizer::from_file(model_path);
        } catch (const std::exception&) {
        }
    } else {
        tok = load_tokenizer(model_path);
        req.prompt = args.has("prompt")
                         ? encode_prompt(*tok, args.require("prompt"))
                         : tok->encode(render_prompt(*tok, read_chat_input(args.require("messages")), true), false);
    }

    auto model = load_model_on(model_path, args.get_or("device", "cpu"), args.has("random-weights"));
    if (!args.has("ignore-eos")) {
        for (int64_t id : model->config().eos_token_ids) req.stop_ids.push_back(static_cast<int32_t>(id));
        if (tok)
            for (int32_t id : tok->eos_ids()) req.stop_ids.push_back(id);
    }
    std::unique_ptr<Model> draft;
    if (args.has("draft-model")) draft = load_model_on(args.require("draft-model"), args.get_or("device", "cpu"));
    Generator gen(*model, 16, draft.get());
    if (args.has("no-overlap")) gen.set_overlap(EngineConfig::Overlap::Off);
    const bool as_json = args.has("json");
    GenerationStats stats;
    std::unique_ptr<StreamDecoder> stream;
    if (tok) stream = std::make_unique<StreamDecoder>(*tok);
    if (!as_json && tok && !beams) std::fputs(args.has("prompt") ? args.require("prompt").c_str() : "", stdout);
    if (args.has("stop") && (!tok || beams)) throw std::invalid_argument("--stop needs a tokenizer and plain decoding");
    std::string text;  // the streamed text (stop string excluded)
    auto results = gen.generate({req}, [&](size_t, int32_t id) {
        if (beams) return true;
        if (!stream) {
            if (!as_json) std::printf("%d ", id);
            std::fflush(stdout);
            return true;
        }
        const server::StopMatcher::Result piece = stop.push(stream->push(id));
        text += piece.emit;
        if (!as_json) {
            std::fputs(piece.emit.c_str(), stdout);
            std::fflush(stdout);
        }
        return !piece.stopped;
    }, &stats);
    if (stream && !beams && !stop.stopped()) {
        const std::string rest = stop.push(stream->flush()).emit + stop.flush();
        text += rest;
        if (!as_json) std::fputs(rest.c_str(), stdout);
    }
    const GenerationResult& r = results[0];
    if (beams) {
        // Beams: best first; score = summed logprob / generated length ^ length_penalty (HF's sequences_scores).
        // --n: candidates in index order (candidate i sampled with seed + i); score = the candidate's summed token
        // logprobs under the model (before temperature and penalties), unnormalized.
        std::vector<BeamHypothesis> hyps = r.beams;
        if (req.n > 1) {
            hyps.clear();
            for (const auto& c : r.candidates) {
                BeamHypothesis h{c.tokens, 0.0};
                for (const auto& lp : c.logprobs) h.score += lp.logprob;
                hyps.push_back(std::move(h));
            }
        }
        json::Value choices = json::Value::array();
        for (const BeamHypothesis& h : hyps) {
            const std::string text = tok ? tok->decode(h.tokens, true) : std::string();
            if (!as_json)
                std::printf("[score %.6f] %s%s\n", h.score, args.has("prompt") ? args.require("prompt").c_str() : "",
                            tok ? text.c_str() : ids_json(h.tokens).dump().c_str());
            json::Value c = json::Value::object();
            c.set("tokens", ids_json(h.tokens));
            c.set("text", text);
            c.set("score", h.score);
            choices.push_back(std::move(c));
        }
        if (as_json) {
            json::Value out = json::Value::object();
            out.set("prompt_tokens", ids_json(req.prompt));
            out.set("choices", std::move(choices));
            std::printf("%s\n", out.dump().c_str());
        }
    } else if (as_json) {
        json::Value out = json::Value::object();
        out.set("prompt_tokens", ids_json(req.prompt));
        out.set("tokens", ids_json(r.tokens));
        out.set("text", text);
        json::Value lps = json::Value::array();
        for (const auto& lp : r.logprobs) lps.push_back(logprob_json(lp));
        out.set("logprobs", std::move(lps));
        if (req.prompt_logprobs) {
            json::Value plps = json::Value::array();
            for (const auto& lp : r.prompt_logprobs) plps.push_back(lp ? logprob_json(*lp) : json::Value());
            out.set("prompt_logprobs", std::move(plps));
        }
        std::printf("%s\n", out.dump().c_str());
    } else {
        std::printf("\n");
    }
    std::fflush(stdout);  // the text ends before the summary line when both go to one terminal or pipe
    if (beams && req.n == 1)
        std::fprintf(stderr, "prompt: %lld tokens | beam search: %d beams, best %zu tokens, %.3f s | threads %d\n",
                     static_cast<long long>(stats.prompt_tokens), req.beam_width,
                     r.beams.empty() ? size_t(0) : r.beams[0].tokens.size(), stats.prefill_seconds + stats.decode_seconds,
                     num_threads());
    else
    std::fprintf(stderr, "prompt: %lld tokens, %.2f tokens/s | generation: %lld tokens, %.2f tokens/s | threads %d\n",
                 static_cast<long long>(stats.prompt_tokens), stats.prompt_tokens / std::max(1e-9, stats.prefill_seconds),
                 static_cast<long long>(stats.generated_tokens),
                 stats.generated_tokens > 1 ? (stats.generated_tokens - 1) / std::max(1e-9, stats.decode_seconds) : 0.0,
                 num_threads());
    if (beams && req.n == 1)
        std::fprintf(stderr, "beam search: peak %lld KV blocks shared by %d beams (copying KV per beam: %lld), %lld copy-on-write block copies\n",
                     static_cast<long long>(stats.beam_blocks_peak), req.beam_width,
                     static_cast<long long>(stats.beam_blocks_unshared_peak), static_cast<long long>(stats.kv_cow_copies));
    if (args.has("timing") && stats.steps > 0)
        std::fprintf(stderr, "engine loop: %lld steps, %.3f s busy, %.3f s in forward, %.1f us/step outside forward\n",
                     static_cast<long long>(stats.steps), stats.loop_seconds, stats.forward_seconds,
                     1e6 * (stats.loop_seconds - stats.forward_seconds) / stats.steps);
    if (args.has("timing") && stats.device_gaps > 0)
        std::fprintf(stderr, "device idle between steps: %.1f us/step over %lld steps (%lld steps overlapped)\n",
                     1e6 * stats.device_gap_seconds / stats.device_gaps, static_cast<long long>(stats.device_gaps),
                     static_cast<long long>(stats.overlapped_steps));
    if (stats.spec_draft_tokens > 0)
        std::fprintf(stderr, "speculative (%s): %lld drafted, %lld accepted (%.1f%%)\n",
                     draft ? "draft model" : "n-gram", static_cast<long long>(stats.spec_draft_tokens),
                     static_cast<long long>(stats.spec_accepted_tokens),
                     100.0 * stats.spec_accepted_tokens / stats.spec_draft_tokens);
    return 0;
}

}  // namespace moeinfer::cli
