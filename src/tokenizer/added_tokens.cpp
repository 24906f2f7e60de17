// Trie-based matcher for added tokens.
#include "tokenizer/added_tokens.h"

#include "tokenizer/unicode.h"

namespace moeinfer {

void AddedTokenMatcher::build(const std::vector<const AddedToken*>& tokens) {
    edges_.clear();
    terminal_.assign(1, -1);
    tokens_.clear();
    for (const AddedToken* t : tokens) {
        if (t->content.empty()) continue;
        int32_t node = 0;
        for (unsigned char c : t->content) {
            uint64_t key = uint64_t(node) << 8 | c;
            auto it = edges_.find(key);
            if (it == edges_.end()) {
                int32_t n = int32_t(terminal_.size());
                terminal_.push_back(-1);
                edges_.emplace(key, n);
                node = n;
            } else {
                node = it->second;
            }
        }
        first_byte_[static_cast<unsigned char>(t->content[0])] = true;
        if (terminal_[node] < 0) {
            terminal_[node] = int32_t(tokens_.size());
            tokens_.push_back(t);
        }
    }
}

static bool is_word_char(uint32_t cp) {
    auto c = unicode::category(cp);
    return (unicode::kMaskL >> c & 1) || (unicode::kMaskM >> c & 1) || c == unicode::Nd || c == unicode::Pc;
}

void AddedTokenMatcher::split(std::string_view text, std::vector<Segment>& out) const {
    size_t plain_begin = 0;  // start of the text not yet emitted
    for (size_t pos = 0; pos < text.size();) {
        if (!first_byte_[static_cast<unsigned char>(text[pos])]) {
            ++pos;
            continue;
        }
        // Longest token starting at pos.
        int32_t node = 0, best = -1;
        size_t best_end = 0;
        for (size_t i = pos; i < text.size(); ++i) {
            auto it = edges_.find(uint64_t(node) << 8 | static_cast<unsigned char>(text[i]));
            if (it == edges_.end()) break;
            node = it->second;
            if (terminal_[node] >= 0) best = terminal_[node], best_end = i + 1;
        }
        if (best < 0) {
            ++pos;
            continue;
        }
        const AddedToken* t = tokens_[best];
        size_t b = pos, e = best_end;
        if (t->single_word) {
            size_t i = e;
            bool word_before = false, word_after = false;
            if (b > 0) {
                size_t p = b - 1;
                while (p > 0 && (static_cast<unsigned char>(text[p]) & 0xC0) == 0x80) --p;
                word_before = is_word_char(unicode::decode_utf8(text, p));
            }
            if (i < text.size()) word_after = is_word_char(unicode::decode_utf8(text, i));
            if (word_before || word_after) {
                ++pos;
                continue;
            }
        }
        if (t->lstrip)
            while (b > plain_begin && unicode::is_white_space(static_cast<unsigned char>(text[b - 1]))) --b;
        if (t->rstrip)
            while (e < text.size()) {
                size_t i = e;
                if (!unicode::is_white_space(unicode::decode_utf8(text, i))) break;
                e = i;
            }
        if (b > plain_begin) out.push_back({std::string(text.substr(plain_begin, b - plain_begin)), -1});
        out.push_back({std::string(text.substr(pos, best_end - pos)), t->id});
        plain_begin = pos = e;
    }
    if (plain_begin < text.size()) out.push_back({std::string(text.substr(plain_begin)), -1});
}

}  // namespace moeinfer
