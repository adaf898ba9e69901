// GGUF vocabulary -> the same tokenizer pipeline as tokenizer.json, so a GGUF file alone is
// enough to chat. ref: llama.cpp src/llama-vocab.cpp (load: pre-tokenizer names, token types,
// add_space_prefix; llm_tokenizer_spm for SentencePiece scores).
#include <algorithm>
#include <cmath>
#include <nlohmann/json.hpp>

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer.h"
#include "engine/tokenizer/tokenizer_impl.h"
#include "engine/tokenizer/unicode.h"

namespace archlens {

using json = nlohmann::json;

namespace {

// llama.cpp token types (llama_token_type).
enum : int { kNormal = 1, kUnknown = 2, kControl = 3, kUserDefined = 4, kUnused = 5, kByte = 6 };

// The pre-tokenizer regex sets llama.cpp uses per tokenizer.ggml.pre, written as the equivalent
// tokenizer.json Split pre-tokenizers (same patterns as the models' own tokenizer.json files).
struct PreSpec {
    std::vector<std::string> regexes;
    bool ignore_merges = false;
    bool nfc = false;
};

const char* kLlama3Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kQwen2Regex =
    "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
    "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+";
const char* kGpt2Regex = "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

PreSpec pre_spec(const std::string& pre, const std::string& origin) {
    if (pre == "llama3" || pre == "llama-v3" || pre == "llama-bpe" || pre == "falcon3" || pre == "dbrx" ||
        pre == "smaug-bpe")
        return {{kLlama3Regex}, /*ignore_merges=*/pre != "dbrx" && pre != "smaug-bpe", false};
    if (pre == "qwen2" || pre == "deepseek-r1-qwen" || pre == "megrez")
        return {{kQwen2Regex}, false, /*nfc=*/true};  // Qwen2Tokenizer normalizes to NFC
    if (pre == "deepseek-v3")
        return {{"\\p{N}{1,3}", "[\xE4\xB8\x80-\xE9\xBE\xA5\xE3\x81\x80-\xE3\x82\x9F\xE3\x82\xA0-\xE3\x83\xBF]+",
                 "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}\\p{M}]+| "
                 "?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
                false, false};
    if (pre.empty() || pre == "default" || pre == "gpt-2" || pre == "gpt2" || pre == "olmo" || pre == "phi-2" ||
        pre == "roberta-bpe")
        return {{kGpt2Regex}, false, false};
    fail(origin, "unsupported tokenizer.ggml.pre '" + pre +
                     "' (supported: llama-bpe/llama3, qwen2, deepseek-v3, dbrx, smaug-bpe, gpt-2, olmo, default)");
}

json split_regex(const std::string& r) {
    return {{"type", "Split"}, {"pattern", {{"Regex", r}}}, {"behavior", "Isolated"}, {"invert", false}};
}

// SentencePiece scores -> BPE merges, as HF's SentencePieceExtractor converts them: every split
// of a piece into two vocabulary pieces is a merge, ranked by the piece's score (higher first),
// then by piece id, then by the ids of the two halves. The merge queue then reproduces
// llama.cpp's llm_tokenizer_spm (best-scoring bigram first, leftmost on ties).
json spm_merges(const GgufVocab& v, const VocabMap& index) {
    struct M {
        float score;
        int id, l, r;
        size_t split;
    };
    std::vector<M> all;
    for (size_t id = 0; id < v.tokens.size(); ++id) {
        int type = id < v.token_types.size() ? v.token_types[id] : kNormal;
        if (type != kNormal && type != kUserDefined) continue;
        float score = id < v.scores.size() ? v.scores[id] : 0.0f;
        if (!std::isfinite(score)) continue;  // -inf: never the result of a merge
        const std::string& t = v.tokens[id];
        size_t k = unicode::utf8_len((unsigned char)t[0]);
        for (; k < t.size(); k += unicode::utf8_len((unsigned char)t[k])) {
            auto l = index.find(std::string_view(t).substr(0, k));
            auto r = index.find(std::string_view(t).substr(k));
            if (l != index.end() && r != index.end()) all.push_back({score, int(id), l->second, r->second, k});
        }
    }
    std::stable_sort(all.begin(), all.end(), [](const M& a, const M& b) {
        if (a.score != b.score) return a.score > b.score;
        if (a.id != b.id) return a.id < b.id;
        if (a.l != b.l) return a.l < b.l;
        return a.r < b.r;
    });
    json merges = json::array();
    for (const M& m : all) {
        const std::string& t = v.tokens[size_t(m.id)];
        merges.push_back(json::array({t.substr(0, m.split), t.substr(m.split)}));
    }
    return merges;
}

}  // namespace

std::unique_ptr<Tokenizer> Tokenizer::from_gguf_vocab(const GgufVocab& v, const std::string& origin) {
    if (v.tokens.empty()) fail(origin, "tokenizer.ggml.tokens is missing or empty");
    if (!v.token_types.empty() && v.token_types.size() != v.tokens.size())
        fail(origin, "tokenizer.ggml.token_type has " + std::to_string(v.token_types.size()) +
                         " entries for " + std::to_string(v.tokens.size()) + " tokens");
    if (!v.scores.empty() && v.scores.size() != v.tokens.size())
        fail(origin, "tokenizer.ggml.scores has " + std::to_string(v.scores.size()) + " entries for " +
                         std::to_string(v.tokens.size()) + " tokens");
    const bool spm = v.model == "llama";
    if (!spm && v.model != "gpt2")
        fail(origin, "unsupported tokenizer.ggml.model '" + v.model + "' (supported: gpt2, llama)");

    json root = json::object();
    json vocab = json::object();
    VocabMap index;
    json added = json::array();
    for (size_t id = 0; id < v.tokens.size(); ++id) {
        const std::string& t = v.tokens[id];
        int type = id < v.token_types.size() ? v.token_types[id] : kNormal;
        // The first id wins for duplicate strings (llama.cpp's token_to_id keeps the last; real
        // vocabularies have none).
        if (!vocab.contains(t)) vocab[t] = int(id);
        index.emplace(t, int(id));
        // Control and user-defined tokens are matched before the model, like HF added tokens.
        if (type == kControl || type == kUserDefined || (type == kUnknown && !spm)) {
            if (t.empty()) continue;
            added.push_back({{"id", int(id)}, {"content", t}, {"single_word", false}, {"lstrip", false},
                             {"rstrip", false}, {"normalized", false}, {"special", type != kUserDefined}});
        }
    }
    auto token_at = [&](int id) -> std::string {
        return id >= 0 && size_t(id) < v.tokens.size() ? v.tokens[size_t(id)] : std::string();
    };

    json model = {{"type", "BPE"}, {"vocab", vocab}, {"dropout", nullptr}, {"fuse_unk", spm},
                  {"byte_fallback", spm}, {"continuing_subword_prefix", nullptr},
                  {"end_of_word_suffix", nullptr}};
    if (spm) {
        bool add_space_prefix = v.add_space_prefix.value_or(true);
        int unk = v.unk;
        if (unk < 0)
            for (size_t id = 0; id < v.token_types.size() && unk < 0; ++id)
                if (v.token_types[id] == kUnknown) unk = int(id);
        model["unk_token"] = unk >= 0 ? json(token_at(unk)) : json(nullptr);
        model["merges"] = spm_merges(v, index);
        model["ignore_merges"] = false;
        json replace = {{"type", "Replace"}, {"pattern", {{"String", " "}}}, {"content", "\xE2\x96\x81"}};
        if (add_space_prefix)
            root["normalizer"] = {{"type", "Sequence"},
                                  {"normalizers", json::array({{{"type", "Prepend"}, {"prepend", "\xE2\x96\x81"}}, replace})}};
        else
            root["normalizer"] = replace;
        root["pre_tokenizer"] = nullptr;
        json decoders = json::array({{{"type", "Replace"}, {"pattern", {{"String", "\xE2\x96\x81"}}}, {"content", " "}},
                                     {{"type", "ByteFallback"}},
                                     {{"type", "Fuse"}}});
        if (add_space_prefix) decoders.push_back({{"type", "Strip"}, {"content", " "}, {"start", 1}, {"stop", 0}});
        root["decoder"] = {{"type", "Sequence"}, {"decoders", decoders}};
    } else {
        PreSpec spec = pre_spec(v.pre, origin);
        model["unk_token"] = nullptr;
        model["ignore_merges"] = spec.ignore_merges;
        json merges = json::array();
        for (const std::string& m : v.merges) merges.push_back(m);
        model["merges"] = std::move(merges);
        json pre = json::array();
        for (const std::string& r : spec.regexes) pre.push_back(split_regex(r));
        pre.push_back({{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}});
        root["pre_tokenizer"] = {{"type", "Sequence"}, {"pretokenizers", pre}};
        root["normalizer"] = spec.nfc ? json({{"type", "NFC"}}) : json(nullptr);
        root["decoder"] = {{"type", "ByteLevel"}, {"add_prefix_space", false}, {"trim_offsets", false}, {"use_regex", false}};
    }
    root["model"] = std::move(model);
    root["added_tokens"] = std::move(added);
    root["post_processor"] = nullptr;

    // BOS/EOS and the add flags play the part of tokenizer_config.json.
    json config = json::object();
    if (v.bos >= 0) config["bos_token"] = token_at(v.bos);
    if (v.eos >= 0) config["eos_token"] = token_at(v.eos);
    if ((v.add_bos && v.bos < 0) || (v.add_eos && v.eos < 0))
        fail(origin, "tokenizer.ggml.add_bos_token/add_eos_token set without a bos/eos token id");
    config["add_bos_token"] = v.add_bos;
    config["add_eos_token"] = v.add_eos;
    if (!v.chat_template.empty()) config["chat_template"] = v.chat_template;
    return from_impl(build_impl_from_json_value(&root, &config, origin));
}

}  // namespace archlens
