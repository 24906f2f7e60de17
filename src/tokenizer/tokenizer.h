// Text <-> token ids for the supported model families, from a HF tokenizer.json (byte-level BPE or
// SentencePiece-style BPE with byte fallback) or from a GGUF vocabulary (tokenizer.ggml.*). Encoding follows HF
// `tokenizers`: added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor. A Tokenizer is immutable
// after loading; encode/decode may be called from several threads at once.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

#include "core/json.h"
#include "tokenizer/added_tokens.h"
#include "tokenizer/bpe.h"
#include "tokenizer/chat_template.h"
#include "tokenizer/decoder.h"
#include "tokenizer/gguf_vocab.h"
#include "tokenizer/normalizer.h"
#include "tokenizer/pre_tokenizer.h"

namespace moeinfer {

class Tokenizer {
public:
    // `path`: a tokenizer.json, a model directory with tokenizer.json (+ tokenizer_config.json,
    // generation_config.json), or a .gguf file (its tokenizer.ggml.* vocabulary). Errors name the file and field.
    static std::unique_ptr<Tokenizer> from_file(const std::string& path);
    // `config` is tokenizer_config.json (may be null).
    static std::unique_ptr<Tokenizer> from_json(const json::Value& tokenizer_json, const json::Value& config);
    static std::unique_ptr<Tokenizer> from_gguf_vocab(const GgufVocab& vocab);
    // The vocabulary as a GGUF would store it (what a converter writes); from_gguf_vocab of it encodes the same.
    GgufVocab to_gguf_vocab() const;

    // Added/special tokens in `text` are always recognized (as HF does); add_special_tokens applies the
    // post-processor (e.g. BOS). Invalid UTF-8 is read as U+FFFD.
    std::vector<int32_t> encode(std::string_view text, bool add_special_tokens) const;
    // Throws std::runtime_error naming the first id outside the vocabulary.
    std::string decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const;

    int32_t vocab_size() const;
    std::optional<int32_t> bos_id() const { return bos_id_; }
    std::vector<int32_t> eos_ids() const { return eos_ids_; }
    std::string token_text(int32_t id) const;  // the token as written in the vocabulary
    std::optional<int32_t> token_id(std::string_view token) const;
    bool is_special(int32_t id) const;
    bool is_added(int32_t id) const { return added_by_id_.count(id) != 0; }  // special or not
    const ChatTemplateSource& chat_template() const { return chat_; }
    // Whether a raw prompt should start with BOS: tokenizer_config's add_bos_token (transformers 4 adds BOS from it
    // even where tokenizer.json's post-processor does not, e.g. DeepSeek-V3) or GGUF add_bos_token; otherwise
    // whether encode(.., true) adds it.
    bool add_bos_token() const { return config_add_bos_.value_or(!prefix_ids_.empty()); }

private:
    Tokenizer() = default;
    void finish_setup();  // builds matchers and lookups once the parts are set
    void encode_text(std::string_view text, bool at_start, std::vector<int32_t>& out) const;

    std::unique_ptr<BpeModel> model_;
    Normalizer normalizer_;
    PreTokenizer pre_tokenizer_;
    Decoder decoder_;
    std::vector<AddedToken> added_;
    std::unordered_map<int32_t, size_t> added_by_id_;
    std::unordered_map<std::string, int32_t> added_by_content_;
    AddedTokenMatcher raw_matcher_, normalized_matcher_;
    std::vector<int32_t> prefix_ids_, suffix_ids_;  // post-processor for a single sequence
    std::optional<int32_t> bos_id_;
    std::vector<int32_t> eos_ids_;
    ChatTemplateSource chat_;
    std::optional<bool> config_add_bos_;

    friend class TokenizerLoader;
};

// Incremental detokenization for streaming: push ids one at a time, get back only text whose UTF-8 is complete.
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& tok, bool skip_special_tokens = true) : tok_(tok), skip_(skip_special_tokens) {}
    std::string push(int32_t id);
    std::string flush();  // the rest, with incomplete bytes as U+FFFD

private:
    const Tokenizer& tok_;
    bool skip_;
    std::vector<int32_t> ids_;
    size_t prefix_offset_ = 0, read_offset_ = 0;
};

}  // namespace moeinfer
