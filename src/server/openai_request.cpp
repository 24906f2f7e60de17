// OpenAI request parsing and validation (see openai_request.h).
#include "server/openai_request.h"

#include <algorithm>
#include <cctype>
#include <climits>
#include <cmath>
#include <cstdlib>

namespace moeinfer::server {
namespace {

using json::Value;

[[noreturn]] void bad(const std::string& param, const std::string& message) {
    throw ApiError(400, param + ": " + message, param);
}

const Value* field(const Value& obj, const char* key) {
    const Value* v = obj.find(key);
    return v && !v->is_null() ? v : nullptr;  // null means "not given", as in OpenAI's API
}

std::optional<double> get_number(const Value& obj, const char* key) {
    const Value* v = field(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_number()) bad(key, std::string("expected a number, got ") + Value::type_name(v->type()));
    return v->as_number();
}

int64_t to_int(const Value& v, const std::string& param) {
    if (!v.is_number()) bad(param, std::string("expected an integer, got ") + Value::type_name(v.type()));
    double d = v.as_number();
    if (v.is_int()) return v.as_int();
    if (std::floor(d) != d || std::fabs(d) > 9.0e15) bad(param, "expected an integer, got " + json::format_number(d));
    return static_cast<int64_t>(d);
}

std::optional<int64_t> get_int(const Value& obj, const char* key) {
    const Value* v = field(obj, key);
    if (!v) return std::nullopt;
    return to_int(*v, key);
}

std::optional<bool> get_bool(const Value& obj, const char* key) {
    const Value* v = field(obj, key);
    if (!v) return std::nullopt;
    if (!v->is_bool()) bad(key, std::string("expected a boolean, got ") + Value::type_name(v->type()));
    return v->as_bool();
}

std::vector<int32_t> token_ids(const Value& v, const std::string& param, int64_t vocab_size) {
    if (!v.is_array()) bad(param, "expected an array of token ids");
    std::vector<int32_t> ids;
    for (const Value& x : v.as_array()) {
        int64_t id = to_int(x, param);
        if (id < 0 || id >= vocab_size)
            bad(param, "token id " + std::to_string(id) + " is out of range [0, " + std::to_string(vocab_size) + ")");
        ids.push_back(static_cast<int32_t>(id));
    }
    return ids;
}

void parse_common(const Value& body, int64_t vocab_size, bool chat, GenerationSpec& g) {
    if (const Value* m = field(body, "model")) {
        if (!m->is_string()) bad("model", "expected a string");
        g.model = m->as_string();
    }
    std::optional<int64_t> max_tokens = get_int(body, "max_tokens");
    if (chat)
        if (auto mct = get_int(body, "max_completion_tokens")) max_tokens = mct;
    if (max_tokens && *max_tokens < 1) bad("max_tokens", "must be at least 1, got " + std::to_string(*max_tokens));
    g.max_tokens = max_tokens;

    SamplingParams& s = g.sampling;
    if (auto t = get_number(body, "temperature")) {
        if (*t < 0) bad("temperature", "must be >= 0, got " + json::format_number(*t));
        s.temperature = static_cast<float>(*t);
    }
    if (auto p = get_number(body, "top_p")) {
        if (!(*p > 0 && *p <= 1)) bad("top_p", "must be in (0, 1], got " + json::format_number(*p));
        s.top_p = static_cast<float>(*p);
    }
    if (auto k = get_int(body, "top_k")) {
        if (*k < -1) bad("top_k", "must be -1 (off), 0 (off) or positive, got " + std::to_string(*k));
        s.top_k = *k <= 0 ? 0 : static_cast<int32_t>(std::min<int64_t>(*k, INT32_MAX));
    }
    if (auto p = get_number(body, "min_p")) {
        if (!(*p >= 0 && *p <= 1)) bad("min_p", "must be in [0, 1], got " + json::format_number(*p));
        s.min_p = static_cast<float>(*p);
    }
    if (auto p = get_number(body, "typical_p")) {
        if (!(*p > 0 && *p <= 1)) bad("typical_p", "must be in (0, 1], got " + json::format_number(*p));
        s.typical_p = static_cast<float>(*p);
    }
    if (const Value* lb = field(body, "logit_bias")) {
        // OpenAI: {"token id as a string": bias in [-100, 100]}.
        if (!lb->is_object()) bad("logit_bias", "expected an object mapping token ids to numbers");
        for (const auto& [key, v] : lb->as_object()) {
            char* end = nullptr;
            const long long id = std::strtoll(key.c_str(), &end, 10);
            if (key.empty() || *end != '\0' || id < 0 || id >= vocab_size)
                bad("logit_bias", "key \"" + key + "\" is not a token id in [0, " + std::to_string(vocab_size) + ")");
            if (!v.is_number() || !(v.as_number() >= -100 && v.as_number() <= 100))
                bad("logit_bias", "bias for token " + key + " must be a number in [-100, 100]");
            s.logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(v.as_number()));
        }
    }
    if (auto p = get_number(body, "presence_penalty")) {
        if (!(*p >= -2 && *p <= 2)) bad("presence_penalty", "must be in [-2, 2]");
        s.presence_penalty = static_cast<float>(*p);
    }
    if (auto p = get_number(body, "frequency_penalty")) {
        if (!(*p >= -2 && *p <= 2)) bad("frequency_penalty", "must be in [-2, 2]");
        s.frequency_penalty = static_cast<float>(*p);
    }
    if (auto p = get_number(body, "repetition_penalty")) {
        if (!(*p > 0)) bad("repetition_penalty", "must be > 0");
        s.repetition_penalty = static_cast<float>(*p);
    }
    if (auto seed = get_int(body, "seed")) {
        s.seed = static_cast<uint64_t>(*seed);
        g.seed_given = true;
    }
    if (auto n = get_int(body, "n")) {
        if (*n < 1 || *n > 64) bad("n", "must be in [1, 64], got " + std::to_string(*n));
        g.n = static_cast<int32_t>(*n);
    }
    g.use_beam_search = get_bool(body, "use_beam_search").value_or(false);
    g.best_of = g.n;
    if (auto b = get_int(body, "best_of")) {
        if (!g.use_beam_search && *b != g.n) bad("best_of", "only best_of == n is supported without use_beam_search");
        if (*b < g.n || *b > 64) bad("best_of", "must be in [n, 64], got " + std::to_string(*b));
        g.best_of = static_cast<int32_t>(*b);
    }
    if (auto lp = get_number(body, "length_penalty")) g.length_penalty = *lp;
    if (const Value* es = field(body, "early_stopping")) {
        if (es->is_bool())
            g.early_stopping = es->as_bool() ? EarlyStopping::Always : EarlyStopping::Heuristic;
        else if (es->is_string() && es->as_string() == "never")
            g.early_stopping = EarlyStopping::Never;
        else
            bad("early_stopping", "expected true, false or \"never\"");
    }
    if (const Value* st = field(body, "stop")) {
        if (st->is_string()) {
            g.stop.push_back(st->as_string());
        } else if (st->is_array()) {
            for (const Value& x : st->as_array()) {
                if (!x.is_string()) bad("stop", "expected a string or an array of strings");
                g.stop.push_back(x.as_string());
            }
        } else {
            bad("stop", "expected a string or an array of strings");
        }
    }
    if (const Value* ids = field(body, "stop_token_ids")) g.stop_token_ids = token_ids(*ids, "stop_token_ids", vocab_size);
    g.ignore_eos = get_bool(body, "ignore_eos").value_or(false);
    if (auto m = get_int(body, "min_tokens")) {
        if (*m < 0) bad("min_tokens", "must be >= 0");
        g.min_tokens = *m;
    }
    g.stream = get_bool(body, "stream").value_or(false);
    if (const Value* so = field(body, "stream_options")) {
        if (!so->is_object()) bad("stream_options", "expected an object");
        if (!g.stream) bad("stream_options", "only allowed when stream is true");
        g.include_usage = get_bool(*so, "include_usage").value_or(false);
    }
    g.return_tokens_as_token_ids = get_bool(body, "return_tokens_as_token_ids").value_or(false);
    g.return_token_ids = get_bool(body, "return_token_ids").value_or(false);
    if (chat) {
        g.want_logprobs = get_bool(body, "logprobs").value_or(false);
        if (auto k = get_int(body, "top_logprobs")) {
            if (*k < 0 || *k > 20) bad("top_logprobs", "must be in [0, 20]");
            if (!g.want_logprobs) bad("top_logprobs", "requires logprobs: true");
            s.logprobs = static_cast<int32_t>(*k);
        }
    } else if (const Value* lp = field(body, "logprobs")) {
        if (lp->is_bool()) bad("logprobs", "expected an integer (the number of top alternatives)");
        int64_t k = to_int(*lp, "logprobs");
        if (k < 0 || k > 20) bad("logprobs", "must be in [0, 20], got " + std::to_string(k));
        g.want_logprobs = true;
        s.logprobs = static_cast<int32_t>(k);
    }
}

}  // namespace

