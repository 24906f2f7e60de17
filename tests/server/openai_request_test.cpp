// OpenAI request validation: every accepted prompt shape, defaults, and a 400 naming the parameter for each
// invalid value; bearer-token comparison.
#include <gtest/gtest.h>

#include "server/openai_request.h"

namespace moeinfer::server {
namespace {

constexpr int64_t kVocab = 100;

CompletionSpec completion(const std::string& body) { return parse_completion(parse_body(body), kVocab); }

// The ApiError a body produces (status 0 when it is accepted).
ApiError completion_error(const std::string& body) {
    try {
        completion(body);
    } catch (const ApiError& e) {
        return e;
    }
    return ApiError(0, "accepted");
}

TEST(OpenAiRequest, PromptShapes) {
    auto c = completion(R"({"prompt": "hi"})");
    ASSERT_EQ(c.prompts.size(), 1u);
    EXPECT_TRUE(c.prompts[0].is_text);
    c = completion(R"({"prompt": ["a", "b"]})");
    ASSERT_EQ(c.prompts.size(), 2u);
    EXPECT_EQ(c.prompts[1].text, "b");
    c = completion(R"({"prompt": [1, 2, 3]})");
    ASSERT_EQ(c.prompts.size(), 1u);
    EXPECT_EQ(c.prompts[0].ids, (std::vector<int32_t>{1, 2, 3}));
    c = completion(R"({"prompt": [[1], [2, 3]]})");
    ASSERT_EQ(c.prompts.size(), 2u);
    EXPECT_EQ(c.prompts[1].ids, (std::vector<int32_t>{2, 3}));
}

TEST(OpenAiRequest, Defaults) {
    auto c = completion(R"({"prompt": [1], "model": "m"})");
    EXPECT_EQ(c.model, "m");
    EXPECT_FALSE(c.max_tokens.has_value());
    EXPECT_EQ(c.n, 1);
    EXPECT_FALSE(c.stream);
    EXPECT_FALSE(c.want_logprobs);
    EXPECT_FLOAT_EQ(c.sampling.temperature, 1.0f);
    EXPECT_FALSE(c.seed_given);
}

TEST(OpenAiRequest, AllFieldsParsed) {
    auto c = completion(R"({"prompt": [1], "max_tokens": 7, "temperature": 0, "top_p": 0.5, "top_k": -1, "min_p": 0.1,
        "n": 3, "stop": ["a", "bc"], "seed": 42, "logprobs": 2, "echo": true, "presence_penalty": 0.5,
        "frequency_penalty": -0.5, "repetition_penalty": 1.2, "stream": true, "stream_options": {"include_usage": true},
        "return_tokens_as_token_ids": true, "ignore_eos": true, "min_tokens": 2, "stop_token_ids": [5, 6],
        "top_logprobs": null, "user": "ignored", "typical_p": 0.9, "logit_bias": {"5": -100, "7": 2.5}})");
    EXPECT_FLOAT_EQ(c.sampling.typical_p, 0.9f);
    EXPECT_EQ(c.sampling.logit_bias, (std::vector<std::pair<int32_t, float>>{{5, -100.f}, {7, 2.5f}}));
    EXPECT_EQ(*c.max_tokens, 7);
    EXPECT_EQ(c.sampling.temperature, 0.0f);
    EXPECT_FLOAT_EQ(c.sampling.top_p, 0.5f);
    EXPECT_EQ(c.sampling.top_k, 0);
    EXPECT_EQ(c.n, 3);
    EXPECT_EQ(c.stop, (std::vector<std::string>{"a", "bc"}));
    EXPECT_TRUE(c.seed_given);
    EXPECT_EQ(c.sampling.seed, 42u);
    EXPECT_TRUE(c.want_logprobs);
    EXPECT_EQ(c.sampling.logprobs, 2);
    EXPECT_TRUE(c.echo && c.stream && c.include_usage && c.return_tokens_as_token_ids && c.ignore_eos);
    EXPECT_FLOAT_EQ(c.sampling.repetition_penalty, 1.2f);
    EXPECT_EQ(c.min_tokens, 2);
    EXPECT_EQ(c.stop_token_ids, (std::vector<int32_t>{5, 6}));
    EXPECT_EQ(completion(R"({"prompt": [1], "stop": "x"})").stop, std::vector<std::string>{"x"});
}

TEST(OpenAiRequest, BeamSearchParams) {
    auto c = completion(R"({"prompt": [1], "n": 2, "best_of": 4, "use_beam_search": true, "length_penalty": 0.5,
        "early_stopping": "never"})");
    EXPECT_TRUE(c.use_beam_search);
    EXPECT_EQ(c.best_of, 4);
    EXPECT_EQ(c.n, 2);
    EXPECT_DOUBLE_EQ(c.length_penalty, 0.5);
    EXPECT_EQ(c.early_stopping, EarlyStopping::Never);
    EXPECT_EQ(completion(R"({"prompt": [1], "n": 3, "use_beam_search": true})").best_of, 3);
    EXPECT_EQ(completion(R"({"prompt": [1], "early_stopping": true})").early_stopping, EarlyStopping::Always);
    EXPECT_FALSE(completion(R"({"prompt": [1]})").use_beam_search);
}

