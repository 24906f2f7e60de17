// GGUF (v2/v3) model files: a validating reader over an mmap'd file and a writer (exports, test fixtures).
// Tensor shapes are converted to our outermost-first order: GGUF ne = [in, out] becomes shape [out, in].
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace moeinfer {

// Metadata value types; the numbers are the on-disk ids.
enum class GgufType : uint32_t {
    U8 = 0,
    I8 = 1,
    U16 = 2,
    I16 = 3,
    U32 = 4,
    I32 = 5,
    F32 = 6,
    Bool = 7,
    String = 8,
    Array = 9,
    U64 = 10,
    I64 = 11,
    F64 = 12,
};
const char* gguf_type_name(GgufType t);  // "uint32", "string", ...; "unknown" otherwise

// One metadata value. Integers (and bool) live in `bits` (signed types sign-extended), floats in `real`.
// Accessors convert between compatible types and throw std::runtime_error naming both types otherwise.
struct GgufValue {
    GgufType type = GgufType::U8;
    GgufType elem_type = GgufType::U8;  // element type when type == Array
    uint64_t bits = 0;
    double real = 0;
    std::string str;
    std::vector<GgufValue> items;  // Array elements

    bool is_int() const;      // any of the 8 integer types
    bool is_float() const;    // F32 or F64
    uint64_t as_u64() const;  // integer >= 0
    int64_t as_i64() const;   // integer within int64 range
    double as_f64() const;    // float or integer
    bool as_bool() const;
    const std::string& as_string() const;
    const std::vector<GgufValue>& array() const;
    // Whole-array conversions (tokenizer vocab, scores, token types); throw on a non-array or a bad element.
    std::vector<std::string> string_array() const;
    std::vector<int64_t> int_array() const;
    std::vector<float> float_array() const;

    static GgufValue of_u8(uint8_t v);
    static GgufValue of_i8(int8_t v);
    static GgufValue of_u16(uint16_t v);
    static GgufValue of_i16(int16_t v);
    static GgufValue of_u32(uint32_t v);
    static GgufValue of_i32(int32_t v);
    static GgufValue of_u64(uint64_t v);
    static GgufValue of_i64(int64_t v);
    static GgufValue of_f32(float v);
    static GgufValue of_f64(double v);
    static GgufValue of_bool(bool v);
    static GgufValue of_string(std::string v);
    // Throws std::invalid_argument if an item's type is not elem_type.
    static GgufValue of_array(GgufType elem_type, std::vector<GgufValue> items);
};

class GgufFile {
public:
    // Maps and validates the whole file; throws std::runtime_error("GGUF 'PATH': <what is wrong>").
    static std::unique_ptr<GgufFile> open(const std::string& path);

    const std::string& path() const { return file_->path(); }
    uint32_t version() const { return version_; }
    uint64_t alignment() const { return alignment_; }
    uint64_t data_offset() const { return data_offset_; }  // file offset of the tensor data section
    const std::shared_ptr<MappedFile>& file() const { return file_; }

    const std::vector<std::string>& keys() const { return keys_; }  // file order
    const GgufValue* find(std::string_view key) const;
    // Value at `key` or `def` when absent; a present value of the wrong type or range throws (naming key and file).
    uint32_t get_u32(std::string_view key, uint32_t def) const;
    uint64_t get_u64(std::string_view key, uint64_t def) const;
    float get_f32(std::string_view key, float def) const;
    bool get_bool(std::string_view key, bool def) const;
    std::string get_string(std::string_view key, const std::string& def) const;
    // As above, but absence throws "GGUF 'PATH': missing metadata key 'KEY'".
    const GgufValue& require(std::string_view key) const;
    uint32_t require_u32(std::string_view key) const;
    uint64_t require_u64(std::string_view key) const;
    float require_f32(std::string_view key) const;
    std::string require_string(std::string_view key) const;

    const std::vector<Tensor>& tensors() const { return tensors_; }  // file order; data points into file()
    const Tensor* tensor(std::string_view name) const;               // nullptr when absent

private:
    GgufFile() = default;
    std::string where() const;  // "GGUF 'PATH'"

    std::shared_ptr<MappedFile> file_;
    uint32_t version_ = 0;
    uint64_t alignment_ = 32;
    uint64_t data_offset_ = 0;
    std::vector<std::string> keys_;
    std::map<std::string, GgufValue, std::less<>> kv_;
    std::vector<Tensor> tensors_;
    std::map<std::string, size_t, std::less<>> tensor_index_;

    friend class GgufParser;
};

// Builds a GGUF v3 file in memory order: metadata, tensor infos, aligned data. Tensor data is not copied:
// it must stay valid until write() returns.
class GgufWriter {
public:
    explicit GgufWriter(uint32_t alignment = 32);  // a non-default alignment is recorded as general.alignment

    void add(std::string key, GgufValue v);  // throws std::invalid_argument on a duplicate key
    void add_u8(std::string key, uint8_t v) { add(std::move(key), GgufValue::of_u8(v)); }
    void add_i8(std::string key, int8_t v) { add(std::move(key), GgufValue::of_i8(v)); }
    void add_u16(std::string key, uint16_t v) { add(std::move(key), GgufValue::of_u16(v)); }
    void add_i16(std::string key, int16_t v) { add(std::move(key), GgufValue::of_i16(v)); }
    void add_u32(std::string key, uint32_t v) { add(std::move(key), GgufValue::of_u32(v)); }
    void add_i32(std::string key, int32_t v) { add(std::move(key), GgufValue::of_i32(v)); }
    void add_u64(std::string key, uint64_t v) { add(std::move(key), GgufValue::of_u64(v)); }
    void add_i64(std::string key, int64_t v) { add(std::move(key), GgufValue::of_i64(v)); }
    void add_f32(std::string key, float v) { add(std::move(key), GgufValue::of_f32(v)); }
    void add_f64(std::string key, double v) { add(std::move(key), GgufValue::of_f64(v)); }
    void add_bool(std::string key, bool v) { add(std::move(key), GgufValue::of_bool(v)); }
    void add_string(std::string key, std::string v) { add(std::move(key), GgufValue::of_string(std::move(v))); }
    void add_array(std::string key, const std::vector<std::string>& v);
    void add_array(std::string key, const std::vector<int32_t>& v);
    void add_array(std::string key, const std::vector<int64_t>& v);
    void add_array(std::string key, const std::vector<float>& v);

    // shape is outermost-first; nbytes must equal the size the dtype and shape imply (std::invalid_argument).
    void add_tensor(std::string name, DType dtype, std::vector<int64_t> shape, const void* data, size_t nbytes);
    void add_tensor(const Tensor& t) { add_tensor(t.name, t.dtype, t.shape, t.data, t.nbytes()); }

    // Throws std::runtime_error naming the path when the file cannot be written.
    void write(const std::string& path) const;

private:
    struct PendingTensor {
        std::string name;
        DType dtype;
        std::vector<int64_t> shape;
        const void* data;
        size_t nbytes;
    };
    uint32_t alignment_;
    std::vector<std::pair<std::string, GgufValue>> kv_;
    std::vector<PendingTensor> tensors_;
};

}  // namespace moeinfer
