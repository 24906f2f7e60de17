// Unicode lookups and NFC over the generated tables in unicode_tables.inc.
#include "tokenizer/unicode.h"

#include <algorithm>
#include <memory>
#include <unordered_map>
#include <vector>

namespace moeinfer::unicode {
namespace {

struct DecompositionEntry {
    uint32_t cp, first, second;
};
struct CompositionEntry {
    uint32_t first, second, composite;
};
struct CaseEntry {
    uint32_t cp, to[3];
};
#include "tokenizer/unicode_tables.inc"

constexpr uint32_t kMaxCp = 0x110000;

// Flat per-code-point tables (1.1 MB each) built once: the tokenizer's inner loops look categories up per char.
struct Tables {
    std::unique_ptr<uint8_t[]> cat{new uint8_t[kMaxCp]};
    std::unique_ptr<uint8_t[]> ccc{new uint8_t[kMaxCp]};
    std::unordered_map<uint32_t, std::pair<uint32_t, uint32_t>> decomp;
    std::unordered_map<uint64_t, uint32_t> comp;
    Tables() {
        fill_runs(cat.get(), kCategoryRuns, std::size(kCategoryRuns), 5);
        fill_runs(ccc.get(), kCombiningRuns, std::size(kCombiningRuns), 8);
        for (const auto& d : kDecompositions) decomp[d.cp] = {d.first, d.second};
        for (const auto& c : kCompositions) comp[uint64_t(c.first) << 32 | c.second] = c.composite;
    }
    static void fill_runs(uint8_t* dst, const uint32_t* runs, size_t n, int shift) {
        for (size_t i = 0; i < n; ++i) {
            uint32_t start = runs[i] >> shift, end = i + 1 < n ? runs[i + 1] >> shift : kMaxCp;
            std::fill(dst + start, dst + end, uint8_t(runs[i] & ((1u << shift) - 1)));
        }
    }
};

const Tables& tables() {
    static const Tables t;
    return t;
}

// Hangul syllables compose and decompose algorithmically (Unicode ch. 3.12).
constexpr uint32_t kSBase = 0xAC00, kLBase = 0x1100, kVBase = 0x1161, kTBase = 0x11A7;
constexpr uint32_t kLCount = 19, kVCount = 21, kTCount = 28, kNCount = kVCount * kTCount, kSCount = kLCount * kNCount;

void decompose(uint32_t cp, std::vector<uint32_t>& out) {
    if (cp >= kSBase && cp < kSBase + kSCount) {
        uint32_t s = cp - kSBase;
        out.push_back(kLBase + s / kNCount);
        out.push_back(kVBase + (s % kNCount) / kTCount);
        if (s % kTCount) out.push_back(kTBase + s % kTCount);
        return;
    }
    const auto& d = tables().decomp;
    auto it = d.find(cp);
    if (it == d.end()) {
        out.push_back(cp);
        return;
    }
    decompose(it->second.first, out);
    if (it->second.second) decompose(it->second.second, out);
}

uint32_t compose_pair(uint32_t a, uint32_t b) {
    if (a >= kLBase && a < kLBase + kLCount && b >= kVBase && b < kVBase + kVCount)
        return kSBase + ((a - kLBase) * kVCount + (b - kVBase)) * kTCount;
    if (a >= kSBase && a < kSBase + kSCount && (a - kSBase) % kTCount == 0 && b > kTBase && b < kTBase + kTCount)
        return a + (b - kTBase);
    const auto& c = tables().comp;
    auto it = c.find(uint64_t(a) << 32 | b);
    return it == c.end() ? 0 : it->second;
}

std::string map_case(std::string_view s, const CaseEntry* table, size_t n) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        uint32_t cp = decode_utf8(s, i);
        const CaseEntry* e = std::lower_bound(table, table + n, cp, [](const CaseEntry& a, uint32_t c) { return a.cp < c; });
        if (e == table + n || e->cp != cp) {
            append_utf8(out, cp);
            continue;
        }
        for (uint32_t t : e->to)
            if (t) append_utf8(out, t);
    }
    return out;
}

}  // namespace

std::string to_upper(std::string_view s) { return map_case(s, kUpperMap, std::size(kUpperMap)); }
std::string to_lower(std::string_view s) { return map_case(s, kLowerMap, std::size(kLowerMap)); }
bool is_cased(uint32_t cp) {
    Category c = category(cp);
    return c == Lu || c == Ll || c == Lt;
}

const char* const kCategoryNames[kCategoryCount] = {"Cn", "Lu", "Ll", "Lt", "Lm", "Lo", "Mn", "Mc", "Me", "Nd",
                                                    "Nl", "No", "Pc", "Pd", "Ps", "Pe", "Pi", "Pf", "Po", "Sm",
                                                    "Sc", "Sk", "So", "Zs", "Zl", "Zp", "Cc", "Cf", "Cs", "Co"};

