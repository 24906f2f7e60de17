// Minimal JSON value, parser and writer: config.json, tokenizer.json, safetensors headers, CLI/HTTP I/O.
// Objects keep insertion order (chat templates and `tojson` must reproduce key order).
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <stdexcept>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moeinfer::json {

struct JsonError : std::runtime_error {
    using std::runtime_error::runtime_error;
};

class Value {
public:
    enum class Type : uint8_t { Null, Bool, Number, String, Array, Object };
    using Array = std::vector<Value>;
    using Object = std::vector<std::pair<std::string, Value>>;

    Value() = default;
    Value(std::nullptr_t) {}
    Value(bool b) : type_(Type::Bool), bool_(b) {}
    Value(int v) : Value(static_cast<int64_t>(v)) {}
    Value(int64_t v) : type_(Type::Number), is_int_(true), int_(v), num_(static_cast<double>(v)) {}
    Value(uint64_t v) : Value(static_cast<int64_t>(v)) {}
    Value(double v) : type_(Type::Number), num_(v) {}
    Value(const char* s) : type_(Type::String), str_(s) {}
    Value(std::string s) : type_(Type::String), str_(std::move(s)) {}
    Value(std::string_view s) : type_(Type::String), str_(s) {}
    Value(Array a) : type_(Type::Array), arr_(std::move(a)) {}
    Value(Object o) : type_(Type::Object), obj_(std::move(o)) {}
    static Value array() { return Value(Array{}); }
    static Value object() { return Value(Object{}); }

    Type type() const { return type_; }
    bool is_null() const { return type_ == Type::Null; }
    bool is_bool() const { return type_ == Type::Bool; }
    bool is_number() const { return type_ == Type::Number; }
    bool is_int() const { return type_ == Type::Number && is_int_; }  // written without '.', 'e'
    bool is_string() const { return type_ == Type::String; }
    bool is_array() const { return type_ == Type::Array; }
    bool is_object() const { return type_ == Type::Object; }

    // Typed accessors throw JsonError naming the expected and actual type.
    bool as_bool() const;
    double as_number() const;
    int64_t as_int() const;  // also accepts a float with an integral value
    const std::string& as_string() const;
    const Array& as_array() const;
    Array& as_array();
    const Object& as_object() const;
    Object& as_object();

    size_t size() const;  // array/object element count; 0 otherwise
    const Value& operator[](size_t i) const;  // array element; throws when out of range
    const Value* find(std::string_view key) const;  // nullptr when absent or not an object
    const Value& at(std::string_view key) const;  // throws JsonError("missing key 'k'")
    bool contains(std::string_view key) const { return find(key) != nullptr; }
    // Convenience: value at key converted, or `def` when the key is absent or null.
    double get_number(std::string_view key, double def) const;
    int64_t get_int(std::string_view key, int64_t def) const;
    bool get_bool(std::string_view key, bool def) const;
    std::string get_string(std::string_view key, const std::string& def) const;

    void push_back(Value v);  // array append (a null value becomes an array)
    Value& set(std::string_view key, Value v);  // object insert-or-replace (null becomes object)

    std::string dump() const;  // compact JSON; non-ASCII written as UTF-8, control chars escaped
    static const char* type_name(Type t);

private:
    Type type_ = Type::Null;
    bool bool_ = false;
    bool is_int_ = false;
    int64_t int_ = 0;
    double num_ = 0;
    std::string str_;
    Array arr_;
    Object obj_;
};

// Parses one JSON document (RFC 8259; surrogate pairs in \u escapes are combined). Errors name line:column.
Value parse(std::string_view text);
// Reads and parses a file; errors name the path.
Value parse_file(const std::string& path);
// `s` as a JSON string literal, quotes included.
std::string quote(std::string_view s);
// Shortest round-trip text for a double, as JSON writes it (integral values keep a ".0" only if keep_point).
std::string format_number(double v, bool keep_point = false);

}  // namespace moeinfer::json
