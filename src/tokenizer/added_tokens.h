// Added/special tokens: found in the text before normalization and BPE (leftmost, then longest, as HF's
// Aho-Corasick matcher does), honouring lstrip/rstrip/single_word.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace moeinfer {

struct AddedToken {
    int32_t id = -1;
    std::string content;
    bool special = false, lstrip = false, rstrip = false, normalized = false, single_word = false;
};

// One piece of split text: either plain text (token_id < 0) or an added token.
struct Segment {
    std::string text;
    int32_t token_id = -1;
};

class AddedTokenMatcher {
public:
    void build(const std::vector<const AddedToken*>& tokens);
    // Splits `text` around the tokens; plain text between matches may be empty and is then dropped.
    void split(std::string_view text, std::vector<Segment>& out) const;
    bool empty() const { return tokens_.empty(); }

private:
    // A byte trie: node -> children keyed by (node << 8 | byte); terminal nodes hold the token.
    std::unordered_map<uint64_t, int32_t> edges_;
    std::vector<int32_t> terminal_;  // per node: index into tokens_ or -1
    std::vector<const AddedToken*> tokens_;
    bool first_byte_[256] = {};
};

}  // namespace moeinfer
