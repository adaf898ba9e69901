#include "app/gui/model_tokenizer.h"

#include <filesystem>

#include "engine/core/error.h"
#include "engine/formats/gguf.h"

using namespace archlens;

namespace {

GgufVocab vocabFromGguf(const GgufFile& g) {
    // ref: llama.cpp src/llama-vocab.cpp (llama_vocab::impl::load) for the key names.
    GgufVocab v;
    v.model = g.get_string("tokenizer.ggml.model").value_or("");
    v.pre = g.get_string("tokenizer.ggml.pre").value_or("");
    if (const GgufValue* t = g.find("tokenizer.ggml.tokens")) v.tokens = t->as;
    if (const GgufValue* s = g.find("tokenizer.ggml.scores"))
        for (double x : s->af) v.scores.push_back(float(x));
    if (const GgufValue* tt = g.find("tokenizer.ggml.token_type"))
        for (int64_t x : tt->ai) v.token_types.push_back(int(x));
    if (const GgufValue* m = g.find("tokenizer.ggml.merges")) v.merges = m->as;
    auto id = [&](const char* key) { return int(g.get_int(key).value_or(-1)); };
    v.bos = id("tokenizer.ggml.bos_token_id");
    v.eos = id("tokenizer.ggml.eos_token_id");
    v.unk = id("tokenizer.ggml.unknown_token_id");
    v.pad = id("tokenizer.ggml.padding_token_id");
    v.eot = id("tokenizer.ggml.eot_token_id");
    v.add_bos = g.get_bool("tokenizer.ggml.add_bos_token").value_or(false);
    v.add_eos = g.get_bool("tokenizer.ggml.add_eos_token").value_or(false);
    v.add_space_prefix = g.get_bool("tokenizer.ggml.add_space_prefix");
    v.chat_template = g.get_string("tokenizer.chat_template").value_or("");
    return v;
}

}  // namespace

std::unique_ptr<Tokenizer> loadModelTokenizer(const Model& model) {
    if (const GgufFile* g = model.gguf()) {
        GgufVocab v = vocabFromGguf(*g);
        if (v.tokens.empty())
            fail(model.path(), "the GGUF file has no tokenizer vocabulary (tokenizer.ggml.tokens)");
        return Tokenizer::from_gguf_vocab(v, model.path());
    }
    namespace fs = std::filesystem;
    std::string dir = model.tokenizer_dir().empty() ? model.path() : model.tokenizer_dir();
    if (fs::is_regular_file(dir)) dir = fs::path(dir).parent_path().string();
    if (!fs::exists(fs::path(dir) / "tokenizer.json"))
        fail(dir, "no tokenizer.json beside the model: ArchLens needs it to turn text into tokens");
    return Tokenizer::from_hf_path(dir);
}
