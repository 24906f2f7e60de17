// Recursive-descent parser for Jinja statements and expressions (precedence as in Jinja: or, and, not,
// comparisons, + -, ~, * / // %, **, unary, then postfix .attr [idx] (call) |filter `is` test).
#include <stdexcept>

#include "tokenizer/jinja_ast.h"
#include "tokenizer/jinja_lexer.h"

namespace moeinfer::jinja {
namespace {

[[noreturn]] void syntax_error(int line, const std::string& what) {
    throw std::runtime_error("chat template line " + std::to_string(line) + ": syntax error: " + what);
}

ExprPtr make(Expr::Kind k, int line) {
    auto e = std::make_unique<Expr>();
    e->kind = k;
    e->line = line;
    return e;
}

class ExprParser {
public:
    ExprParser(std::vector<ExprToken> toks) : t_(std::move(toks)) {}

    const ExprToken& peek(size_t k = 0) const { return t_[std::min(p_ + k, t_.size() - 1)]; }
    bool at_end() const { return peek().kind == ExprToken::Kind::End; }
    bool is_op(const char* op, size_t k = 0) const { return peek(k).kind == ExprToken::Kind::Op && peek(k).text == op; }
    bool is_name(const char* n, size_t k = 0) const { return peek(k).kind == ExprToken::Kind::Name && peek(k).text == n; }
    const ExprToken& next() { return t_[std::min(p_++, t_.size() - 1)]; }
    bool eat_op(const char* op) {
        if (!is_op(op)) return false;
        ++p_;
        return true;
    }
    bool eat_name(const char* n) {
        if (!is_name(n)) return false;
        ++p_;
        return true;
    }
    void expect_op(const char* op) {
        if (!eat_op(op)) syntax_error(peek().line, std::string("expected '") + op + "' but found '" + peek().text + "'");
    }
    std::string expect_name() {
        if (peek().kind != ExprToken::Kind::Name) syntax_error(peek().line, "expected a name but found '" + peek().text + "'");
        return next().text;
    }
    void expect_end() {
        if (!at_end()) syntax_error(peek().line, "unexpected '" + peek().text + "'");
    }

