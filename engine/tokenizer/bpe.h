// BPE model, exact to HF tokenizers models/bpe (word.rs merge_all): merges applied by rank with
// a priority queue (ties: leftmost), byte_fallback to <0xXX>, unk fusing, ignore_merges.
#pragma once
#include <array>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <unordered_map>
#include <vector>

namespace archlens {

struct StringHash {
    using is_transparent = void;
    size_t operator()(std::string_view s) const noexcept { return std::hash<std::string_view>{}(s); }
};
using VocabMap = std::unordered_map<std::string, int, StringHash, std::equal_to<>>;

// Open-addressing map (left id, right id) -> (rank, merged id); merges are looked up millions of
// times per megabyte, std::unordered_map's node chasing shows up in profiles.
class MergeMap {
public:
    struct Value {
        int rank;
        int new_id;
    };
    void reserve(size_t n);
    // A later duplicate pair overrides the earlier one, as HF's HashMap collect does.
    void set(int a, int b, Value v);
    const Value* find(int a, int b) const {
        if (slots_.empty()) return nullptr;
        uint64_t key = pack(a, b);
        size_t i = hash(key) & mask_;
        while (true) {
            const Slot& s = slots_[i];
            if (s.key == key) return &s.value;
            if (s.key == kEmpty) return nullptr;
            i = (i + 1) & mask_;
        }
    }
    size_t size() const { return size_; }

private:
    static constexpr uint64_t kEmpty = ~0ull;
    struct Slot {
        uint64_t key = kEmpty;
        Value value{};
    };
    static uint64_t pack(int a, int b) { return (uint64_t(uint32_t(a)) << 32) | uint32_t(b); }
    static size_t hash(uint64_t k) { return size_t((k * 0x9E3779B97F4A7C15ull) >> 20); }
    void grow();
    std::vector<Slot> slots_;
    size_t mask_ = 0, size_ = 0;
};

struct BpeConfig {
    std::optional<std::string> unk_token;
    std::optional<std::string> continuing_subword_prefix;
    std::optional<std::string> end_of_word_suffix;
    bool fuse_unk = false;
    bool byte_fallback = false;
    bool ignore_merges = false;
};

class BpeModel {
public:
    BpeModel(VocabMap vocab, MergeMap merges, BpeConfig config);

    // Appends the ids of one pre-tokenized word.
    void tokenize(std::string_view word, std::vector<int>& out) const;

    void clear_cache() const;
    const VocabMap& vocab() const { return vocab_; }
    const std::vector<std::string>& id_to_token() const { return id_to_token_; }
    const BpeConfig& config() const { return config_; }

private:
    void merge_word(std::string_view word, std::vector<int>& out) const;
    void tokenize_chunk(std::string_view word, std::vector<int>& out) const;
    void find_safe_boundaries();

    VocabMap vocab_;
    std::vector<std::string> id_to_token_;
    MergeMap merges_;
    BpeConfig config_;
    int unk_id_ = -1;
    std::array<int, 256> byte_ids_;  // <0xXX> ids for byte_fallback, -1 if absent
    std::vector<int> ascii_char_ids_;  // single-byte chars -> id (fast path), -1 if absent

    // SentencePiece-style words can be a whole line (no pre-tokenizer split). A position right
    // before "▁" is a safe cut when no vocabulary token contains "▁" preceded by the character
    // in front of it: no merge can then ever span the cut, so BPE on the pieces is BPE on the
    // whole (exact), linear, and cacheable. `boundary_blockers_` holds those preceding chars.
    bool split_at_marker_ = false;
    std::vector<std::string> boundary_blockers_;

    // Per-word result cache (HF keeps one too). Bounded so a long adversarial input cannot grow
    // it without limit.
    mutable std::mutex cache_mutex_;
    mutable std::unordered_map<std::string, std::vector<int>, StringHash, std::equal_to<>> cache_;
    static constexpr size_t kCacheCapacity = 200000;
    static constexpr size_t kMaxCachedWordBytes = 256;
};

}  // namespace archlens
