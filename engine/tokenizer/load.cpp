#include "engine/tokenizer/load.h"

#include <filesystem>
#include <fstream>

#include "engine/core/error.h"
#include "engine/formats/gguf.h"

namespace archlens {

// ref: llama.cpp src/llama-vocab.cpp (llama_vocab::impl::load) for the key names.
GgufVocab gguf_vocab_from(const GgufFile& f) {
    GgufVocab v;
    v.model = f.get_string("tokenizer.ggml.model").value_or("");
    if (v.model.empty()) fail(f.path(), "no tokenizer.ggml.model: this GGUF file carries no tokenizer");
    v.pre = f.get_string("tokenizer.ggml.pre").value_or("");
    if (const GgufValue* t = f.find("tokenizer.ggml.tokens")) v.tokens = t->as;
    if (const GgufValue* s = f.find("tokenizer.ggml.scores"))
        for (double x : s->af) v.scores.push_back(float(x));
    if (const GgufValue* t = f.find("tokenizer.ggml.token_type"))
        for (int64_t x : t->ai) v.token_types.push_back(int(x));
    if (const GgufValue* m = f.find("tokenizer.ggml.merges")) v.merges = m->as;
    auto id = [&](const char* key) { return int(f.get_int(key).value_or(-1)); };
    v.bos = id("tokenizer.ggml.bos_token_id");
    v.eos = id("tokenizer.ggml.eos_token_id");
    v.unk = id("tokenizer.ggml.unknown_token_id");
    v.pad = id("tokenizer.ggml.padding_token_id");
    v.eot = id("tokenizer.ggml.eot_token_id");
    // llama.cpp's defaults: SPM vocabularies add BOS unless told otherwise.
    v.add_bos = f.get_bool("tokenizer.ggml.add_bos_token").value_or(v.model == "llama");
    v.add_eos = f.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
    if (auto b = f.get_bool("tokenizer.ggml.add_space_prefix")) v.add_space_prefix = *b;
    v.chat_template = f.get_string("tokenizer.chat_template").value_or("");
    return v;
}

static bool has_gguf_magic(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    char magic[4] = {};
    in.read(magic, 4);
    return in.gcount() == 4 && std::string(magic, 4) == "GGUF";
}

std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path) {
    namespace fs = std::filesystem;
    if (!fs::exists(path)) fail(path, "no such file or folder");
    if (!fs::is_directory(path) && has_gguf_magic(path)) {
        GgufFile file(path);
        return Tokenizer::from_gguf_vocab(gguf_vocab_from(file), path);
    }
    return Tokenizer::from_hf_path(path);
}

}  // namespace archlens