    // Tuple without parentheses (for `set a, b = ...` values and `for` iterables it is not needed).
    ExprPtr expression() {
        ExprPtr e = or_expr();
        if (eat_name("if")) {
            auto c = make(Expr::Kind::Cond, e->line);
            ExprPtr cond = or_expr();
            ExprPtr other = eat_name("else") ? expression() : nullptr;
            c->kids.push_back(std::move(e));
            c->kids.push_back(std::move(cond));
            c->kids.push_back(std::move(other));
            return c;
        }
        return e;
    }
    ExprPtr or_expr() {
        ExprPtr l = and_expr();
        while (is_name("or")) {
            ++p_;
            l = binary("or", std::move(l), and_expr());
        }
        return l;
    }
    ExprPtr and_expr() {
        ExprPtr l = not_expr();
        while (is_name("and")) {
            ++p_;
            l = binary("and", std::move(l), not_expr());
        }
        return l;
    }
    ExprPtr not_expr() {
        if (is_name("not")) {
            int line = next().line;
            auto u = make(Expr::Kind::Unary, line);
            u->name = "not";
            u->kids.push_back(not_expr());
            return u;
        }
        return compare();
    }
    ExprPtr compare() {
        ExprPtr l = math1();
        while (true) {
            std::string op;
            if (is_op("==") || is_op("!=") || is_op("<") || is_op(">") || is_op("<=") || is_op(">=")) op = next().text;
            else if (is_name("in")) op = (++p_, "in");
            else if (is_name("not") && is_name("in", 1)) op = (p_ += 2, "not in");
            else break;
            l = binary(op, std::move(l), math1());
        }
        return l;
    }
    ExprPtr math1() {
        ExprPtr l = concat();
        while (is_op("+") || is_op("-")) {
            std::string op = next().text;
            l = binary(op, std::move(l), concat());
        }
        return l;
    }
    ExprPtr concat() {
        ExprPtr l = math2();
        while (eat_op("~")) l = binary("~", std::move(l), math2());
        return l;
    }
    ExprPtr math2() {
        ExprPtr l = power();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            std::string op = next().text;
            l = binary(op, std::move(l), power());
        }
        return l;
    }
    ExprPtr power() {
        ExprPtr l = unary(true);
        while (eat_op("**")) l = binary("**", std::move(l), unary(true));
        return l;
    }
    ExprPtr unary(bool with_filter) {
        ExprPtr e;
        if (is_op("-") || is_op("+")) {
            int line = peek().line;
            std::string op = next().text;
            e = make(Expr::Kind::Unary, line);
            e->name = op;
            e->kids.push_back(unary(false));
        } else {
            e = primary();
        }
        e = postfix(std::move(e));
        if (with_filter) e = filters(std::move(e));
        return e;
    }
    ExprPtr primary() {
        const ExprToken& tk = next();
        switch (tk.kind) {
            case ExprToken::Kind::String: {
                std::string s = tk.text;
                while (peek().kind == ExprToken::Kind::String) s += next().text;  // adjacent literals join
                auto e = make(Expr::Kind::Literal, tk.line);
                e->literal = Value::string(s);
                return e;
            }
            case ExprToken::Kind::Int: {
                auto e = make(Expr::Kind::Literal, tk.line);
                e->literal = Value::integer(std::stoll(tk.text));
                return e;
            }
            case ExprToken::Kind::Float: {
                auto e = make(Expr::Kind::Literal, tk.line);
                e->literal = Value::number(std::stod(tk.text));
                return e;
            }
            case ExprToken::Kind::Name: {
                auto e = make(Expr::Kind::Literal, tk.line);
                if (tk.text == "true" || tk.text == "True") e->literal = Value::boolean(true);
                else if (tk.text == "false" || tk.text == "False") e->literal = Value::boolean(false);
                else if (tk.text == "none" || tk.text == "None") e->literal = Value::none();
                else {
                    e->kind = Expr::Kind::Name;
                    e->name = tk.text;
                }
                return e;
            }
            case ExprToken::Kind::Op:
                if (tk.text == "(") {
                    if (eat_op(")")) return make(Expr::Kind::Tuple, tk.line);
                    ExprPtr first = expression();
                    if (!is_op(",")) {
                        expect_op(")");
                        return first;
                    }
                    auto tup = make(Expr::Kind::Tuple, tk.line);
                    tup->kids.push_back(std::move(first));
                    while (eat_op(",") && !is_op(")")) tup->kids.push_back(expression());
                    expect_op(")");
                    return tup;
                }
                if (tk.text == "[") {
                    auto list = make(Expr::Kind::List, tk.line);
                    while (!is_op("]")) {
                        list->kids.push_back(expression());
                        if (!eat_op(",")) break;
                    }
                    expect_op("]");
                    return list;
                }
                if (tk.text == "{") {
                    auto dict = make(Expr::Kind::Dict, tk.line);
                    while (!is_op("}")) {
                        dict->kids.push_back(expression());
                        expect_op(":");
                        dict->kids.push_back(expression());
                        if (!eat_op(",")) break;
                    }
                    expect_op("}");
                    return dict;
                }
                break;
            case ExprToken::Kind::End: syntax_error(tk.line, "unexpected end of expression");
        }
        syntax_error(tk.line, "unexpected '" + tk.text + "'");
    }
    void call_args(Expr& e) {
        // after '('
        while (!is_op(")")) {
            if (peek().kind == ExprToken::Kind::Name && is_op("=", 1)) {
                std::string k = next().text;
                ++p_;
                e.kwargs.emplace_back(k, expression());
            } else {
                e.kids.push_back(expression());
            }
            if (!eat_op(",")) break;
        }
        expect_op(")");
    }
    ExprPtr postfix(ExprPtr e) {
        while (true) {
            if (is_op(".")) {
                int line = next().line;
                auto a = make(Expr::Kind::Attr, line);
                if (peek().kind == ExprToken::Kind::Int) {  // x.0 means x[0]
                    a->kind = Expr::Kind::Index;
                    a->kids.push_back(std::move(e));
                    auto idx = make(Expr::Kind::Literal, line);
                    idx->literal = Value::integer(std::stoll(next().text));
                    a->kids.push_back(std::move(idx));
                } else {
                    a->name = expect_name();
                    a->kids.push_back(std::move(e));
                }
                e = std::move(a);
            } else if (is_op("[")) {
                int line = next().line;
                ExprPtr parts[3];
                bool slice = false;
                for (int k = 0; k < 3; ++k) {
                    if (!is_op(":") && !is_op("]")) parts[k] = expression();
                    if (k < 2 && eat_op(":")) slice = true;
                    else break;
                }
                expect_op("]");
                auto x = make(slice ? Expr::Kind::Slice : Expr::Kind::Index, line);
                x->kids.push_back(std::move(e));
                if (slice)
                    for (auto& p : parts) x->kids.push_back(std::move(p));
                else
                    x->kids.push_back(std::move(parts[0]));
                e = std::move(x);
            } else if (is_op("(")) {
                int line = next().line;
                auto c = make(Expr::Kind::Call, line);
                c->kids.push_back(std::move(e));
                call_args(*c);
                e = std::move(c);
            } else {
                return e;
            }
        }
    }
    ExprPtr filters(ExprPtr e) {
        while (true) {
            if (is_op("|")) {
                int line = next().line;
                auto f = make(Expr::Kind::Filter, line);
                f->name = expect_name();
                f->kids.push_back(std::move(e));
                if (eat_op("(")) call_args(*f);
                e = std::move(f);
            } else if (is_name("is")) {
                int line = next().line;
                auto t = make(Expr::Kind::Test, line);
                t->negated = eat_name("not");
                t->name = expect_name();
                t->kids.push_back(std::move(e));
                if (eat_op("(")) {
                    call_args(*t);
                } else if ((peek().kind == ExprToken::Kind::String || peek().kind == ExprToken::Kind::Int ||
                            peek().kind == ExprToken::Kind::Float ||
                            (peek().kind == ExprToken::Kind::Name && !is_name("else") && !is_name("or") &&
                             !is_name("and") && !is_name("if") && !is_name("in") && !is_name("not") && !is_name("is")))) {
                    t->kids.push_back(postfix(primary()));
                }
                e = std::move(t);
            } else {
                return e;
            }
        }
    }

private:
    ExprPtr binary(const std::string& op, ExprPtr l, ExprPtr r) {
        auto b = make(Expr::Kind::Binary, l->line);
        b->name = op;
        b->kids.push_back(std::move(l));
        b->kids.push_back(std::move(r));
        return b;
    }
    std::vector<ExprToken> t_;
    size_t p_ = 0;
};

class TemplateParser {
public:
    explicit TemplateParser(std::vector<TemplateToken> toks) : t_(std::move(toks)) {}

