// Text-side CLI helpers (see text_io.h).
#include "text_io.h"

#include <fstream>
#include <iostream>
#include <sstream>
#include <stdexcept>

#include "tokenizer/chat_template.h"

namespace moeinfer::cli {

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& model_path) {
    try {
        return Tokenizer::from_file(model_path);
    } catch (const std::exception& e) {
        throw std::runtime_error(std::string("text input/output needs the model's tokenizer: ") + e.what());
    }
}

std::string read_text(const std::string& path) {
    std::stringstream ss;
    if (path == "-") {
        ss << std::cin.rdbuf();
        return ss.str();
    }
    std::ifstream f(path, std::ios::binary);
    if (!f) throw std::runtime_error("cannot open '" + path + "'");
    ss << f.rdbuf();
    return ss.str();
}

ChatInput read_chat_input(const std::string& path) {
    json::Value doc;
    try {
        doc = json::parse(read_text(path));
    } catch (const json::JsonError& e) {
        throw std::runtime_error("messages file '" + path + "': " + e.what());
    }
    ChatInput in;
    if (doc.is_array()) {
        in.messages = doc;
    } else if (doc.is_object() && doc.find("messages")) {
        in.messages = doc.at("messages");
        if (const json::Value* t = doc.find("tools")) in.tools = *t;
    } else {
        throw std::runtime_error("messages file '" + path + "': expected an array of messages or {\"messages\": [...]}");
    }
    if (!in.messages.is_array()) throw std::runtime_error("messages file '" + path + "': \"messages\" must be an array");
    for (const auto& m : in.messages.as_array())
        if (!m.is_object() || !m.find("role"))
            throw std::runtime_error("messages file '" + path + "': every message needs a \"role\"");
    return in;
}

std::string render_prompt(const Tokenizer& tok, const ChatInput& in, bool add_generation_prompt) {
    const ChatTemplateSource& src = tok.chat_template();
    if (src.template_text.empty())
        throw std::runtime_error("the model has no chat template (tokenizer_config.json chat_template)");
    return render_chat(src.template_text, in.messages, in.tools, add_generation_prompt, src.bos_token, src.eos_token);
}

std::vector<int32_t> encode_prompt(const Tokenizer& tok, const std::string& text) {
    std::vector<int32_t> ids = tok.encode(text, false);
    if (tok.add_bos_token() && tok.bos_id() && (ids.empty() || ids.front() != *tok.bos_id()))
        ids.insert(ids.begin(), *tok.bos_id());
    return ids;
}

}  // namespace moeinfer::cli