json::Value parse_body(const std::string& body) {
    json::Value v;
    try {
        v = json::parse(body);
    } catch (const std::exception& e) {
        throw ApiError(400, std::string("invalid JSON body: ") + e.what());
    }
    if (!v.is_object()) throw ApiError(400, "the request body must be a JSON object");
    return v;
}

CompletionSpec parse_completion(const json::Value& body, int64_t vocab_size) {
    CompletionSpec c;
    parse_common(body, vocab_size, false, c);
    c.echo = get_bool(body, "echo").value_or(false);
    if (const Value* suffix = field(body, "suffix"))
        if (!suffix->is_string() || !suffix->as_string().empty()) bad("suffix", "is not supported");
    const Value* p = field(body, "prompt");
    if (!p) bad("prompt", "is required");
    // string | [string] | [id] | [[id]]: an array's first element decides which.
    auto text = [](const std::string& t) { return PromptSpec{true, t, {}}; };
    if (p->is_string()) {
        c.prompts.push_back(text(p->as_string()));
    } else if (p->is_array() && p->size() > 0) {
        const Value& first = (*p)[0];
        if (first.is_number()) {
            c.prompts.push_back(PromptSpec{false, {}, token_ids(*p, "prompt", vocab_size)});
        } else {
            for (const Value& x : p->as_array()) {
                if (first.is_string() && x.is_string()) c.prompts.push_back(text(x.as_string()));
                else if (first.is_array() && x.is_array()) c.prompts.push_back(PromptSpec{false, {}, token_ids(x, "prompt", vocab_size)});
                else bad("prompt", "expected a string, an array of strings, an array of token ids or an array of those");
            }
        }
    } else {
        bad("prompt", p->is_array() ? "must not be empty"
                                    : "expected a string, an array of strings, an array of token ids or an array of those");
    }
    for (const PromptSpec& ps : c.prompts)
        if (!ps.is_text && ps.ids.empty()) bad("prompt", "a token-id prompt must not be empty");
    return c;
}

