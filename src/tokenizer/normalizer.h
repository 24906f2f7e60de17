// Text normalizers of tokenizer.json ("normalizer"): NFC, Replace, Prepend, Strip, Lowercase and Sequence.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/json.h"
#include "tokenizer/regex.h"

namespace moeinfer {

class Normalizer {
public:
    // A null value gives the identity; unsupported types throw naming the type.
    static Normalizer from_json(const json::Value& v);
    std::string normalize(std::string_view text) const;
    bool empty() const { return steps_.empty(); }
    bool has_prepend() const {
        for (const auto& s : steps_)
            if (s.kind == Kind::Prepend) return true;
        return false;
    }

    enum class Kind { Nfc, Replace, Prepend, Strip, Lowercase };
    struct Step {
        Kind kind;
        Step(Kind k) : kind(k) {}  // NOLINT: implicit, so add({Kind::Nfc}) reads well
        std::string pattern, content;  // Replace: literal pattern (or regex source) -> content; Prepend: content
        std::shared_ptr<Regex> regex;  // Replace with a Regex pattern
        bool left = false, right = false;  // Strip
    };
    void add(Step s) { steps_.push_back(std::move(s)); }

private:
    static void parse_into(const json::Value& v, Normalizer& out);
    std::vector<Step> steps_;
};

// Replaces every occurrence of `from` in `s` by `to` (no-op for an empty `from`).
std::string replace_all(std::string_view s, std::string_view from, std::string_view to);

}  // namespace moeinfer
