// GgufValue: typed access and construction of GGUF metadata values.
#include <limits>
#include <stdexcept>

#include "formats/gguf.h"

namespace moeinfer {

namespace {

[[noreturn]] void type_error(GgufType actual, const char* expected) {
    throw std::runtime_error(std::string("value is ") + gguf_type_name(actual) + ", expected " + expected);
}

bool is_signed_int(GgufType t) {
    return t == GgufType::I8 || t == GgufType::I16 || t == GgufType::I32 || t == GgufType::I64;
}

GgufValue make_int(GgufType t, uint64_t bits) {
    GgufValue v;
    v.type = t;
    v.bits = bits;
    return v;
}

GgufValue make_float(GgufType t, double real) {
    GgufValue v;
    v.type = t;
    v.real = real;
    return v;
}

}  // namespace

const char* gguf_type_name(GgufType t) {
    switch (t) {
        case GgufType::U8:
            return "uint8";
        case GgufType::I8:
            return "int8";
        case GgufType::U16:
            return "uint16";
        case GgufType::I16:
            return "int16";
        case GgufType::U32:
            return "uint32";
        case GgufType::I32:
            return "int32";
        case GgufType::F32:
            return "float32";
        case GgufType::Bool:
            return "bool";
        case GgufType::String:
            return "string";
        case GgufType::Array:
            return "array";
        case GgufType::U64:
            return "uint64";
        case GgufType::I64:
            return "int64";
        case GgufType::F64:
            return "float64";
    }
    return "unknown";
}

bool GgufValue::is_int() const {
    switch (type) {
        case GgufType::U8:
        case GgufType::I8:
        case GgufType::U16:
        case GgufType::I16:
        case GgufType::U32:
        case GgufType::I32:
        case GgufType::U64:
        case GgufType::I64:
            return true;
        default:
            return false;
    }
}

bool GgufValue::is_float() const {
    return type == GgufType::F32 || type == GgufType::F64;
}

uint64_t GgufValue::as_u64() const {
    if (!is_int()) type_error(type, "an integer");
    if (is_signed_int(type) && static_cast<int64_t>(bits) < 0)
        throw std::runtime_error("value " + std::to_string(static_cast<int64_t>(bits)) + " is negative, expected >= 0");
    return bits;
}

int64_t GgufValue::as_i64() const {
    if (!is_int()) type_error(type, "an integer");
    if (!is_signed_int(type) && bits > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
        throw std::runtime_error("value " + std::to_string(bits) + " does not fit in int64");
    return static_cast<int64_t>(bits);
}

double GgufValue::as_f64() const {
    if (is_float()) return real;
    if (is_int())
        return is_signed_int(type) ? static_cast<double>(static_cast<int64_t>(bits)) : static_cast<double>(bits);
    type_error(type, "a number");
}

bool GgufValue::as_bool() const {
    if (type != GgufType::Bool) type_error(type, "bool");
    return bits != 0;
}

const std::string& GgufValue::as_string() const {
    if (type != GgufType::String) type_error(type, "string");
    return str;
}

const std::vector<GgufValue>& GgufValue::array() const {
    if (type != GgufType::Array) type_error(type, "array");
    return items;
}

std::vector<std::string> GgufValue::string_array() const {
    if (type != GgufType::Array || elem_type != GgufType::String) {
        if (type != GgufType::Array) type_error(type, "array of string");
        type_error(elem_type, "array of string (elements)");
    }
    std::vector<std::string> out;
    out.reserve(items.size());
    for (const GgufValue& v : items) out.push_back(v.str);
    return out;
}

std::vector<int64_t> GgufValue::int_array() const {
    std::vector<int64_t> out;
    out.reserve(array().size());
    for (const GgufValue& v : items) out.push_back(v.as_i64());
    return out;
}

std::vector<float> GgufValue::float_array() const {
    std::vector<float> out;
    out.reserve(array().size());
    for (const GgufValue& v : items) out.push_back(static_cast<float>(v.as_f64()));
    return out;
}

GgufValue GgufValue::of_u8(uint8_t v) {
    return make_int(GgufType::U8, v);
}
GgufValue GgufValue::of_i8(int8_t v) {
    return make_int(GgufType::I8, static_cast<uint64_t>(static_cast<int64_t>(v)));
}
GgufValue GgufValue::of_u16(uint16_t v) {
    return make_int(GgufType::U16, v);
}
GgufValue GgufValue::of_i16(int16_t v) {
    return make_int(GgufType::I16, static_cast<uint64_t>(static_cast<int64_t>(v)));
}
GgufValue GgufValue::of_u32(uint32_t v) {
    return make_int(GgufType::U32, v);
}
GgufValue GgufValue::of_i32(int32_t v) {
    return make_int(GgufType::I32, static_cast<uint64_t>(static_cast<int64_t>(v)));
}
GgufValue GgufValue::of_u64(uint64_t v) {
    return make_int(GgufType::U64, v);
}
GgufValue GgufValue::of_i64(int64_t v) {
    return make_int(GgufType::I64, static_cast<uint64_t>(v));
}
GgufValue GgufValue::of_f32(float v) {
    return make_float(GgufType::F32, v);
}
GgufValue GgufValue::of_f64(double v) {
    return make_float(GgufType::F64, v);
}
GgufValue GgufValue::of_bool(bool v) {
    return make_int(GgufType::Bool, v ? 1 : 0);
}

GgufValue GgufValue::of_string(std::string s) {
    GgufValue v;
    v.type = GgufType::String;
    v.str = std::move(s);
    return v;
}

GgufValue GgufValue::of_array(GgufType elem_type, std::vector<GgufValue> items) {
    for (const GgufValue& item : items)
        if (item.type != elem_type)
            throw std::invalid_argument(std::string("GGUF array of ") + gguf_type_name(elem_type) +
                                        " has an element of type " + gguf_type_name(item.type));
    GgufValue v;
    v.type = GgufType::Array;
    v.elem_type = elem_type;
    v.items = std::move(items);
    return v;
}

}  // namespace moeinfer
