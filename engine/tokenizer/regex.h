// PCRE2 (UTF + UCP, JIT when available) for the pre-tokenizer and normalizer patterns that
// tokenizer.json writes in Oniguruma syntax.
#pragma once
#include <cstddef>
#include <string>
#include <string_view>
#include <vector>

namespace archlens {

class Regex {
public:
    // Throws archlens::Error (with `origin` and the PCRE2 message) when the pattern is invalid.
    Regex(const std::string& oniguruma_pattern, const std::string& origin);
    ~Regex();
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // Non-overlapping matches left to right as (begin, end) byte offsets. `subject` must be
    // valid UTF-8 (the tokenizer sanitizes input first), so PCRE2's own check is skipped: it
    // would rescan the whole subject on every call and make long inputs quadratic.
    void find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const;
    // Same, streamed: cb(ctx, begin, end) per match (no intermediate vector for long inputs).
    void find_each(std::string_view subject, void (*cb)(void*, size_t, size_t), void* ctx) const;

private:
    void* code_ = nullptr;  // pcre2_code_8*
    bool jit_ = false;
};

// Oniguruma -> PCRE2: `\s` / `\S` become \p{White_Space} / \P{White_Space}, which is what
// Oniguruma means by them (PCRE2's UCP \s also takes U+180E).
std::string translate_oniguruma(const std::string& pattern);

}  // namespace archlens
