// Plain-language facts derived from a ModelSpec: the labels the architecture diagram prints and the
// rows `archlens-cli compare` lists. Derived only from the spec, so a diagram, the comparison
// table and the CLI cannot disagree about what a model is.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/model/spec.h"

namespace archlens {

// "MHA", "GQA, group 4", "MQA", "MLA"
std::string attention_kind_label(const AttentionSpec& a);
// "sliding-window (1024)", "chunked (8192)", "global"; NoPE layers add ", NoPE" unless the
// model's positions come from a learned embedding (GPT-2), which is not NoPE.
std::string attention_scope_label(const AttentionSpec& a, bool learned_positions = false);
std::string ffn_kind_label(const FfnSpec& f);  // "dense" or "MoE"
std::string norm_placement_label(const LayerSpec& l);  // "pre-norm", "post-norm", "pre+post (sandwich)"

// Describes how a per-layer label sequence is arranged, or "" when every layer is alike:
//   periodic:  "5 × sliding-window (1024) + 1 × global, repeating"   (Gemma 3)
//   two kinds alternating: "alternating dense / MoE"               (Llama 4 Maverick)
//   a few runs: "3 × dense + 58 × MoE"                              (DeepSeek-V3)
std::string describe_layer_pattern(const std::vector<std::string>& per_layer);

// Layers whose drawing is identical share a signature; groups in order of first appearance.
struct LayerGroup {
    std::string signature;
    std::vector<int> layers;
};
std::string layer_signature(const LayerSpec& l);
std::vector<LayerGroup> group_layers(const ModelSpec& s);

std::string human_count(uint64_t n);   // 671026000000 -> "671.0B", 124439808 -> "124.4M"
std::string human_count2(uint64_t n);  // as human_count, two decimals from a billion: "1.91B"
std::string human_bytes(double bytes);  // binary units: "70.3 KiB"
std::string with_commas(uint64_t n);   // 129280 -> "129,280"

// One row per hyperparameter, in a fixed order, so two specs compare row by row.
struct SpecFact {
    std::string key;    // stable id, e.g. "kv_heads"
    std::string label;  // "KV heads"
    std::string value;  // "8" or "varies: …"
};
std::vector<SpecFact> spec_facts(const ModelSpec& s);

}  // namespace archlens
