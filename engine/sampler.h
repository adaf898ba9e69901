// Next-token sampling: greedy, temperature, top-k, top-p, min-p, repetition penalty; deterministic
// for a given seed (own generator, independent of the platform's std distributions).
#pragma once
#include <cstdint>
#include <span>
#include <vector>

namespace archlens {

struct SamplerParams {
    float temperature = 0.f;  // 0: greedy (argmax, lowest id on ties)
    int top_k = 0;            // 0: off
    float top_p = 1.f;        // 1: off
    float min_p = 0.f;        // 0: off
    float repetition_penalty = 1.f;  // 1: off (CTRL-style, as llama.cpp/transformers)
    int repetition_window = 64;
    uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(SamplerParams p = {});
    // logits of one position; `history` is the recent context for the repetition penalty.
    int sample(std::span<const float> logits, std::span<const int> history);
    const SamplerParams& params() const { return p_; }

private:
    double uniform();
    SamplerParams p_;
    uint64_t state_;
};

int argmax(std::span<const float> v);

}  // namespace archlens
