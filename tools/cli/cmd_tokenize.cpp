// `moeinfer tokenize`, `detokenize` and `chat-template`: the tokenizer and chat template on their own.
#include <cstdio>
#include <stdexcept>

#include "args.h"
#include "commands.h"
#include "text_io.h"

namespace moeinfer::cli {

int cmd_tokenize(int argc, char** argv) {
    Args args(argc, argv, {"model"}, {"special"});
    if (args.positional().size() != 1) throw std::invalid_argument("give the text (or - for stdin) as one argument");
    auto tok = load_tokenizer(args.require("model"));
    const std::string& arg = args.positional()[0];
    const std::string text = arg == "-" ? read_text("-") : arg;
    json::Value out = json::Value::array();
    for (int32_t id : tok->encode(text, args.has("special"))) out.push_back(int64_t(id));
    std::printf("%s\n", out.dump().c_str());
    return 0;
}

int cmd_detokenize(int argc, char** argv) {
    Args args(argc, argv, {"model"}, {"skip-special"});
    if (args.positional().size() != 1) throw std::invalid_argument("give the ids as one argument, e.g. 1,2,3");
    auto tok = load_tokenizer(args.require("model"));
    const std::vector<int32_t> ids = parse_id_list(args.positional()[0], "ids");
    std::fputs(tok->decode(ids, args.has("skip-special")).c_str(), stdout);
    std::fputs("\n", stdout);
    return 0;
}

int cmd_chat_template(int argc, char** argv) {
    Args args(argc, argv, {"model", "messages"}, {"add-generation-prompt"});
    auto tok = load_tokenizer(args.require("model"));
    const ChatInput in = read_chat_input(args.require("messages"));
    std::fputs(render_prompt(*tok, in, args.has("add-generation-prompt")).c_str(), stdout);
    return 0;
}

}  // namespace moeinfer::cli
