// Pre-tokenizers of tokenizer.json ("pre_tokenizer"): Split (regex or string, all delimiter behaviors), ByteLevel,
// Metaspace, Digits, Whitespace(Split) and Sequence. They cut normalized text into the pieces BPE sees.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "tokenizer/regex.h"

namespace moeinfer {

// GPT-2's split pattern (ByteLevel with use_regex) and the patterns GGUF `tokenizer.ggml.pre` names map to.
extern const char* const kGpt2Pattern;
extern const char* const kLlama3Pattern;
extern const char* const kQwen2Pattern;
extern const char* const kO200kPattern;
extern const char* const kDeepseekV3Patterns[3];  // applied in sequence, each Isolated

// The split pre-tokenizer that GGUF `tokenizer.ggml.pre` names; throws for names it does not know.
// The reverse, gguf_pre_name, gives "" for a pre-tokenizer that matches no known name.
class PreTokenizer;
PreTokenizer pre_tokenizer_for_gguf(const std::string& pre);
std::string gguf_pre_name(const PreTokenizer& p);

class PreTokenizer {
public:
    enum class Behavior { Isolated, Removed, MergedWithPrevious, MergedWithNext, Contiguous };
    struct Step {
        enum class Kind { Split, ByteLevel, Metaspace } kind;
        Step(Kind k) : kind(k) {}  // NOLINT: implicit, like the other step types
        std::shared_ptr<Regex> regex;  // Split by regex (or ByteLevel's GPT-2 regex)
        std::string literal;           // Split by string
        Behavior behavior = Behavior::Isolated;
        bool invert = false;
        bool add_prefix_space = false;  // ByteLevel
        std::string replacement;        // Metaspace
        enum class Prepend { Always, First, Never } prepend = Prepend::Always;
        bool split = true;  // Metaspace
    };

    static PreTokenizer from_json(const json::Value& v);  // null gives "no pre-tokenization"
    void add_split_regex(const std::string& pattern, Behavior b = Behavior::Isolated);
    // Appends the pieces of `text` to `out`. `first` tells whether the text starts the input (Metaspace "first").
    void split(std::string_view text, bool first, std::vector<std::string>& out) const;
    bool empty() const { return steps_.empty(); }
    // Regex sources of the Split/ByteLevel steps, in order (to name the pre-tokenizer in GGUF).
    std::vector<std::string> split_patterns() const;

private:
    static void parse_into(const json::Value& v, PreTokenizer& out);
    void apply(const Step& st, bool first, std::vector<std::string>& pieces) const;
    std::vector<Step> steps_;
};

}  // namespace moeinfer
