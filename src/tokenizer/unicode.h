// Unicode helpers for the tokenizer: UTF-8 coding (lossy, as HF does for invalid input), general categories
// (tables from tools/tokenizer_unicode_tables.py), White_Space, and NFC normalization.
#pragma once
#include <cstdint>
#include <string>
#include <string_view>

namespace moeinfer::unicode {

// General category indices; the order matches kCategoryNames and the generated tables.
enum Category : uint8_t {
    Cn, Lu, Ll, Lt, Lm, Lo, Mn, Mc, Me, Nd, Nl, No, Pc, Pd, Ps, Pe, Pi, Pf,
    Po, Sm, Sc, Sk, So, Zs, Zl, Zp, Cc, Cf, Cs, Co, kCategoryCount
};
extern const char* const kCategoryNames[kCategoryCount];

// Masks of categories for the one-letter classes of regex \p{L}, \p{N}, ...
constexpr uint32_t cat_bit(Category c) { return 1u << c; }
constexpr uint32_t kMaskL = cat_bit(Lu) | cat_bit(Ll) | cat_bit(Lt) | cat_bit(Lm) | cat_bit(Lo);
constexpr uint32_t kMaskM = cat_bit(Mn) | cat_bit(Mc) | cat_bit(Me);
constexpr uint32_t kMaskN = cat_bit(Nd) | cat_bit(Nl) | cat_bit(No);
constexpr uint32_t kMaskP = cat_bit(Pc) | cat_bit(Pd) | cat_bit(Ps) | cat_bit(Pe) | cat_bit(Pi) | cat_bit(Pf) | cat_bit(Po);
constexpr uint32_t kMaskS = cat_bit(Sm) | cat_bit(Sc) | cat_bit(Sk) | cat_bit(So);
constexpr uint32_t kMaskZ = cat_bit(Zs) | cat_bit(Zl) | cat_bit(Zp);
constexpr uint32_t kMaskC = cat_bit(Cn) | cat_bit(Cc) | cat_bit(Cf) | cat_bit(Cs) | cat_bit(Co);

Category category(uint32_t cp);
bool is_white_space(uint32_t cp);  // the Unicode White_Space property (what regex \s means)
uint8_t combining_class(uint32_t cp);

// Decodes one code point at s[i] and advances i. Invalid or truncated sequences yield U+FFFD and advance one
// byte, the way Rust's from_utf8_lossy treats each maximal invalid prefix (close enough for text from C++).
uint32_t decode_utf8(std::string_view s, size_t& i);
void append_utf8(std::string& out, uint32_t cp);
// Length of the UTF-8 sequence that starts with byte b (1 for continuation/invalid bytes).
inline size_t utf8_len(unsigned char b) { return b < 0x80 ? 1 : b < 0xE0 ? 2 : b < 0xF0 ? 3 : 4; }
bool is_valid_utf8(std::string_view s);
// `s` with invalid UTF-8 replaced by U+FFFD (one per maximal invalid subsequence, as Rust does).
std::string to_valid_utf8(std::string_view s);
// Number of bytes at the end of `s` that form an incomplete (but so far valid) UTF-8 sequence.
size_t incomplete_utf8_tail(std::string_view s);

// Canonical composition (NFC) of valid UTF-8 text.
std::string nfc(std::string_view s);

// Python's str.upper() / str.lower() (full mappings such as ß -> SS; no context-dependent final sigma).
std::string to_upper(std::string_view s);
std::string to_lower(std::string_view s);
bool is_cased(uint32_t cp);  // Lu, Ll or Lt: what Python's title() treats as part of a word

}  // namespace moeinfer::unicode
