// Python-compatible printing and comparison of interpreter values.
#include "tokenizer/jinja_value.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <stdexcept>

namespace moeinfer::jinja {

Value Value::from_json(const json::Value& j) {
    switch (j.type()) {
        case json::Value::Type::Null: return none();
        case json::Value::Type::Bool: return boolean(j.as_bool());
        case json::Value::Type::Number: return j.is_int() ? integer(j.as_int()) : number(j.as_number());
        case json::Value::Type::String: return string(j.as_string());
        case json::Value::Type::Array: {
            Array a;
            for (const auto& x : j.as_array()) a.push_back(from_json(x));
            return array(std::move(a));
        }
        case json::Value::Type::Object: {
            Object o;
            for (const auto& [k, x] : j.as_object()) o.emplace_back(k, from_json(x));
            return object(std::move(o));
        }
    }
    return Value();
}

bool Value::truthy() const {
    switch (kind) {
        case Kind::Undefined:
        case Kind::None: return false;
        case Kind::Bool: return b;
        case Kind::Int: return i != 0;
        case Kind::Float: return f != 0;
        case Kind::String: return !s.empty();
        case Kind::Array: return !arr->empty();
        case Kind::Object: return !obj->empty() || is_namespace;
        case Kind::Function: return true;
    }
    return false;
}

const Value* Value::find(const std::string& key) const {
    if (kind != Kind::Object) return nullptr;
    for (const auto& [k, v] : *obj)
        if (k == key) return &v;
    return nullptr;
}

void Value::set(const std::string& key, Value v) {
    for (auto& [k, x] : *obj)
        if (k == key) {
            x = std::move(v);
            return;
        }
    obj->emplace_back(key, std::move(v));
}

const char* Value::type_name() const {
    switch (kind) {
        case Kind::Undefined: return "Undefined";
        case Kind::None: return "NoneType";
        case Kind::Bool: return "bool";
        case Kind::Int: return "int";
        case Kind::Float: return "float";
        case Kind::String: return "str";
        case Kind::Array: return "list";
        case Kind::Object: return is_namespace ? "Namespace" : "dict";
        case Kind::Function: return "function";
    }
    return "?";
}

// Python's repr(float): shortest text that reads back the same, with ".0" for integral values.
static std::string float_repr(double v) {
    if (std::isnan(v)) return "nan";
    if (std::isinf(v)) return v > 0 ? "inf" : "-inf";
    char buf[40];
    for (int prec = 1; prec <= 17; ++prec) {
        snprintf(buf, sizeof buf, "%.*g", prec, v);
        if (std::strtod(buf, nullptr) == v) break;
    }
    std::string s = buf;
    size_t e = s.find('e');
    if (e != std::string::npos) {
        // Python writes 1e+16 / 1e-05: at least two exponent digits, '+' kept.
        std::string mant = s.substr(0, e), ex = s.substr(e + 1);
        char sign = ex[0] == '-' ? '-' : '+';
        if (ex[0] == '+' || ex[0] == '-') ex = ex.substr(1);
        while (ex.size() > 2 && ex[0] == '0') ex.erase(0, 1);
        if (ex.size() < 2) ex = "0" + ex;
        int exp = std::stoi(ex) * (sign == '-' ? -1 : 1);
        if (exp >= -4 && exp < 16) {
            snprintf(buf, sizeof buf, "%.17f", v);  // rare: fall back to fixed notation within Python's range
            s = buf;
            while (!s.empty() && s.back() == '0') s.pop_back();
            if (!s.empty() && s.back() == '.') s += '0';
            return s;
        }
        return mant + "e" + sign + ex;
    }
    if (s.find('.') == std::string::npos) s += ".0";
    return s;
}

static std::string py_quote(const std::string& s) {
    char q = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
    std::string out(1, q);
    for (unsigned char c : s) {
        if (c == '\\') out += "\\\\";
        else if (c == q) out += std::string("\\") + char(q);
        else if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else if (c == '\t') out += "\\t";
        else if (c < 0x20 || c == 0x7F) {
            char buf[8];
            snprintf(buf, sizeof buf, "\\x%02x", c);
            out += buf;
        } else out += char(c);
    }
    return out + char(q);
}

std::string Value::str() const {
    switch (kind) {
        case Kind::Undefined: return "";
        case Kind::String: return s;
        default: return repr();
    }
}

std::string Value::repr() const {
    switch (kind) {
        case Kind::Undefined: return "";
        case Kind::None: return "None";
        case Kind::Bool: return b ? "True" : "False";
        case Kind::Int: return std::to_string(i);
        case Kind::Float: return float_repr(f);
        case Kind::String: return py_quote(s);
        case Kind::Array: {
            std::string out = is_tuple ? "(" : "[";
            for (size_t k = 0; k < arr->size(); ++k) out += (k ? ", " : "") + (*arr)[k].repr();
            if (is_tuple && arr->size() == 1) out += ",";
            return out + (is_tuple ? ")" : "]");
        }
        case Kind::Object: {
            std::string out = is_namespace ? "<Namespace {" : "{";
            bool first = true;
            for (const auto& [k, v] : *obj) {
                out += (first ? "" : ", ") + py_quote(k) + ": " + v.repr();
                first = false;
            }
            return out + (is_namespace ? "}>" : "}");
        }
        case Kind::Function: return "<function>";
    }
    return "";
}

Value Args::get(size_t index, const std::string& name, Value def) const {
    for (const auto& [k, v] : kw)
        if (k == name) return v;
    if (index < pos.size()) return pos[index];
    return def;
}

bool equal(const Value& a, const Value& b) {
    using K = Value::Kind;
    if (a.is_number() && b.is_number()) {
        if (a.kind == K::Float || b.kind == K::Float) return a.as_double() == b.as_double();
        return (a.kind == K::Bool ? int64_t(a.b) : a.i) == (b.kind == K::Bool ? int64_t(b.b) : b.i);
    }
    if (a.kind != b.kind) return false;
    switch (a.kind) {
        case K::Undefined:
        case K::None: return true;
        case K::String: return a.s == b.s;
        case K::Array:
            if (a.arr->size() != b.arr->size()) return false;
            for (size_t k = 0; k < a.arr->size(); ++k)
                if (!equal((*a.arr)[k], (*b.arr)[k])) return false;
            return true;
        case K::Object:
            if (a.obj->size() != b.obj->size()) return false;
            for (const auto& [k, v] : *a.obj) {
                const Value* o = b.find(k);
                if (!o || !equal(v, *o)) return false;
            }
            return true;
        case K::Function: return a.fn == b.fn;
        default: return false;
    }
}

static void dump(const Value& v, int indent, int depth, const std::string& item_sep, const std::string& key_sep,
                 bool sort_keys, std::string& out) {
    using K = Value::Kind;
    auto newline = [&](int d) {
        if (indent >= 0) out += "\n" + std::string(size_t(indent) * d, ' ');
    };
    switch (v.kind) {
        case K::None: out += "null"; return;
        case K::Bool: out += v.b ? "true" : "false"; return;
        case K::Int: out += std::to_string(v.i); return;
        case K::Float:
            out += std::isnan(v.f) ? "NaN" : std::isinf(v.f) ? (v.f > 0 ? "Infinity" : "-Infinity") : float_repr(v.f);
            return;
        case K::String: out += json::quote(v.s); return;
        case K::Array:
            if (v.arr->empty()) {
                out += "[]";
                return;
            }
            out += "[";
            for (size_t k = 0; k < v.arr->size(); ++k) {
                if (k) out += item_sep;
                newline(depth + 1);
                dump((*v.arr)[k], indent, depth + 1, item_sep, key_sep, sort_keys, out);
            }
            newline(depth);
            out += "]";
            return;
        case K::Object: {
            if (v.obj->empty()) {
                out += "{}";
                return;
            }
            std::vector<const std::pair<std::string, Value>*> items;
            for (const auto& kv : *v.obj) items.push_back(&kv);
            if (sort_keys) std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
            out += "{";
            for (size_t k = 0; k < items.size(); ++k) {
                if (k) out += item_sep;
                newline(depth + 1);
                out += json::quote(items[k]->first) + key_sep;
                dump(items[k]->second, indent, depth + 1, item_sep, key_sep, sort_keys, out);
            }
            newline(depth);
            out += "}";
            return;
        }
        default: throw std::runtime_error(std::string("Object of type ") + v.type_name() + " is not JSON serializable");
    }
}

std::string to_json(const Value& v, int indent, const std::string& item_sep, const std::string& key_sep, bool sort_keys) {
    std::string out;
    dump(v, indent, 0, item_sep, key_sep, sort_keys, out);
    return out;
}

}  // namespace moeinfer::jinja
