// JSON parser and writer (see json.h). Recursive descent with a depth limit so hostile input cannot overflow the stack.
#include "core/json.h"

#include <charconv>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>

namespace moeinfer::json {

const char* Value::type_name(Type t) {
    switch (t) {
        case Type::Null: return "null";
        case Type::Bool: return "bool";
        case Type::Number: return "number";
        case Type::String: return "string";
        case Type::Array: return "array";
        case Type::Object: return "object";
    }
    return "?";
}

static JsonError type_error(const char* want, Value::Type got) {
    return JsonError(std::string("json: expected ") + want + ", got " + Value::type_name(got));
}

bool Value::as_bool() const {
    if (type_ != Type::Bool) throw type_error("bool", type_);
    return bool_;
}
double Value::as_number() const {
    if (type_ != Type::Number) throw type_error("number", type_);
    return num_;
}
int64_t Value::as_int() const {
    if (type_ != Type::Number) throw type_error("integer", type_);
    if (is_int_) return int_;
    if (std::floor(num_) != num_ || std::fabs(num_) > 9.0e18) throw JsonError("json: expected integer, got " + format_number(num_));
    return static_cast<int64_t>(num_);
}
const std::string& Value::as_string() const {
    if (type_ != Type::String) throw type_error("string", type_);
    return str_;
}
const Value::Array& Value::as_array() const {
    if (type_ != Type::Array) throw type_error("array", type_);
    return arr_;
}
Value::Array& Value::as_array() {
    if (type_ != Type::Array) throw type_error("array", type_);
    return arr_;
}
const Value::Object& Value::as_object() const {
    if (type_ != Type::Object) throw type_error("object", type_);
    return obj_;
}
Value::Object& Value::as_object() {
    if (type_ != Type::Object) throw type_error("object", type_);
    return obj_;
}

size_t Value::size() const {
    if (type_ == Type::Array) return arr_.size();
    if (type_ == Type::Object) return obj_.size();
    return 0;
}
const Value& Value::operator[](size_t i) const {
    const Array& a = as_array();
    if (i >= a.size()) throw JsonError("json: index " + std::to_string(i) + " out of range (size " + std::to_string(a.size()) + ")");
    return a[i];
}
const Value* Value::find(std::string_view key) const {
    if (type_ != Type::Object) return nullptr;
    for (const auto& [k, v] : obj_)
        if (k == key) return &v;
    return nullptr;
}
const Value& Value::at(std::string_view key) const {
    if (type_ != Type::Object) throw type_error("object", type_);
    const Value* v = find(key);
    if (!v) throw JsonError("json: missing key '" + std::string(key) + "'");
    return *v;
}
double Value::get_number(std::string_view key, double def) const {
    const Value* v = find(key);
    if (!v || v->is_null()) return def;
    try {
        return v->as_number();
    } catch (const JsonError& e) {
        throw JsonError("json: key '" + std::string(key) + "': " + e.what());
    }
}
int64_t Value::get_int(std::string_view key, int64_t def) const {
    const Value* v = find(key);
    if (!v || v->is_null()) return def;
    try {
        return v->as_int();
    } catch (const JsonError& e) {
        throw JsonError("json: key '" + std::string(key) + "': " + e.what());
    }
}
bool Value::get_bool(std::string_view key, bool def) const {
    const Value* v = find(key);
    if (!v || v->is_null()) return def;
    try {
        return v->as_bool();
    } catch (const JsonError& e) {
        throw JsonError("json: key '" + std::string(key) + "': " + e.what());
    }
}
std::string Value::get_string(std::string_view key, const std::string& def) const {
    const Value* v = find(key);
    if (!v || v->is_null()) return def;
    try {
        return v->as_string();
    } catch (const JsonError& e) {
        throw JsonError("json: key '" + std::string(key) + "': " + e.what());
    }
}

void Value::push_back(Value v) {
    if (type_ == Type::Null) type_ = Type::Array;
    as_array().push_back(std::move(v));
}
Value& Value::set(std::string_view key, Value v) {
    if (type_ == Type::Null) type_ = Type::Object;
    Object& o = as_object();
    for (auto& [k, old] : o)
        if (k == key) return old = std::move(v);
    o.emplace_back(std::string(key), std::move(v));
    return o.back().second;
}

std::string format_number(double v, bool keep_point) {
    if (!std::isfinite(v)) return "null";  // JSON has no NaN/Inf
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, v);
    std::string s(buf, res.ptr);
    if (keep_point && s.find_first_of(".eEn") == std::string::npos) s += ".0";
    return s;
}

