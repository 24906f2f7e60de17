// Statement execution and expression evaluation with Python semantics for the operators chat templates use.
#include "tokenizer/jinja_interp.h"

#include <cmath>
#include <stdexcept>

namespace moeinfer::jinja {

using K = Value::Kind;

void eval_error(int line, const std::string& what) {
    throw std::runtime_error("chat template line " + std::to_string(line) + ": " + what);
}

std::string Interpreter::render(const Body& body, const Object& globals) {
    scopes_.clear();
    scopes_.push_back(globals);
    scopes_.emplace_back();  // the template's own top-level scope
    std::string out;
    exec(body, out);
    return out;
}

Value Interpreter::lookup(const std::string& name) const {
    for (size_t s = scopes_.size(); s-- > 0;)
        for (const auto& [k, v] : scopes_[s])
            if (k == name) return v;
    return Value();
}

void Interpreter::assign(const std::string& name, Value v) {
    Object& top = scopes_.back();
    for (auto& [k, x] : top)
        if (k == name) {
            x = std::move(v);
            return;
        }
    top.emplace_back(name, std::move(v));
}

Interpreter::Flow Interpreter::exec(const Body& body, std::string& out) {
    for (const auto& np : body) {
        const Node& n = *np;
        switch (n.kind) {
            case Node::Kind::Text: out += n.text; break;
            case Node::Kind::Output: out += eval(*n.expr).str(); break;
            case Node::Kind::If: {
                bool done = false;
                for (const auto& [cond, b] : n.branches) {
                    if (eval(*cond).truthy()) {
                        Flow f = exec(b, out);
                        if (f != Flow::Normal) return f;
                        done = true;
                        break;
                    }
                }
                if (!done) {
                    Flow f = exec(n.else_body, out);
                    if (f != Flow::Normal) return f;
                }
                break;
            }
            case Node::Kind::For: {
                Flow f = exec_for(n, out);
                if (f != Flow::Normal) return f;
                break;
            }
            case Node::Kind::Set: {
                Value v = eval(*n.expr);
                if (!n.target_attr.empty()) {
                    Value ns = lookup(n.targets[0]);
                    if (!ns.is_namespace) eval_error(n.line, "cannot assign attribute on non-namespace object '" + n.targets[0] + "'");
                    ns.set(n.target_attr, std::move(v));
                } else if (n.targets.size() == 1) {
                    assign(n.targets[0], std::move(v));
                } else {
                    auto items = iterate(v, n.line);
                    if (items.size() != n.targets.size()) eval_error(n.line, "wrong number of values to unpack");
                    for (size_t k = 0; k < items.size(); ++k) assign(n.targets[k], items[k]);
                }
                break;
            }
            case Node::Kind::SetBlock: {
                std::string captured;
                exec(n.body, captured);
                if (!n.target_attr.empty()) lookup(n.targets[0]).set(n.target_attr, Value::string(captured));
                else assign(n.targets[0], Value::string(captured));
                break;
            }
            case Node::Kind::Macro: assign(n.name, make_macro(n)); break;
            case Node::Kind::Break: return Flow::Break;
            case Node::Kind::Continue: return Flow::Continue;
        }
    }
    return Flow::Normal;
}

Interpreter::Flow Interpreter::exec_for(const Node& n, std::string& out) {
    std::vector<Value> items = iterate(eval(*n.expr), n.line);
    // Each iteration gets a fresh scope: Jinja does not carry `set` inside a loop body across iterations.
    scopes_.emplace_back();
    auto bind = [&](const Value& item) {
        if (n.targets.size() == 1) {
            assign(n.targets[0], item);
            return;
        }
        auto parts = iterate(item, n.line);
        if (parts.size() != n.targets.size()) eval_error(n.line, "wrong number of values to unpack in for loop");
        for (size_t k = 0; k < parts.size(); ++k) assign(n.targets[k], parts[k]);
    };
    if (n.cond) {
        std::vector<Value> kept;
        for (const auto& it : items) {
            bind(it);
            if (eval(*n.cond).truthy()) kept.push_back(it);
        }
        items.swap(kept);
    }
    const int64_t len = int64_t(items.size());
    for (int64_t k = 0; k < len; ++k) {
        scopes_.back().clear();
        bind(items[k]);
        Value loop = Value::object({{"index", Value::integer(k + 1)},
                                    {"index0", Value::integer(k)},
                                    {"revindex", Value::integer(len - k)},
                                    {"revindex0", Value::integer(len - k - 1)},
                                    {"first", Value::boolean(k == 0)},
                                    {"last", Value::boolean(k == len - 1)},
                                    {"length", Value::integer(len)},
                                    {"previtem", k > 0 ? items[k - 1] : Value()},
                                    {"nextitem", k + 1 < len ? items[k + 1] : Value()}});
        loop.set("cycle", Value::function([k](Args& a) {
            return a.pos.empty() ? Value() : a.pos[size_t(k) % a.pos.size()];
        }));
        assign("loop", loop);
        if (exec(n.body, out) == Flow::Break) break;
    }
    scopes_.pop_back();
    if (items.empty() && !n.else_body.empty()) exec(n.else_body, out);
    return Flow::Normal;
}

Value Interpreter::make_macro(const Node& n) {
    const Node* node = &n;
    return Value::function([this, node](Args& a) {
        scopes_.emplace_back();
        for (size_t k = 0; k < node->params.size(); ++k) {
            const auto& [pname, def] = node->params[k];
            Value v = a.get(k, pname, Value());
            if (v.is_undefined() && def) v = eval(*def);
            assign(pname, v);
        }
        std::string out;
        exec(node->body, out);
        scopes_.pop_back();
        return Value::string(out);
    });
}

static std::string arith_error(const char* op, const Value& a, const Value& b) {
    return std::string("unsupported operand type(s) for ") + op + ": '" + a.type_name() + "' and '" + b.type_name() + "'";
}

static int compare(const Value& a, const Value& b, const std::string& op, int line) {
    if (a.is_number() && b.is_number()) {
        double x = a.as_double(), y = b.as_double();
        return x < y ? -1 : x > y ? 1 : 0;
    }
    if (a.is_string() && b.is_string()) return a.s < b.s ? -1 : a.s > b.s ? 1 : 0;
    eval_error(line, "'" + op + "' not supported between instances of '" + a.type_name() + "' and '" + b.type_name() + "'");
}

static bool contains(const Value& container, const Value& item, int line) {
    switch (container.kind) {
        case K::String:
            if (!item.is_string()) eval_error(line, std::string("'in <string>' requires string as left operand, not ") + item.type_name());
            return container.s.find(item.s) != std::string::npos;
        case K::Array:
            for (const auto& x : *container.arr)
                if (equal(x, item)) return true;
            return false;
        case K::Object: return item.is_string() && container.find(item.s) != nullptr;
        case K::Undefined: return false;
        default: eval_error(line, std::string("argument of type '") + container.type_name() + "' is not iterable");
    }
}

Value Interpreter::binary(const Expr& e) {
    const std::string& op = e.name;
    if (op == "and") {
        Value l = eval(*e.kids[0]);
        return l.truthy() ? eval(*e.kids[1]) : l;
    }
    if (op == "or") {
        Value l = eval(*e.kids[0]);
        return l.truthy() ? l : eval(*e.kids[1]);
    }
    Value a = eval(*e.kids[0]), b = eval(*e.kids[1]);
    if (op == "==") return Value::boolean(equal(a, b));
    if (op == "!=") return Value::boolean(!equal(a, b));
    if (op == "<") return Value::boolean(compare(a, b, op, e.line) < 0);
    if (op == ">") return Value::boolean(compare(a, b, op, e.line) > 0);
    if (op == "<=") return Value::boolean(compare(a, b, op, e.line) <= 0);
    if (op == ">=") return Value::boolean(compare(a, b, op, e.line) >= 0);
    if (op == "in") return Value::boolean(contains(b, a, e.line));
    if (op == "not in") return Value::boolean(!contains(b, a, e.line));
    if (op == "~") return Value::string(a.str() + b.str());
    if (op == "%" && a.is_string()) return Value::string(percent_format(a.s, b, e.line));
    if (a.is_undefined() || b.is_undefined()) eval_error(e.line, "'" + op + "' on an undefined value");
    bool ints = (a.kind == K::Int || a.kind == K::Bool) && (b.kind == K::Int || b.kind == K::Bool);
    int64_t ai = a.kind == K::Bool ? a.b : a.i, bi = b.kind == K::Bool ? b.b : b.i;
    if (op == "+") {
        if (a.is_string() && b.is_string()) return Value::string(a.s + b.s);
        if (a.is_array() && b.is_array()) {
            Array r = *a.arr;
            r.insert(r.end(), b.arr->begin(), b.arr->end());
            return Value::array(std::move(r));
        }
        if (a.is_number() && b.is_number()) return ints ? Value::integer(ai + bi) : Value::number(a.as_double() + b.as_double());
        if (a.is_string()) eval_error(e.line, std::string("can only concatenate str (not \"") + b.type_name() + "\") to str");
        if (a.is_array()) eval_error(e.line, std::string("can only concatenate list (not \"") + b.type_name() + "\") to list");
        eval_error(e.line, arith_error("+", a, b));
    }
    if (op == "*") {
        if (a.is_string() && (b.kind == K::Int)) {
            std::string r;
            for (int64_t k = 0; k < b.i; ++k) r += a.s;
            return Value::string(r);
        }
        if (a.is_number() && b.is_number()) return ints ? Value::integer(ai * bi) : Value::number(a.as_double() * b.as_double());
        eval_error(e.line, arith_error("*", a, b));
    }
    if (!a.is_number() || !b.is_number()) eval_error(e.line, arith_error(op.c_str(), a, b));
    if (op == "-") return ints ? Value::integer(ai - bi) : Value::number(a.as_double() - b.as_double());
    if (op == "**") return ints && bi >= 0 ? Value::integer(int64_t(std::llround(std::pow(double(ai), double(bi)))))
                                           : Value::number(std::pow(a.as_double(), b.as_double()));
    if ((ints && bi == 0) || (!ints && b.as_double() == 0)) eval_error(e.line, "division by zero");
    if (op == "/") return Value::number(a.as_double() / b.as_double());
    if (op == "//") {
        if (ints) return Value::integer(ai / bi - ((ai % bi != 0) && ((ai < 0) != (bi < 0))));
        return Value::number(std::floor(a.as_double() / b.as_double()));
    }
    if (op == "%") {
        if (ints) {
            int64_t r = ai % bi;
            if (r != 0 && ((r < 0) != (bi < 0))) r += bi;
            return Value::integer(r);
        }
        double r = std::fmod(a.as_double(), b.as_double());
        if (r != 0 && ((r < 0) != (b.as_double() < 0))) r += b.as_double();
        return Value::number(r);
    }
    eval_error(e.line, "unknown operator '" + op + "'");
}

Value Interpreter::call(const Expr& e) {
    Value f = eval(*e.kids[0]);
    Args args;
    for (size_t k = 1; k < e.kids.size(); ++k) args.pos.push_back(eval(*e.kids[k]));
    for (const auto& [name, x] : e.kwargs) args.kw.emplace_back(name, eval(*x));
    if (f.kind != K::Function) {
        std::string what = e.kids[0]->kind == Expr::Kind::Name ? "'" + e.kids[0]->name + "' is undefined or not callable"
                                                               : std::string("'") + f.type_name() + "' object is not callable";
        eval_error(e.line, what);
    }
    try {
        return (*f.fn)(args);
    } catch (const std::runtime_error& err) {
        std::string m = err.what();
        if (m.rfind("chat template line", 0) == 0) throw;
        eval_error(e.line, m);
    }
}

Value Interpreter::eval(const Expr& e) {
    switch (e.kind) {
        case Expr::Kind::Literal: return e.literal;
        case Expr::Kind::Name: return lookup(e.name);
        case Expr::Kind::List:
        case Expr::Kind::Tuple: {
            Array a;
            for (const auto& k : e.kids) a.push_back(eval(*k));
            return e.kind == Expr::Kind::Tuple ? Value::tuple(std::move(a)) : Value::array(std::move(a));
        }
        case Expr::Kind::Dict: {
            Value d = Value::object();
            for (size_t k = 0; k + 1 < e.kids.size(); k += 2) d.set(eval(*e.kids[k]).str(), eval(*e.kids[k + 1]));
            return d;
        }
        case Expr::Kind::Attr: return get_attr(eval(*e.kids[0]), e.name, e.line);
        case Expr::Kind::Index: return get_item(eval(*e.kids[0]), eval(*e.kids[1]), e.line);
        case Expr::Kind::Slice: {
            auto opt = [&](size_t k) { return e.kids[k] ? eval(*e.kids[k]) : Value::none(); };
            return slice(eval(*e.kids[0]), opt(1), opt(2), opt(3), e.line);
        }
        case Expr::Kind::Call: return call(e);
        case Expr::Kind::Filter: {
            Value v = eval(*e.kids[0]);
            Args args;
            for (size_t k = 1; k < e.kids.size(); ++k) args.pos.push_back(eval(*e.kids[k]));
            for (const auto& [name, x] : e.kwargs) args.kw.emplace_back(name, eval(*x));
            return apply_filter(*this, e.name, v, args, e.line);
        }
        case Expr::Kind::Test: {
            Value v = eval(*e.kids[0]);
            Args args;
            for (size_t k = 1; k < e.kids.size(); ++k) args.pos.push_back(eval(*e.kids[k]));
            for (const auto& [name, x] : e.kwargs) args.kw.emplace_back(name, eval(*x));
            return Value::boolean(apply_test(e.name, v, args, e.line) != e.negated);
        }
        case Expr::Kind::Unary: {
            Value v = eval(*e.kids[0]);
            if (e.name == "not") return Value::boolean(!v.truthy());
            if (!v.is_number()) eval_error(e.line, std::string("bad operand type for unary ") + e.name + ": '" + v.type_name() + "'");
            if (e.name == "+") return v;
            return v.kind == K::Float ? Value::number(-v.f) : Value::integer(-(v.kind == K::Bool ? int64_t(v.b) : v.i));
        }
        case Expr::Kind::Binary: return binary(e);
        case Expr::Kind::Cond:
            if (eval(*e.kids[1]).truthy()) return eval(*e.kids[0]);
            return e.kids[2] ? eval(*e.kids[2]) : Value();
    }
    return Value();
}

}  // namespace moeinfer::jinja
