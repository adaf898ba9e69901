// The tokenizer that belongs to a loaded model: the GGUF's own vocabulary (tokenizer.ggml.*), or
// tokenizer.json beside an HF model. Glue only; the tokenizer itself lives in engine/tokenizer.
#pragma once
#include <memory>

#include "engine/model/model.h"
#include "engine/tokenizer/tokenizer.h"

// Throws archlens::Error naming the file when the model carries no usable tokenizer.
std::unique_ptr<archlens::Tokenizer> loadModelTokenizer(const archlens::Model& model);