Category category(uint32_t cp) { return cp < kMaxCp ? Category(tables().cat[cp]) : Cn; }
uint8_t combining_class(uint32_t cp) { return cp < kMaxCp ? tables().ccc[cp] : 0; }

bool is_white_space(uint32_t cp) {
    if (cp < 0x80) return cp == ' ' || (cp >= 0x09 && cp <= 0x0D);
    return cp == 0x85 || cp == 0xA0 || cp == 0x1680 || (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 ||
           cp == 0x2029 || cp == 0x202F || cp == 0x205F || cp == 0x3000;
}

uint32_t decode_utf8(std::string_view s, size_t& i) {
    unsigned char b0 = s[i];
    if (b0 < 0x80) {
        ++i;
        return b0;
    }
    size_t n = b0 >= 0xC2 && b0 <= 0xDF ? 2 : b0 >= 0xE0 && b0 <= 0xEF ? 3 : b0 >= 0xF0 && b0 <= 0xF4 ? 4 : 0;
    if (n == 0) {
        ++i;
        return 0xFFFD;
    }
    uint32_t cp = b0 & (0x7F >> n);
    for (size_t k = 1; k < n; ++k) {
        if (i + k >= s.size()) {
            i += k;
            return 0xFFFD;
        }
        unsigned char b = s[i + k];
        // The second byte's range excludes overlongs, surrogates and code points past U+10FFFF.
        unsigned char lo = 0x80, hi = 0xBF;
        if (k == 1) {
            if (b0 == 0xE0) lo = 0xA0;
            if (b0 == 0xED) hi = 0x9F;
            if (b0 == 0xF0) lo = 0x90;
            if (b0 == 0xF4) hi = 0x8F;
        }
        if (b < lo || b > hi) {
            i += k;  // the maximal invalid prefix is replaced by one U+FFFD
            return 0xFFFD;
        }
        cp = cp << 6 | (b & 0x3F);
    }
    i += n;
    return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | cp >> 6);
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | cp >> 12);
        out += char(0x80 | (cp >> 6 & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | cp >> 18);
        out += char(0x80 | (cp >> 12 & 0x3F));
        out += char(0x80 | (cp >> 6 & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

bool is_valid_utf8(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        if ((unsigned char)s[i] < 0x80) {
            ++i;
            continue;
        }
        size_t start = i;
        uint32_t cp = decode_utf8(s, i);
        if (cp == 0xFFFD && !(i - start == 3 && s.substr(start, 3) == "\xEF\xBF\xBD")) return false;
    }
    return true;
}

std::string to_valid_utf8(std::string_view s) {
    if (is_valid_utf8(s)) return std::string(s);
    std::string out;
    out.reserve(s.size() + 8);
    for (size_t i = 0; i < s.size();) append_utf8(out, decode_utf8(s, i));
    return out;
}

size_t incomplete_utf8_tail(std::string_view s) {
    // Look back at most 3 bytes for a lead byte whose sequence runs past the end.
    for (size_t k = 1; k <= 3 && k <= s.size(); ++k) {
        unsigned char b = s[s.size() - k];
        if ((b & 0xC0) == 0x80) continue;
        if (b < 0xC0) return 0;
        return utf8_len(b) > k ? k : 0;
    }
    return 0;
}

std::string nfc(std::string_view s) {
    // Text below U+0300 is always in NFC (no combining marks, no composites that change).
    bool simple = true;
    for (unsigned char b : s)
        if (b >= 0xCC) {
            simple = false;
            break;
        }
    if (simple) return std::string(s);
    std::vector<uint32_t> cps;
    cps.reserve(s.size());
    for (size_t i = 0; i < s.size();) decompose(decode_utf8(s, i), cps);
    // Canonical ordering: stable sort of each run of non-starters by combining class.
    for (size_t i = 0; i < cps.size();) {
        if (combining_class(cps[i]) == 0) {
            ++i;
            continue;
        }
        size_t j = i;
        while (j < cps.size() && combining_class(cps[j]) != 0) ++j;
        std::stable_sort(cps.begin() + i, cps.begin() + j,
                         [](uint32_t a, uint32_t b) { return combining_class(a) < combining_class(b); });
        i = j;
    }
    // Canonical composition: each char composes with the last starter unless blocked.
    std::vector<uint32_t> out;
    out.reserve(cps.size());
    long starter = -1;
    for (uint32_t cp : cps) {
        uint8_t cc = combining_class(cp);
        if (starter >= 0) {
            uint8_t last_cc = out.size() - 1 == size_t(starter) ? 0 : combining_class(out.back());
            bool blocked = out.size() - 1 != size_t(starter) && (last_cc == 0 || last_cc >= cc);
            if (!blocked) {
                if (uint32_t c = compose_pair(out[starter], cp)) {
                    out[starter] = c;
                    continue;
                }
            }
        }
        if (cc == 0) starter = long(out.size());
        out.push_back(cp);
    }
    std::string r;
    r.reserve(s.size());
    for (uint32_t cp : out) append_utf8(r, cp);
    return r;
}

}  // namespace moeinfer::unicode
