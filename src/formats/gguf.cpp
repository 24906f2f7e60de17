// GGUF reader: parses header, metadata and tensor infos with every read bounds-checked against the file,
// since model files come from the internet. Tensor data is not copied; Tensor.data points into the mapping.
#include "formats/gguf.h"

#include <cstring>
#include <limits>
#include <stdexcept>

namespace moeinfer {

namespace {

constexpr uint32_t kMagic = 0x46554747;  // "GGUF" read as a little-endian u32
constexpr int kMaxDims = 4;
constexpr int kMaxArrayDepth = 8;  // nesting is legal but shallow in practice; a bound keeps recursion finite

// Smallest encoded size of one element, so a count can be checked against the bytes left before allocating.
uint64_t min_encoded_size(GgufType t) {
    switch (t) {
        case GgufType::U8:
        case GgufType::I8:
        case GgufType::Bool:
            return 1;
        case GgufType::U16:
        case GgufType::I16:
            return 2;
        case GgufType::U32:
        case GgufType::I32:
        case GgufType::F32:
            return 4;
        case GgufType::U64:
        case GgufType::I64:
        case GgufType::F64:
            return 8;
        case GgufType::String:
            return 8;  // u64 length
        case GgufType::Array:
            return 12;  // u32 type + u64 count
    }
    return 1;
}

bool valid_type(uint32_t t) {
    return t <= static_cast<uint32_t>(GgufType::F64);
}

}  // namespace

// Stateful cursor over the mapped bytes; all parse errors carry the path and the byte offset.
class GgufParser {
public:
    explicit GgufParser(GgufFile& out) : out_(out), data_(out.file_->data()), size_(out.file_->size()) {}

    void parse() {
        const uint32_t magic = read_u32("magic");
        if (magic != kMagic) fail("bad magic (not a GGUF file)", 0);
        out_.version_ = read_u32("version");
        if (out_.version_ != 2 && out_.version_ != 3)
            fail("unsupported GGUF version " + std::to_string(out_.version_) + " (supported: 2, 3)", 4);
        const uint64_t n_tensors = read_u64("tensor count");
        const uint64_t n_kv = read_u64("metadata count");
        // Each entry needs at least a u64 length and a type, so counts beyond the file size are lies.
        check_count(n_kv, 8 + 4 + 1, "metadata count");
        for (uint64_t i = 0; i < n_kv; ++i) read_kv(i);
        read_alignment();
        check_count(n_tensors, 8 + 4 + 8 + 4 + 8, "tensor count");
        out_.tensors_.reserve(n_tensors);
        for (uint64_t i = 0; i < n_tensors; ++i) read_tensor_info(i);
        out_.data_offset_ = align_up(pos_, out_.alignment_);
        place_tensors();
    }

private:
    [[noreturn]] void fail(const std::string& what, uint64_t at) const {
        throw std::runtime_error(out_.where() + ": " + what + " (at byte " + std::to_string(at) + ")");
    }

    void need(uint64_t n, const std::string& what) const {
        if (n > size_ - pos_)
            fail("truncated file while reading " + what + ": needs " + std::to_string(n) + " bytes, " +
                     std::to_string(size_ - pos_) + " left of " + std::to_string(size_),
                 pos_);
    }

    void check_count(uint64_t count, uint64_t min_each, const std::string& what) const {
        if (count > (size_ - pos_) / min_each)
            fail(
                what + " " + std::to_string(count) + " is impossible for a file of " + std::to_string(size_) + " bytes",
                pos_);
    }

    template <typename T>
    T read_raw(const std::string& what) {
        need(sizeof(T), what);
        T v;
        std::memcpy(&v, data_ + pos_, sizeof(T));
        pos_ += sizeof(T);
        return v;
    }
    uint32_t read_u32(const std::string& what) { return read_raw<uint32_t>(what); }
    uint64_t read_u64(const std::string& what) { return read_raw<uint64_t>(what); }

    std::string read_string(const std::string& what) {
        const uint64_t len = read_u64(what + " length");
        if (len > size_ - pos_)
            fail(what + " length " + std::to_string(len) + " runs past the end of the file (" +
                     std::to_string(size_ - pos_) + " bytes left)",
                 pos_ - 8);
        std::string s(reinterpret_cast<const char*>(data_ + pos_), len);
        pos_ += len;
        return s;
    }

    GgufType read_type(const std::string& what) {
        const uint64_t at = pos_;
        const uint32_t t = read_u32(what);
        if (!valid_type(t)) fail("unknown metadata value type " + std::to_string(t) + " for " + what, at);
        return static_cast<GgufType>(t);
    }

