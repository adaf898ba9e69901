#include "engine/model/spec.h"

#include <algorithm>

namespace archlens {

const char* family_name(Family f) {
    switch (f) {
        case Family::GPT2: return "gpt2";
        case Family::Llama: return "llama";
        case Family::Mistral: return "mistral";
        case Family::Qwen3: return "qwen3";
        case Family::Qwen3Moe: return "qwen3_moe";
        case Family::Olmo2: return "olmo2";
        case Family::Gemma3: return "gemma3";
        case Family::DeepseekV3: return "deepseek_v3";
        case Family::KimiK2: return "kimi_k2";
        case Family::Llama4: return "llama4";
        case Family::Gemma3n: return "gemma3n";
    }
    return "?";
}

const char* activation_name(Activation a) {
    switch (a) {
        case Activation::SiLU: return "SiLU";
        case Activation::GELU: return "GELU";
        case Activation::GELUTanh: return "GELU(tanh)";
    }
    return "?";
}

std::string supported_architectures() {
    return "gpt2, llama, mistral, qwen3, qwen3_moe, olmo2, gemma3/gemma3_text, deepseek_v3 (GGUF deepseek2), "
           "kimi_k2, llama4/llama4_text, gemma3n/gemma3n_text";
}

bool ModelSpec::has_moe() const {
    return std::any_of(layers.begin(), layers.end(), [](auto& l) { return l.ffn.moe; });
}
bool ModelSpec::has_mla() const {
    return std::any_of(layers.begin(), layers.end(), [](auto& l) { return l.attn.kind == AttnKind::MLA; });
}

static uint64_t ffn_params(uint64_t dim, uint64_t hidden, bool gated, bool bias) {
    uint64_t p = (gated ? 3 : 2) * dim * hidden;
    if (bias) p += hidden * (gated ? 2 : 1) + dim;
    return p;
}

ParamCounts count_params(const ModelSpec& s) {
    ParamCounts c;
    const uint64_t d = uint64_t(s.dim);
    const uint64_t norm_p = s.norm_bias ? 2 * d : d;
    c.embedding = uint64_t(s.vocab) * d + (s.learned_positions ? uint64_t(s.max_positions) * d : 0);
    c.lm_head = s.tied_embeddings ? 0 : uint64_t(s.vocab) * d;
    c.norms = norm_p;  // final norm
    uint64_t active_experts = 0;
    for (auto& l : s.layers) {
        const auto& a = l.attn;
        if (a.kind == AttnKind::MLA) {
            uint64_t qk = uint64_t(a.qk_nope_head_dim + a.qk_rope_head_dim);
            uint64_t q = a.q_lora_rank ? d * a.q_lora_rank + a.q_lora_rank + uint64_t(a.q_lora_rank) * a.n_heads * qk
                                       : d * a.n_heads * qk;
            uint64_t kv = d * (a.kv_lora_rank + a.qk_rope_head_dim) + a.kv_lora_rank +
                          uint64_t(a.kv_lora_rank) * a.n_heads * (a.qk_nope_head_dim + a.v_head_dim);
            c.attention += q + kv + uint64_t(a.n_heads) * a.v_head_dim * d;
        } else {
            uint64_t q = uint64_t(a.n_heads) * a.head_dim, kv = uint64_t(a.n_kv_heads) * a.head_dim;
            uint64_t v = uint64_t(a.n_kv_heads) * a.v_head_dim;
            c.attention += d * (q + kv + v) + uint64_t(a.n_heads) * a.v_head_dim * d;
            if (a.qkv_bias) c.attention += q + kv + v;
            if (a.o_bias) c.attention += d;
            if (a.qk_norm == QkNorm::PerHead) c.norms += 2 * uint64_t(a.head_dim);
            if (a.qk_norm == QkNorm::Full) c.norms += q + kv;
        }
        c.norms += norm_p * (int(l.attn_pre_norm) + int(l.attn_post_norm) + int(l.ffn_pre_norm) + int(l.ffn_post_norm));
        const auto& f = l.ffn;
        if (!f.moe) {
            c.ffn_dense += ffn_params(d, f.ffn_dim, f.gated, f.bias);
        } else {
            uint64_t one = ffn_params(d, f.expert_ffn_dim, f.gated, false);
            c.experts += one * uint64_t(f.n_experts);
            active_experts += one * uint64_t(f.top_k);
            if (f.n_shared) c.shared_experts += ffn_params(d, f.shared_ffn_dim, f.gated, false);
            c.router += d * uint64_t(f.n_experts) + (f.selection_bias ? f.n_experts : 0);
        }
    }
    if (s.ple_dim > 0) {
        const uint64_t L = uint64_t(s.n_layers), P = uint64_t(s.ple_dim), n = uint64_t(s.altup_inputs), r = uint64_t(s.laurel_rank);
        c.per_layer_embedding = uint64_t(s.ple_vocab) * L * P;
        // model-level: PLE projection + its norm, AltUp (un)embedding projections
        c.altup_laurel = d * L * P + P + 2 * (n - 1) * d * d;
        // per layer: PLE gate + projection + norm, AltUp coefs/router/norms, LAuReL
        c.altup_laurel += L * (2 * P * d + d + n * n + d + n * n * n + n * d + d + 2 * r * d + d);
    }
    c.total = c.embedding + c.lm_head + c.norms + c.attention + c.ffn_dense + c.experts + c.shared_experts + c.router +
              c.per_layer_embedding + c.altup_laurel;
    // Active per token: one embedding row is read, but by convention (as published figures do)
    // embeddings count fully; only routed experts are counted at top_k of n_experts.
    c.active = c.total - c.experts + active_experts;
    // Gemma 3n's published "effective" size (E2B ≈ 1.91B, E4B ≈ 4B) leaves out both embedding
    // tables: the per-layer table streams from storage and the token table is a lookup.
    if (s.ple_dim > 0) c.active -= c.per_layer_embedding + uint64_t(s.vocab) * d;
    return c;
}

uint64_t kv_values_per_token(const AttentionSpec& a) {
    if (a.kind == AttnKind::MLA) return uint64_t(a.kv_lora_rank + a.qk_rope_head_dim);
    return uint64_t(a.n_kv_heads) * uint64_t(a.head_dim + a.v_head_dim);
}

uint64_t kv_bytes_at(const ModelSpec& spec, uint64_t n, double bytes_per_value) {
    double total = 0;
    for (auto& l : spec.layers) {
        if (l.kv_source >= 0) continue;  // Gemma 3n: reads an earlier layer's cache
        uint64_t held = n;
        if (l.attn.scope != AttnScope::Global && l.attn.window > 0) held = std::min<uint64_t>(n, uint64_t(l.attn.window));
        total += double(held) * double(kv_values_per_token(l.attn)) * bytes_per_value;
    }
    return uint64_t(total);
}

}  // namespace archlens
