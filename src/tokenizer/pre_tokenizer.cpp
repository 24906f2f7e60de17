// Pre-tokenizer steps. Each step maps every current piece to sub-pieces; empty pieces are dropped, as HF does.
#include "tokenizer/pre_tokenizer.h"

#include <algorithm>
#include <stdexcept>

#include "tokenizer/normalizer.h"

namespace moeinfer {

const char* const kGpt2Pattern = R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)";
const char* const kLlama3Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kQwen2Pattern =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
const char* const kO200kPattern =
    R"([^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]*[\p{Ll}\p{Lm}\p{Lo}\p{M}]+(?i:'s|'t|'re|'ve|'m|'ll|'d)?|[^\r\n\p{L}\p{N}]?[\p{Lu}\p{Lt}\p{Lm}\p{Lo}\p{M}]+[\p{Ll}\p{Lm}\p{Lo}\p{M}]*(?i:'s|'t|'re|'ve|'m|'ll|'d)?|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n/]*|\s*[\r\n]+|\s+(?!\S)|\s+)";

const char* const kDeepseekV3Patterns[3] = {
    R"(\p{N}{1,3})",
    "[\u4e00-\u9fa5\u3040-\u309f\u30a0-\u30ff]+",
    // DeepSeek's file writes CR and LF as raw characters inside this pattern; keep them so names compare.
    R"([!"#$%&'()*+,\-./:;<=>?@\[\\\]^_`{|}~][A-Za-z]+|[^)" "\r\n" R"(\p{L}\p{P}\p{S}]?[\p{L}\p{M}]+| ?[\p{P}\p{S}]+[)"
    "\r\n" R"(]*|\s*[)" "\r\n" R"(]+|\s+(?!\S)|\s+)"};

PreTokenizer pre_tokenizer_for_gguf(const std::string& pre) {
    PreTokenizer p;
    if (pre == "llama-bpe" || pre == "llama3" || pre == "llama-v3" || pre == "smaug-bpe") p.add_split_regex(kLlama3Pattern);
    else if (pre == "qwen2" || pre == "qwen3") p.add_split_regex(kQwen2Pattern);
    else if (pre == "gpt-4o" || pre == "o200k" || pre == "gpt-oss") p.add_split_regex(kO200kPattern);
    else if (pre == "deepseek-v3")
        for (const char* pat : kDeepseekV3Patterns) p.add_split_regex(pat);
    // "gpt-2" is llama.cpp's name for this pattern; "default"/"gpt2" are read the same way for files written by
    // earlier moeinfer exports (llama.cpp's own "default" is a different regex, so we never write it for BPE).
    else if (pre == "gpt-2" || pre == "default" || pre == "gpt2" || pre.empty()) p.add_split_regex(kGpt2Pattern);
    else throw std::runtime_error("GGUF: unsupported tokenizer.ggml.pre '" + pre + "'");
    return p;
}

std::string gguf_pre_name(const PreTokenizer& p) {
    std::vector<std::string> pats = p.split_patterns();
    if (pats.size() == 1) {
        if (pats[0] == kLlama3Pattern) return "llama-bpe";
        if (pats[0] == kQwen2Pattern) return "qwen2";
        if (pats[0] == kO200kPattern) return "gpt-4o";
        if (pats[0] == kGpt2Pattern) return "gpt-2";
    }
    if (pats.size() == 3 && pats[0] == kDeepseekV3Patterns[0] && pats[1] == kDeepseekV3Patterns[1] &&
        pats[2] == kDeepseekV3Patterns[2])
        return "deepseek-v3";
    return "";
}

std::vector<std::string> PreTokenizer::split_patterns() const {
    std::vector<std::string> out;
    for (const auto& st : steps_)
        if (st.regex) out.push_back(st.regex->pattern());
    return out;
}

static PreTokenizer::Behavior parse_behavior(const std::string& s) {
    using B = PreTokenizer::Behavior;
    if (s == "Isolated") return B::Isolated;
    if (s == "Removed") return B::Removed;
    if (s == "MergedWithPrevious") return B::MergedWithPrevious;
    if (s == "MergedWithNext") return B::MergedWithNext;
    if (s == "Contiguous") return B::Contiguous;
    throw std::runtime_error("tokenizer.json: unknown split behavior '" + s + "'");
}

void PreTokenizer::add_split_regex(const std::string& pattern, Behavior b) {
    Step st{Step::Kind::Split};
    st.regex = std::make_shared<Regex>(pattern);
    st.behavior = b;
    steps_.push_back(std::move(st));
}

