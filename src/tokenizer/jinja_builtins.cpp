// Filters, tests, item/attribute access and the Python str/list/dict methods that chat templates call.
#include <algorithm>
#include <cmath>
#include <stdexcept>

#include "tokenizer/jinja_interp.h"
#include "tokenizer/unicode.h"

namespace moeinfer::jinja {

using K = Value::Kind;

namespace {

// Python's str.isspace() set, close enough: ASCII whitespace, \x1c-\x1f and Unicode White_Space.
bool py_space(uint32_t cp) { return unicode::is_white_space(cp) || (cp >= 0x1C && cp <= 0x1F); }

std::string strip(const std::string& s, const Value& chars, bool left, bool right) {
    std::vector<uint32_t> set;
    if (chars.is_string())
        for (size_t i = 0; i < chars.s.size();) set.push_back(unicode::decode_utf8(chars.s, i));
    auto drop = [&](uint32_t cp) {
        return chars.is_string() ? std::find(set.begin(), set.end(), cp) != set.end() : py_space(cp);
    };
    size_t b = 0, e = s.size();
    if (left)
        while (b < e) {
            size_t i = b;
            if (!drop(unicode::decode_utf8(s, i))) break;
            b = i;
        }
    if (right)
        while (e > b) {
            size_t p = e - 1;
            while (p > b && (static_cast<unsigned char>(s[p]) & 0xC0) == 0x80) --p;
            size_t i = p;
            if (!drop(unicode::decode_utf8(s, i))) break;
            e = p;
        }
    return s.substr(b, e - b);
}

Value split(const std::string& s, const Value& sep, int64_t maxsplit) {
    Array out;
    if (!sep.is_string()) {  // runs of whitespace, empty strings dropped
        size_t i = 0;
        while (i < s.size()) {
            while (i < s.size() && py_space(static_cast<unsigned char>(s[i]))) ++i;
            if (i >= s.size()) break;
            if (maxsplit >= 0 && int64_t(out.size()) == maxsplit) {
                std::string rest = s.substr(i);
                out.push_back(Value::string(strip(rest, Value(), false, true)));
                break;
            }
            size_t j = i;
            while (j < s.size() && !py_space(static_cast<unsigned char>(s[j]))) ++j;
            out.push_back(Value::string(s.substr(i, j - i)));
            i = j;
        }
        return Value::array(std::move(out));
    }
    if (sep.s.empty()) throw std::runtime_error("empty separator");
    size_t i = 0;
    while (true) {
        size_t j = s.find(sep.s, i);
        if (j == std::string::npos || (maxsplit >= 0 && int64_t(out.size()) == maxsplit)) break;
        out.push_back(Value::string(s.substr(i, j - i)));
        i = j + sep.s.size();
    }
    out.push_back(Value::string(s.substr(i)));
    return Value::array(std::move(out));
}

std::string case_map(const std::string& s, bool upper) { return upper ? unicode::to_upper(s) : unicode::to_lower(s); }

// Python's str.title(): a cased char after a cased char is lowercased, other cased chars are uppercased.
std::string title(const std::string& s) {
    std::string r;
    bool prev_cased = false;
    for (size_t i = 0; i < s.size();) {
        size_t b = i;
        uint32_t cp = unicode::decode_utf8(s, i);
        std::string one = s.substr(b, i - b);
        r += prev_cased ? unicode::to_lower(one) : unicode::to_upper(one);
        prev_cased = unicode::is_cased(cp);
    }
    return r;
}

bool prefix_match(const std::string& s, const Value& p, bool suffix) {
    auto one = [&](const std::string& x) {
        return x.size() <= s.size() && s.compare(suffix ? s.size() - x.size() : 0, x.size(), x) == 0;
    };
    if (p.is_array()) {
        for (const auto& x : *p.arr)
            if (x.is_string() && one(x.s)) return true;
        return false;
    }
    if (!p.is_string()) throw std::runtime_error(std::string(suffix ? "endswith" : "startswith") + " first arg must be str");
    return one(p.s);
}

Value string_method(const Value& self, const std::string& name) {
    const std::string s = self.s;
    auto fn = [](auto f) { return Value::function(f); };
    if (name == "strip" || name == "lstrip" || name == "rstrip")
        return fn([s, name](Args& a) {
            return Value::string(strip(s, a.get(0, "chars", Value()), name != "rstrip", name != "lstrip"));
        });
    if (name == "split")
        return fn([s](Args& a) {
            Value m = a.get(1, "maxsplit", Value::integer(-1));
            return split(s, a.get(0, "sep", Value()), m.i);
        });
    if (name == "startswith" || name == "endswith")
        return fn([s, name](Args& a) { return Value::boolean(prefix_match(s, a.get(0, "prefix"), name == "endswith")); });
    if (name == "upper" || name == "lower") return fn([s, name](Args&) { return Value::string(case_map(s, name == "upper")); });
    if (name == "title") return fn([s](Args&) { return Value::string(title(s)); });
    if (name == "capitalize")
        return fn([s](Args&) {
            if (s.empty()) return Value::string("");
            size_t i = 0;
            unicode::decode_utf8(s, i);
            return Value::string(unicode::to_upper(s.substr(0, i)) + unicode::to_lower(s.substr(i)));
        });
    if (name == "replace")
        return fn([s](Args& a) {
            std::string from = a.get(0, "old").str(), to = a.get(1, "new").str(), r;
            int64_t count = a.get(2, "count", Value::integer(-1)).i;
            size_t i = 0;
            if (from.empty()) return Value::string(s);
            for (int64_t n = 0; count < 0 || n < count; ++n) {
                size_t j = s.find(from, i);
                if (j == std::string::npos) break;
                r += s.substr(i, j - i) + to;
                i = j + from.size();
            }
            return Value::string(r + s.substr(i));
        });
    if (name == "find")
        return fn([s](Args& a) {
            size_t p = s.find(a.get(0, "sub").str());
            return Value::integer(p == std::string::npos ? -1 : int64_t(p));
        });
    if (name == "count")
        return fn([s](Args& a) {
            std::string sub = a.get(0, "sub").str();
            int64_t n = 0;
            for (size_t i = s.find(sub); !sub.empty() && i != std::string::npos; i = s.find(sub, i + sub.size())) ++n;
            return Value::integer(n);
        });
    if (name == "join")
        return fn([s](Args& a) {
            std::string r;
            auto items = iterate(a.get(0, "iterable"), 0);
            for (size_t k = 0; k < items.size(); ++k) r += (k ? s : "") + items[k].str();
            return Value::string(r);
        });
    if (name == "isdigit" || name == "isalpha" || name == "isspace")
        return fn([s, name](Args&) {
            bool ok = !s.empty();
            for (unsigned char c : s)
                ok = ok && (name == "isdigit" ? isdigit(c) : name == "isalpha" ? isalpha(c) : isspace(c));
            return Value::boolean(ok);
        });
    return Value();
}

Value dict_method(const Value& self, const std::string& name) {
    if (name == "items")
        return Value::function([self](Args&) {
            Array r;
            for (const auto& [k, v] : *self.obj) r.push_back(Value::tuple({Value::string(k), v}));
            return Value::array(std::move(r));
        });
    if (name == "keys")
        return Value::function([self](Args&) {
            Array r;
            for (const auto& kv : *self.obj) r.push_back(Value::string(kv.first));
            return Value::array(std::move(r));
        });
    if (name == "values")
        return Value::function([self](Args&) {
            Array r;
            for (const auto& kv : *self.obj) r.push_back(kv.second);
            return Value::array(std::move(r));
        });
    if (name == "get")
        return Value::function([self](Args& a) {
            const Value* v = self.find(a.get(0, "key").str());
            return v ? *v : a.get(1, "default", Value::none());
        });
    return Value();
}

}  // namespace

std::vector<Value> iterate(const Value& v, int line) {
    switch (v.kind) {
        case K::Array: return *v.arr;
        case K::Object: {
            std::vector<Value> r;
            for (const auto& kv : *v.obj) r.push_back(Value::string(kv.first));
            return r;
        }
        case K::String: {
            std::vector<Value> r;
            for (size_t i = 0; i < v.s.size();) {
                size_t b = i;
                unicode::decode_utf8(v.s, i);
                r.push_back(Value::string(v.s.substr(b, i - b)));
            }
            return r;
        }
        case K::Undefined: return {};
        default: eval_error(line, std::string("'") + v.type_name() + "' object is not iterable");
    }
}

Value get_attr(const Value& v, const std::string& name, int line) {
    switch (v.kind) {
        case K::Object: {
            if (!v.is_namespace) {
                Value m = dict_method(v, name);
                if (!m.is_undefined()) return m;
            }
            const Value* x = v.find(name);
            return x ? *x : Value();
        }
        case K::String: return string_method(v, name);
        case K::Array:
            if (name == "append")
                return Value::function([v](Args& a) {
                    v.arr->push_back(a.get(0, "x"));
                    return Value::none();
                });
            return Value();
        case K::Undefined: eval_error(line, "cannot read attribute '" + name + "' of an undefined value");
        default: return Value();
    }
}

Value get_item(const Value& v, const Value& key, int line) {
    if (v.is_object()) {
        const Value* x = key.is_string() ? v.find(key.s) : nullptr;
        return x ? *x : Value();
    }
    if (v.is_array() || v.is_string()) {
        if (key.kind != K::Int) {
            if (key.is_string()) return get_attr(v, key.s, line);
            eval_error(line, std::string("indices must be integers, not ") + key.type_name());
        }
        auto items = v.is_array() ? *v.arr : iterate(v, line);
        int64_t n = int64_t(items.size()), i = key.i < 0 ? key.i + n : key.i;
        if (i < 0 || i >= n) return Value();  // Jinja gives Undefined for a missing item
        return items[size_t(i)];
    }
    if (v.is_undefined()) eval_error(line, "cannot index an undefined value");
    return Value();
}

Value slice(const Value& v, const Value& start, const Value& stop, const Value& step, int line) {
    auto items = iterate(v, line);
    int64_t n = int64_t(items.size());
    int64_t st = step.is_none() ? 1 : step.i;
    if (st == 0) eval_error(line, "slice step cannot be zero");
    auto norm = [&](const Value& x, int64_t def) {
        if (x.is_none()) return def;
        int64_t i = x.i < 0 ? x.i + n : x.i;
        return st > 0 ? std::clamp<int64_t>(i, 0, n) : std::clamp<int64_t>(i, -1, n - 1);
    };
    int64_t b = norm(start, st > 0 ? 0 : n - 1), e = norm(stop, st > 0 ? n : -1);
    Array out;
    for (int64_t i = b; st > 0 ? i < e : i > e; i += st) out.push_back(items[size_t(i)]);
    if (v.is_string()) {
        std::string s;
        for (const auto& c : out) s += c.s;
        return Value::string(s);
    }
    return Value::array(std::move(out));
}

bool apply_test(const std::string& name, const Value& v, Args& args, int line) {
    Value arg = args.get(0, "value");
    if (name == "defined") return !v.is_undefined();
    if (name == "undefined") return v.is_undefined();
    if (name == "none") return v.is_none();
    if (name == "string") return v.is_string();
    if (name == "number") return v.kind == K::Int || v.kind == K::Float;
    if (name == "integer") return v.kind == K::Int;
    if (name == "float") return v.kind == K::Float;
    if (name == "boolean") return v.kind == K::Bool;
    if (name == "true") return v.kind == K::Bool && v.b;
    if (name == "false") return v.kind == K::Bool && !v.b;
    if (name == "mapping") return v.is_object();
    if (name == "iterable") return v.is_array() || v.is_object() || v.is_string();
    if (name == "sequence") return v.is_array() || v.is_object() || v.is_string();
    if (name == "callable") return v.kind == K::Function;
    if (name == "equalto" || name == "eq" || name == "==" || name == "sameas") return equal(v, arg);
    if (name == "ne" || name == "!=") return !equal(v, arg);
    if (name == "odd" || name == "even") {
        if (v.kind != K::Int) eval_error(line, "test '" + name + "' needs an integer");
        return (v.i % 2 != 0) == (name == "odd");
    }
    if (name == "divisibleby") return arg.i != 0 && v.i % arg.i == 0;
    if (name == "in") {
        if (v.is_string() && arg.is_string()) return arg.s.find(v.s) != std::string::npos;
        auto items = iterate(arg, line);
        return std::any_of(items.begin(), items.end(), [&](const Value& x) { return equal(x, v); });
    }
    if (name == "lt" || name == "gt" || name == "le" || name == "ge") {
        double a = v.as_double(), b = arg.as_double();
        return name == "lt" ? a < b : name == "gt" ? a > b : name == "le" ? a <= b : a >= b;
    }
    if (name == "lower") return v.is_string() && case_map(v.s, false) == v.s;
    if (name == "upper") return v.is_string() && case_map(v.s, true) == v.s;
    eval_error(line, "unknown test '" + name + "'");
}

}  // namespace moeinfer::jinja
