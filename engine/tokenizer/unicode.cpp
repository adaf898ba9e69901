#include "engine/tokenizer/unicode.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>

#include "engine/core/error.h"

namespace archlens::unicode {

uint32_t next_codepoint(std::string_view s, size_t& i) {
    unsigned char c = (unsigned char)s[i];
    int n = utf8_len(c);
    if (n == 1 || i + n > s.size()) {
        ++i;
        return c;
    }
    uint32_t cp = c & (0x7F >> n);
    for (int k = 1; k < n; ++k) cp = (cp << 6) | ((unsigned char)s[i + k] & 0x3F);
    i += n;
    return cp;
}

void append_utf8(std::string& out, uint32_t cp) {
    if (cp < 0x80) {
        out.push_back(char(cp));
    } else if (cp < 0x800) {
        out.push_back(char(0xC0 | (cp >> 6)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    } else if (cp < 0x10000) {
        out.push_back(char(0xE0 | (cp >> 12)));
        out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    } else {
        out.push_back(char(0xF0 | (cp >> 18)));
        out.push_back(char(0x80 | ((cp >> 12) & 0x3F)));
        out.push_back(char(0x80 | ((cp >> 6) & 0x3F)));
        out.push_back(char(0x80 | (cp & 0x3F)));
    }
}

// Length of the well-formed sequence at s[i], or 0 if ill-formed; `subpart` gets the length of
// the maximal subpart to replace by one U+FFFD. Table 3-7 of the Unicode standard.
static size_t well_formed_len(std::string_view s, size_t i, size_t& subpart) {
    auto b = [&](size_t k) { return (unsigned char)s[i + k]; };
    unsigned char c = b(0);
    subpart = 1;
    if (c < 0x80) return 1;
    unsigned char lo = 0x80, hi = 0xBF;
    size_t n;
    if (c >= 0xC2 && c <= 0xDF) n = 2;
    else if (c == 0xE0) n = 3, lo = 0xA0;
    else if (c >= 0xE1 && c <= 0xEC) n = 3;
    else if (c == 0xED) n = 3, hi = 0x9F;
    else if (c >= 0xEE && c <= 0xEF) n = 3;
    else if (c == 0xF0) n = 4, lo = 0x90;
    else if (c >= 0xF1 && c <= 0xF3) n = 4;
    else if (c == 0xF4) n = 4, hi = 0x8F;
    else return 0;
    for (size_t k = 1; k < n; ++k) {
        if (i + k >= s.size()) return 0;
        unsigned char x = b(k);
        unsigned char l = k == 1 ? lo : 0x80, h = k == 1 ? hi : 0xBF;
        if (x < l || x > h) return 0;
        subpart = k + 1;
    }
    return n;
}

bool is_valid_utf8(std::string_view s) {
    size_t i = 0;
    while (i < s.size()) {
        // ASCII fast path: 8 bytes at a time.
        while (i + 8 <= s.size()) {
            uint64_t w;
            __builtin_memcpy(&w, s.data() + i, 8);
            if (w & 0x8080808080808080ull) break;
            i += 8;
        }
        if (i >= s.size()) break;
        size_t sub;
        size_t n = well_formed_len(s, i, sub);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

bool append_sanitized(std::string& out, std::string_view in) {
    if (is_valid_utf8(in)) {
        out.append(in);
        return true;
    }
    size_t i = 0;
    while (i < in.size()) {
        size_t sub;
        size_t n = well_formed_len(in, i, sub);
        if (n == 0) {
            out.append("\xEF\xBF\xBD");
            i += sub;
        } else {
            out.append(in.substr(i, n));
            i += n;
        }
    }
    return false;
}

std::string normalize_whole(std::string_view s, NormForm form) {
    int options = UTF8PROC_STABLE;
    switch (form) {
        case NormForm::NFC: options |= UTF8PROC_COMPOSE; break;
        case NormForm::NFD: options |= UTF8PROC_DECOMPOSE; break;
        case NormForm::NFKC: options |= UTF8PROC_COMPOSE | UTF8PROC_COMPAT; break;
        case NormForm::NFKD: options |= UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT; break;
    }
    utf8proc_uint8_t* result = nullptr;
    utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(s.data()),
                                      utf8proc_ssize_t(s.size()), &result,
                                      utf8proc_option_t(options));
    if (n < 0) throw Error(std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
    std::string out(reinterpret_cast<char*>(result), size_t(n));
    std::free(result);
    return out;
}

// A code point that the normalization form leaves as is and that nothing before it can combine
// with or reorder across: the text can be cut right before it and normalized piecewise.
// Conservative (precomposed letters count as unstable), with utf8proc's own data.
static bool is_stable_starter(uint32_t cp, NormForm form) {
    if (cp < 0x80) return true;
    if (cp >= 0x1100 && cp <= 0x11FF) return false;  // conjoining jamo compose algorithmically
    bool decompose = form == NormForm::NFD || form == NormForm::NFKD;
    if (decompose && cp >= 0xAC00 && cp <= 0xD7A3) return false;  // Hangul syllables split
    const utf8proc_property_t* p = utf8proc_get_property(utf8proc_int32_t(cp));
    if (p->combining_class != 0) return false;
    if (p->comb_index != UINT16_MAX && p->comb_index >= 0x8000) return false;  // 2nd of a pair
    if (p->decomp_seqindex != UINT16_MAX) {
        bool compat_only = p->decomp_type != 0;
        bool applies = form == NormForm::NFKC || form == NormForm::NFKD || !compat_only;
        if (applies) return false;
    }
    return true;
}

std::string normalize(std::string_view s, NormForm form) {
    // Normalize only the unstable stretches (each starting at the stable character before it),
    // copying the rest: most text is already normalized and utf8proc costs ~50 ns a character.
    std::string out;
    size_t copied = 0, prev_start = 0, i = 0;
    bool any = false;
    while (i < s.size()) {
        if ((unsigned char)s[i] < 0x80) {
            prev_start = i++;
            continue;
        }
        size_t start = i;
        uint32_t cp = next_codepoint(s, i);
        if (is_stable_starter(cp, form)) {
            prev_start = start;
            continue;
        }
        size_t region = std::max(copied, start == 0 ? 0 : prev_start);
        size_t end = i;
        while (end < s.size()) {
            size_t j = end;
            uint32_t c = (unsigned char)s[j] < 0x80 ? (unsigned char)s[j++] : next_codepoint(s, j);
            if (is_stable_starter(c, form)) break;
            end = j;
        }
        if (!any) out.reserve(s.size() + 16);
        any = true;
        out.append(s.substr(copied, region - copied));
        out += normalize_whole(s.substr(region, end - region), form);
        copied = end;
        i = end;
        prev_start = end;
    }
    if (!any) return std::string(s);
    out.append(s.substr(copied));
    return out;
}

std::string to_lower(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    size_t i = 0;
    while (i < s.size()) append_utf8(out, uint32_t(utf8proc_tolower(utf8proc_int32_t(next_codepoint(s, i)))));
    return out;
}

bool is_whitespace(uint32_t cp) {
    // Unicode White_Space property (PropList.txt), what Rust's char::is_whitespace tests.
    return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
           cp == 0x205F || cp == 0x3000;
}

bool is_numeric(uint32_t cp) {
    auto c = utf8proc_category(utf8proc_int32_t(cp));
    return c == UTF8PROC_CATEGORY_ND || c == UTF8PROC_CATEGORY_NL || c == UTF8PROC_CATEGORY_NO;
}

bool is_word_char(uint32_t cp) {
    if (cp == '_') return true;
    auto c = utf8proc_category(utf8proc_int32_t(cp));
    return (c >= UTF8PROC_CATEGORY_LU && c <= UTF8PROC_CATEGORY_LO) ||
           (c >= UTF8PROC_CATEGORY_MN && c <= UTF8PROC_CATEGORY_ME) ||
           (c >= UTF8PROC_CATEGORY_ND && c <= UTF8PROC_CATEGORY_NO) || c == UTF8PROC_CATEGORY_PC;
}

bool is_punctuation(uint32_t cp) {
    auto c = utf8proc_category(utf8proc_int32_t(cp));
    return c >= UTF8PROC_CATEGORY_PC && c <= UTF8PROC_CATEGORY_PO;
}

const ByteLevelTables& byte_level_tables() {
    static const ByteLevelTables tables = [] {
        ByteLevelTables t;
        t.cp_to_byte.fill(-1);
        int extra = 0;
        for (int b = 0; b < 256; ++b) {
            bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            uint32_t cp = printable ? uint32_t(b) : uint32_t(256 + extra++);
            append_utf8(t.byte_to_utf8[b], cp);
            t.cp_to_byte[cp] = int16_t(b);
        }
        return t;
    }();
    return tables;
}

}  // namespace archlens::unicode
