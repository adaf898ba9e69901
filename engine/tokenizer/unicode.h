// UTF-8 helpers shared by the tokenizer pieces. Normalization goes through utf8proc; nothing
// here re-implements Unicode tables.
#pragma once
#include <array>
#include <cstdint>
#include <string>
#include <string_view>

namespace archlens::unicode {

// Length of the UTF-8 sequence that starts with lead byte `c` (1 for stray bytes).
inline int utf8_len(unsigned char c) {
    if (c < 0x80) return 1;
    if ((c >> 5) == 0x6) return 2;
    if ((c >> 4) == 0xE) return 3;
    if ((c >> 3) == 0x1E) return 4;
    return 1;
}

// Decodes the (valid) code point at s[i]; advances i.
uint32_t next_codepoint(std::string_view s, size_t& i);
void append_utf8(std::string& out, uint32_t cp);

// Appends `in` to `out` with invalid sequences replaced by U+FFFD, one per maximal subpart
// (Unicode 15 §3.9 "U+FFFD substitution of maximal subparts", what Python and WHATWG do).
// Returns true when `in` was already valid.
bool append_sanitized(std::string& out, std::string_view in);
bool is_valid_utf8(std::string_view s);

enum class NormForm { NFC, NFD, NFKC, NFKD };
// Input must be valid UTF-8. Only the stretches that can change go through utf8proc.
std::string normalize(std::string_view s, NormForm form);
std::string normalize_whole(std::string_view s, NormForm form);  // all through utf8proc (tests)

std::string to_lower(std::string_view s);
// Rust char::is_whitespace (Unicode White_Space).
bool is_whitespace(uint32_t cp);
// Rust char::is_alphanumeric (letters and numbers), plus '_' and marks for "word" checks.
bool is_word_char(uint32_t cp);
bool is_numeric(uint32_t cp);      // Rust char::is_numeric: Nd, Nl, No
bool is_punctuation(uint32_t cp);  // Unicode P*

// GPT-2 byte-level alphabet: each byte maps to one printable code point.
// ref: openai/gpt-2 encoder.py bytes_to_unicode; HF tokenizers pre_tokenizers/byte_level.rs
struct ByteLevelTables {
    std::array<std::string, 256> byte_to_utf8;  // byte -> UTF-8 of its stand-in character
    std::array<int16_t, 0x144> cp_to_byte;      // stand-in code point -> byte, -1 if not one
};
const ByteLevelTables& byte_level_tables();

}  // namespace archlens::unicode
