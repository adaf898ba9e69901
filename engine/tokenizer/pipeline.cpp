#include "engine/tokenizer/pipeline.h"

#include <algorithm>
#include <cctype>
#include <functional>

#include "engine/tokenizer/unicode.h"

namespace archlens::tok {

void Pattern::find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
    find_each(s, [](void* ctx, size_t b, size_t e) {
        static_cast<std::vector<std::pair<size_t, size_t>>*>(ctx)->emplace_back(b, e);
    }, &out);
}

void Pattern::find_each(std::string_view s, void (*cb)(void*, size_t, size_t), void* ctx) const {
    if (regex) {
        regex->find_each(s, cb, ctx);
        return;
    }
    if (literal.empty()) return;
    size_t pos = 0;
    while ((pos = s.find(literal, pos)) != std::string_view::npos) {
        cb(ctx, pos, pos + literal.size());
        pos += literal.size();
    }
}

static void replace_all(std::string& s, const Pattern& p, const std::string& content) {
    std::vector<std::pair<size_t, size_t>> m;
    p.find_all(s, m);
    if (m.empty()) return;
    std::string out;
    out.reserve(s.size() + m.size() * content.size());
    size_t prev = 0;
    for (auto [b, e] : m) {
        out.append(s, prev, b - prev);
        out += content;
        prev = e;
    }
    out.append(s, prev, std::string::npos);
    s.swap(out);
}

void Normalizer::apply(std::string& s) const {
    switch (kind) {
        case Kind::NFC: s = unicode::normalize(s, unicode::NormForm::NFC); break;
        case Kind::NFD: s = unicode::normalize(s, unicode::NormForm::NFD); break;
        case Kind::NFKC: s = unicode::normalize(s, unicode::NormForm::NFKC); break;
        case Kind::NFKD: s = unicode::normalize(s, unicode::NormForm::NFKD); break;
        case Kind::Lowercase: s = unicode::to_lower(s); break;
        case Kind::Replace: replace_all(s, pattern, content); break;
        case Kind::Prepend:
            // ref: HF normalizers/prepend.rs — only non-empty strings get the prefix.
            if (!s.empty()) s.insert(0, content);
            break;
        case Kind::Strip: {
            size_t b = 0, e = s.size();
            if (strip_left) {
                while (b < e) {
                    size_t i = b;
                    if (!unicode::is_whitespace(unicode::next_codepoint(s, i))) break;
                    b = i;
                }
            }
            if (strip_right) {
                while (e > b) {
                    size_t i = e - 1;
                    while (i > b && ((unsigned char)s[i] & 0xC0) == 0x80) --i;
                    size_t j = i;
                    if (!unicode::is_whitespace(unicode::next_codepoint(s, j))) break;
                    e = i;
                }
            }
            s = s.substr(b, e - b);
            break;
        }
        case Kind::Sequence:
            for (const Normalizer& n : children) n.apply(s);
            break;
    }
}

// ref: HF tokenizers normalizer.rs NormalizedString::split and the SplitDelimiterBehavior folds.
void split_ranges(size_t size, const std::vector<std::pair<size_t, size_t>>& matches,
                  SplitBehavior behavior, bool invert, std::vector<std::pair<size_t, size_t>>& out) {
    struct R {
        size_t b, e;
        bool m;
    };
    std::vector<R> parts;
    parts.reserve(matches.size() * 2 + 1);
    size_t prev = 0;
    for (auto [b, e] : matches) {
        if (prev != b) parts.push_back({prev, b, false});
        parts.push_back({b, e, true});
        prev = e;
    }
    if (prev != size || size == 0) parts.push_back({prev, size, false});
    if (invert)
        for (R& r : parts) r.m = !r.m;

    std::vector<R> acc;
    acc.reserve(parts.size());
    switch (behavior) {
        case SplitBehavior::Removed:
            for (const R& r : parts)
                if (!r.m) acc.push_back(r);
            break;
        case SplitBehavior::Isolated: acc = parts; break;
        case SplitBehavior::MergedWithPrevious: {
            bool previous_match = false;
            for (const R& r : parts) {
                if (r.m && !previous_match && !acc.empty()) acc.back().e = r.e;
                else acc.push_back({r.b, r.e, false});
                previous_match = r.m;
            }
            break;
        }
        case SplitBehavior::MergedWithNext: {
            bool previous_match = false;
            for (size_t k = parts.size(); k-- > 0;) {
                const R& r = parts[k];
                if (r.m && !previous_match && !acc.empty()) acc.back().b = r.b;
                else acc.push_back({r.b, r.e, false});
                previous_match = r.m;
            }
            std::reverse(acc.begin(), acc.end());
            break;
        }
        case SplitBehavior::Contiguous: {
            bool previous_match = false;
            bool first = true;
            for (const R& r : parts) {
                if (!first && r.m == previous_match) acc.back().e = r.e;
                else acc.push_back({r.b, r.e, false});
                previous_match = r.m;
                first = false;
            }
            break;
        }
    }
    for (const R& r : acc)
        if (r.e > r.b) out.emplace_back(r.b, r.e);
}

