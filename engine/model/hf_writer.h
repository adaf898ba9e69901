// Writes the Hugging Face twin of a GGUF model: config.json + model.safetensors with HF tensor
// names and layouts (undoing llama.cpp's converter transforms: q/k permutation, Gemma's 1+w norms,
// GPT-2's Conv1D transpose, MLA's split kv_b_proj, stacked experts). Quantized tensors are written
// dequantized in f32; f16/bf16 stay as they are. Used by `synth --hf` and by tests that check the
// two loaders agree.
#pragma once
#include <string>

namespace archlens {

class Model;

void write_hf_twin(const Model& gguf_model, const std::string& dir);

}  // namespace archlens
