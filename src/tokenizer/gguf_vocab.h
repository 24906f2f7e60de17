// GGUF tokenizer vocabularies (tokenizer.ggml.*) as plain vectors, read from / written to GGUF metadata, so the
// Tokenizer can be built from a GGUF file and a converter can store a tokenizer.json's vocabulary in one.
#pragma once
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace moeinfer {

class GgufFile;
class GgufWriter;

struct GgufVocab {
    std::string model;  // tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece BPE)
    std::string pre;    // tokenizer.ggml.pre: "llama-bpe", "qwen2", "deepseek-v3", "gpt-4o", "default", ...
    std::vector<std::string> tokens;  // tokenizer.ggml.tokens, index = id
    std::vector<float> scores;        // tokenizer.ggml.scores (llama)
    std::vector<int32_t> types;       // tokenizer.ggml.token_type: 1 normal 2 unknown 3 control 4 user 5 unused 6 byte
    std::vector<std::string> merges;  // tokenizer.ggml.merges, "a b"
    std::optional<int32_t> bos_id, eos_id, unk_id, eot_id;
    bool add_bos = false, add_eos = false;
    bool add_space_prefix = true;  // tokenizer.ggml.add_space_prefix (llama)
    std::string chat_template;     // tokenizer.chat_template
};

enum GgufTokenType : int32_t { kTokNormal = 1, kTokUnknown = 2, kTokControl = 3, kTokUserDefined = 4, kTokUnused = 5, kTokByte = 6 };

// Reads the tokenizer.ggml.* keys; throws std::runtime_error naming the file and key when they are missing/bad.
GgufVocab read_gguf_vocab(const GgufFile& f);
void write_gguf_vocab(GgufWriter& w, const GgufVocab& v);

}  // namespace moeinfer
