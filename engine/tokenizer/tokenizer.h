// Tokenizers exact to the Hugging Face `tokenizers` library: byte-level BPE (GPT-2, Qwen, Llama 3,
// DeepSeek-V3) and SentencePiece-style BPE with byte fallback (Gemma, Mistral/Llama 2), loaded
// from tokenizer.json (+ tokenizer_config.json) or from a GGUF vocabulary.
//
// Text handling contract:
//  - encode() takes UTF-8; invalid UTF-8 is replaced with U+FFFD (one per maximal ill-formed
//    subsequence, as Python's bytes.decode(errors="replace") does) before anything else runs.
//  - decode() returns valid UTF-8; byte sequences that do not form characters become U+FFFD
//    (ByteLevel: one per maximal ill-formed subsequence; ByteFallback: one per byte, as HF does).
//  - StreamDecoder emits text token by token and never emits a broken character; the
//    concatenation of what it emits (plus finish()) equals decode() of all ids.
#pragma once
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace archlens {

// The vocabulary part of GGUF metadata (tokenizer.ggml.*), as plain data so the tokenizer does
// not depend on the GGUF reader. ref: llama.cpp src/llama-vocab.cpp (llama_vocab::impl::load)
struct GgufVocab {
    std::string model;                // tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SPM)
    std::string pre;                  // tokenizer.ggml.pre: pre-tokenizer name ("llama-bpe", "qwen2", ...)
    std::vector<std::string> tokens;  // tokenizer.ggml.tokens
    std::vector<float> scores;        // tokenizer.ggml.scores (SPM merge priority)
    std::vector<int> token_types;     // tokenizer.ggml.token_type (1 normal, 2 unknown, 3 control,
                                      // 4 user defined, 5 unused, 6 byte)
    std::vector<std::string> merges;  // tokenizer.ggml.merges ("a b")
    int bos = -1, eos = -1, unk = -1, pad = -1, eot = -1;
    bool add_bos = false, add_eos = false;
    std::optional<bool> add_space_prefix;  // tokenizer.ggml.add_space_prefix (SPM; default true)
    std::string chat_template;             // tokenizer.chat_template
};

class Tokenizer {
public:
    // tokenizer.json, optionally with tokenizer_config.json (add_bos_token/add_eos_token override
    // the post-processor as Python transformers does; bos/eos names, clean-up flag, chat template).
    // Throws archlens::Error naming the file on malformed input.
    static std::unique_ptr<Tokenizer> from_hf_json(const std::string& tokenizer_json_path,
                                                   const std::string& tokenizer_config_path = {});
    // Same, from in-memory text (`origin` names the source in errors).
    static std::unique_ptr<Tokenizer> from_hf_json_text(std::string_view tokenizer_json,
                                                        std::string_view tokenizer_config,
                                                        const std::string& origin);
    // A tokenizer.json file or a folder holding tokenizer.json (+ tokenizer_config.json).
    static std::unique_ptr<Tokenizer> from_hf_path(const std::string& path);
    static std::unique_ptr<Tokenizer> from_gguf_vocab(const GgufVocab& vocab,
                                                      const std::string& origin = "GGUF vocabulary");

    ~Tokenizer();
    Tokenizer(const Tokenizer&) = delete;
    Tokenizer& operator=(const Tokenizer&) = delete;

    // add_special: apply the post-processor (BOS/EOS), as add_special_tokens=True does.
    std::vector<int> encode(std::string_view text, bool add_special) const;
    std::string decode(const std::vector<int>& ids, bool skip_special = false) const;

    // Drops the per-word BPE memo (benchmarks measure cold and warm encoding).
    void clear_cache() const;

    int vocab_size() const;                  // model vocabulary plus added tokens (max id + 1)
    std::string token_text(int id) const;    // the raw vocabulary string ("" if out of range)
    std::optional<int> token_id(std::string_view token) const;  // exact vocabulary / added-token lookup
    bool is_special(int id) const;
    int bos_id() const;  // -1 when none
    int eos_id() const;
    const std::string& bos_token() const;
    const std::string& eos_token() const;
    const std::string& chat_template() const;  // Jinja source, "" when the tokenizer has none
    bool clean_up_tokenization_spaces() const;

    struct Impl;  // engine/tokenizer/tokenizer_impl.h
    static std::unique_ptr<Tokenizer> from_impl(std::unique_ptr<Impl> impl);
    const Impl& impl() const { return *impl_; }

private:
    explicit Tokenizer(std::unique_ptr<Impl> impl);
    std::unique_ptr<Impl> impl_;
};

// Incremental detokenizer for streaming generation. Feed ids one at a time; each call returns
// only text that can no longer change (complete UTF-8 characters; with clean_up_tokenization_spaces
// a trailing " " is held back until the next token shows whether it gets removed).
// ref: HF tokenizers DecodeStream (prefix/prefix_index re-anchoring)
class StreamDecoder {
public:
    explicit StreamDecoder(const Tokenizer& tokenizer, bool skip_special = false);
    std::string feed(int id);
    std::string finish();  // whatever is still held back (possibly ending in U+FFFD)

private:
    const Tokenizer& tok_;
    bool skip_special_;
    std::vector<int> ids_;
    std::string prefix_;
    size_t prefix_index_ = 0;
};

// Replaces invalid UTF-8 with U+FFFD (maximal-subpart rule). Returns true if `text` was valid.
bool sanitize_utf8(std::string_view text, std::string& out);

}  // namespace archlens
