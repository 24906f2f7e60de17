// Decoder steps work on the list of token strings, like HF's decode_chain, and are joined at the end.
#include "tokenizer/decoder.h"

#include <stdexcept>

#include "tokenizer/bpe.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/unicode.h"

namespace moeinfer {

void Decoder::parse_into(const json::Value& v, Decoder& out) {
    std::string type = v.get_string("type", "");
    if (type == "Sequence") {
        for (const auto& d : v.at("decoders").as_array()) parse_into(d, out);
    } else if (type == "ByteLevel") {
        out.add({Kind::ByteLevel});
    } else if (type == "Replace") {
        Step s{Kind::Replace};
        s.pattern = v.at("pattern").at("String").as_string();
        s.content = v.at("content").as_string();
        out.add(std::move(s));
    } else if (type == "ByteFallback") {
        out.add({Kind::ByteFallback});
    } else if (type == "Fuse") {
        out.add({Kind::Fuse});
    } else if (type == "Strip") {
        Step s{Kind::Strip};
        s.content = v.at("content").as_string();
        s.start = int(v.get_int("start", 0));
        s.stop = int(v.get_int("stop", 0));
        out.add(std::move(s));
    } else if (type == "Metaspace") {
        Step s{Kind::Metaspace};
        s.content = v.get_string("replacement", "\xE2\x96\x81");
        s.prepend = v.get_string("prepend_scheme", v.get_bool("add_prefix_space", true) ? "always" : "never") != "never";
        out.add(std::move(s));
    } else {
        throw std::runtime_error("tokenizer.json: unsupported decoder type '" + type + "'");
    }
}

Decoder Decoder::from_json(const json::Value& v) {
    Decoder d;
    if (v.is_null()) d.is_null_ = true;
    else parse_into(v, d);
    return d;
}

// "<0xAB>" -> 0xAB, or -1.
static int parse_byte_token(const std::string& t) {
    if (t.size() != 6 || t.compare(0, 3, "<0x") != 0 || t[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; ++i) {
        char c = t[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10 : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

std::string Decoder::decode(std::vector<std::string> tokens) const {
    if (is_null_) {
        std::string out;
        for (size_t i = 0; i < tokens.size(); ++i) out += (i ? " " : "") + tokens[i];
        return out;
    }
    for (const auto& st : steps_) {
        switch (st.kind) {
            case Kind::ByteLevel: {
                // Tokens outside the byte alphabet (added tokens such as "<｜User｜>") pass through as UTF-8.
                std::string bytes;
                for (const auto& t : tokens) {
                    std::string tb;
                    bool ok = true;
                    for (size_t i = 0; i < t.size() && ok;) {
                        int b = byte_of_char(unicode::decode_utf8(t, i));
                        if (b < 0) ok = false;
                        else tb += char(b);
                    }
                    bytes += ok ? tb : t;
                }
                tokens.assign(1, unicode::to_valid_utf8(bytes));
                break;
            }
            case Kind::Replace:
                for (auto& t : tokens) t = replace_all(t, st.pattern, st.content);
                break;
            case Kind::ByteFallback: {
                std::vector<std::string> out;
                std::string pending;
                size_t pending_count = 0;
                auto flush = [&] {
                    if (!pending_count) return;
                    if (unicode::is_valid_utf8(pending)) out.push_back(pending);
                    else
                        for (size_t k = 0; k < pending_count; ++k) out.push_back("\xEF\xBF\xBD");
                    pending.clear();
                    pending_count = 0;
                };
                for (auto& t : tokens) {
                    int b = parse_byte_token(t);
                    if (b >= 0) {
                        pending += char(b);
                        ++pending_count;
                    } else {
                        flush();
                        out.push_back(std::move(t));
                    }
                }
                flush();
                tokens.swap(out);
                break;
            }
            case Kind::Fuse: {
                std::string all;
                for (const auto& t : tokens) all += t;
                tokens.assign(1, all);
                break;
            }
            case Kind::Strip:
                for (auto& t : tokens) {
                    size_t b = 0, e = t.size();
                    for (int k = 0; k < st.start && t.compare(b, st.content.size(), st.content) == 0; ++k)
                        b += st.content.size();
                    for (int k = 0; k < st.stop && e >= b + st.content.size() &&
                                    t.compare(e - st.content.size(), st.content.size(), st.content) == 0;
                         ++k)
                        e -= st.content.size();
                    t = t.substr(b, e - b);
                }
                break;
            case Kind::Metaspace:
                for (size_t i = 0; i < tokens.size(); ++i) {
                    std::string t = replace_all(tokens[i], st.content, " ");
                    if (i == 0 && st.prepend && !t.empty() && t[0] == ' ') t.erase(0, 1);
                    tokens[i] = std::move(t);
                }
                break;
        }
    }
    std::string out;
    for (const auto& t : tokens) out += t;
    return out;
}

}  // namespace moeinfer
