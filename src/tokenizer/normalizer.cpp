// Normalizer steps; each is applied to the whole text segment between added tokens, as HF does.
#include "tokenizer/normalizer.h"

#include <stdexcept>

#include "tokenizer/unicode.h"

namespace moeinfer {

std::string replace_all(std::string_view s, std::string_view from, std::string_view to) {
    if (from.empty()) return std::string(s);
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (true) {
        size_t j = s.find(from, i);
        if (j == std::string_view::npos) break;
        out.append(s, i, j - i);
        out.append(to);
        i = j + from.size();
    }
    out.append(s, i);
    return out;
}

void Normalizer::parse_into(const json::Value& v, Normalizer& out) {
    if (v.is_null()) return;
    std::string type = v.get_string("type", "");
    if (type == "Sequence") {
        for (const auto& n : v.at("normalizers").as_array()) parse_into(n, out);
    } else if (type == "NFC") {
        out.add({Kind::Nfc});
    } else if (type == "Replace") {
        Step s{Kind::Replace};
        const auto& pat = v.at("pattern");
        if (const auto* str = pat.find("String")) s.pattern = str->as_string();
        else s.regex = std::make_shared<Regex>(pat.at("Regex").as_string());
        s.content = v.at("content").as_string();
        out.add(std::move(s));
    } else if (type == "Prepend") {
        Step s{Kind::Prepend};
        s.content = v.at("prepend").as_string();
        out.add(std::move(s));
    } else if (type == "Strip") {
        Step s{Kind::Strip};
        s.left = v.get_bool("strip_left", true);
        s.right = v.get_bool("strip_right", true);
        out.add(std::move(s));
    } else if (type == "Lowercase") {
        out.add({Kind::Lowercase});
    } else {
        throw std::runtime_error("tokenizer.json: unsupported normalizer type '" + type + "'");
    }
}

Normalizer Normalizer::from_json(const json::Value& v) {
    Normalizer n;
    parse_into(v, n);
    return n;
}

static std::string regex_replace(const Regex& re, std::string_view s, std::string_view to) {
    std::string out;
    size_t i = 0, b, e;
    while (i <= s.size() && re.search(s, i, b, e)) {
        out.append(s, i, b - i);
        out.append(to);
        if (e == b) {  // empty match: copy one char to make progress
            if (b == s.size()) {
                i = b;
                break;
            }
            size_t n = unicode::utf8_len(static_cast<unsigned char>(s[b]));
            out.append(s, b, n);
            e = b + n;
        }
        i = e;
    }
    if (i < s.size()) out.append(s, i);
    return out;
}

std::string Normalizer::normalize(std::string_view text) const {
    std::string s(text);
    for (const auto& st : steps_) {
        switch (st.kind) {
            case Kind::Nfc: s = unicode::nfc(s); break;
            case Kind::Replace: s = st.regex ? regex_replace(*st.regex, s, st.content) : replace_all(s, st.pattern, st.content); break;
            case Kind::Prepend:
                if (!s.empty()) s = st.content + s;
                break;
            case Kind::Strip: {
                size_t b = 0, e = s.size();
                if (st.left)
                    while (b < e) {
                        size_t i = b;
                        if (!unicode::is_white_space(unicode::decode_utf8(s, i))) break;
                        b = i;
                    }
                if (st.right)
                    while (e > b) {
                        size_t p = e - 1;
                        while (p > b && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
                        size_t i = p;
                        if (!unicode::is_white_space(unicode::decode_utf8(s, i))) break;
                        e = p;
                    }
                s = s.substr(b, e - b);
                break;
            }
            case Kind::Lowercase: s = unicode::to_lower(s); break;
        }
    }
    return s;
}

}  // namespace moeinfer