namespace {

// Streaming form of split_ranges: parts (gaps and matches) arrive left to right and the behaviour
// folds them with at most one part held back. Same results as the HF folds above.
class SplitStream {
public:
    SplitStream(std::string_view text, bool at_origin, SplitBehavior behavior, bool invert, PieceSink sink)
        : text_(text), at_origin_(at_origin), behavior_(behavior), invert_(invert), sink_(sink) {}

    static void on_match(void* self, size_t b, size_t e) { static_cast<SplitStream*>(self)->match(b, e); }
    void match(size_t b, size_t e) {
        if (prev_ != b) part(prev_, b, false);
        part(b, e, true);
        prev_ = e;
    }
    void finish() {
        if (prev_ != text_.size()) part(prev_, text_.size(), false);
        if (has_pending_) emit(pending_b_, pending_e_);
        has_pending_ = false;
    }

private:
    void emit(size_t b, size_t e) {
        if (e > b) sink_(text_.substr(b, e - b), at_origin_ && b == 0);
    }
    void hold(size_t b, size_t e) {
        pending_b_ = b;
        pending_e_ = e;
        has_pending_ = true;
    }
    void part(size_t b, size_t e, bool m) {
        if (invert_) m = !m;
        switch (behavior_) {
            case SplitBehavior::Removed:
                if (!m) emit(b, e);
                break;
            case SplitBehavior::Isolated: emit(b, e); break;
            case SplitBehavior::MergedWithPrevious:
                if (m && !prev_match_ && has_pending_) {
                    pending_e_ = e;
                } else {
                    if (has_pending_) emit(pending_b_, pending_e_);
                    hold(b, e);
                }
                break;
            case SplitBehavior::MergedWithNext:
                // A match joins the part after it unless that part is a match too.
                if (m) {
                    if (has_pending_) emit(pending_b_, pending_e_);
                    hold(b, e);
                } else if (has_pending_) {
                    emit(pending_b_, e);
                    has_pending_ = false;
                } else {
                    emit(b, e);
                }
                break;
            case SplitBehavior::Contiguous:
                if (has_pending_ && m == prev_match_) {
                    pending_e_ = e;
                } else {
                    if (has_pending_) emit(pending_b_, pending_e_);
                    hold(b, e);
                }
                break;
        }
        prev_match_ = m;
    }

    std::string_view text_;
    bool at_origin_;
    SplitBehavior behavior_;
    bool invert_;
    PieceSink sink_;
    size_t prev_ = 0;
    bool prev_match_ = false;
    bool has_pending_ = false;
    size_t pending_b_ = 0, pending_e_ = 0;
};

template <class Find>
void split_stream(std::string_view text, bool at_origin, SplitBehavior behavior, bool invert,
                  PieceSink sink, const Find& find) {
    SplitStream st(text, at_origin, behavior, invert, sink);
    if (!text.empty()) find(text, &SplitStream::on_match, static_cast<void*>(&st));
    st.finish();
}

// One match per code point for which `pred` holds.
template <class Pred>
void char_matches(std::string_view s, Pred pred, void (*cb)(void*, size_t, size_t), void* ctx) {
    size_t i = 0;
    while (i < s.size()) {
        size_t b = i;
        uint32_t cp = unicode::next_codepoint(s, i);
        if (pred(cp)) cb(ctx, b, i);
    }
}

const Regex& whitespace_regex() {
    // ref: HF pre_tokenizers/whitespace.rs
    static const Regex re(R"(\w+|[^\w\s]+)", "Whitespace pre-tokenizer");
    return re;
}
const Regex& gpt2_regex() {
    // ref: HF pre_tokenizers/byte_level.rs (the GPT-2 pattern)
    static const Regex re(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)",
                          "ByteLevel pre-tokenizer");
    return re;
}

bool is_punct_char(uint32_t c) { return (c < 128 && std::ispunct(int(c))) || unicode::is_punctuation(c); }

