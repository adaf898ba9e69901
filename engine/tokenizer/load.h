// One entry point for "a tokenizer, from whatever the user points at": a tokenizer.json file, an
// HF folder (tokenizer.json + tokenizer_config.json), or a GGUF file (its tokenizer.ggml.* keys).
#pragma once
#include <memory>
#include <string>

#include "engine/tokenizer/tokenizer.h"

namespace archlens {

class GgufFile;

GgufVocab gguf_vocab_from(const GgufFile& file);
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& path);

}  // namespace archlens
