#include "engine/tokenizer/regex.h"

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>

#include "engine/core/error.h"
#include "engine/tokenizer/unicode.h"

namespace archlens {

std::string translate_oniguruma(const std::string& p) {
    std::string out;
    out.reserve(p.size() + 32);
    for (size_t i = 0; i < p.size(); ++i) {
        if (p[i] == '\\' && i + 1 < p.size()) {
            char c = p[i + 1];
            if (c == 's') out += "\\p{White_Space}";
            else if (c == 'S') out += "\\P{White_Space}";
            else {
                out += '\\';
                out += c;
            }
            ++i;
        } else {
            out += p[i];
        }
    }
    return out;
}

namespace {
// Per-thread scratch: match data and a JIT stack big enough for long runs (10 MB lines).
struct MatchScratch {
    pcre2_match_data* data = nullptr;
    pcre2_match_context* context = nullptr;
    pcre2_jit_stack* stack = nullptr;
    MatchScratch() {
        data = pcre2_match_data_create(32, nullptr);
        context = pcre2_match_context_create(nullptr);
        stack = pcre2_jit_stack_create(32 * 1024, 64 * 1024 * 1024, nullptr);
        if (stack) pcre2_jit_stack_assign(context, nullptr, stack);
    }
    ~MatchScratch() {
        pcre2_match_data_free(data);
        pcre2_match_context_free(context);
        if (stack) pcre2_jit_stack_free(stack);
    }
};
MatchScratch& scratch() {
    thread_local MatchScratch s;
    return s;
}
}  // namespace

Regex::Regex(const std::string& pattern, const std::string& origin) {
    std::string translated = translate_oniguruma(pattern);
    int err = 0;
    PCRE2_SIZE off = 0;
    pcre2_code* code = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(translated.data()),
                                     translated.size(), PCRE2_UTF | PCRE2_UCP | PCRE2_NO_UTF_CHECK,
                                     &err, &off, nullptr);
    if (!code) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        fail(origin, "invalid regex '" + pattern + "' at offset " + std::to_string(off) + ": " +
                         reinterpret_cast<char*>(msg));
    }
    jit_ = pcre2_jit_compile(code, PCRE2_JIT_COMPLETE) == 0;
    code_ = code;
}

Regex::~Regex() { pcre2_code_free(static_cast<pcre2_code*>(code_)); }

void Regex::find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const {
    find_each(subject, [](void* ctx, size_t b, size_t e) {
        static_cast<std::vector<std::pair<size_t, size_t>>*>(ctx)->emplace_back(b, e);
    }, &out);
}

void Regex::find_each(std::string_view subject, void (*cb)(void*, size_t, size_t), void* ctx) const {
    auto* code = static_cast<pcre2_code*>(code_);
    MatchScratch& s = scratch();
    auto* ptr = reinterpret_cast<PCRE2_SPTR>(subject.data());
    size_t start = 0;
    while (start <= subject.size()) {
        int rc = jit_ ? pcre2_jit_match(code, ptr, subject.size(), start, 0, s.data, s.context)
                      : pcre2_match(code, ptr, subject.size(), start, PCRE2_NO_UTF_CHECK, s.data,
                                    s.context);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0 && rc != 0) {
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            throw Error(std::string("regex match failed: ") + reinterpret_cast<char*>(msg));
        }
        PCRE2_SIZE* ov = pcre2_get_ovector_pointer(s.data);
        size_t b = ov[0], e = ov[1];
        if (e == b) {
            // Empty match: step over one character, as Oniguruma's find_iter does.
            if (b >= subject.size()) break;
            start = b + unicode::utf8_len((unsigned char)subject[b]);
            continue;
        }
        cb(ctx, b, e);
        start = e;
    }
}

}  // namespace archlens
