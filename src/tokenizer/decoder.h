// Decoders of tokenizer.json ("decoder"): ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace and Sequence,
// turning token strings back into text.
#pragma once
#include <string>
#include <vector>

#include "core/json.h"

namespace moeinfer {

class Decoder {
public:
    enum class Kind { ByteLevel, Replace, ByteFallback, Fuse, Strip, Metaspace };
    struct Step {
        Kind kind;
        Step(Kind k) : kind(k) {}  // NOLINT: implicit, so add({Kind::Fuse}) reads well
        std::string pattern, content;  // Replace: pattern -> content; Strip: content char; Metaspace: replacement
        int start = 0, stop = 0;       // Strip
        bool prepend = true;           // Metaspace: the first token's leading replacement came from prepending
    };
    static Decoder from_json(const json::Value& v);  // null: tokens are joined with spaces (HF's default)
    void add(Step s) { steps_.push_back(std::move(s)); }
    std::string decode(std::vector<std::string> tokens) const;

private:
    static void parse_into(const json::Value& v, Decoder& out);
    std::vector<Step> steps_;
    bool is_null_ = false;
};

}  // namespace moeinfer
