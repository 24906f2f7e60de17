// Chat prompt rendering: a Jinja-subset interpreter for the `chat_template` of tokenizer_config.json / GGUF
// `tokenizer.chat_template`, with the conventions of HF transformers' apply_chat_template.
#pragma once
#include <string>

#include "core/json.h"

namespace moeinfer {

// What a model directory says about its chat prompt.
struct ChatTemplateSource {
    std::string template_text;  // empty when the model has none
    std::string bos_token, eos_token;
};

// A documented fallback for models without a template (ChatML, as Qwen and many fine-tunes use); callers opt in.
extern const char* const kChatMlTemplate;

// Reads chat_template and bos/eos strings from a parsed tokenizer_config.json (template lists pick "default").
ChatTemplateSource chat_template_from_config(const json::Value& config);
// `path`: a tokenizer_config.json or a model directory; a sibling chat_template.jinja overrides the config's.
ChatTemplateSource chat_template_from_path(const std::string& path);

// Renders `template_text` with `messages` (JSON array of {role, content, tool_calls?, ...}), `tools` (array or
// null), add_generation_prompt, bos_token and eos_token, like transformers' apply_chat_template. Throws
// std::runtime_error naming the template line for syntax errors, raise_exception() and evaluation errors.
// `extra` (a JSON object or null) adds template variables, like apply_chat_template's keyword arguments
// (e.g. {"enable_thinking": false} for Qwen3).
std::string render_chat(const std::string& template_text, const json::Value& messages, const json::Value& tools,
                        bool add_generation_prompt, const std::string& bos_token, const std::string& eos_token,
                        const json::Value& extra = json::Value());

// Renders any template with `variables` (a JSON object) and the same helper functions; for tests and tools.
std::string render_template(const std::string& template_text, const json::Value& variables);

}  // namespace moeinfer
