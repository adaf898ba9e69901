// Constructed models for teaching: weights set analytically so that what the views show is real
// and explainable (an induction head, a router that specialises by character class).
#pragma once
#include <cstdint>
#include <string>

#include "engine/model/spec.h"
#include "engine/model/synth.h"

namespace archlens::teaching {

// GPT-2-shaped, attention-only (MLPs zero), two layers. Layer 0 head 0 is a previous-token head
// that copies the previous token's identity into its own subspace; layer 1 head 0 is an induction
// head: a query attends to the key whose *previous* token equals the query's token, and copies
// that key's token into the output, so a repeated sequence is continued.
// Residual layout: [token one-hot (V) | previous-token one-hot (V) | position one-hot (P) | balance].
struct InductionLayout {
    int vocab = 300, positions = 128;
    int dim() const { return (2 * vocab + positions + 1 + 1) / 2 * 2; }  // even: 2 heads
    int head_dim() const { return dim() / 2; }
};
std::string induction_config(const InductionLayout& l);
void configure_induction(const InductionLayout& l, SynthOptions& o);

// Qwen3-MoE-shaped: 4 experts, top-1. The embedding marks each token's character class (digits,
// letters, punctuation, whitespace/other); attention adds nothing; router row e reads class e.
int char_class(int token_id, int vocab);  // 0 digit, 1 letter, 2 punctuation, 3 other
std::string class_router_config();
void configure_class_router(SynthOptions& o, int vocab);

}  // namespace archlens::teaching
