// A small backtracking regex engine for the split patterns of tokenizer.json files (GPT-2, Llama-3, Qwen, DeepSeek,
// o200k): alternation, groups, (?i:...), (?!...)/(?=...), greedy/lazy quantifiers, classes with \p{..} categories.
// Semantics follow Oniguruma/Perl (leftmost-first alternation, backtracking), which is what HF `tokenizers` uses.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace moeinfer {

class Regex {
public:
    // Throws std::runtime_error naming the pattern and offset on syntax this engine does not support.
    explicit Regex(std::string_view pattern);
    // Leftmost match starting at or after byte `from` of valid UTF-8 `s`; false when there is none.
    bool search(std::string_view s, size_t from, size_t& match_begin, size_t& match_end) const;
    // Match anchored at `pos`; returns its end or npos.
    size_t match_at(std::string_view s, size_t pos) const;
    const std::string& pattern() const { return pattern_; }

private:
    struct CharClass {
        bool negated = false;
        uint32_t cat_mask = 0;      // categories in the class
        uint32_t not_cat_mask = 0;  // from \P{..}: code points outside these categories are in the class
        bool space = false, not_space = false;
        std::vector<std::pair<uint32_t, uint32_t>> ranges;  // inclusive
        uint64_t ascii[2] = {0, 0};  // final membership (negation applied) for code points < 128
        bool contains_slow(uint32_t cp) const;
        bool contains(uint32_t cp) const {
            return cp < 128 ? (ascii[cp >> 6] >> (cp & 63)) & 1 : contains_slow(cp) != negated;
        }
        void finalize();
    };
    enum class Kind : uint8_t { Char, Seq, Alt, Repeat, Look, Bol, Eol };
    struct Node {
        Node(Kind k) : kind(k) {}  // NOLINT: implicit, so Node{Kind::Seq} builds one
        Kind kind;
        bool greedy = true, negative = false;
        int cls = -1;  // Char: index into classes_
        int min = 0, max = 0;  // Repeat; max < 0 = unbounded
        std::vector<int> kids;
    };
    struct Cont;
    class Parser;

    bool match(std::string_view s, int node, size_t pos, const Cont* k, size_t& end) const;
    bool resume(std::string_view s, const Cont* k, size_t pos, size_t& end) const;
    bool repeat(std::string_view s, int node, size_t pos, size_t start, int count, const Cont* k, size_t& end) const;

    std::string pattern_;
    std::vector<Node> nodes_;
    std::vector<CharClass> classes_;
    int root_ = -1;
};

}  // namespace moeinfer
