// safetensors reader/writer. File layout: u64 little-endian header length N, N bytes of JSON
// {name: {dtype, shape, data_offsets: [begin, end)}, "__metadata__": {...}}, then the data section.
#include "formats/safetensors.h"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <limits>
#include <stdexcept>

#include "core/json.h"

namespace moeinfer {

namespace fs = std::filesystem;

namespace {

struct DtypeName {
    const char* name;
    DType dtype;
};
constexpr DtypeName kDtypes[] = {
    {"F32", DType::F32}, {"F16", DType::F16}, {"BF16", DType::BF16}, {"F64", DType::F64},
    {"I8", DType::I8},   {"I16", DType::I16}, {"I32", DType::I32},   {"I64", DType::I64},
};

[[noreturn]] void fail(const std::string& path, const std::string& what) {
    throw std::runtime_error("safetensors '" + path + "': " + what);
}

int64_t checked_int(const json::Value& v, const std::string& path, const std::string& what) {
    if (!v.is_number()) fail(path, what + " is " + json::Value::type_name(v.type()) + ", expected an integer");
    try {
        return v.as_int();
    } catch (const json::JsonError& e) {
        fail(path, what + ": " + e.what());
    }
}

}  // namespace

std::unique_ptr<SafetensorsSet> SafetensorsSet::open(const std::string& path_or_dir) {
    std::unique_ptr<SafetensorsSet> set(new SafetensorsSet());
    std::error_code ec;
    fs::path index_path;
    if (fs::is_directory(path_or_dir, ec)) {
        const fs::path dir(path_or_dir);
        if (fs::exists(dir / "model.safetensors.index.json", ec)) {
            index_path = dir / "model.safetensors.index.json";
        } else if (fs::exists(dir / "model.safetensors", ec)) {
            set->load_file((dir / "model.safetensors").string());
            return set;
        } else {
            std::vector<std::string> found;
            for (const auto& e : fs::directory_iterator(dir, ec))
                if (e.path().extension() == ".safetensors") found.push_back(e.path().string());
            if (found.empty())
                fail(path_or_dir, "directory holds no model.safetensors.index.json or *.safetensors file");
            std::sort(found.begin(), found.end());
            for (const std::string& f : found) set->load_file(f);
            return set;
        }
    } else if (std::string_view(path_or_dir).ends_with(".json")) {
        index_path = path_or_dir;
    } else {
        set->load_file(path_or_dir);
        return set;
    }

    const std::string ipath = index_path.string();
    json::Value index;
    try {
        index = json::parse_file(ipath);
    } catch (const std::runtime_error& e) {
        fail(ipath, std::string("invalid index: ") + e.what());
    }
    const json::Value* map = index.find("weight_map");
    if (!map || !map->is_object()) fail(ipath, "index has no \"weight_map\" object");
    // Shards in first-mention order, so tensor order follows the index.
    std::vector<std::string> shards;
    for (const auto& [name, shard] : map->as_object()) {
        if (!shard.is_string()) fail(ipath, "weight_map entry '" + name + "' is not a string");
        const std::string& s = shard.as_string();
        const fs::path sp(s);
        if (s.empty() || sp.is_absolute() || s.find("..") != std::string::npos)
            fail(ipath, "weight_map entry '" + name + "' names an invalid shard path '" + s + "'");
        if (std::find(shards.begin(), shards.end(), s) == shards.end()) shards.push_back(s);
    }
    const fs::path dir = index_path.parent_path();
    std::map<std::string, size_t> shard_file;  // shard name -> index into files_
    for (const std::string& s : shards) {
        const fs::path shard_path = dir / s;
        if (!fs::exists(shard_path, ec)) fail(ipath, "shard '" + s + "' is missing (" + shard_path.string() + ")");
        shard_file[s] = set->files_.size();
        set->load_file(shard_path.string());
    }
    for (const auto& [name, shard] : map->as_object()) {
        auto it = set->index_.find(name);
        const std::string& s = shard.as_string();
        if (it == set->index_.end() || set->tensor_file_[it->second] != shard_file[s])
            fail(ipath,
                 "tensor '" + name + "' is listed in weight_map under shard '" + s + "' but is not in that file");
    }
    return set;
}

void SafetensorsSet::load_file(const std::string& path) {
    std::shared_ptr<MappedFile> file = MappedFile::open(path);
    const uint64_t size = file->size();
    if (size < 8) fail(path, "file of " + std::to_string(size) + " bytes is too short for the header length");
    uint64_t header_len;
    std::memcpy(&header_len, file->data(), 8);
    if (header_len > size - 8)
        fail(path, "header length " + std::to_string(header_len) + " exceeds the file size " + std::to_string(size));
    json::Value header;
    try {
        header = json::parse(std::string_view(reinterpret_cast<const char*>(file->data()) + 8, header_len));
    } catch (const std::runtime_error& e) {
        fail(path, std::string("invalid JSON header: ") + e.what());
    }
    if (!header.is_object()) fail(path, "header is not a JSON object");
    const uint64_t data_start = 8 + header_len;
    const uint64_t data_size = size - data_start;
    const size_t file_index = files_.size();
    files_.push_back(file);

    for (const auto& [name, info] : header.as_object()) {
        if (name == "__metadata__") {
            if (!info.is_object()) fail(path, "__metadata__ is not an object");
            for (const auto& [k, v] : info.as_object())
                if (v.is_string()) metadata_.emplace(k, v.as_string());
            continue;
        }
        const std::string what = "tensor '" + name + "'";
        if (!info.is_object()) fail(path, what + ": entry is not an object");
        const json::Value* dt = info.find("dtype");
        const json::Value* shape = info.find("shape");
        const json::Value* offs = info.find("data_offsets");
        if (!dt || !dt->is_string()) fail(path, what + ": missing or non-string \"dtype\"");
        if (!shape || !shape->is_array()) fail(path, what + ": missing or non-array \"shape\"");
        if (!offs || !offs->is_array() || offs->size() != 2)
            fail(path, what + ": \"data_offsets\" must be [begin, end]");

        Tensor t;
        t.name = name;
        t.dtype = DType::Unknown;
        for (const DtypeName& d : kDtypes)
            if (dt->as_string() == d.name) t.dtype = d.dtype;
        if (t.dtype == DType::Unknown) fail(path, what + ": unsupported dtype '" + dt->as_string() + "'");

        int64_t numel = 1;
        for (size_t i = 0; i < shape->size(); ++i) {
            const int64_t d = checked_int((*shape)[i], path, what + " shape[" + std::to_string(i) + "]");
            if (d < 0) fail(path, what + ": negative dimension " + std::to_string(d) + " in shape");
            if (d > 0 && numel > std::numeric_limits<int64_t>::max() / d)
                fail(path, what + ": element count overflows");
            numel *= d;
            t.shape.push_back(d);
        }
        const int64_t begin = checked_int((*offs)[0], path, what + " data_offsets[0]");
        const int64_t end = checked_int((*offs)[1], path, what + " data_offsets[1]");
        if (begin < 0 || end < begin)
            fail(path,
                 what + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + ") are invalid");
        if (static_cast<uint64_t>(end) > data_size)
            fail(path, what + ": data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) +
                           ") run past the end of the data section (" + std::to_string(data_size) + " bytes)");
        const uint64_t elem = static_cast<uint64_t>(dtype_info(t.dtype).block_bytes);
        if (static_cast<uint64_t>(numel) > std::numeric_limits<uint64_t>::max() / elem ||
            static_cast<uint64_t>(end - begin) != static_cast<uint64_t>(numel) * elem)
            fail(path, what + ": " + std::to_string(end - begin) + " bytes of data, but " + dt->as_string() + " " +
                           t.shape_str() + " needs " + std::to_string(static_cast<uint64_t>(numel) * elem));
        t.data = file->data() + data_start + begin;
        if (index_.count(name))
            fail(path, what + " also appears in '" + files_[tensor_file_[index_.at(name)]]->path() + "'");
        index_.emplace(name, tensors_.size());
        tensors_.push_back(std::move(t));
        tensor_file_.push_back(file_index);
    }
}

const Tensor* SafetensorsSet::tensor(std::string_view name) const {
    auto it = index_.find(name);
    return it == index_.end() ? nullptr : &tensors_[it->second];
}

const std::string& SafetensorsSet::file_of(std::string_view name) const {
    auto it = index_.find(name);
    if (it == index_.end()) throw std::runtime_error("safetensors: no tensor '" + std::string(name) + "'");
    return files_[tensor_file_[it->second]]->path();
}

void write_safetensors(const std::string& path, const std::vector<Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata) {
    json::Value header = json::Value::object();
    if (!metadata.empty()) {
        json::Value m = json::Value::object();
        for (const auto& [k, v] : metadata) m.set(k, v);
        header.set("__metadata__", std::move(m));
    }
    uint64_t offset = 0;
    for (const Tensor& t : tensors) {
        const char* name = nullptr;
        for (const DtypeName& d : kDtypes)
            if (d.dtype == t.dtype) name = d.name;
        if (!name)
            throw std::invalid_argument("write_safetensors: tensor '" + t.name + "' has unsupported dtype " +
                                        dtype_name(t.dtype));
        json::Value shape = json::Value::array();
        for (int64_t d : t.shape) shape.push_back(d);
        const uint64_t n = static_cast<uint64_t>(t.numel()) * dtype_info(t.dtype).block_bytes;
        json::Value offs = json::Value::array();
        offs.push_back(static_cast<int64_t>(offset));
        offs.push_back(static_cast<int64_t>(offset + n));
        json::Value info = json::Value::object();
        info.set("dtype", name);
        info.set("shape", std::move(shape));
        info.set("data_offsets", std::move(offs));
        header.set(t.name, std::move(info));
        offset += n;
    }
    std::string text = header.dump();
    text.resize((text.size() + 7) / 8 * 8, ' ');  // pad so the data section starts 8-byte aligned
    std::ofstream f(path, std::ios::binary | std::ios::trunc);
    if (!f) throw std::runtime_error("cannot write safetensors '" + path + "': " + std::strerror(errno));
    const uint64_t len = text.size();
    f.write(reinterpret_cast<const char*>(&len), 8);
    f.write(text.data(), static_cast<std::streamsize>(text.size()));
    for (const Tensor& t : tensors)
        f.write(static_cast<const char*>(t.data),
                static_cast<std::streamsize>(static_cast<uint64_t>(t.numel()) * dtype_info(t.dtype).block_bytes));
    f.flush();
    if (!f) throw std::runtime_error("cannot write safetensors '" + path + "': write failed");
}

}  // namespace moeinfer
