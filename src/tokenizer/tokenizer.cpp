// Tokenizer encode/decode pipeline (added tokens -> normalizer -> pre-tokenizer -> BPE -> post-processor) and
// the streaming decoder.
#include "tokenizer/tokenizer.h"

#include <stdexcept>

#include "tokenizer/unicode.h"

namespace moeinfer {

void Tokenizer::finish_setup() {
    added_by_id_.clear();
    added_by_content_.clear();
    std::vector<const AddedToken*> raw, norm;
    for (size_t i = 0; i < added_.size(); ++i) {
        added_by_id_[added_[i].id] = i;
        added_by_content_.emplace(added_[i].content, added_[i].id);
        // Tokens flagged `normalized` are looked for after normalization, the others in the raw text.
        (added_[i].normalized ? norm : raw).push_back(&added_[i]);
    }
    raw_matcher_.build(raw);
    normalized_matcher_.build(norm);
}

void Tokenizer::encode_text(std::string_view text, bool at_start, std::vector<int32_t>& out) const {
    std::vector<std::string> pieces;
    pre_tokenizer_.split(text, at_start, pieces);
    for (const auto& p : pieces) model_->encode(p, out);
}

std::vector<int32_t> Tokenizer::encode(std::string_view input, bool add_special_tokens) const {
    std::string text = unicode::to_valid_utf8(input);
    std::vector<int32_t> out;
    if (add_special_tokens) out = prefix_ids_;
    std::vector<Segment> segs;
    raw_matcher_.split(text, segs);
    bool at_start = true;
    std::vector<Segment> sub;
    for (const auto& s : segs) {
        if (s.token_id >= 0) {
            out.push_back(s.token_id);
            at_start = false;
            continue;
        }
        std::string norm = normalizer_.normalize(s.text);
        sub.clear();
        normalized_matcher_.split(norm, sub);
        for (const auto& t : sub) {
            if (t.token_id >= 0) out.push_back(t.token_id);
            else encode_text(t.text, at_start, out);
            at_start = false;
        }
    }
    if (add_special_tokens) out.insert(out.end(), suffix_ids_.begin(), suffix_ids_.end());
    return out;
}

int32_t Tokenizer::vocab_size() const {
    int32_t n = model_->size();
    for (const auto& a : added_) n = std::max(n, a.id + 1);
    return n;
}

std::string Tokenizer::token_text(int32_t id) const {
    auto it = added_by_id_.find(id);
    if (it != added_by_id_.end()) return added_[it->second].content;
    if (id < 0 || id >= model_->size() || model_->token(id).empty())
        throw std::runtime_error("token id " + std::to_string(id) + " is not in the vocabulary (size " +
                                 std::to_string(vocab_size()) + ")");
    return model_->token(id);
}

std::optional<int32_t> Tokenizer::token_id(std::string_view token) const {
    auto it = added_by_content_.find(std::string(token));
    if (it != added_by_content_.end()) return it->second;
    int32_t id = model_->token_to_id(token);
    if (id >= 0 && model_->token(id) == token) return id;
    return std::nullopt;
}

bool Tokenizer::is_special(int32_t id) const {
    auto it = added_by_id_.find(id);
    return it != added_by_id_.end() && added_[it->second].special;
}

std::string Tokenizer::decode(const std::vector<int32_t>& ids, bool skip_special_tokens) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int32_t id : ids) {
        std::string t = token_text(id);  // throws for unknown ids
        if (skip_special_tokens && is_special(id)) continue;
        tokens.push_back(std::move(t));
    }
    return decoder_.decode(std::move(tokens));
}

std::string StreamDecoder::push(int32_t id) {
    ids_.push_back(id);
    // Decode a small window ending in the new id and emit what it adds over the window without it; decoding
    // context (leading-space stripping, byte-fallback runs) then matches a full decode.
    std::vector<int32_t> prefix(ids_.begin() + prefix_offset_, ids_.begin() + read_offset_);
    std::vector<int32_t> full(ids_.begin() + prefix_offset_, ids_.end());
    std::string before = tok_.decode(prefix, skip_);
    std::string after = tok_.decode(full, skip_);
    if (after.size() <= before.size() || after.compare(0, before.size(), before) != 0) return "";
    // A trailing U+FFFD means the last token ended inside a UTF-8 character: wait for more. A character needs
    // at most 4 tokens, so after kMaxPending the bytes are really invalid and go out as U+FFFD.
    constexpr size_t kMaxPending = 8;
    if (after.size() >= 3 && after.compare(after.size() - 3, 3, "\xEF\xBF\xBD") == 0 &&
        ids_.size() - read_offset_ < kMaxPending)
        return "";
    std::string delta = after.substr(before.size());
    prefix_offset_ = read_offset_;
    read_offset_ = ids_.size();
    return delta;
}

std::string StreamDecoder::flush() {
    std::vector<int32_t> prefix(ids_.begin() + prefix_offset_, ids_.begin() + read_offset_);
    std::vector<int32_t> full(ids_.begin() + prefix_offset_, ids_.end());
    std::string before = tok_.decode(prefix, skip_), after = tok_.decode(full, skip_);
    prefix_offset_ = read_offset_ = ids_.size();
    if (after.size() <= before.size() || after.compare(0, before.size(), before) != 0) return "";
    return after.substr(before.size());
}

}  // namespace moeinfer
