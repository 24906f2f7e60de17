// BPE merging with a priority queue over a linked list of symbols: O(n log n) per piece, which matters for
// SentencePiece-style vocabularies where a whole sentence is one piece.
#include "tokenizer/bpe.h"

#include <array>
#include <queue>
#include <stdexcept>

#include "tokenizer/unicode.h"

namespace moeinfer {
namespace {

struct ByteTables {
    std::array<uint32_t, 256> to_char{};
    std::array<int16_t, 512> to_byte{};  // every mapped char is below U+0200
    ByteTables() {
        to_byte.fill(-1);
        uint32_t next = 256;
        for (int b = 0; b < 256; ++b) {
            bool keep = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
            to_char[b] = keep ? uint32_t(b) : next++;
            to_byte[to_char[b]] = int16_t(b);
        }
    }
};
const ByteTables& byte_tables() {
    static const ByteTables t;
    return t;
}

constexpr size_t kMaxCachedPiece = 64;
constexpr size_t kMaxCacheEntries = 1 << 18;

}  // namespace

void MergeTable::build(const std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>>& entries) {
    size_t cap = 16;
    while (cap < entries.size() * 2) cap <<= 1;
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    for (const auto& [key, value] : entries) {
        size_t i = hash(key) & mask_;
        while (slots_[i].key != kEmpty && slots_[i].key != key) i = (i + 1) & mask_;
        // A repeated merge takes its later rank: HF collects merges into a map, where later entries win.
        slots_[i].key = key;
        slots_[i].value = value;
    }
}

uint32_t byte_to_char(uint8_t b) { return byte_tables().to_char[b]; }
int byte_of_char(uint32_t cp) { return cp < 512 ? byte_tables().to_byte[cp] : -1; }

std::string BpeModel::key_of(std::string_view t) const {
    if (!opt_.byte_level) return std::string(t);
    std::string out;
    out.reserve(t.size());
    for (size_t i = 0; i < t.size();) {
        size_t start = i;
        int b = byte_of_char(unicode::decode_utf8(t, i));
        if (b < 0) return std::string(t);  // not in the byte alphabet (e.g. an added token): keep as is
        out += char(b);
        (void)start;
    }
    return out;
}

BpeModel::BpeModel(std::vector<std::string> tokens, const std::vector<std::pair<std::string, std::string>>& merges,
                   std::vector<float> scores, BpeOptions opt)
    : opt_(opt), tokens_(std::move(tokens)), scores_(std::move(scores)), merge_list_(merges) {
    key_to_id_.reserve(tokens_.size() * 2);
    for (int32_t id = 0; id < int32_t(tokens_.size()); ++id) {
        if (tokens_[id].empty()) continue;
        key_to_id_.emplace(key_of(tokens_[id]), id);
    }
    for (int b = 0; b < 256; ++b) {
        if (opt_.byte_level) {
            byte_ids_[b] = key_to_id(std::string(1, char(b)));
        } else {
            char name[8];
            snprintf(name, sizeof name, "<0x%02X>", b);
            byte_ids_[b] = opt_.byte_fallback ? key_to_id(name) : -1;
        }
    }
    std::vector<std::pair<uint64_t, std::pair<int32_t, int32_t>>> entries;
    entries.reserve(merges.size());
    for (size_t r = 0; r < merges.size(); ++r) {
        std::string ka = key_of(merges[r].first), kb = key_of(merges[r].second);
        int32_t a = key_to_id(ka), b = key_to_id(kb), m = key_to_id(ka + kb);
        if (a < 0 || b < 0 || m < 0)
            throw std::runtime_error("BPE merge " + std::to_string(r) + " ('" + merges[r].first + "' '" +
                                     merges[r].second + "') names a token that is not in the vocab");
        entries.push_back({uint64_t(uint32_t(a)) << 32 | uint32_t(b), {int32_t(r), m}});
    }
    merges_.build(entries);
}

int32_t BpeModel::key_to_id(std::string_view key) const {
    auto it = key_to_id_.find(std::string(key));
    return it == key_to_id_.end() ? -1 : it->second;
}

int32_t BpeModel::token_to_id(std::string_view token) const { return key_to_id(key_of(token)); }

std::string BpeModel::token_bytes(int32_t id) const { return key_of(tokens_[id]); }

bool BpeModel::pair_merge(const std::vector<Symbol>& syms, std::string_view piece, int a, int b, double& prio,
                          int32_t& new_id) const {
    const Symbol &sa = syms[a], &sb = syms[b];
    if (!sa.mergeable || !sb.mergeable) return false;
    if (opt_.merge_by_score) {
        int32_t id = key_to_id(piece.substr(sa.begin, sb.end - sa.begin));
        if (id < 0) return false;
        prio = -(id < int32_t(scores_.size()) ? scores_[id] : 0.0f);
        new_id = id;
        return true;
    }
    const auto* m = merges_.find(uint64_t(uint32_t(sa.id)) << 32 | uint32_t(sb.id));
    if (!m) return false;
    prio = m->first;
    new_id = m->second;
    return true;
}

void BpeModel::encode(std::string_view piece, std::vector<int32_t>& out) const {
    if (piece.empty()) return;
    if (piece.size() > kMaxCachedPiece) return encode_uncached(piece, out);
    std::string key(piece);
    {
        std::lock_guard<std::mutex> lock(cache_mu_);
        auto it = cache_.find(key);
        if (it != cache_.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    size_t before = out.size();
    encode_uncached(piece, out);
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_.size() >= kMaxCacheEntries) cache_.clear();
    cache_.emplace(std::move(key), std::vector<int32_t>(out.begin() + before, out.end()));
}

void BpeModel::encode_uncached(std::string_view piece, std::vector<int32_t>& out) const {
    if (opt_.ignore_merges) {
        int32_t id = key_to_id(piece);
        if (id >= 0) {
            out.push_back(id);
            return;
        }
    }
    std::vector<Symbol> syms;
    syms.reserve(piece.size());
    auto push = [&](int32_t id, size_t b, size_t e, bool mergeable) {
        int32_t n = int32_t(syms.size());
        syms.push_back({id, uint32_t(b), uint32_t(e), n - 1, n + 1, mergeable});
    };
    auto push_unk = [&](size_t b, size_t e) {
        if (!opt_.unk_id) throw std::runtime_error("BPE: no token for '" + std::string(piece.substr(b, e - b)) + "' and no unk token");
        if (opt_.fuse_unk && !syms.empty() && syms.back().id == *opt_.unk_id && !syms.back().mergeable) {
            syms.back().end = uint32_t(e);
            return;
        }
        push(*opt_.unk_id, b, e, false);
    };
    if (opt_.byte_level) {
        for (size_t i = 0; i < piece.size(); ++i) {
            int32_t id = byte_ids_[static_cast<unsigned char>(piece[i])];
            if (id >= 0) push(id, i, i + 1, true);
            else push_unk(i, i + 1);
        }
    } else {
        for (size_t i = 0; i < piece.size();) {
            size_t b = i;
            i = std::min(piece.size(), i + unicode::utf8_len(static_cast<unsigned char>(piece[i])));
            int32_t id = key_to_id(piece.substr(b, i - b));
            if (id >= 0) {
                push(id, b, i, true);
                continue;
            }
            bool all = opt_.byte_fallback;
            for (size_t k = b; all && k < i; ++k) all = byte_ids_[static_cast<unsigned char>(piece[k])] >= 0;
            if (all) {
                for (size_t k = b; k < i; ++k) push(byte_ids_[static_cast<unsigned char>(piece[k])], k, k + 1, false);
            } else {
                push_unk(b, i);
            }
        }
    }
    if (syms.empty()) return;
    syms.back().next = -1;

    struct Cand {
        double prio;
        int32_t pos;
        int32_t right;
        int32_t new_id;
        bool operator<(const Cand& o) const {  // std::priority_queue pops the largest: invert both keys
            return prio != o.prio ? prio > o.prio : pos > o.pos;
        }
    };
    std::priority_queue<Cand> heap;
    auto consider = [&](int a) {
        int b = syms[a].next;
        if (b < 0) return;
        double prio;
        int32_t id;
        if (pair_merge(syms, piece, a, b, prio, id)) heap.push({prio, a, b, id});
    };
    for (int i = 0; i + 1 < int(syms.size()); ++i) consider(i);
    while (!heap.empty()) {
        Cand c = heap.top();
        heap.pop();
        Symbol& a = syms[c.pos];
        // Stale entries: either side was merged away or changed since this candidate was pushed.
        if (a.id < 0 || a.next != c.right || syms[c.right].id < 0) continue;
        double prio;
        int32_t id;
        if (!pair_merge(syms, piece, c.pos, c.right, prio, id) || id != c.new_id || prio != c.prio) continue;
        Symbol& b = syms[c.right];
        a.id = c.new_id;
        a.end = b.end;
        a.next = b.next;
        if (b.next >= 0) syms[b.next].prev = c.pos;
        b.id = -1;
        if (a.prev >= 0) consider(a.prev);
        consider(c.pos);
    }
    for (int i = 0; i >= 0; i = syms[i].next) out.push_back(syms[i].id);
}

}  // namespace moeinfer