ChatSpec parse_chat(const json::Value& body, int64_t vocab_size) {
    ChatSpec c;
    parse_common(body, vocab_size, true, c);
    const Value* msgs = field(body, "messages");
    if (!msgs || !msgs->is_array() || msgs->size() == 0) bad("messages", "must be a non-empty array");
    c.messages = Value::array();
    for (const Value& m : msgs->as_array()) {
        if (!m.is_object()) bad("messages", "every message must be an object");
        const Value* role = m.find("role");
        if (!role || !role->is_string()) bad("messages", "every message needs a string \"role\"");
        Value out = m;
        // Templates expect a string; OpenAI also allows [{"type":"text","text":...}] parts, which we join.
        if (const Value* content = m.find("content"); content && content->is_array()) {
            std::string joined;
            for (const Value& part : content->as_array()) {
                if (!part.is_object() || part.get_string("type", "") != "text" || !part.find("text") ||
                    !part.at("text").is_string())
                    bad("messages", "only text content parts are supported");
                joined += part.at("text").as_string();
            }
            out.set("content", joined);
        } else if (content && !content->is_string() && !content->is_null()) {
            bad("messages", "content must be a string, an array of text parts or null");
        }
        c.messages.push_back(std::move(out));
    }
    if (const Value* tools = field(body, "tools")) {
        if (!tools->is_array()) bad("tools", "expected an array");
        c.tools = *tools;
    }
    c.add_generation_prompt = get_bool(body, "add_generation_prompt").value_or(true);
    if (get_bool(body, "echo").value_or(false)) bad("echo", "is not supported for chat completions");
    return c;
}

TokenizeSpec parse_tokenize(const json::Value& body) {
    TokenizeSpec t;
    if (const Value* m = field(body, "messages")) {
        if (!m->is_array()) bad("messages", "expected an array");
        t.has_messages = true;
        t.messages = *m;
        t.add_special_tokens = get_bool(body, "add_special_tokens").value_or(false);
        t.add_generation_prompt = get_bool(body, "add_generation_prompt").value_or(true);
    } else {
        const Value* p = field(body, "prompt");
        if (!p || !p->is_string()) bad("prompt", "expected a string (or give messages)");
        t.prompt = p->as_string();
        t.add_special_tokens = get_bool(body, "add_special_tokens").value_or(true);
    }
    return t;
}

std::vector<int32_t> parse_detokenize(const json::Value& body, int64_t vocab_size) {
    const Value* t = field(body, "tokens");
    if (!t) bad("tokens", "is required");
    return token_ids(*t, "tokens", vocab_size);
}

bool bearer_matches(const std::string* authorization, const std::string& key) {
    static const std::string kPrefix = "Bearer ";
    std::string given;
    if (authorization && authorization->size() >= kPrefix.size() &&
        std::equal(kPrefix.begin(), kPrefix.end(), authorization->begin(),
                   [](char a, char b) { return std::tolower(a) == std::tolower(b); }))
        given = authorization->substr(kPrefix.size());
    // Time depends only on the lengths, never on where the first mismatch is.
    volatile unsigned char diff = given.size() == key.size() ? 0 : 1;
    const size_t n = std::max(given.size(), key.size());
    for (size_t i = 0; i < n; ++i) {
        unsigned char a = i < given.size() ? static_cast<unsigned char>(given[i]) : 0;
        unsigned char b = i < key.size() ? static_cast<unsigned char>(key[i]) : 0;
        diff = diff | (a ^ b);
    }
    return diff == 0 && !key.empty();
}

}  // namespace moeinfer::server