// Byte-level mapping buffer: one per thread, a local one if a pipeline nests ByteLevel twice.
thread_local int byte_level_depth = 0;

}  // namespace

void PreTokenizer::run_sequence(size_t k, std::string_view text, bool at_origin, PieceSink sink) const {
    if (k == children.size()) {
        sink(text, at_origin);
        return;
    }
    auto next = [&](std::string_view t, bool a) { run_sequence(k + 1, t, a, sink); };
    children[k].run(text, at_origin, next);
}

void PreTokenizer::run(std::string_view text, bool at_origin, PieceSink sink) const {
    using CB = void (*)(void*, size_t, size_t);
    switch (kind) {
        case Kind::Split:
            split_stream(text, at_origin, behavior, invert, sink,
                         [&](std::string_view s, CB cb, void* ctx) { pattern.find_each(s, cb, ctx); });
            break;
        case Kind::ByteLevel: {
            // ref: HF pre_tokenizers/byte_level.rs — prefix space per piece, optional GPT-2 split,
            // then every byte becomes its stand-in character.
            std::string prefixed;
            if (add_prefix_space && (text.empty() || text[0] != ' ')) {
                prefixed = " ";
                prefixed += text;
                text = prefixed;
            }
            auto map_bytes = [&](std::string_view t, bool a) {
                thread_local std::string shared;
                std::string local;
                std::string& mapped = byte_level_depth == 0 ? shared : local;
                ++byte_level_depth;
                const auto& tables = unicode::byte_level_tables();
                mapped.resize(t.size() * 2);
                char* w = mapped.data();
                for (unsigned char c : t) {
                    const std::string& m = tables.byte_to_utf8[c];
                    w[0] = m[0];
                    if (m.size() == 2) w[1] = m[1];
                    w += m.size();
                }
                mapped.resize(size_t(w - mapped.data()));
                sink(mapped, a);
                --byte_level_depth;
            };
            if (use_regex)
                split_stream(text, at_origin, SplitBehavior::Isolated, false, map_bytes,
                             [](std::string_view s, CB cb, void* ctx) { gpt2_regex().find_each(s, cb, ctx); });
            else
                map_bytes(text, at_origin);
            break;
        }
        case Kind::Metaspace: {
            // ref: HF pre_tokenizers/metaspace.rs
            std::string r;
            r.reserve(text.size() + 8);
            for (char c : text) {
                if (c == ' ') r += replacement;
                else r += c;
            }
            bool starts = r.compare(0, replacement.size(), replacement) == 0;
            if (!starts && (prepend == Prepend::Always || (prepend == Prepend::First && at_origin)))
                r.insert(0, replacement);
            if (split) {
                Pattern lit;
                lit.literal = replacement;
                split_stream(r, at_origin, SplitBehavior::MergedWithNext, false, sink,
                             [&](std::string_view s, CB cb, void* ctx) { lit.find_each(s, cb, ctx); });
            } else {
                sink(r, at_origin);
            }
            break;
        }
        case Kind::Sequence: run_sequence(0, text, at_origin, sink); break;
        case Kind::Digits:
            split_stream(text, at_origin,
                         individual_digits ? SplitBehavior::Isolated : SplitBehavior::Contiguous, false, sink,
                         [](std::string_view s, CB cb, void* ctx) { char_matches(s, unicode::is_numeric, cb, ctx); });
            break;
        case Kind::Whitespace:
            split_stream(text, at_origin, SplitBehavior::Removed, true, sink,
                         [](std::string_view s, CB cb, void* ctx) { whitespace_regex().find_each(s, cb, ctx); });
            break;
        case Kind::WhitespaceSplit:
            split_stream(text, at_origin, SplitBehavior::Removed, false, sink,
                         [](std::string_view s, CB cb, void* ctx) { char_matches(s, unicode::is_whitespace, cb, ctx); });
            break;
        case Kind::Punctuation:
            split_stream(text, at_origin, behavior, false, sink,
                         [](std::string_view s, CB cb, void* ctx) { char_matches(s, is_punct_char, cb, ctx); });
            break;
    }
}

// Lossy UTF-8 (maximal subparts), as Rust's String::from_utf8_lossy.
static std::string lossy(std::string_view bytes) {
    std::string out;
    out.reserve(bytes.size());
    unicode::append_sanitized(out, bytes);
    return out;
}

