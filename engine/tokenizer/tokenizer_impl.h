// Internals of Tokenizer shared by the tokenizer.json and GGUF loaders.
#pragma once
#include <array>
#include <memory>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

#include "engine/tokenizer/bpe.h"
#include "engine/tokenizer/pipeline.h"
#include "engine/tokenizer/tokenizer.h"

namespace archlens {

struct AddedToken {
    int id = -1;
    std::string content;
    bool special = false, lstrip = false, rstrip = false, single_word = false, normalized = false;
};

// Byte trie over added-token contents; longest match at a position.
class TokenTrie {
public:
    void insert(std::string_view s, int value);
    // (length, value) of the longest entry that starts at s[pos]; value -1 when none.
    std::pair<size_t, int> longest_at(std::string_view s, size_t pos) const;
    bool empty() const { return nodes_.empty(); }
    bool may_start(unsigned char c) const { return first_byte_[c]; }

private:
    struct Node {
        std::vector<std::pair<unsigned char, int>> children;  // sorted by byte
        int value = -1;
    };
    std::vector<Node> nodes_;
    std::array<bool, 256> first_byte_{};
};

struct Segment {
    size_t begin, end;
    int token;  // index into Impl::added, -1 for plain text
};

struct Tokenizer::Impl {
    std::string origin;
    std::unique_ptr<tok::Normalizer> normalizer;
    std::unique_ptr<tok::PreTokenizer> pre_tokenizer;
    std::unique_ptr<BpeModel> model;
    std::unique_ptr<tok::Decoder> decoder;
    std::vector<AddedToken> added;
    TokenTrie raw_trie, normalized_trie;
    std::unordered_map<std::string, int, StringHash, std::equal_to<>> added_by_content;
    std::vector<int> post_prefix, post_suffix;  // what add_special puts around the ids
    std::vector<std::string> id_to_token;
    std::vector<bool> special;
    std::string bos_token, eos_token, chat_template;
    int bos = -1, eos = -1;
    bool clean_up_spaces = false;

    void finish_setup();  // builds id_to_token, tries, special flags from model + added
    std::optional<int> lookup(std::string_view token) const;
    void split_added(std::string_view s, const TokenTrie& trie, std::vector<Segment>& out) const;
    std::vector<int> encode(std::string_view text, bool add_special) const;
    std::string decode(const std::vector<int>& ids, bool skip_special) const;
};

std::string clean_up_tokenization(std::string s);

// tokenizer.json (as nlohmann::json, passed opaquely so this header stays JSON-free).
std::unique_ptr<Tokenizer::Impl> build_impl_from_json_value(const void* root, const void* config,
                                                            const std::string& origin);

}  // namespace archlens