    GgufValue read_value(GgufType t, const std::string& what, int depth) {
        GgufValue v;
        v.type = t;
        switch (t) {
            case GgufType::U8:
                v.bits = read_raw<uint8_t>(what);
                break;
            case GgufType::I8:
                v.bits = static_cast<uint64_t>(static_cast<int64_t>(read_raw<int8_t>(what)));
                break;
            case GgufType::U16:
                v.bits = read_raw<uint16_t>(what);
                break;
            case GgufType::I16:
                v.bits = static_cast<uint64_t>(static_cast<int64_t>(read_raw<int16_t>(what)));
                break;
            case GgufType::U32:
                v.bits = read_raw<uint32_t>(what);
                break;
            case GgufType::I32:
                v.bits = static_cast<uint64_t>(static_cast<int64_t>(read_raw<int32_t>(what)));
                break;
            case GgufType::U64:
                v.bits = read_raw<uint64_t>(what);
                break;
            case GgufType::I64:
                v.bits = read_raw<uint64_t>(what);
                break;
            case GgufType::F32:
                v.real = read_raw<float>(what);
                break;
            case GgufType::F64:
                v.real = read_raw<double>(what);
                break;
            case GgufType::Bool:
                v.bits = read_raw<uint8_t>(what) != 0;
                break;
            case GgufType::String:
                v.str = read_string(what);
                break;
            case GgufType::Array: {
                if (depth >= kMaxArrayDepth)
                    fail(what + ": arrays nested deeper than " + std::to_string(kMaxArrayDepth), pos_);
                v.elem_type = read_type(what + " element type");
                const uint64_t n = read_u64(what + " element count");
                check_count(n, min_encoded_size(v.elem_type), what + " element count");
                v.items.reserve(n);
                for (uint64_t i = 0; i < n; ++i)
                    v.items.push_back(read_value(v.elem_type, what + "[" + std::to_string(i) + "]", depth + 1));
                break;
            }
        }
        return v;
    }

    void read_kv(uint64_t index) {
        const uint64_t at = pos_;
        std::string key = read_string("metadata key #" + std::to_string(index));
        const std::string what = "metadata '" + key + "'";
        GgufType t = read_type(what + " type");
        GgufValue v = read_value(t, what, 0);
        if (out_.kv_.count(key)) fail("duplicate metadata key '" + key + "'", at);
        out_.keys_.push_back(key);
        out_.kv_.emplace(std::move(key), std::move(v));
    }

    void read_alignment() {
        const GgufValue* a = out_.find("general.alignment");
        if (!a) return;
        if (a->type != GgufType::U32)
            fail(std::string("general.alignment must be uint32, found ") + gguf_type_name(a->type), 0);
        if (a->bits == 0 || (a->bits & (a->bits - 1)) != 0)
            fail("general.alignment " + std::to_string(a->bits) + " is not a power of two", 0);
        out_.alignment_ = a->bits;
    }

    void read_tensor_info(uint64_t index) {
        const uint64_t at = pos_;
        Tensor t;
        t.name = read_string("tensor #" + std::to_string(index) + " name");
        const std::string what = "tensor '" + t.name + "'";
        const uint32_t n_dims = read_u32(what + " n_dims");
        if (n_dims < 1 || n_dims > kMaxDims)
            fail(what + ": n_dims " + std::to_string(n_dims) + " out of range [1, " + std::to_string(kMaxDims) + "]",
                 pos_ - 4);
        std::vector<int64_t> ne(n_dims);
        int64_t numel = 1;
        for (uint32_t d = 0; d < n_dims; ++d) {
            const uint64_t n = read_u64(what + " dims");
            if (n == 0 || n > static_cast<uint64_t>(std::numeric_limits<int64_t>::max()))
                fail(what + ": dimension " + std::to_string(d) + " is " + std::to_string(static_cast<int64_t>(n)) +
                         " (must be positive)",
                     pos_ - 8);
            if (static_cast<int64_t>(n) > std::numeric_limits<int64_t>::max() / numel)
                fail(what + ": element count overflows int64", pos_ - 8);
            numel *= static_cast<int64_t>(n);
            ne[d] = static_cast<int64_t>(n);
        }
        const uint32_t ggml_type = read_u32(what + " type");
        t.dtype = dtype_from_ggml(ggml_type);
        if (t.dtype == DType::Unknown) fail(what + ": unknown ggml tensor type " + std::to_string(ggml_type), pos_ - 4);
        const DTypeInfo& info = dtype_info(t.dtype);
        if (ne[0] % info.block_elems != 0)
            fail(what + ": row length " + std::to_string(ne[0]) + " is not a multiple of the " + info.name +
                     " block size " + std::to_string(info.block_elems),
                 at);
        const uint64_t offset = read_u64(what + " offset");
        if (offset % out_.alignment_ != 0)
            fail(what + ": data offset " + std::to_string(offset) + " is not a multiple of the alignment " +
                     std::to_string(out_.alignment_),
                 pos_ - 8);
        // GGUF lists ne innermost-first; our shapes are outermost-first.
        t.shape.assign(ne.rbegin(), ne.rend());
        offsets_.push_back(offset);  // relative to the data section, whose start is known only after all infos
        if (out_.tensor_index_.count(t.name)) fail("duplicate tensor name '" + t.name + "'", at);
        out_.tensor_index_.emplace(t.name, out_.tensors_.size());
        out_.tensors_.push_back(std::move(t));
    }

