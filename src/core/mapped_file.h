// MappedFile: a whole file mapped read-only into memory; model weights are used in place from it.
// Shared ownership lets every Tensor view taken from a file keep the mapping alive through its owner.
#pragma once
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace moeinfer {

class MappedFile {
public:
    // Throws std::runtime_error("cannot open model file 'PATH': <reason>") when the file cannot be mapped.
    static std::shared_ptr<MappedFile> open(const std::string& path);
    ~MappedFile();
    MappedFile(const MappedFile&) = delete;
    MappedFile& operator=(const MappedFile&) = delete;

    const uint8_t* data() const { return data_; }  // nullptr for an empty file
    size_t size() const { return size_; }
    const std::string& path() const { return path_; }

private:
    MappedFile() = default;
    std::string path_;
    const uint8_t* data_ = nullptr;
    size_t size_ = 0;
};

}  // namespace moeinfer
