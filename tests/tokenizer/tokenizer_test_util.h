// Shared helpers for the tokenizer tests: where the fetched tokenizer files and the goldens live.
#pragma once
#include <cstdlib>
#include <filesystem>
#include <string>

#ifndef MOEINFER_SOURCE_DIR
#define MOEINFER_SOURCE_DIR "."
#endif

namespace moeinfer::test {

// Folder of scripts/fetch_tokenizers.sh output: $MOEINFER_TOKENIZERS or <source>/build/tokenizers.
inline std::string tokenizers_dir() {
    if (const char* e = std::getenv("MOEINFER_TOKENIZERS")) return e;
    return std::string(MOEINFER_SOURCE_DIR) + "/build/tokenizers";
}
inline std::string tokenizer_path(const std::string& name) { return tokenizers_dir() + "/" + name; }
inline bool have_tokenizer(const std::string& name) {
    return std::filesystem::exists(tokenizer_path(name) + "/tokenizer.json");
}
inline std::string tokenizer_data(const std::string& file) {
    return std::string(MOEINFER_SOURCE_DIR) + "/tests/data/tokenizer/" + file;
}

}  // namespace moeinfer::test
