// Values of the Jinja-subset interpreter: Python-like semantics (None/bool/int/float/str/list/dict, Undefined,
// callables), conversion from JSON, Python str()/repr() and json.dumps-style output.
#pragma once
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "core/json.h"

namespace moeinfer::jinja {

struct Value;
using Array = std::vector<Value>;
using Object = std::vector<std::pair<std::string, Value>>;  // insertion-ordered, like Python dicts
struct Args;
using Function = std::function<Value(Args&)>;

struct Value {
    enum class Kind : uint8_t { Undefined, None, Bool, Int, Float, String, Array, Object, Function };
    Kind kind = Kind::Undefined;
    bool b = false;
    int64_t i = 0;
    double f = 0;
    std::string s;
    std::shared_ptr<Array> arr;    // shared: lists and dicts are references, as in Python
    std::shared_ptr<Object> obj;
    std::shared_ptr<Function> fn;
    bool is_namespace = false;     // namespace() objects accept `set ns.attr = ...`
    bool is_tuple = false;         // an Array that prints as a Python tuple (dict items, tuple literals)

    Value() = default;
    static Value none() { Value v; v.kind = Kind::None; return v; }
    static Value boolean(bool x) { Value v; v.kind = Kind::Bool; v.b = x; return v; }
    static Value integer(int64_t x) { Value v; v.kind = Kind::Int; v.i = x; return v; }
    static Value number(double x) { Value v; v.kind = Kind::Float; v.f = x; return v; }
    static Value string(std::string x) { Value v; v.kind = Kind::String; v.s = std::move(x); return v; }
    static Value array(Array a = {}) { Value v; v.kind = Kind::Array; v.arr = std::make_shared<Array>(std::move(a)); return v; }
    static Value object(Object o = {}) { Value v; v.kind = Kind::Object; v.obj = std::make_shared<Object>(std::move(o)); return v; }
    static Value tuple(Array a) { Value v = array(std::move(a)); v.is_tuple = true; return v; }
    static Value function(Function f) { Value v; v.kind = Kind::Function; v.fn = std::make_shared<Function>(std::move(f)); return v; }
    static Value from_json(const json::Value& j);

    bool is_undefined() const { return kind == Kind::Undefined; }
    bool is_none() const { return kind == Kind::None; }
    bool is_string() const { return kind == Kind::String; }
    bool is_number() const { return kind == Kind::Int || kind == Kind::Float || kind == Kind::Bool; }
    bool is_array() const { return kind == Kind::Array; }
    bool is_object() const { return kind == Kind::Object; }
    double as_double() const { return kind == Kind::Float ? f : kind == Kind::Bool ? b : double(i); }

    bool truthy() const;
    const Value* find(const std::string& key) const;  // dict lookup; nullptr when absent
    void set(const std::string& key, Value v);        // dict insert-or-replace
    std::string str() const;   // Python str()
    std::string repr() const;  // Python repr()
    const char* type_name() const;  // Python's name for the type, for error messages
};

// Positional and keyword arguments of a call.
struct Args {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
    // The argument at `index` or named `name`, or `def` when neither is given.
    Value get(size_t index, const std::string& name, Value def = Value()) const;
};

bool equal(const Value& a, const Value& b);
// Python's json.dumps(v, ensure_ascii=False, indent=indent (<0: none), separators, sort_keys).
std::string to_json(const Value& v, int indent, const std::string& item_sep, const std::string& key_sep, bool sort_keys);

}  // namespace moeinfer::jinja
