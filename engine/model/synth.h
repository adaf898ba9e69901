// Synthetic models: a GGUF file with the exact shapes of a ModelSpec and seeded random weights,
// loadable by ArchLens and by llama.cpp (metadata keys and tensor names as convert_hf_to_gguf
// writes them). Used by `archlens-cli synth`, the built-in demo models and tests.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/model/spec.h"

namespace archlens {

enum class QuantMix { Uniform, Q4_K_M, Q4_K_S, Q5_K_M, Q3_K_M, Q2_K };

struct SynthOptions {
    DType dtype = DType::F32;       // weight type of the matrices (uniform mix)
    QuantMix mix = QuantMix::Uniform;
    uint64_t seed = 1;
    std::string name = "archlens-synthetic";
    // Called per generated tensor (name, index, count) so callers can show progress; one call at a
    // time, but from the writer's worker threads and not necessarily in index order.
    std::function<void(const std::string&, size_t, size_t)> progress;
    // Sets weights analytically: called for every row after the random init, before quantization
    // (tensor name, row index, values). Constructed models (tests, teaching demos) use it. Called
    // from several threads at once (tensors are generated in parallel): it must keep no state.
    std::function<void(const std::string& tensor, int64_t row, float* values, int64_t n)> edit_row;
    // Threads generating tensors (0: all cores). The file is the same for any count.
    unsigned threads = 0;
};

// Parses a --dtype value: f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k,
// q6_k, and the llama.cpp mixes q4_k_m, q4_k_s, q5_k_m, q3_k_m.
void parse_synth_dtype(const std::string& text, SynthOptions& opts);

// The tokenizer every synthetic/demo model carries: byte-level BPE (GPT-2 byte mapping), common
// English merges, <|bos|> <|eos|> and the ChatML markers <|im_start|> <|im_end|>, with a ChatML
// chat template. n_vocab >= 300.
struct SynthVocab {
    std::vector<std::string> tokens;
    std::vector<int32_t> token_types;
    std::vector<std::string> merges;
    int bos = 0, eos = 0;
    std::string chat_template;
};
SynthVocab synth_vocab(int n_vocab);

void write_synthetic_gguf(const ModelSpec& spec, const SynthOptions& opts, const std::string& path);

}  // namespace archlens
