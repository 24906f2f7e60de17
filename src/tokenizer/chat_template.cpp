// render_chat: the globals transformers' apply_chat_template gives a template (messages, tools, documents,
// add_generation_prompt, special tokens, raise_exception, strftime_now, namespace, range, dict).
#include "tokenizer/chat_template.h"

#include <ctime>
#include <stdexcept>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_interp.h"

namespace moeinfer {

const char* const kChatMlTemplate =
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

using jinja::Args;
using jinja::Value;

// The helper functions every template sees.
static void add_functions(jinja::Object& g) {
    g.emplace_back("raise_exception", Value::function([](Args& a) -> Value {
        throw std::runtime_error("raise_exception: " + a.get(0, "message").str());
    }));
    g.emplace_back("strftime_now", Value::function([](Args& a) {
        std::time_t now = std::time(nullptr);
        std::tm tm{};
        localtime_r(&now, &tm);
        char buf[256];
        size_t n = std::strftime(buf, sizeof buf, a.get(0, "format").str().c_str(), &tm);
        return Value::string(std::string(buf, n));
    }));
    g.emplace_back("namespace", Value::function([](Args& a) {
        Value ns = Value::object();
        ns.is_namespace = true;
        for (const auto& p : a.pos)
            if (p.is_object())
                for (const auto& [k, v] : *p.obj) ns.set(k, v);
        for (const auto& [k, v] : a.kw) ns.set(k, v);
        return ns;
    }));
    g.emplace_back("dict", Value::function([](Args& a) {
        Value d = Value::object();
        for (const auto& [k, v] : a.kw) d.set(k, v);
        return d;
    }));
    g.emplace_back("range", Value::function([](Args& a) {
        int64_t start = 0, stop, step = 1;
        if (a.pos.size() == 1) stop = a.pos[0].i;
        else if (a.pos.size() >= 2) start = a.pos[0].i, stop = a.pos[1].i, step = a.pos.size() > 2 ? a.pos[2].i : 1;
        else throw std::runtime_error("range expected at least 1 argument");
        if (step == 0) throw std::runtime_error("range() arg 3 must not be zero");
        jinja::Array r;
        for (int64_t i = start; step > 0 ? i < stop : i > stop; i += step) r.push_back(Value::integer(i));
        return Value::array(std::move(r));
    }));
}

static void set_var(jinja::Object& g, const std::string& k, Value v) {
    for (auto& [name, x] : g)
        if (name == k) {
            x = std::move(v);
            return;
        }
    g.emplace_back(k, std::move(v));
}

static std::string render(const std::string& template_text, jinja::Object globals) {
    jinja::Body body = jinja::parse_template(template_text);
    jinja::Interpreter interp;
    return interp.render(body, globals);
}

std::string render_chat(const std::string& template_text, const json::Value& messages, const json::Value& tools,
                        bool add_generation_prompt, const std::string& bos_token, const std::string& eos_token,
                        const json::Value& extra) {
    if (template_text.empty())
        throw std::runtime_error("chat template: the model has no chat_template (tokenizer_config.json or GGUF)");
    if (!messages.is_array()) throw std::runtime_error("chat template: messages must be a JSON array");
    jinja::Object g;
    g.emplace_back("messages", Value::from_json(messages));
    g.emplace_back("tools", tools.is_null() ? Value::none() : Value::from_json(tools));
    g.emplace_back("documents", Value::none());
    g.emplace_back("add_generation_prompt", Value::boolean(add_generation_prompt));
    g.emplace_back("bos_token", Value::string(bos_token));
    g.emplace_back("eos_token", Value::string(eos_token));
    add_functions(g);
    if (extra.is_object())
        for (const auto& [k, v] : extra.as_object()) set_var(g, k, Value::from_json(v));
    return render(template_text, std::move(g));
}

std::string render_template(const std::string& template_text, const json::Value& variables) {
    jinja::Object g;
    add_functions(g);
    if (variables.is_object())
        for (const auto& [k, v] : variables.as_object()) set_var(g, k, Value::from_json(v));
    return render(template_text, std::move(g));
}

}  // namespace moeinfer
