// Text-side helpers shared by CLI commands: loading a model's tokenizer, reading --messages files, rendering
// the chat template, and turning a raw prompt into ids the way HF/vLLM do.
#pragma once
#include <memory>
#include <string>
#include <vector>

#include "core/json.h"
#include "tokenizer/tokenizer.h"

namespace moeinfer::cli {

// The tokenizer of a model path (directory, GGUF or tokenizer.json); the error says text needs one.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_path);

struct ChatInput {
    json::Value messages;  // array of {role, content, ...}
    json::Value tools;     // array or null
};
// FILE.json is a JSON array of messages or an object {"messages": [...], "tools": [...]} ("-" reads stdin).
ChatInput read_chat_input(const std::string& path);
// Renders with the tokenizer's chat template; fails clearly when the model has none.
std::string render_prompt(const Tokenizer& tok, const ChatInput& in, bool add_generation_prompt);
// Raw text → ids: no post-processor, BOS prepended when the model's config asks for it (add_bos_token).
std::vector<int32_t> encode_prompt(const Tokenizer& tok, const std::string& text);
// Whole file or stdin ("-") as a string.
std::string read_text(const std::string& path);

}  // namespace moeinfer::cli
