// Chat templates of Qwen3, Llama-3, DeepSeek-V3, Gemma-3 (and a Llama-3.1-style tool template) rendered by
// render_chat must be byte-identical to transformers' apply_chat_template; template errors name the line.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/json.h"
#include "tokenizer/chat_template.h"
#include "tokenizer_test_util.h"

namespace moeinfer {
namespace {

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    std::stringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

TEST(ChatTemplate, MatchesTransformers) {
    json::Value goldens = json::parse_file(test::tokenizer_data("chat_goldens.json"));
    json::Value convs = json::parse_file(test::tokenizer_data("conversations.json"));
    int rendered = 0, errors = 0, total = 0, families = 0;
    for (const auto& [family, g] : goldens.at("templates").as_object()) {
        std::string tmpl;
        if (!g.at("template_file").is_null()) {
            tmpl = read_file(test::tokenizer_data(g.at("template_file").as_string()));
        } else {
            std::string tok = g.at("tokenizer").as_string();
            if (!test::have_tokenizer(tok)) continue;
            tmpl = chat_template_from_path(test::tokenizer_path(tok)).template_text;
        }
        ++families;
        std::string bos = g.at("bos_token").is_null() ? "" : g.at("bos_token").as_string();
        std::string eos = g.at("eos_token").is_null() ? "" : g.at("eos_token").as_string();
        for (const auto& c : g.at("cases").as_array()) {
            ++total;
            const json::Value* conv = nullptr;
            for (const auto& x : convs.at("conversations").as_array())
                if (x.at("name").as_string() == c.at("conversation").as_string()) conv = &x;
            ASSERT_NE(conv, nullptr);
            json::Value tools = conv->contains("tools") ? conv->at("tools") : json::Value();
            bool agp = c.at("add_generation_prompt").as_bool();
            std::string where = family + "/" + c.at("conversation").as_string() + (agp ? " +gen" : "");
            if (c.contains("rendered")) {
                std::string got;
                EXPECT_NO_THROW(got = render_chat(tmpl, conv->at("messages"), tools, agp, bos, eos)) << where;
                EXPECT_EQ(got, c.at("rendered").as_string()) << where;
                rendered += got == c.at("rendered").as_string();
            } else {
                EXPECT_THROW(render_chat(tmpl, conv->at("messages"), tools, agp, bos, eos), std::runtime_error)
                    << where << " should fail like transformers: " << c.at("error").as_string();
                ++errors;
            }
        }
    }
    if (families == 0) GTEST_SKIP() << "no tokenizer files; run scripts/fetch_tokenizers.sh";
    std::printf("[chat templates] %d families, %d/%d rendered byte-identical, %d expected errors raised\n", families,
                rendered, total - errors, errors);
}

std::string render(const std::string& t, const char* messages_json = "[]") {
    return render_chat(t, json::parse(messages_json), json::Value(), false, "<s>", "</s>");
}

TEST(ChatTemplate, ErrorsNameTheLine) {
    try {
        render("line one\n{% if %}\n");
        FAIL() << "no error";
    } catch (const std::runtime_error& e) {
        EXPECT_NE(std::string(e.what()).find("line 2"), std::string::npos) << e.what();
    }
    try {
        render("a\nb\n{{ raise_exception('bad roles') }}");
        FAIL() << "no error";
    } catch (const std::runtime_error& e) {
        std::string m = e.what();
        EXPECT_NE(m.find("line 3"), std::string::npos) << m;
        EXPECT_NE(m.find("bad roles"), std::string::npos) << m;
    }
    EXPECT_THROW(render("{% for x in y %}"), std::runtime_error);
    EXPECT_THROW(render("{{ 'a' + 1 }}"), std::runtime_error);
    EXPECT_THROW(render("{{ x | nosuchfilter }}"), std::runtime_error);
    EXPECT_THROW(render(""), std::runtime_error);
}

TEST(ChatTemplate, ChatMlFallback) {
    EXPECT_EQ(render_chat(kChatMlTemplate, json::parse(R"([{"role":"user","content":"hi"}])"), json::Value(), true, "", ""),
              "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n");
}

TEST(ChatTemplate, Semantics) {
    EXPECT_EQ(render("{{ [1, 2, 3][::-1] }}|{{ 'abc'[1:] }}|{{ 7 // 2 }}|{{ -7 % 3 }}|{{ 1 / 2 }}"), "[3, 2, 1]|bc|3|2|0.5");
    EXPECT_EQ(render("{{ {'a': 1, 'b': [true, none, 'x']} | tojson }}"), "{\"a\": 1, \"b\": [true, null, \"x\"]}");
    EXPECT_EQ(render("{{ {'a': {'b': 1}} | tojson(indent=2) }}"), "{\n  \"a\": {\n    \"b\": 1\n  }\n}");
    EXPECT_EQ(render("{% set ns = namespace(n=0) %}{% for i in range(5) %}{% if i is odd %}{% set ns.n = ns.n + i %}"
                     "{% endif %}{% endfor %}{{ ns.n }}"),
              "4");
    EXPECT_EQ(render("{% for m in messages if m.role != 'system' %}{{ loop.index }}{{ m.role }}{% if not loop.last %},{% endif %}"
                     "{% endfor %}",
                     R"([{"role":"system"},{"role":"user"},{"role":"assistant"}])"),
              "1user,2assistant");
    EXPECT_EQ(render("  {%- if true %}\n  x\n  {% endif %}\n{# c #}\ny"), "  x\ny");
    EXPECT_EQ(render("{{ '  a b  '.strip() }}|{{ 'a,b'.split(',') }}|{{ 'Hi' ~ 1 }}|{{ none }}|{{ x is defined }}"),
              "a b|['a', 'b']|Hi1|None|False");
    EXPECT_EQ(render("{% macro f(a, b='!') %}{{ a }}{{ b }}{% endmacro %}{{ f('x') }}{{ f('y', b='?') }}"), "x!y?");
    EXPECT_EQ(render("{{ ['a','b'] | map('upper') | join('-') }}|{{ [{'n':1},{'n':2}] | selectattr('n', 'equalto', 2) | list | length }}"),
              "A-B|1");
}

}  // namespace
}  // namespace moeinfer