void PreTokenizer::parse_into(const json::Value& v, PreTokenizer& out) {
    if (v.is_null()) return;
    std::string type = v.get_string("type", "");
    if (type == "Sequence") {
        for (const auto& p : v.at("pretokenizers").as_array()) parse_into(p, out);
    } else if (type == "Split") {
        Step st{Step::Kind::Split};
        const auto& pat = v.at("pattern");
        if (const auto* s = pat.find("String")) st.literal = s->as_string();
        else st.regex = std::make_shared<Regex>(pat.at("Regex").as_string());
        st.behavior = parse_behavior(v.get_string("behavior", "Isolated"));
        st.invert = v.get_bool("invert", false);
        out.steps_.push_back(std::move(st));
    } else if (type == "ByteLevel") {
        // Byte-to-char mapping happens inside the BPE model, which works on raw bytes.
        Step st{Step::Kind::ByteLevel};
        st.add_prefix_space = v.get_bool("add_prefix_space", false);
        if (v.get_bool("use_regex", true)) st.regex = std::make_shared<Regex>(kGpt2Pattern);
        out.steps_.push_back(std::move(st));
    } else if (type == "Metaspace") {
        Step st{Step::Kind::Metaspace};
        st.replacement = v.get_string("replacement", "\xE2\x96\x81");
        std::string scheme = v.get_string("prepend_scheme", v.get_bool("add_prefix_space", true) ? "always" : "never");
        st.prepend = scheme == "first" ? Step::Prepend::First : scheme == "never" ? Step::Prepend::Never : Step::Prepend::Always;
        st.split = v.get_bool("split", true);
        out.steps_.push_back(std::move(st));
    } else if (type == "Digits") {
        out.add_split_regex(v.get_bool("individual_digits", false) ? R"(\p{N})" : R"(\p{N}+)");
    } else if (type == "WhitespaceSplit") {
        out.add_split_regex(R"(\s+)", Behavior::Removed);
    } else if (type == "Whitespace") {
        Step st{Step::Kind::Split};
        st.regex = std::make_shared<Regex>(R"(\w+|[^\w\s]+)");
        st.invert = true;
        st.behavior = Behavior::Removed;
        out.steps_.push_back(std::move(st));
    } else {
        throw std::runtime_error("tokenizer.json: unsupported pre_tokenizer type '" + type + "'");
    }
}

PreTokenizer PreTokenizer::from_json(const json::Value& v) {
    PreTokenizer p;
    parse_into(v, p);
    return p;
}

namespace {

struct Span {
    size_t b, e;
    bool is_match;
};

// Cuts `s` into match / non-match spans of `st`'s pattern and merges them by its behavior.
void split_spans(const PreTokenizer::Step& st, std::string_view s, std::vector<std::string>& out) {
    using B = PreTokenizer::Behavior;
    std::vector<Span> spans;
    size_t prev = 0, pos = 0;
    while (pos <= s.size()) {
        size_t b, e;
        if (st.regex) {
            if (!st.regex->search(s, pos, b, e)) break;
        } else {
            if (st.literal.empty()) break;
            b = s.find(st.literal, pos);
            if (b == std::string_view::npos) break;
            e = b + st.literal.size();
        }
        if (e == b) {  // empty matches delimit nothing; step over one char
            if (b >= s.size()) break;
            pos = b + 1;
            while (pos < s.size() && (static_cast<unsigned char>(s[pos]) & 0xC0) == 0x80) ++pos;
            continue;
        }
        if (b > prev) spans.push_back({prev, b, false});
        spans.push_back({b, e, true});
        prev = pos = e;
    }
    if (prev < s.size()) spans.push_back({prev, s.size(), false});
    if (st.invert)
        for (auto& sp : spans) sp.is_match = !sp.is_match;

    std::vector<Span> merged;
    bool previous_match = false;
    switch (st.behavior) {
        case B::Isolated: merged = spans; break;
        case B::Removed:
            for (const auto& sp : spans)
                if (!sp.is_match) merged.push_back(sp);
            break;
        case B::MergedWithPrevious:
            for (const auto& sp : spans) {
                if (sp.is_match && !previous_match && !merged.empty()) merged.back().e = sp.e;
                else merged.push_back(sp);
                previous_match = sp.is_match;
            }
            break;
        case B::MergedWithNext:
            for (size_t i = spans.size(); i-- > 0;) {
                const auto& sp = spans[i];
                if (sp.is_match && !previous_match && !merged.empty()) merged.back().b = sp.b;
                else merged.push_back(sp);
                previous_match = sp.is_match;
            }
            std::reverse(merged.begin(), merged.end());
            break;
        case B::Contiguous:
            for (const auto& sp : spans) {
                if (!merged.empty() && sp.is_match == previous_match) merged.back().e = sp.e;
                else merged.push_back(sp);
                previous_match = sp.is_match;
            }
            break;
    }
    for (const auto& sp : merged)
        if (sp.e > sp.b) out.emplace_back(s.substr(sp.b, sp.e - sp.b));
}

}  // namespace

void PreTokenizer::apply(const Step& st, bool first, std::vector<std::string>& pieces) const {
    std::vector<std::string> next;
    next.reserve(pieces.size() * 2);
    for (size_t i = 0; i < pieces.size(); ++i) {
        std::string& p = pieces[i];
        switch (st.kind) {
            case Step::Kind::Split: split_spans(st, p, next); break;
            case Step::Kind::ByteLevel:
                if (st.add_prefix_space && (p.empty() || p[0] != ' ')) p.insert(p.begin(), ' ');
                if (st.regex) split_spans(st, p, next);
                else if (!p.empty()) next.push_back(std::move(p));
                break;
            case Step::Kind::Metaspace: {
                std::string r = replace_all(p, " ", st.replacement);
                bool prepend = st.prepend == Step::Prepend::Always || (st.prepend == Step::Prepend::First && first && i == 0);
                if (prepend && r.compare(0, st.replacement.size(), st.replacement) != 0) r = st.replacement + r;
                if (st.split) {
                    Step sp{Step::Kind::Split};
                    sp.literal = st.replacement;
                    sp.behavior = Behavior::MergedWithNext;
                    split_spans(sp, r, next);
                } else if (!r.empty()) {
                    next.push_back(std::move(r));
                }
                break;
            }
        }
    }
    pieces.swap(next);
}

void PreTokenizer::split(std::string_view text, bool first, std::vector<std::string>& out) const {
    std::vector<std::string> pieces;
    if (!text.empty()) pieces.emplace_back(text);
    for (const auto& st : steps_) apply(st, first, pieces);
    for (auto& p : pieces) out.push_back(std::move(p));
}

}  // namespace moeinfer
