// Parser and backtracking matcher for moeinfer::Regex (see regex.h for the supported subset).
#include "tokenizer/regex.h"

#include <stdexcept>

#include "tokenizer/unicode.h"

namespace moeinfer {

using unicode::decode_utf8;

// A continuation: what to match after the current node. Seq frames resume at child `idx`; Repeat frames count
// iterations of a group (`start` guards against empty iterations looping forever).
struct Regex::Cont {
    int node;
    int idx;
    size_t start;
    const Cont* next;
};

bool Regex::CharClass::contains_slow(uint32_t cp) const {
    uint32_t bit = 1u << unicode::category(cp);
    if (cat_mask & bit) return true;
    if (not_cat_mask && !(not_cat_mask & bit)) return true;
    if (space || not_space) {
        bool ws = unicode::is_white_space(cp);
        if ((space && ws) || (not_space && !ws)) return true;
    }
    for (const auto& [lo, hi] : ranges)
        if (cp >= lo && cp <= hi) return true;
    return false;
}

void Regex::CharClass::finalize() {
    for (uint32_t c = 0; c < 128; ++c)
        if (contains_slow(c) != negated) ascii[c >> 6] |= uint64_t(1) << (c & 63);
}

class Regex::Parser {
public:
    Parser(Regex& re, std::string_view p) : re_(re), p_(p) {}
    int parse_all() {
        int n = parse_alt(false);
        if (i_ != p_.size()) fail("unbalanced ')'");
        return n;
    }

private:
    [[noreturn]] void fail(const std::string& what) const {
        throw std::runtime_error("regex: " + what + " at offset " + std::to_string(i_) + " in pattern '" +
                                 std::string(p_) + "'");
    }
    int add(Node n) {
        re_.nodes_.push_back(std::move(n));
        return int(re_.nodes_.size()) - 1;
    }
    int add_class(CharClass c) {
        c.finalize();
        re_.classes_.push_back(std::move(c));
        Node n{Kind::Char};
        n.cls = int(re_.classes_.size()) - 1;
        return add(std::move(n));
    }
    bool eat(char c) {
        if (i_ < p_.size() && p_[i_] == c) {
            ++i_;
            return true;
        }
        return false;
    }
    int parse_alt(bool icase) {
        Node alt{Kind::Alt};
        alt.kids.push_back(parse_seq(icase));
        while (eat('|')) alt.kids.push_back(parse_seq(icase));
        return alt.kids.size() == 1 ? alt.kids[0] : add(std::move(alt));
    }
    int parse_seq(bool icase) {
        Node seq{Kind::Seq};
        while (i_ < p_.size() && p_[i_] != '|' && p_[i_] != ')') seq.kids.push_back(parse_quantified(icase));
        return add(std::move(seq));
    }
    int parse_quantified(bool icase) {
        int atom = parse_atom(icase);
        while (i_ < p_.size()) {
            int mn, mx;
            char c = p_[i_];
            if (c == '?') mn = 0, mx = 1;
            else if (c == '*') mn = 0, mx = -1;
            else if (c == '+') mn = 1, mx = -1;
            else if (c == '{' && i_ + 1 < p_.size() && isdigit((unsigned char)p_[i_ + 1])) {
                ++i_;
                mn = parse_int();
                mx = mn;
                if (eat(',')) mx = (i_ < p_.size() && p_[i_] == '}') ? -1 : parse_int();
                if (i_ >= p_.size() || p_[i_] != '}') fail("bad {m,n}");
            } else break;
            ++i_;
            Node r{Kind::Repeat};
            r.min = mn, r.max = mx;
            if (eat('?')) r.greedy = false;
            else eat('+');  // possessive treated as greedy: none of the supported patterns depends on it
            r.kids.push_back(atom);
            atom = add(std::move(r));
        }
        return atom;
    }
    int parse_int() {
        int v = 0;
        while (i_ < p_.size() && isdigit((unsigned char)p_[i_])) v = v * 10 + (p_[i_++] - '0');
        return v;
    }
    int parse_atom(bool icase) {
        char c = p_[i_];
        if (c == '(') {
            ++i_;
            if (eat('?')) {
                if (eat(':')) return close_group(parse_alt(icase));
                if (i_ < p_.size() && (p_[i_] == '!' || p_[i_] == '=')) {
                    Node look{Kind::Look};
                    look.negative = p_[i_++] == '!';
                    look.kids.push_back(parse_alt(icase));
                    return close_group(add(std::move(look)));
                }
                if (eat('i')) {
                    if (eat(':')) return close_group(parse_alt(true));
                    if (eat(')')) return parse_alt(true);  // (?i) applies to the rest of the group
                }
                fail("unsupported group syntax");
            }
            return close_group(parse_alt(icase));
        }
        if (c == '[') return parse_class();
        if (c == '.') {
            ++i_;
            CharClass cc;
            cc.negated = true;
            cc.ranges.push_back({'\n', '\n'});
            return add_class(std::move(cc));
        }
        if (c == '^' || c == '$') {
            ++i_;
            return add(Node{c == '^' ? Kind::Bol : Kind::Eol});
        }
        CharClass cc;
        if (c == '\\') {
            ++i_;
            parse_escape(cc);
        } else {
            uint32_t cp = decode_utf8(p_, i_);
            cc.ranges.push_back({cp, cp});
        }
        if (icase) add_case_variants(cc);
        return add_class(std::move(cc));
    }
    int close_group(int n) {
        if (!eat(')')) fail("missing ')'");
        return n;
    }
    // Simple case folding for ASCII letters, with the two non-ASCII code points that fold onto them.
    static void add_case_variants(CharClass& cc) {
        std::vector<std::pair<uint32_t, uint32_t>> extra;
        for (auto [lo, hi] : cc.ranges) {
            for (uint32_t c = lo; c <= hi && c < 128; ++c) {
                if (c >= 'a' && c <= 'z') extra.push_back({c - 32, c - 32});
                if (c >= 'A' && c <= 'Z') extra.push_back({c + 32, c + 32});
                if (c == 's' || c == 'S') extra.push_back({0x17F, 0x17F});
                if (c == 'k' || c == 'K') extra.push_back({0x212A, 0x212A});
            }
        }
        cc.ranges.insert(cc.ranges.end(), extra.begin(), extra.end());
    }
    void parse_category(CharClass& cc, bool negate) {
        std::string name;
        if (eat('{')) {
            while (i_ < p_.size() && p_[i_] != '}') name += p_[i_++];
            if (!eat('}')) fail("missing '}' in \\p{...}");
        } else if (i_ < p_.size()) {
            name = std::string(1, p_[i_++]);
        }
        uint32_t mask = 0;
        if (name == "L" || name == "Letter") mask = unicode::kMaskL;
        else if (name == "N" || name == "Number") mask = unicode::kMaskN;
        else if (name == "P" || name == "Punctuation") mask = unicode::kMaskP;
        else if (name == "S" || name == "Symbol") mask = unicode::kMaskS;
        else if (name == "M" || name == "Mark") mask = unicode::kMaskM;
        else if (name == "Z" || name == "Separator") mask = unicode::kMaskZ;
        else if (name == "C" || name == "Other") mask = unicode::kMaskC;
        else {
            for (int k = 0; k < unicode::kCategoryCount; ++k)
                if (name == unicode::kCategoryNames[k]) mask = 1u << k;
        }
        if (!mask) fail("unknown Unicode category '" + name + "'");
        (negate ? cc.not_cat_mask : cc.cat_mask) |= mask;
    }
    // Parses the escape after '\' into cc (adding to it).
    void parse_escape(CharClass& cc) {
        if (i_ >= p_.size()) fail("trailing '\\'");
        char e = p_[i_++];
        switch (e) {
            case 'p': parse_category(cc, false); return;
            case 'P': parse_category(cc, true); return;
            case 's': cc.space = true; return;
            case 'S': cc.not_space = true; return;
            case 'd': cc.cat_mask |= 1u << unicode::Nd; return;
            case 'D': cc.not_cat_mask |= 1u << unicode::Nd; return;
            case 'w':
                cc.cat_mask |= unicode::kMaskL | unicode::kMaskM | (1u << unicode::Nd) | (1u << unicode::Pc);
                return;
            case 'n': cc.ranges.push_back({'\n', '\n'}); return;
            case 'r': cc.ranges.push_back({'\r', '\r'}); return;
            case 't': cc.ranges.push_back({'\t', '\t'}); return;
            case 'f': cc.ranges.push_back({'\f', '\f'}); return;
            case 'v': cc.ranges.push_back({'\v', '\v'}); return;
            case 'x': {
                uint32_t v = 0;
                int digits = 0;
                bool brace = eat('{');
                while (i_ < p_.size() && isxdigit((unsigned char)p_[i_]) && (brace || digits < 2)) {
                    char h = p_[i_++];
                    v = v * 16 + (isdigit((unsigned char)h) ? h - '0' : (tolower(h) - 'a' + 10));
                    ++digits;
                }
                if (brace && !eat('}')) fail("bad \\x{...}");
                cc.ranges.push_back({v, v});
                return;
            }
            default:
                if (isalnum((unsigned char)e)) fail(std::string("unsupported escape \\") + e);
                --i_;
                uint32_t cp = decode_utf8(p_, i_);
                cc.ranges.push_back({cp, cp});
        }
    }
    int parse_class() {
        ++i_;  // '['
        CharClass cc;
        if (eat('^')) cc.negated = true;
        bool first = true;
        while (i_ < p_.size() && (p_[i_] != ']' || first)) {
            first = false;
            uint32_t lo;
            if (p_[i_] == '\\') {
                ++i_;
                CharClass tmp;
                parse_escape(tmp);
                // A single-code-point escape may start a range; anything else is a set to merge.
                if (tmp.ranges.size() == 1 && tmp.ranges[0].first == tmp.ranges[0].second && !tmp.cat_mask &&
                    !tmp.not_cat_mask && !tmp.space && !tmp.not_space) {
                    lo = tmp.ranges[0].first;
                } else {
                    cc.cat_mask |= tmp.cat_mask;
                    cc.not_cat_mask |= tmp.not_cat_mask;
                    cc.space |= tmp.space;
                    cc.not_space |= tmp.not_space;
                    cc.ranges.insert(cc.ranges.end(), tmp.ranges.begin(), tmp.ranges.end());
                    continue;
                }
            } else {
                lo = decode_utf8(p_, i_);
            }
            uint32_t hi = lo;
            if (i_ + 1 < p_.size() && p_[i_] == '-' && p_[i_ + 1] != ']') {
                ++i_;
                if (p_[i_] == '\\') {
                    ++i_;
                    CharClass tmp;
                    parse_escape(tmp);
                    if (tmp.ranges.size() != 1) fail("bad class range");
                    hi = tmp.ranges[0].first;
                } else {
                    hi = decode_utf8(p_, i_);
                }
            }
            cc.ranges.push_back({lo, hi});
        }
        if (!eat(']')) fail("missing ']'");
        return add_class(std::move(cc));
    }