std::string quote(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
            case '"': out += "\\\""; break;
            case '\\': out += "\\\\"; break;
            case '\n': out += "\\n"; break;
            case '\r': out += "\\r"; break;
            case '\t': out += "\\t"; break;
            case '\b': out += "\\b"; break;
            case '\f': out += "\\f"; break;
            default:
                if (c < 0x20) {
                    char buf[8];
                    std::snprintf(buf, sizeof buf, "\\u%04x", c);
                    out += buf;
                } else {
                    out += static_cast<char>(c);
                }
        }
    }
    out += '"';
    return out;
}

static void dump_to(const Value& v, std::string& out) {
    switch (v.type()) {
        case Value::Type::Null: out += "null"; break;
        case Value::Type::Bool: out += v.as_bool() ? "true" : "false"; break;
        case Value::Type::Number:
            out += v.is_int() ? std::to_string(v.as_int()) : format_number(v.as_number());
            break;
        case Value::Type::String: out += quote(v.as_string()); break;
        case Value::Type::Array: {
            out += '[';
            bool first = true;
            for (const Value& e : v.as_array()) {
                if (!first) out += ',';
                first = false;
                dump_to(e, out);
            }
            out += ']';
            break;
        }
        case Value::Type::Object: {
            out += '{';
            bool first = true;
            for (const auto& [k, e] : v.as_object()) {
                if (!first) out += ',';
                first = false;
                out += quote(k);
                out += ':';
                dump_to(e, out);
            }
            out += '}';
            break;
        }
    }
}

std::string Value::dump() const {
    std::string out;
    dump_to(*this, out);
    return out;
}

namespace {

constexpr int kMaxDepth = 512;

class Parser {
public:
    explicit Parser(std::string_view s) : s_(s) {}

    Value document() {
        Value v = value(0);
        skip_ws();
        if (pos_ != s_.size()) fail("unexpected trailing characters");
        return v;
    }

private:
    std::string_view s_;
    size_t pos_ = 0;

    [[noreturn]] void fail(const std::string& msg) const {
        size_t line = 1, col = 1;
        for (size_t i = 0; i < pos_ && i < s_.size(); ++i) {
            if (s_[i] == '\n') {
                ++line;
                col = 1;
            } else {
                ++col;
            }
        }
        throw JsonError("json: " + msg + " at line " + std::to_string(line) + " column " + std::to_string(col));
    }

    void skip_ws() {
        while (pos_ < s_.size() && (s_[pos_] == ' ' || s_[pos_] == '\n' || s_[pos_] == '\r' || s_[pos_] == '\t')) ++pos_;
    }

    char peek() {
        skip_ws();
        if (pos_ >= s_.size()) fail("unexpected end of input");
        return s_[pos_];
    }

    void expect_word(std::string_view w) {
        if (s_.substr(pos_, w.size()) != w) fail("invalid literal");
        pos_ += w.size();
    }

    Value value(int depth) {
        if (depth > kMaxDepth) fail("nesting deeper than " + std::to_string(kMaxDepth));
        char c = peek();
        switch (c) {
            case '{': return object(depth);
            case '[': return array(depth);
            case '"': return Value(string());
            case 't': expect_word("true"); return Value(true);
            case 'f': expect_word("false"); return Value(false);
            case 'n': expect_word("null"); return Value();
            default:
                if (c == '-' || (c >= '0' && c <= '9')) return number();
                fail(std::string("unexpected character '") + c + "'");
        }
    }

    Value object(int depth) {
        ++pos_;
        Value::Object obj;
        if (peek() == '}') {
            ++pos_;
            return Value(std::move(obj));
        }
        for (;;) {
            if (peek() != '"') fail("expected object key string");
            std::string key = string();
            if (peek() != ':') fail("expected ':' after object key");
            ++pos_;
            obj.emplace_back(std::move(key), value(depth + 1));
            char c = peek();
            ++pos_;
            if (c == '}') break;
            if (c != ',') fail("expected ',' or '}' in object");
        }
        return Value(std::move(obj));
    }

    Value array(int depth) {
        ++pos_;
        Value::Array arr;
        if (peek() == ']') {
            ++pos_;
            return Value(std::move(arr));
        }
        for (;;) {
            arr.push_back(value(depth + 1));
            char c = peek();
            ++pos_;
            if (c == ']') break;
            if (c != ',') fail("expected ',' or ']' in array");
        }
        return Value(std::move(arr));
    }