void Decoder::decode_chain(std::vector<std::string>& tokens) const {
    switch (kind) {
        case Kind::ByteLevel: {
            // ref: HF pre_tokenizers/byte_level.rs decode_chain — a token with a character outside
            // the byte alphabet contributes its raw bytes.
            const auto& t = unicode::byte_level_tables();
            std::string bytes;
            for (const std::string& tok : tokens) {
                size_t mark = bytes.size();
                size_t i = 0;
                bool ok = true;
                while (i < tok.size()) {
                    uint32_t cp = unicode::next_codepoint(tok, i);
                    if (cp >= t.cp_to_byte.size() || t.cp_to_byte[cp] < 0) {
                        ok = false;
                        break;
                    }
                    bytes.push_back(char(t.cp_to_byte[cp]));
                }
                if (!ok) {
                    bytes.resize(mark);
                    bytes += tok;
                }
            }
            tokens.assign(1, lossy(bytes));
            break;
        }
        case Kind::ByteFallback: {
            // ref: HF decoders/byte_fallback.rs — invalid byte runs become one U+FFFD per byte.
            std::vector<std::string> out;
            std::string pending;
            auto flush = [&] {
                if (pending.empty()) return;
                if (unicode::is_valid_utf8(pending)) out.push_back(pending);
                else
                    for (size_t k = 0; k < pending.size(); ++k) out.emplace_back("\xEF\xBF\xBD");
                pending.clear();
            };
            for (std::string& tok : tokens) {
                int byte = -1;
                if (tok.size() == 6 && tok.compare(0, 3, "<0x") == 0 && tok[5] == '>') {
                    auto hex = [](char c) {
                        if (c >= '0' && c <= '9') return c - '0';
                        if (c >= 'A' && c <= 'F') return c - 'A' + 10;
                        if (c >= 'a' && c <= 'f') return c - 'a' + 10;
                        return -1;
                    };
                    int h = hex(tok[3]), l = hex(tok[4]);
                    if (h >= 0 && l >= 0) byte = h * 16 + l;
                }
                if (byte >= 0) {
                    pending.push_back(char(byte));
                } else {
                    flush();
                    out.push_back(std::move(tok));
                }
            }
            flush();
            tokens.swap(out);
            break;
        }
        case Kind::Fuse: {
            std::string all;
            for (const std::string& t : tokens) all += t;
            tokens.assign(1, std::move(all));
            break;
        }
        case Kind::Strip: {
            // ref: HF decoders/strip.rs — per token, up to `start`/`stop` copies of the char.
            for (std::string& tok : tokens) {
                std::vector<std::pair<size_t, uint32_t>> cps;
                size_t i = 0;
                while (i < tok.size()) {
                    size_t b = i;
                    cps.emplace_back(b, unicode::next_codepoint(tok, i));
                }
                size_t start_cut = 0;
                for (size_t k = 0; k < start && k < cps.size(); ++k) {
                    if (cps[k].second == strip_char) start_cut = k + 1;
                    else break;
                }
                size_t stop_cut = cps.size();
                for (size_t k = 0; k < stop && k < cps.size(); ++k) {
                    size_t idx = cps.size() - 1 - k;
                    if (cps[idx].second == strip_char) stop_cut = idx;
                    else break;
                }
                if (stop_cut < start_cut) stop_cut = start_cut;
                size_t b = start_cut < cps.size() ? cps[start_cut].first : tok.size();
                size_t e = stop_cut < cps.size() ? cps[stop_cut].first : tok.size();
                tok = tok.substr(b, e - b);
            }
            break;
        }
        case Kind::Replace:
            for (std::string& tok : tokens) replace_all(tok, pattern, content);
            break;
        case Kind::Metaspace:
            // ref: HF decoders (pre_tokenizers/metaspace.rs) — the first token loses its
            // replacement characters when a prefix was prepended at encode time.
            for (size_t k = 0; k < tokens.size(); ++k) {
                std::string& tok = tokens[k];
                std::string r;
                size_t pos = 0;
                while (pos < tok.size()) {
                    if (!replacement.empty() && tok.compare(pos, replacement.size(), replacement) == 0) {
                        if (!(k == 0 && prepend)) r += ' ';
                        pos += replacement.size();
                    } else {
                        r += tok[pos++];
                    }
                }
                tok.swap(r);
            }
            break;
        case Kind::BPEDecoder:
            for (size_t k = 0; k < tokens.size(); ++k) {
                Pattern p;
                p.literal = content;
                replace_all(tokens[k], p, k + 1 == tokens.size() ? "" : " ");
            }
            break;
        case Kind::Sequence:
            for (const Decoder& d : children) d.decode_chain(tokens);
            break;
    }
}

}  // namespace archlens::tok