    Regex& re_;
    std::string_view p_;
    size_t i_ = 0;
};

Regex::Regex(std::string_view pattern) : pattern_(pattern) {
    Parser parser(*this, pattern_);
    root_ = parser.parse_all();
}

bool Regex::resume(std::string_view s, const Cont* k, size_t pos, size_t& end) const {
    if (!k) {
        end = pos;
        return true;
    }
    const Node& n = nodes_[k->node];
    if (n.kind == Kind::Repeat) return repeat(s, k->node, pos, k->start, k->idx, k->next, end);
    if (size_t(k->idx) == n.kids.size()) return resume(s, k->next, pos, end);
    Cont c{k->node, k->idx + 1, 0, k->next};
    return match(s, n.kids[k->idx], pos, &c, end);
}

// Iteration `count` of a group repeat has just ended at `pos` (it began at `start`).
bool Regex::repeat(std::string_view s, int node, size_t pos, size_t start, int count, const Cont* k,
                   size_t& end) const {
    const Node& n = nodes_[node];
    bool can_more = (n.max < 0 || count < n.max) && !(count > 0 && pos == start);
    Cont c{node, count + 1, pos, k};
    if (n.greedy) {
        if (can_more && match(s, n.kids[0], pos, &c, end)) return true;
        return count >= n.min && resume(s, k, pos, end);
    }
    if (count >= n.min && resume(s, k, pos, end)) return true;
    return can_more && match(s, n.kids[0], pos, &c, end);
}

static inline size_t prev_char(std::string_view s, size_t p) {
    do --p;
    while (p > 0 && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80);
    return p;
}

bool Regex::match(std::string_view s, int node, size_t pos, const Cont* k, size_t& end) const {
    const Node& n = nodes_[node];
    switch (n.kind) {
        case Kind::Char: {
            if (pos >= s.size()) return false;
            size_t p = pos;
            if (!classes_[n.cls].contains(decode_utf8(s, p))) return false;
            return resume(s, k, p, end);
        }
        case Kind::Seq: {
            if (n.kids.empty()) return resume(s, k, pos, end);
            Cont c{node, 1, 0, k};
            return match(s, n.kids[0], pos, &c, end);
        }
        case Kind::Alt:
            for (int kid : n.kids)
                if (match(s, kid, pos, k, end)) return true;
            return false;
        case Kind::Look: {
            size_t e;
            bool m = match(s, n.kids[0], pos, nullptr, e);
            return m != n.negative && resume(s, k, pos, end);
        }
        case Kind::Bol: return pos == 0 && resume(s, k, pos, end);
        case Kind::Eol: return pos == s.size() && resume(s, k, pos, end);
        case Kind::Repeat: {
            const Node& kid = nodes_[n.kids[0]];
            if (kid.kind != Kind::Char) return repeat(s, node, pos, size_t(-1), 0, k, end);
            // Single-class repeat: scan forward, then back off one code point at a time.
            const CharClass& cc = classes_[kid.cls];
            size_t p = pos;
            int count = 0;
            if (!n.greedy) {
                while (true) {
                    if (count >= n.min && resume(s, k, p, end)) return true;
                    if ((n.max >= 0 && count >= n.max) || p >= s.size()) return false;
                    size_t q = p;
                    if (!cc.contains(decode_utf8(s, q))) return false;
                    p = q, ++count;
                }
            }
            while ((n.max < 0 || count < n.max) && p < s.size()) {
                size_t q = p;
                if (!cc.contains(decode_utf8(s, q))) break;
                p = q, ++count;
            }
            while (count >= n.min) {
                if (resume(s, k, p, end)) return true;
                if (count == 0) break;
                p = prev_char(s, p), --count;
            }
            return false;
        }
    }
    return false;
}

size_t Regex::match_at(std::string_view s, size_t pos) const {
    size_t end;
    return match(s, root_, pos, nullptr, end) ? end : std::string_view::npos;
}

bool Regex::search(std::string_view s, size_t from, size_t& match_begin, size_t& match_end) const {
    for (size_t p = from; p <= s.size();) {
        size_t end;
        if (match(s, root_, p, nullptr, end)) {
            match_begin = p, match_end = end;
            return true;
        }
        if (p == s.size()) break;
        p += unicode::utf8_len(static_cast<unsigned char>(s[p]));
    }
    return false;
}

}  // namespace moeinfer