    void place_tensors() {
        const uint64_t data_size = out_.data_offset_ <= size_ ? size_ - out_.data_offset_ : 0;
        for (size_t i = 0; i < out_.tensors_.size(); ++i) {
            Tensor& t = out_.tensors_[i];
            const uint64_t offset = offsets_[i];
            // rows * row bytes can overflow for absurd shapes; numel fits int64, bytes per element <= 8.
            const uint64_t blocks = static_cast<uint64_t>(t.numel()) / dtype_info(t.dtype).block_elems;
            const uint64_t bytes_per_block = dtype_info(t.dtype).block_bytes;
            if (blocks > std::numeric_limits<uint64_t>::max() / bytes_per_block)
                fail("tensor '" + t.name + "': byte size overflows", 0);
            const uint64_t nbytes = blocks * bytes_per_block;
            if (offset > data_size || nbytes > data_size - offset)
                fail("tensor '" + t.name + "' data [" + std::to_string(offset) + ", " +
                         std::to_string(offset + nbytes) +
                         ") of the data section runs past the end of the file (data section holds " +
                         std::to_string(data_size) + " bytes)",
                     out_.data_offset_);
            t.data = data_ + out_.data_offset_ + offset;
        }
    }

    static uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

    GgufFile& out_;
    const uint8_t* data_;
    uint64_t size_;
    uint64_t pos_ = 0;
    std::vector<uint64_t> offsets_;  // per tensor, parallel to out_.tensors_
};

std::unique_ptr<GgufFile> GgufFile::open(const std::string& path) {
    std::unique_ptr<GgufFile> f(new GgufFile());
    f->file_ = MappedFile::open(path);
    GgufParser(*f).parse();
    return f;
}

std::string GgufFile::where() const {
    return "GGUF '" + path() + "'";
}

const GgufValue* GgufFile::find(std::string_view key) const {
    auto it = kv_.find(key);
    return it == kv_.end() ? nullptr : &it->second;
}

const Tensor* GgufFile::tensor(std::string_view name) const {
    auto it = tensor_index_.find(name);
    return it == tensor_index_.end() ? nullptr : &tensors_[it->second];
}

const GgufValue& GgufFile::require(std::string_view key) const {
    const GgufValue* v = find(key);
    if (!v) throw std::runtime_error(where() + ": missing metadata key '" + std::string(key) + "'");
    return *v;
}

namespace {

// Runs a conversion and re-labels its error with the file and key.
template <typename F>
auto convert(const std::string& where, std::string_view key, F&& f) -> decltype(f()) {
    try {
        return f();
    } catch (const std::runtime_error& e) {
        throw std::runtime_error(where + ": metadata key '" + std::string(key) + "': " + e.what());
    }
}

uint32_t to_u32(const GgufValue& v) {
    const uint64_t x = v.as_u64();
    if (x > std::numeric_limits<uint32_t>::max())
        throw std::runtime_error("value " + std::to_string(x) + " does not fit in uint32");
    return static_cast<uint32_t>(x);
}

}  // namespace

uint32_t GgufFile::get_u32(std::string_view key, uint32_t def) const {
    const GgufValue* v = find(key);
    return v ? convert(where(), key, [&] { return to_u32(*v); }) : def;
}
uint64_t GgufFile::get_u64(std::string_view key, uint64_t def) const {
    const GgufValue* v = find(key);
    return v ? convert(where(), key, [&] { return v->as_u64(); }) : def;
}
float GgufFile::get_f32(std::string_view key, float def) const {
    const GgufValue* v = find(key);
    return v ? convert(where(), key, [&] { return static_cast<float>(v->as_f64()); }) : def;
}
bool GgufFile::get_bool(std::string_view key, bool def) const {
    const GgufValue* v = find(key);
    return v ? convert(where(), key, [&] { return v->as_bool(); }) : def;
}
std::string GgufFile::get_string(std::string_view key, const std::string& def) const {
    const GgufValue* v = find(key);
    return v ? convert(where(), key, [&] { return v->as_string(); }) : def;
}
uint32_t GgufFile::require_u32(std::string_view key) const {
    const GgufValue& v = require(key);
    return convert(where(), key, [&] { return to_u32(v); });
}
uint64_t GgufFile::require_u64(std::string_view key) const {
    const GgufValue& v = require(key);
    return convert(where(), key, [&] { return v.as_u64(); });
}
float GgufFile::require_f32(std::string_view key) const {
    const GgufValue& v = require(key);
    return convert(where(), key, [&] { return static_cast<float>(v.as_f64()); });
}
std::string GgufFile::require_string(std::string_view key) const {
    const GgufValue& v = require(key);
    return convert(where(), key, [&] { return v.as_string(); });
}

}  // namespace moeinfer
