// safetensors checkpoints (HF): one file, a directory with model.safetensors, or shards listed by
// model.safetensors.index.json. Tensors are views into the mmap'd files, which the set keeps alive.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "core/mapped_file.h"
#include "core/tensor.h"

namespace moeinfer {

class SafetensorsSet {
public:
    // path_or_dir: a .safetensors file, a model.safetensors.index.json file, or a directory holding
    // model.safetensors.index.json, model.safetensors, or otherwise any *.safetensors files.
    // Throws std::runtime_error("safetensors 'FILE': <what is wrong>") for invalid or missing files.
    static std::unique_ptr<SafetensorsSet> open(const std::string& path_or_dir);

    const std::vector<Tensor>& tensors() const { return tensors_; }  // file order, shards in index order
    const Tensor* tensor(std::string_view name) const;               // nullptr when absent
    const std::string& file_of(std::string_view name) const;         // shard path holding the tensor; throws if absent
    // "__metadata__" string entries of all files (first file wins on conflicts).
    const std::map<std::string, std::string, std::less<>>& metadata() const { return metadata_; }

private:
    SafetensorsSet() = default;
    void load_file(const std::string& path);

    std::vector<std::shared_ptr<MappedFile>> files_;
    std::vector<Tensor> tensors_;
    std::vector<size_t> tensor_file_;  // index into files_, parallel to tensors_
    std::map<std::string, size_t, std::less<>> index_;
    std::map<std::string, std::string, std::less<>> metadata_;
};

// Writes tensors (F32/F16/BF16/F64/I8/I16/I32/I64) as one safetensors file with optional __metadata__.
// Throws std::invalid_argument for other dtypes and std::runtime_error when the file cannot be written.
void write_safetensors(const std::string& path, const std::vector<Tensor>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

}  // namespace moeinfer
