// The BPE model shared by byte-level (GPT-2 style) and SentencePiece-style (byte fallback) vocabularies: turns
// one pre-tokenized piece into ids by applying merges lowest rank first (or, for GGUF `llama` vocabularies, by
// merging the adjacent pair whose result has the highest score).
#pragma once
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <utility>
#include <vector>

namespace moeinfer {

struct BpeOptions {
    bool byte_level = false;     // tokens are in GPT-2's byte-to-char alphabet; pieces are raw bytes
    bool byte_fallback = false;  // chars not in the vocab become <0xXX> tokens
    bool fuse_unk = false;       // consecutive unknown chars give one unk id
    bool ignore_merges = false;  // a piece that is itself a token is emitted whole
    bool merge_by_score = false; // rank pairs by the score of the merged token (SentencePiece BPE), not merges
    std::optional<int32_t> unk_id;
};

// Open-addressing hash map from a (left id, right id) pair to (rank, merged id): the hot lookup of BPE, where
// std::unordered_map's node chasing dominated the encode time.
class MergeTable {
public:
    void build(const std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>>& entries);
    const std::pair<int32_t, int32_t>* find(uint64_t key) const {
        if (slots_.empty()) return nullptr;
        for (size_t i = hash(key) & mask_;; i = (i + 1) & mask_) {
            const Slot& s = slots_[i];
            if (s.key == key) return &s.value;
            if (s.key == kEmpty) return nullptr;
        }
    }

private:
    static constexpr uint64_t kEmpty = ~uint64_t(0);
    static size_t hash(uint64_t k) { return size_t((k * 0x9E3779B97F4A7C15ull) >> 20); }
    struct Slot {
        uint64_t key = kEmpty;
        std::pair<int32_t, int32_t> value;
    };
    std::vector<Slot> slots_;
    size_t mask_ = 0;
};

class BpeModel {
public:
    // tokens[id] is the token as written in the file ("" for ids the vocab does not define).
    BpeModel(std::vector<std::string> tokens, const std::vector<std::pair<std::string, std::string>>& merges,
             std::vector<float> scores, BpeOptions opt);
    void encode(std::string_view piece, std::vector<int32_t>& out) const;
    // Id of a token written as in the file; -1 when absent.
    int32_t token_to_id(std::string_view token) const;
    const std::string& token(int32_t id) const { return tokens_[id]; }
    // The raw bytes a token stands for (byte-level alphabet undone; other vocabularies: the token text).
    std::string token_bytes(int32_t id) const;
    int32_t size() const { return int32_t(tokens_.size()); }
    const BpeOptions& options() const { return opt_; }
    const std::vector<std::pair<std::string, std::string>>& merges() const { return merge_list_; }
    const std::vector<float>& scores() const { return scores_; }

private:
    struct Symbol {
        int32_t id;
        uint32_t begin, end;  // byte span of the piece
        int32_t prev, next;
        bool mergeable;
    };
    std::string key_of(std::string_view file_token) const;
    int32_t key_to_id(std::string_view key) const;
    bool pair_merge(const std::vector<Symbol>& syms, std::string_view piece, int a, int b, double& prio,
                    int32_t& new_id) const;
    void encode_uncached(std::string_view piece, std::vector<int32_t>& out) const;

    BpeOptions opt_;
    std::vector<std::string> tokens_;
    std::vector<float> scores_;
    std::vector<std::pair<std::string, std::string>> merge_list_;  // as given, for export to GGUF
    std::unordered_map<std::string, int32_t> key_to_id_;  // raw bytes (byte-level) or token text -> id
    MergeTable merges_;  // (left id << 32 | right id) -> (rank, merged id)
    int32_t byte_ids_[256];  // byte-level: the single-byte token; byte fallback: <0xXX>; -1 if absent

    mutable std::mutex cache_mu_;
    mutable std::unordered_map<std::string, std::vector<int32_t>> cache_;
};

// GPT-2's byte <-> char table: printable Latin-1 bytes map to themselves, the rest to U+0100 onwards.
uint32_t byte_to_char(uint8_t b);
int byte_of_char(uint32_t cp);  // -1 when cp is not in the table

}  // namespace moeinfer