    Body parse_all() {
        Body b = parse_body({});
        if (i_ < t_.size()) syntax_error(t_[i_].line, "unexpected '{% " + first_word(t_[i_].text) + " %}'");
        return b;
    }

private:
    static std::string first_word(const std::string& s) {
        size_t b = s.find_first_not_of(" \t\r\n");
        if (b == std::string::npos) return "";
        size_t e = b;
        while (e < s.size() && (isalnum(static_cast<unsigned char>(s[e])) || s[e] == '_')) ++e;
        return s.substr(b, e - b);
    }
    // Parses nodes until a block tag whose first word is in `stops` (left unconsumed).
    Body parse_body(const std::vector<std::string>& stops) {
        Body body;
        while (i_ < t_.size()) {
            const TemplateToken& tk = t_[i_];
            if (tk.kind == TemplateToken::Kind::Text) {
                auto n = std::make_unique<Node>();
                n->kind = Node::Kind::Text;
                n->text = tk.text;
                n->line = tk.line;
                body.push_back(std::move(n));
                ++i_;
                continue;
            }
            if (tk.kind == TemplateToken::Kind::Var) {
                ExprParser p(lex_expression(tk.text, tk.line));
                auto n = std::make_unique<Node>();
                n->kind = Node::Kind::Output;
                n->line = tk.line;
                n->expr = p.expression();
                p.expect_end();
                body.push_back(std::move(n));
                ++i_;
                continue;
            }
            std::string w = first_word(tk.text);
            for (const auto& s : stops)
                if (w == s) return body;
            ++i_;
            if (w == "generation" || w == "endgeneration") continue;  // transformers' assistant-mask markers
            body.push_back(parse_statement(w, tk));
        }
        if (!stops.empty()) syntax_error(t_.empty() ? 1 : t_.back().line, "missing '{% " + stops.back() + " %}'");
        return body;
    }
    void expect_tag(const std::string& word) {
        if (i_ >= t_.size() || first_word(t_[i_].text) != word) syntax_error(i_ < t_.size() ? t_[i_].line : 0, "expected '{% " + word + " %}'");
        ++i_;
    }
    NodePtr parse_statement(const std::string& w, const TemplateToken& tk) {
        ExprParser p(lex_expression(tk.text, tk.line));
        p.next();  // the keyword
        auto n = std::make_unique<Node>();
        n->line = tk.line;
        if (w == "if") {
            n->kind = Node::Kind::If;
            ExprPtr cond = p.expression();
            p.expect_end();
            while (true) {
                Body b = parse_body({"elif", "else", "endif"});
                n->branches.emplace_back(std::move(cond), std::move(b));
                std::string stop = first_word(t_[i_].text);
                const TemplateToken& st = t_[i_++];
                if (stop == "elif") {
                    ExprParser q(lex_expression(st.text, st.line));
                    q.next();
                    cond = q.expression();
                    q.expect_end();
                    continue;
                }
                if (stop == "else") {
                    n->else_body = parse_body({"endif"});
                    expect_tag("endif");
                }
                break;
            }
        } else if (w == "for") {
            n->kind = Node::Kind::For;
            n->targets.push_back(p.expect_name());
            while (p.eat_op(",")) n->targets.push_back(p.expect_name());
            if (!p.eat_name("in")) syntax_error(tk.line, "expected 'in' in for loop");
            n->expr = p.or_expr();
            if (p.eat_name("if")) n->cond = p.expression();
            p.eat_name("recursive");
            p.expect_end();
            n->body = parse_body({"else", "endfor"});
            if (first_word(t_[i_].text) == "else") {
                ++i_;
                n->else_body = parse_body({"endfor"});
            }
            expect_tag("endfor");
        } else if (w == "set") {
            n->targets.push_back(p.expect_name());
            if (p.eat_op(".")) n->target_attr = p.expect_name();
            while (p.eat_op(",")) n->targets.push_back(p.expect_name());
            if (p.eat_op("=")) {
                n->kind = Node::Kind::Set;
                n->expr = p.expression();
                if (p.is_op(",")) {  // set a, b = x, y
                    auto tup = make(Expr::Kind::Tuple, tk.line);
                    tup->kids.push_back(std::move(n->expr));
                    while (p.eat_op(",")) tup->kids.push_back(p.expression());
                    n->expr = std::move(tup);
                }
                p.expect_end();
            } else {
                p.expect_end();
                n->kind = Node::Kind::SetBlock;
                n->body = parse_body({"endset"});
                expect_tag("endset");
            }
        } else if (w == "macro") {
            n->kind = Node::Kind::Macro;
            n->name = p.expect_name();
            p.expect_op("(");
            while (!p.is_op(")")) {
                std::string param = p.expect_name();
                ExprPtr def = p.eat_op("=") ? p.expression() : nullptr;
                n->params.emplace_back(param, std::move(def));
                if (!p.eat_op(",")) break;
            }
            p.expect_op(")");
            p.expect_end();
            n->body = parse_body({"endmacro"});
            expect_tag("endmacro");
        } else if (w == "break" || w == "continue") {
            n->kind = w == "break" ? Node::Kind::Break : Node::Kind::Continue;
            p.expect_end();
        } else {
            syntax_error(tk.line, "unsupported tag '{% " + w + " %}'");
        }
        return n;
    }

    std::vector<TemplateToken> t_;
    size_t i_ = 0;
};

}  // namespace

Body parse_template(const std::string& source) { return TemplateParser(lex_template(source)).parse_all(); }

}  // namespace moeinfer::jinja
