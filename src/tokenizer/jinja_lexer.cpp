// Lexing of templates: finding tags with their whitespace control, and tokenizing expressions.
#include "tokenizer/jinja_lexer.h"

#include "tokenizer/unicode.h"

#include <algorithm>
#include <cctype>
#include <stdexcept>

namespace moeinfer::jinja {

[[noreturn]] static void syntax_error(int line, const std::string& what) {
    throw std::runtime_error("chat template line " + std::to_string(line) + ": syntax error: " + what);
}

static int count_lines(const std::string& s, size_t from, size_t to) {
    int n = 0;
    for (size_t i = from; i < to; ++i) n += s[i] == '\n';
    return n;
}

std::vector<TemplateToken> lex_template(const std::string& src_in) {
    // Jinja normalizes line endings (\r\n, \r) of the template to \n.
    std::string src;
    src.reserve(src_in.size());
    for (size_t i = 0; i < src_in.size(); ++i) {
        if (src_in[i] != '\r') src += src_in[i];
        else if (i + 1 < src_in.size() && src_in[i + 1] == '\n') continue;
        else src += '\n';
    }
    if (!src.empty() && src.back() == '\n') src.pop_back();  // keep_trailing_newline=False
    std::vector<TemplateToken> out;
    size_t pos = 0;
    int line = 1;
    bool strip_next = false;  // previous tag ended with '-'
    bool trim_next_newline = false;  // previous block/comment tag ended without modifier (trim_blocks)
    while (pos <= src.size()) {
        size_t open = src.find('{', pos);
        while (open != std::string::npos && open + 1 < src.size() && src[open + 1] != '{' && src[open + 1] != '%' &&
               src[open + 1] != '#')
            open = src.find('{', open + 1);
        if (open != std::string::npos && open + 1 >= src.size()) open = std::string::npos;
        std::string text = src.substr(pos, (open == std::string::npos ? src.size() : open) - pos);
        if (trim_next_newline && !text.empty() && text[0] == '\n') text.erase(0, 1);
        if (strip_next) {
            size_t k = 0;
            while (k < text.size() && isspace(static_cast<unsigned char>(text[k]))) ++k;
            text.erase(0, k);
        }
        strip_next = trim_next_newline = false;
        if (open == std::string::npos) {
            if (!text.empty()) out.push_back({TemplateToken::Kind::Text, text, line});
            break;
        }
        char kind = src[open + 1];
        char mod = open + 2 < src.size() ? src[open + 2] : 0;
        if (mod == '-') {
            size_t k = text.size();
            while (k > 0 && isspace(static_cast<unsigned char>(text[k - 1]))) --k;
            text.resize(k);
        } else if ((kind == '%' || kind == '#') && mod != '+') {
            // lstrip_blocks: drop spaces/tabs between the line start and the tag (judged on the source).
            size_t ls = open;
            while (ls > 0 && (src[ls - 1] == ' ' || src[ls - 1] == '\t')) --ls;
            if (ls == 0 || src[ls - 1] == '\n') text.resize(text.size() - std::min(text.size(), open - ls));
        }
        if (!text.empty()) out.push_back({TemplateToken::Kind::Text, text, line});
        line += count_lines(src, pos, open);
        std::string close = kind == '{' ? "}}" : kind == '%' ? "%}" : "#}";
        size_t body_start = open + 2 + ((mod == '-' || mod == '+') ? 1 : 0);
        size_t end = src.find(close, body_start);
        if (kind == '%' || kind == '{') {
            // A closing delimiter inside a string literal or open brackets does not end the tag.
            char quote = 0;
            int depth = 0;
            for (size_t i = body_start; i < src.size(); ++i) {
                char c = src[i];
                if (quote) {
                    if (c == '\\') ++i;
                    else if (c == quote) quote = 0;
                } else if (c == '\'' || c == '"') {
                    quote = c;
                } else if (depth == 0 && (src.compare(i, 2, close) == 0 ||
                                          (src.compare(i, 3, "-" + close) == 0))) {
                    end = src.compare(i, 2, close) == 0 ? i : i + 1;
                    break;
                } else if (c == '(' || c == '[' || c == '{') {
                    ++depth;
                } else if ((c == ')' || c == ']' || c == '}') && depth > 0) {
                    --depth;
                }
                if (i + 1 == src.size()) end = std::string::npos;
            }
        }
        if (end == std::string::npos) syntax_error(line, std::string("unclosed '{") + kind + "'");
        size_t body_end = end;
        char end_mod = body_end > body_start ? src[body_end - 1] : 0;
        if (end_mod == '-' || (end_mod == '+' && kind != '{')) --body_end;
        else end_mod = 0;
        if (kind != '#') {
            out.push_back({kind == '{' ? TemplateToken::Kind::Var : TemplateToken::Kind::Block,
                           src.substr(body_start, body_end - body_start), line});
        }
        line += count_lines(src, open, end + 2);
        strip_next = end_mod == '-';
        trim_next_newline = kind != '{' && end_mod == 0;
        pos = end + 2;
    }
    return out;
}

std::vector<ExprToken> lex_expression(const std::string& s, int line) {
    std::vector<ExprToken> out;
    size_t i = 0;
    while (i < s.size()) {
        char c = s[i];
        if (isspace(static_cast<unsigned char>(c))) {
            line += c == '\n';
            ++i;
            continue;
        }
        if (isalpha(static_cast<unsigned char>(c)) || c == '_') {
            size_t j = i;
            while (j < s.size() && (isalnum(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
            out.push_back({ExprToken::Kind::Name, s.substr(i, j - i), line});
            i = j;
        } else if (isdigit(static_cast<unsigned char>(c))) {
            size_t j = i;
            while (j < s.size() && (isdigit(static_cast<unsigned char>(s[j])) || s[j] == '_')) ++j;
            bool is_float = false;
            if (j + 1 < s.size() && s[j] == '.' && isdigit(static_cast<unsigned char>(s[j + 1]))) {
                is_float = true;
                ++j;
                while (j < s.size() && isdigit(static_cast<unsigned char>(s[j]))) ++j;
            }
            if (j < s.size() && (s[j] == 'e' || s[j] == 'E')) {
                is_float = true;
                ++j;
                if (j < s.size() && (s[j] == '+' || s[j] == '-')) ++j;
                while (j < s.size() && isdigit(static_cast<unsigned char>(s[j]))) ++j;
            }
            std::string num;
            for (size_t k = i; k < j; ++k)
                if (s[k] != '_') num += s[k];
            out.push_back({is_float ? ExprToken::Kind::Float : ExprToken::Kind::Int, num, line});
            i = j;
        } else if (c == '\'' || c == '"') {
            std::string v;
            size_t j = i + 1;
            for (; j < s.size() && s[j] != c; ++j) {
                if (s[j] != '\\' || j + 1 >= s.size()) {
                    line += s[j] == '\n';
                    v += s[j];
                    continue;
                }
                char e = s[++j];
                switch (e) {
                    case 'n': v += '\n'; break;
                    case 't': v += '\t'; break;
                    case 'r': v += '\r'; break;
                    case 'a': v += '\a'; break;
                    case 'b': v += '\b'; break;
                    case 'f': v += '\f'; break;
                    case 'v': v += '\v'; break;
                    case '0': v += '\0'; break;
                    case '\\': v += '\\'; break;
                    case '\'': v += '\''; break;
                    case '"': v += '"'; break;
                    case '\n': break;
                    case 'x':
                    case 'u':
                    case 'U': {  // Python's \xHH, \uHHHH, \UHHHHHHHH
                        size_t digits = e == 'x' ? 2 : e == 'u' ? 4 : 8;
                        uint32_t cp = 0;
                        size_t k = 0;
                        for (; k < digits && j + 1 < s.size() && isxdigit(static_cast<unsigned char>(s[j + 1])); ++k) {
                            char h = s[++j];
                            cp = cp * 16 + uint32_t(isdigit(static_cast<unsigned char>(h)) ? h - '0' : tolower(h) - 'a' + 10);
                        }
                        if (k != digits || cp > 0x10FFFF) syntax_error(line, std::string("bad \\") + e + " escape");
                        unicode::append_utf8(v, cp);
                        break;
                    }
                    default: v += '\\', v += e;
                }
            }
            if (j >= s.size()) syntax_error(line, "unterminated string literal");
            out.push_back({ExprToken::Kind::String, v, line});
            i = j + 1;
        } else {
            static const char* const kOps[] = {"**", "//", "==", "!=", "<=", ">=", "(", ")", "[", "]", "{", "}", ",",
                                               ".", ":", "|", "~", "+", "-", "*", "/", "%", "<", ">", "="};
            bool found = false;
            for (const char* op : kOps) {
                size_t n = std::char_traits<char>::length(op);
                if (s.compare(i, n, op) == 0) {
                    out.push_back({ExprToken::Kind::Op, op, line});
                    i += n;
                    found = true;
                    break;
                }
            }
            if (!found) syntax_error(line, std::string("unexpected character '") + c + "'");
        }
    }
    out.push_back({ExprToken::Kind::End, "", line});
    return out;
}

}  // namespace moeinfer::jinja