TEST(OpenAiRequest, InvalidValuesName400AndParam) {
    const std::pair<const char*, const char*> cases[] = {
        {R"({"prompt": [1], "max_tokens": 0})", "max_tokens"},
        {R"({"prompt": [1], "max_tokens": -3})", "max_tokens"},
        {R"({"prompt": [1], "max_tokens": 1.5})", "max_tokens"},
        {R"({"prompt": [1], "max_tokens": "8"})", "max_tokens"},
        {R"({"prompt": [1], "temperature": -0.1})", "temperature"},
        {R"({"prompt": [1], "temperature": "hot"})", "temperature"},
        {R"({"prompt": [1], "top_p": 0})", "top_p"},
        {R"({"prompt": [1], "top_p": 1.01})", "top_p"},
        {R"({"prompt": [1], "top_k": -2})", "top_k"},
        {R"({"prompt": [1], "min_p": 2})", "min_p"},
        {R"({"prompt": [1], "typical_p": 0})", "typical_p"},
        {R"({"prompt": [1], "best_of": 2})", "best_of"},
        {R"({"prompt": [1], "n": 3, "best_of": 2, "use_beam_search": true})", "best_of"},
        {R"({"prompt": [1], "best_of": 65, "use_beam_search": true})", "best_of"},
        {R"({"prompt": [1], "use_beam_search": 1})", "use_beam_search"},
        {R"({"prompt": [1], "early_stopping": "sometimes"})", "early_stopping"},
        {R"({"prompt": [1], "logit_bias": [1]})", "logit_bias"},
        {R"({"prompt": [1], "logit_bias": {"x": 1}})", "logit_bias"},
        {R"({"prompt": [1], "logit_bias": {"100": 1}})", "logit_bias"},
        {R"({"prompt": [1], "logit_bias": {"5": 101}})", "logit_bias"},
        {R"({"prompt": [1], "n": 0})", "n"},
        {R"({"prompt": [1], "n": true})", "n"},
        {R"({"prompt": [1], "stop": 3})", "stop"},
        {R"({"prompt": [1], "stop": ["a", 1]})", "stop"},
        {R"({"prompt": [1], "logprobs": 21})", "logprobs"},
        {R"({"prompt": [1], "logprobs": true})", "logprobs"},
        {R"({"prompt": [1], "stream": "yes"})", "stream"},
        {R"({"prompt": [1], "stream_options": {"include_usage": true}})", "stream_options"},
        {R"({"prompt": [1], "presence_penalty": 3})", "presence_penalty"},
        {R"({"prompt": [1], "repetition_penalty": 0})", "repetition_penalty"},
        {R"({"prompt": [1], "stop_token_ids": [100]})", "stop_token_ids"},
        {R"({"prompt": [1], "model": 5})", "model"},
        {R"({"prompt": [100]})", "prompt"},
        {R"({"prompt": [-1]})", "prompt"},
        {R"({"prompt": [[1], "a"]})", "prompt"},
        {R"({"prompt": []})", "prompt"},
        {R"({"prompt": [[]]})", "prompt"},
        {R"({"prompt": 5})", "prompt"},
        {R"({"max_tokens": 5})", "prompt"},
    };
    for (const auto& [body, param] : cases) {
        ApiError e = completion_error(body);
        EXPECT_EQ(e.status, 400) << body;
        EXPECT_EQ(e.param, param) << body << " -> " << e.what();
    }
}

TEST(OpenAiRequest, MalformedJson) {
    for (const char* body : {"", "{", R"({"prompt": [1,)", "[1]", "null", "{\"prompt\": \"a\"} x"}) {
        EXPECT_EQ(completion_error(body).status, 400) << body;
    }
}

TEST(OpenAiRequest, Chat) {
    auto c = parse_chat(parse_body(R"({"messages": [{"role": "user", "content": [{"type": "text", "text": "a"},
        {"type": "text", "text": "b"}]}], "logprobs": true, "top_logprobs": 3, "max_completion_tokens": 9})"),
                        kVocab);
    EXPECT_EQ(c.messages[0].at("content").as_string(), "ab");
    EXPECT_TRUE(c.want_logprobs);
    EXPECT_EQ(c.sampling.logprobs, 3);
    EXPECT_EQ(*c.max_tokens, 9);
    for (const char* body : {R"({"messages": []})", R"({"messages": [{"content": "x"}]})", R"({"messages": "hi"})",
                             R"({"messages": [{"role": "user", "content": "x"}], "top_logprobs": 2})",
                             R"({"messages": [{"role": "user", "content": 5}]})"}) {
        EXPECT_THROW(parse_chat(parse_body(body), kVocab), ApiError) << body;
    }
}

TEST(OpenAiRequest, TokenizeAndDetokenize) {
    auto t = parse_tokenize(parse_body(R"({"prompt": "hi", "add_special_tokens": false})"));
    EXPECT_EQ(t.prompt, "hi");
    EXPECT_FALSE(t.add_special_tokens);
    EXPECT_TRUE(parse_tokenize(parse_body(R"({"messages": []})")).has_messages);
    EXPECT_THROW(parse_tokenize(parse_body("{}")), ApiError);
    EXPECT_EQ(parse_detokenize(parse_body(R"({"tokens": [1, 2]})"), kVocab), (std::vector<int32_t>{1, 2}));
    EXPECT_THROW(parse_detokenize(parse_body(R"({"tokens": [1000]})"), kVocab), ApiError);
}

TEST(OpenAiRequest, BearerToken) {
    const std::string ok = "Bearer sk-123", wrong = "Bearer sk-124", shorter = "Bearer sk-12", basic = "Basic sk-123";
    const std::string lower = "bearer sk-123";
    EXPECT_TRUE(bearer_matches(&ok, "sk-123"));
    EXPECT_TRUE(bearer_matches(&lower, "sk-123"));
    EXPECT_FALSE(bearer_matches(&wrong, "sk-123"));
    EXPECT_FALSE(bearer_matches(&shorter, "sk-123"));
    EXPECT_FALSE(bearer_matches(&basic, "sk-123"));
    EXPECT_FALSE(bearer_matches(nullptr, "sk-123"));
}

}  // namespace
}  // namespace moeinfer::server
