// GGUF v3 writer: metadata and tensor infos are serialized in memory, tensor data is streamed to the file.
#include <cerrno>
#include <cstring>
#include <fstream>
#include <stdexcept>

#include "formats/gguf.h"

namespace moeinfer {

namespace {

template <typename T>
void put(std::string& out, T v) {
    char b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out.append(b, sizeof(T));
}

void put_string(std::string& out, const std::string& s) {
    put<uint64_t>(out, s.size());
    out += s;
}

void put_value(std::string& out, const GgufValue& v) {
    switch (v.type) {
        case GgufType::U8:
            put<uint8_t>(out, static_cast<uint8_t>(v.bits));
            break;
        case GgufType::I8:
            put<int8_t>(out, static_cast<int8_t>(v.bits));
            break;
        case GgufType::U16:
            put<uint16_t>(out, static_cast<uint16_t>(v.bits));
            break;
        case GgufType::I16:
            put<int16_t>(out, static_cast<int16_t>(v.bits));
            break;
        case GgufType::U32:
            put<uint32_t>(out, static_cast<uint32_t>(v.bits));
            break;
        case GgufType::I32:
            put<int32_t>(out, static_cast<int32_t>(v.bits));
            break;
        case GgufType::U64:
        case GgufType::I64:
            put<uint64_t>(out, v.bits);
            break;
        case GgufType::F32:
            put<float>(out, static_cast<float>(v.real));
            break;
        case GgufType::F64:
            put<double>(out, v.real);
            break;
        case GgufType::Bool:
            put<uint8_t>(out, v.bits ? 1 : 0);
            break;
        case GgufType::String:
            put_string(out, v.str);
            break;
        case GgufType::Array:
            put<uint32_t>(out, static_cast<uint32_t>(v.elem_type));
            put<uint64_t>(out, v.items.size());
            for (const GgufValue& item : v.items) put_value(out, item);
            break;
    }
}

uint64_t align_up(uint64_t x, uint64_t a) {
    return (x + a - 1) / a * a;
}

template <typename T, typename F>
GgufValue array_of(GgufType t, const std::vector<T>& xs, F make) {
    std::vector<GgufValue> items;
    items.reserve(xs.size());
    for (const T& x : xs) items.push_back(make(x));
    return GgufValue::of_array(t, std::move(items));
}

}  // namespace

GgufWriter::GgufWriter(uint32_t alignment) : alignment_(alignment) {
    if (alignment == 0 || (alignment & (alignment - 1)) != 0)
        throw std::invalid_argument("GgufWriter: alignment " + std::to_string(alignment) + " is not a power of two");
    if (alignment != 32) add_u32("general.alignment", alignment);
}

void GgufWriter::add(std::string key, GgufValue v) {
    for (const auto& kv : kv_)
        if (kv.first == key) throw std::invalid_argument("GgufWriter: duplicate metadata key '" + key + "'");
    kv_.emplace_back(std::move(key), std::move(v));
}

void GgufWriter::add_array(std::string key, const std::vector<std::string>& v) {
    add(std::move(key), array_of(GgufType::String, v, [](const std::string& s) { return GgufValue::of_string(s); }));
}
void GgufWriter::add_array(std::string key, const std::vector<int32_t>& v) {
    add(std::move(key), array_of(GgufType::I32, v, GgufValue::of_i32));
}
void GgufWriter::add_array(std::string key, const std::vector<int64_t>& v) {
    add(std::move(key), array_of(GgufType::I64, v, GgufValue::of_i64));
}
void GgufWriter::add_array(std::string key, const std::vector<float>& v) {
    add(std::move(key), array_of(GgufType::F32, v, GgufValue::of_f32));
}

void GgufWriter::add_tensor(std::string name, DType dtype, std::vector<int64_t> shape, const void* data,
                            size_t nbytes) {
    const std::string what = "GgufWriter: tensor '" + name + "'";
    if (dtype_info(dtype).block_elems == 0) throw std::invalid_argument(what + ": unknown dtype");
    if (shape.empty() || shape.size() > 4)
        throw std::invalid_argument(what + ": " + std::to_string(shape.size()) + " dims (GGUF allows 1 to 4)");
    for (int64_t d : shape)
        if (d <= 0) throw std::invalid_argument(what + ": non-positive dimension " + std::to_string(d));
    for (const PendingTensor& t : tensors_)
        if (t.name == name) throw std::invalid_argument(what + ": duplicate tensor name");
    Tensor view;
    view.dtype = dtype;
    view.shape = shape;
    const size_t expected = view.nbytes();  // throws when the row is not a whole number of blocks
    if (nbytes != expected)
        throw std::invalid_argument(what + ": " + std::to_string(nbytes) + " bytes given, " + dtype_name(dtype) + " " +
                                    view.shape_str() + " needs " + std::to_string(expected));
    tensors_.push_back({std::move(name), dtype, std::move(shape), data, nbytes});
}

void GgufWriter::write(const std::string& path) const {
    std::string head;
    put<uint32_t>(head, 0x46554747);  // "GGUF"
    put<uint32_t>(head, 3);
    put<uint64_t>(head, tensors_.size());
    put<uint64_t>(head, kv_.size());
    for (const auto& [key, value] : kv_) {
        put_string(head, key);
        put<uint32_t>(head, static_cast<uint32_t>(value.type));
        put_value(head, value);
    }
    std::vector<uint64_t> offsets;
    uint64_t data_size = 0;
    for (const PendingTensor& t : tensors_) {
        data_size = align_up(data_size, alignment_);
        offsets.push_back(data_size);
        data_size += t.nbytes;
        put_string(head, t.name);
        put<uint32_t>(head, static_cast<uint32_t>(t.shape.size()));
        for (auto it = t.shape.rbegin(); it != t.shape.rend(); ++it) put<uint64_t>(head, static_cast<uint64_t>(*it));
        put<uint32_t>(head, static_cast<uint32_t>(t.dtype));
        put<uint64_t>(head, offsets.back());
    }
    head.resize(align_up(head.size(), alignment_), '\0');

    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write GGUF '" + path + "': " + std::strerror(errno));
    f.write(head.data(), static_cast<std::streamsize>(head.size()));
    uint64_t pos = 0;
    const std::string zeros(alignment_, '\0');
    for (size_t i = 0; i < tensors_.size(); ++i) {
        f.write(zeros.data(), static_cast<std::streamsize>(offsets[i] - pos));
        f.write(static_cast<const char*>(tensors_[i].data), static_cast<std::streamsize>(tensors_[i].nbytes));
        pos = offsets[i] + tensors_[i].nbytes;
    }
    f.flush();
    if (!f) throw std::runtime_error("cannot write GGUF '" + path + "': write failed");
}

}  // namespace moeinfer
