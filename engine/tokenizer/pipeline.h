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

// A pre-token: its (normalized) text, and whether it starts at offset 0 of the original input
// (Metaspace's prepend_scheme "first" looks at that).
struct Piece {
    std::string text;
    bool at_origin = false;
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
    // Transforms `pieces` in place (each piece may be split into several).
    void apply(std::vector<Piece>& pieces, std::vector<Piece>& scratch) const;
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