namespace moeinfer {
namespace {

// Small templates covering Jinja semantics one construct at a time, against jinja2 configured as transformers
// configures it (tools/tokenizer_goldens.py --jinja).
TEST(ChatTemplate, JinjaConformance) {
    json::Value cases = json::parse_file(test::tokenizer_data("jinja_cases.json"));
    json::Value goldens = json::parse_file(test::tokenizer_data("jinja_goldens.json"));
    const auto& results = goldens.at("results").as_array();
    ASSERT_EQ(cases.at("cases").size(), results.size());
    int ok = 0, n = 0;
    for (size_t i = 0; i < results.size(); ++i) {
        const auto& c = cases.at("cases")[i];
        const auto& r = results[i];
        const std::string& tmpl = c.at("template").as_string();
        const json::Value& ctx = c.at("context");
        ++n;
        if (r.contains("rendered")) {
            std::string got;
            try {
                got = render_template(tmpl, ctx);
            } catch (const std::exception& e) {
                ADD_FAILURE() << c.at("name").as_string() << ": " << e.what();
                continue;
            }
            EXPECT_EQ(got, r.at("rendered").as_string()) << c.at("name").as_string();
            ok += got == r.at("rendered").as_string();
        } else {
            EXPECT_THROW(render_template(tmpl, ctx), std::runtime_error)
                << c.at("name").as_string() << " should fail: " << r.at("error").as_string();
            ++ok;
        }
    }
    std::printf("[jinja conformance] %d/%d cases as jinja2\n", ok, n);
}

}  // namespace
}  // namespace moeinfer
