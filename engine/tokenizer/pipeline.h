// The pieces of the HF tokenizers pipeline (normalizers, pre-tokenizers, added-token matching,
// post-processor, decoders) as small structs built from tokenizer.json. Internal to the tokenizer.
#pragma once
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "engine/tokenizer/regex.h"

namespace archlens::tok {

// A string pattern as tokenizer.json writes it: {"String": "..."} or {"Regex": "..."}.
struct Pattern {
    std::string literal;
    std::shared_ptr<Regex> regex;  // set for Regex patterns
    void find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const;
    void find_each(std::string_view s, void (*cb)(void*, size_t, size_t), void* ctx) const;
};

// ref: HF tokenizers src/normalizers
struct Normalizer {
    enum class Kind { NFC, NFD, NFKC, NFKD, Lowercase, Replace, Prepend, Strip, Sequence };
    Kind kind = Kind::Sequence;
    Pattern pattern;      // Replace
    std::string content;  // Replace content / Prepend string
    bool strip_left = false, strip_right = false;
    std::vector<Normalizer> children;
    void apply(std::string& s) const;
};

// Receives pre-tokens: the (normalized) text and whether it starts at offset 0 of the original
// input (Metaspace's prepend_scheme "first" looks at that). Non-owning, no allocation per call.
class PieceSink {
public:
    template <class F>
    PieceSink(const F& f)  // NOLINT: implicit on purpose, like std::function_ref
        : obj_(&f), call_([](const void* o, std::string_view t, bool a) { (*static_cast<const F*>(o))(t, a); }) {}
    void operator()(std::string_view text, bool at_origin) const { call_(obj_, text, at_origin); }

private:
    const void* obj_;
    void (*call_)(const void*, std::string_view, bool);
};

enum class SplitBehavior { Removed, Isolated, MergedWithPrevious, MergedWithNext, Contiguous };

// ref: HF tokenizers src/pre_tokenizers
struct PreTokenizer {
    enum class Kind { Split, ByteLevel, Metaspace, Sequence, Digits, Whitespace, WhitespaceSplit, Punctuation };
    Kind kind = Kind::Sequence;
    Pattern pattern;  // Split (and the regex-driven kinds)
    SplitBehavior behavior = SplitBehavior::Isolated;
    bool invert = false;
    bool add_prefix_space = false;  // ByteLevel
    bool use_regex = false;         // ByteLevel
    std::string replacement;        // Metaspace ("▁")
    enum class Prepend { Always, First, Never } prepend = Prepend::Always;
    bool split = true;               // Metaspace
    bool individual_digits = false;  // Digits
    std::vector<PreTokenizer> children;
    // Pre-tokenizes one piece, streaming the resulting pre-tokens into `sink` (a 10 MB line
    // never materializes millions of strings).
    void run(std::string_view text, bool at_origin, PieceSink sink) const;

private:
    void run_sequence(size_t k, std::string_view text, bool at_origin, PieceSink sink) const;
};

// ref: HF tokenizers src/decoders
struct Decoder {
    enum class Kind { ByteLevel, ByteFallback, Fuse, Strip, Replace, Metaspace, Sequence, BPEDecoder };
    Kind kind = Kind::Sequence;
    Pattern pattern;
    std::string content;  // Replace content, Strip char, BPEDecoder suffix
    uint32_t strip_char = ' ';
    size_t start = 0, stop = 0;  // Strip
    std::string replacement;      // Metaspace
    bool prepend = true;          // Metaspace: prepend_scheme != never
    std::vector<Decoder> children;
    void decode_chain(std::vector<std::string>& tokens) const;
};

// Apply `behavior` to the (begin,end) matches of one string, giving the kept ranges.
void split_ranges(size_t size, const std::vector<std::pair<size_t, size_t>>& matches,
                  SplitBehavior behavior, bool invert, std::vector<std::pair<size_t, size_t>>& out);

}  // namespace archlens::tok