    unsigned hex4() {
        if (pos_ + 4 > s_.size()) fail("truncated \\u escape");
        unsigned v = 0;
        for (int i = 0; i < 4; ++i) {
            char c = s_[pos_++];
            v <<= 4;
            if (c >= '0' && c <= '9') v |= c - '0';
            else if (c >= 'a' && c <= 'f') v |= c - 'a' + 10;
            else if (c >= 'A' && c <= 'F') v |= c - 'A' + 10;
            else fail("invalid hex digit in \\u escape");
        }
        return v;
    }

    static void append_utf8(std::string& out, unsigned cp) {
        if (cp < 0x80) {
            out += static_cast<char>(cp);
        } else if (cp < 0x800) {
            out += static_cast<char>(0xC0 | (cp >> 6));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else if (cp < 0x10000) {
            out += static_cast<char>(0xE0 | (cp >> 12));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        } else {
            out += static_cast<char>(0xF0 | (cp >> 18));
            out += static_cast<char>(0x80 | ((cp >> 12) & 0x3F));
            out += static_cast<char>(0x80 | ((cp >> 6) & 0x3F));
            out += static_cast<char>(0x80 | (cp & 0x3F));
        }
    }

    std::string string() {
        ++pos_;  // opening quote
        std::string out;
        for (;;) {
            if (pos_ >= s_.size()) fail("unterminated string");
            char c = s_[pos_++];
            if (c == '"') break;
            if (static_cast<unsigned char>(c) < 0x20) fail("control character in string");
            if (c != '\\') {
                out += c;
                continue;
            }
            if (pos_ >= s_.size()) fail("unterminated escape");
            char e = s_[pos_++];
            switch (e) {
                case '"': out += '"'; break;
                case '\\': out += '\\'; break;
                case '/': out += '/'; break;
                case 'b': out += '\b'; break;
                case 'f': out += '\f'; break;
                case 'n': out += '\n'; break;
                case 'r': out += '\r'; break;
                case 't': out += '\t'; break;
                case 'u': {
                    unsigned cp = hex4();
                    if (cp >= 0xD800 && cp < 0xDC00 && s_.substr(pos_, 2) == "\\u") {
                        size_t save = pos_;
                        pos_ += 2;
                        unsigned lo = hex4();
                        if (lo >= 0xDC00 && lo < 0xE000) cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                        else pos_ = save;  // lone high surrogate: keep as is, parse the next escape separately
                    }
                    append_utf8(out, cp);
                    break;
                }
                default: fail(std::string("invalid escape '\\") + e + "'");
            }
        }
        return out;
    }

    Value number() {
        size_t start = pos_;
        bool integral = true;
        if (s_[pos_] == '-') ++pos_;
        auto digits = [&] {
            size_t d = pos_;
            while (pos_ < s_.size() && s_[pos_] >= '0' && s_[pos_] <= '9') ++pos_;
            if (pos_ == d) fail("invalid number");
        };
        digits();
        if (pos_ < s_.size() && s_[pos_] == '.') {
            integral = false;
            ++pos_;
            digits();
        }
        if (pos_ < s_.size() && (s_[pos_] == 'e' || s_[pos_] == 'E')) {
            integral = false;
            ++pos_;
            if (pos_ < s_.size() && (s_[pos_] == '+' || s_[pos_] == '-')) ++pos_;
            digits();
        }
        const char* b = s_.data() + start;
        const char* e = s_.data() + pos_;
        if (integral) {
            int64_t iv = 0;
            auto r = std::from_chars(b, e, iv);
            if (r.ec == std::errc() && r.ptr == e) return Value(iv);
        }
        double dv = 0;
        auto r = std::from_chars(b, e, dv);
        if (r.ec != std::errc() && r.ec != std::errc::result_out_of_range) fail("invalid number");
        return Value(dv);
    }
};

}  // namespace

Value parse(std::string_view text) { return Parser(text).document(); }

Value parse_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) throw JsonError("cannot open JSON file '" + path + "'");
    std::stringstream ss;
    ss << f.rdbuf();
    try {
        return parse(ss.str());
    } catch (const JsonError& e) {
        throw JsonError(path + ": " + e.what());
    }
}

}  // namespace moeinfer::json
