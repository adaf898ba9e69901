#include "engine/model/spec_parse.h"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/core/error.h"
#include "engine/formats/gguf.h"

namespace archlens {

using json = nlohmann::json;

namespace {

// Field access that names the file and field on error.
struct Cfg {
    const json& j;
    const std::string& path;

    bool has(const char* k) const { return j.contains(k) && !j[k].is_null(); }
    int64_t req_int(const char* k) const {
        if (!has(k)) fail(path, std::string("config.json is missing the required field '") + k + "'");
        if (!j[k].is_number()) fail(path, std::string("config.json field '") + k + "' is not a number");
        return j[k].get<int64_t>();
    }
    int64_t get_int(const char* k, int64_t def) const {
        if (!has(k)) return def;
        if (!j[k].is_number()) fail(path, std::string("config.json field '") + k + "' is not a number");
        return j[k].get<int64_t>();
    }
    double get_f(const char* k, double def) const {
        if (!has(k)) return def;
        if (!j[k].is_number()) fail(path, std::string("config.json field '") + k + "' is not a number");
        return j[k].get<double>();
    }
    bool get_bool(const char* k, bool def) const {
        if (!has(k)) return def;
        if (!j[k].is_boolean()) fail(path, std::string("config.json field '") + k + "' is not a boolean");
        return j[k].get<bool>();
    }
    std::string get_str(const char* k, const std::string& def) const {
        if (!has(k)) return def;
        if (!j[k].is_string()) fail(path, std::string("config.json field '") + k + "' is not a string");
        return j[k].get<std::string>();
    }
};

int positive(int64_t v, const char* field, const std::string& path) {
    if (v <= 0 || v > (int64_t(1) << 31))
        fail(path, std::string("field '") + field + "' has an invalid value " + std::to_string(v));
    return int(v);
}

Family family_from_model_type(const std::string& mt, const std::string& path) {
    if (mt == "gpt2") return Family::GPT2;
    if (mt == "llama") return Family::Llama;
    if (mt == "mistral") return Family::Mistral;
    if (mt == "qwen3") return Family::Qwen3;
    if (mt == "qwen3_moe") return Family::Qwen3Moe;
    if (mt == "olmo2") return Family::Olmo2;
    if (mt == "gemma3_text" || mt == "gemma3") return Family::Gemma3;
    if (mt == "deepseek_v3") return Family::DeepseekV3;
    if (mt == "kimi_k2") return Family::KimiK2;
    if (mt == "llama4_text" || mt == "llama4") return Family::Llama4;
    if (mt == "gemma3n_text" || mt == "gemma3n") return Family::Gemma3n;
    fail(path, "unsupported architecture '" + mt + "'; supported: " + supported_architectures());
}

void apply_hf_rope_scaling(const Cfg& c, RopeSpec& r) {
    if (!c.has("rope_scaling")) return;
    const json& rs = c.j["rope_scaling"];
    if (!rs.is_object()) return;
    std::string type = rs.value("rope_type", rs.value("type", std::string()));
    auto num = [&](const char* k, double d) { return rs.contains(k) && rs[k].is_number() ? rs[k].get<double>() : d; };
    if (type == "llama3") {
        r.scaling = RopeScaling::Llama3;
        r.factor = float(num("factor", 8));
        r.low_freq_factor = float(num("low_freq_factor", 1));
        r.high_freq_factor = float(num("high_freq_factor", 4));
        r.original_max_pos = int(num("original_max_position_embeddings", 8192));
    } else if (type == "linear") {
        r.scaling = RopeScaling::Linear;
        r.factor = float(num("factor", 1));
    } else if (type == "yarn") {
        r.scaling = RopeScaling::Yarn;
        r.factor = float(num("factor", 1));
        r.original_max_pos = int(num("original_max_position_embeddings", 4096));
        r.beta_fast = float(num("beta_fast", 32));
        r.beta_slow = float(num("beta_slow", 1));
        r.mscale = float(num("mscale", 1));
        r.mscale_all_dim = float(num("mscale_all_dim", 0));
    } else if (type == "default" || type.empty()) {
    } else {
        fail(c.path, "rope_scaling type '" + type + "' is not supported (llama3, linear, yarn)");
    }
}

// ref: DeepSeek-V3 modeling yarn_get_mscale
float yarn_mscale(float scale, float mscale) {
    if (scale <= 1.f) return 1.f;
    return 0.1f * mscale * std::log(scale) + 1.f;
}

// torch.distributions.Normal(0, 1).icdf(p) in float32, as transformers' Gemma 3n computes its
// sparsity cutoff: sqrt(2)·erfinv(2p − 1) with the argument rounded to float first.
float normal_icdf_f32(float p) {
    // Every released Gemma 3n uses 0.95; torch's float32 erfinv gives 1.6448533 there (the exact
    // value rounds to 1.6448536). The converter writes the same number into the GGUF.
    if (p == 0.95f) return 1.6448533535003662f;
    const float y = 2.f * p - 1.f;
    double z = 0;  // solve erf(z) = y by Newton's method in double
    for (int i = 0; i < 60; ++i) {
        const double err = std::erf(z) - double(y);
        z -= err / (2.0 / std::sqrt(M_PI) * std::exp(-z * z));
        if (std::fabs(err) < 1e-16) break;
    }
    return float(z) * float(M_SQRT2);
}

// GPT-2: LayerNorm with biases, learned positions, tied head, MHA with biases, no RoPE, GELU(tanh) MLP.
void gpt2_layers(ModelSpec& s, int heads, int ffn_dim) {
    s.norm = NormKind::LayerNorm;
    s.norm_bias = true;
    s.learned_positions = true;
    s.tied_embeddings = true;
    for (int i = 0; i < s.n_layers; ++i) {
        LayerSpec l;
        l.attn.n_heads = l.attn.n_kv_heads = heads;
        l.attn.head_dim = l.attn.v_head_dim = s.dim / heads;
        l.attn.qkv_bias = l.attn.o_bias = true;
        l.attn.scale = 1.f / std::sqrt(float(l.attn.head_dim));
        l.attn.rope.enabled = false;
        l.ffn.gated = false;
        l.ffn.bias = true;
        l.ffn.act = Activation::GELUTanh;  // gelu_new
        l.ffn.ffn_dim = ffn_dim;
        s.layers.push_back(l);
    }
}

// Llama 4's MoE layer: top-k by raw router logit, sigmoid weight applied to the expert input, plus
// one always-on shared expert of the same size.
void llama4_moe(FfnSpec& f, int n_experts, int top_k, int expert_ffn_dim) {
    f.moe = true;
    f.ffn_dim = 0;
    f.n_experts = n_experts;
    f.top_k = top_k;
    f.expert_ffn_dim = expert_ffn_dim;
    f.n_shared = 1;
    f.shared_ffn_dim = expert_ffn_dim;
    f.scoring = Scoring::Sigmoid;
    f.weight_on_input = true;
}

// Gemma's local layers: a sliding window that includes the query, and their own unscaled RoPE base.
void make_local(LayerSpec& l, int window, float theta, int n_rot) {
    l.attn.scope = AttnScope::Sliding;
    l.attn.window = window;
    l.attn.rope = RopeSpec{};
    l.attn.rope.theta = theta;
    l.attn.rope.n_rot = n_rot;
}

// Gemma 3n KV sharing: layer i >= n_layers - n_shared reuses the last earlier layer of its kind.
// ref: HF Gemma3nTextAttention kv_shared_layer_index
void assign_kv_sources(ModelSpec& s, int n_shared) {
    const int first = s.n_layers - n_shared;
    for (int i = std::max(first, 0); i < s.n_layers; ++i) {
        for (int j = first - 1; j >= 0; --j)
            if (s.layers[size_t(j)].attn.scope == s.layers[size_t(i)].attn.scope) {
                s.layers[size_t(i)].kv_source = j;
                break;
            }
    }
}

}  // namespace

ModelSpec spec_from_hf_config_text(const std::string& text, const std::string& path) {
    json j;
    try {
        j = json::parse(text);
    } catch (const std::exception& e) {
        fail(path, std::string("config.json is not valid JSON: ") + e.what());
    }
    if (!j.is_object()) fail(path, "config.json is not a JSON object");
    // Multimodal wrappers (Gemma 3 4B+, Llama 4, Mistral 3.1) keep the language model in text_config.
    if (j.contains("text_config") && j["text_config"].is_object()) {
        json t = j["text_config"];
        if (!t.contains("model_type") && j.contains("model_type")) t["model_type"] = j["model_type"];
        for (auto k : {"tie_word_embeddings"})
            if (!t.contains(k) && j.contains(k)) t[k] = j[k];
        std::string outer = j.value("model_type", std::string());
        if (outer == "gemma3") {
            t["model_type"] = "gemma3_text";
            // The hub's Gemma 3 text_config leaves fields at transformers' Gemma3TextConfig defaults.
            const json defaults = {{"vocab_size", 262208},        {"hidden_size", 2304},          {"intermediate_size", 9216},
                                   {"num_hidden_layers", 26},     {"num_attention_heads", 8},     {"num_key_value_heads", 4},
                                   {"head_dim", 256},             {"hidden_activation", "gelu_pytorch_tanh"},
                                   {"max_position_embeddings", 131072}, {"rms_norm_eps", 1e-6}, {"rope_theta", 1000000.0},
                                   {"rope_local_base_freq", 10000.0},   {"query_pre_attn_scalar", 256},
                                   {"sliding_window", 4096},      {"sliding_window_pattern", 6}, {"tie_word_embeddings", true}};
            for (auto& [k, v] : defaults.items())
                if (!t.contains(k)) t[k] = v;
        }
        if (outer == "llama4") t["model_type"] = "llama4_text";
        if (outer == "gemma3n") t["model_type"] = "gemma3n_text";
        if (outer == "mistral3" && t.value("model_type", std::string()) == "") t["model_type"] = "mistral";
        j = t;
    }
    Cfg c{j, path};
    if (!c.has("model_type")) fail(path, "config.json is missing the required field 'model_type'");
    ModelSpec s;
    s.model_type = c.get_str("model_type", "");
    s.family = family_from_model_type(s.model_type, path);
    const Family fam = s.family;

    auto bos_eos = [&](const char* k) -> int {
        if (!c.has(k)) return -1;
        if (j[k].is_number()) return j[k].get<int>();
        if (j[k].is_array() && !j[k].empty() && j[k][0].is_number()) return j[k][0].get<int>();
        return -1;
    };
    s.bos = bos_eos("bos_token_id");
    s.eos = bos_eos("eos_token_id");

    if (fam == Family::GPT2) {
        s.dim = positive(c.req_int("n_embd"), "n_embd", path);
        s.n_layers = positive(c.req_int("n_layer"), "n_layer", path);
        s.vocab = positive(c.req_int("vocab_size"), "vocab_size", path);
        s.max_positions = positive(c.get_int("n_positions", 1024), "n_positions", path);
        s.norm_eps = float(c.get_f("layer_norm_epsilon", 1e-5));
        gpt2_layers(s, positive(c.req_int("n_head"), "n_head", path), int(c.get_int("n_inner", 4 * s.dim)));
        validate_spec(s, path);
        return s;
    }

    s.dim = positive(c.req_int("hidden_size"), "hidden_size", path);
    s.n_layers = positive(c.req_int("num_hidden_layers"), "num_hidden_layers", path);
    s.vocab = positive(c.req_int("vocab_size"), "vocab_size", path);
    s.max_positions = int(c.get_int("max_position_embeddings", 4096));
    s.norm_eps = float(c.get_f("rms_norm_eps", 1e-6));
    s.tied_embeddings = c.get_bool("tie_word_embeddings", fam == Family::Gemma3 || fam == Family::Gemma3n);
    const int n_heads = positive(c.req_int("num_attention_heads"), "num_attention_heads", path);
    const int n_kv = positive(c.get_int("num_key_value_heads", n_heads), "num_key_value_heads", path);
    const int head_dim = positive(c.get_int("head_dim", s.dim / n_heads), "head_dim", path);
    std::vector<int> ffn_dims;  // Gemma 3n (MatFormer) may give one intermediate size per layer
    if (c.has("intermediate_size") && j["intermediate_size"].is_array())
        for (auto& v : j["intermediate_size"]) ffn_dims.push_back(v.get<int>());
    const int ffn_dim = ffn_dims.empty() ? int(c.get_int("intermediate_size", 0)) : ffn_dims.front();
    // Gemma configs name it hidden_activation (and some carry a stale hidden_act beside it).
    const bool gemma = fam == Family::Gemma3 || fam == Family::Gemma3n;
    const std::string act = gemma ? c.get_str("hidden_activation", c.get_str("hidden_act", "gelu_pytorch_tanh"))
                                  : c.get_str("hidden_act", c.get_str("hidden_activation", "silu"));

    AttentionSpec base;
    base.n_heads = n_heads;
    base.n_kv_heads = n_kv;
    base.head_dim = base.v_head_dim = head_dim;
    base.qkv_bias = base.o_bias = c.get_bool("attention_bias", false);
    base.scale = 1.f / std::sqrt(float(head_dim));
    base.rope.theta = float(c.get_f("rope_theta", 10000));
    base.rope.n_rot = head_dim;
    base.rope.style = RopeStyle::Neox;
    apply_hf_rope_scaling(c, base.rope);

    FfnSpec dense;
    dense.ffn_dim = ffn_dim;
    dense.act = (act == "silu" || act == "swish") ? Activation::SiLU
                : (act == "gelu_pytorch_tanh" || act == "gelu_new") ? Activation::GELUTanh
                                                                     : Activation::GELU;

    switch (fam) {
        case Family::Llama:
        case Family::Mistral:
            if (int w = int(c.get_int("sliding_window", 0)); w > 0 && fam == Family::Mistral) {
                base.scope = AttnScope::Sliding;
                base.window = w;
            }
            break;
        case Family::Qwen3:
        case Family::Qwen3Moe:
            base.qk_norm = QkNorm::PerHead;
            if (c.get_bool("use_sliding_window", false)) {
                // Qwen3 ships use_sliding_window=false everywhere; refuse rather than guess.
                fail(path, "use_sliding_window=true is not supported for Qwen3");
            }
            break;
        case Family::Olmo2: base.qk_norm = QkNorm::Full; break;
        case Family::Gemma3:
            base.qk_norm = QkNorm::PerHead;
            base.scale = 1.f / std::sqrt(float(c.get_f("query_pre_attn_scalar", head_dim)));
            base.softcap = float(c.get_f("attn_logit_softcapping", 0));
            s.final_softcap = float(c.get_f("final_logit_softcapping", 0));
            s.embed_scale = std::sqrt(float(s.dim));
            break;
        case Family::DeepseekV3:
        case Family::KimiK2: {
            base.kind = AttnKind::MLA;
            base.n_kv_heads = n_heads;
            base.q_lora_rank = int(c.get_int("q_lora_rank", 0));
            base.kv_lora_rank = positive(c.req_int("kv_lora_rank"), "kv_lora_rank", path);
            base.qk_nope_head_dim = positive(c.req_int("qk_nope_head_dim"), "qk_nope_head_dim", path);
            base.qk_rope_head_dim = positive(c.req_int("qk_rope_head_dim"), "qk_rope_head_dim", path);
            base.v_head_dim = positive(c.req_int("v_head_dim"), "v_head_dim", path);
            base.head_dim = base.qk_nope_head_dim + base.qk_rope_head_dim;
            base.rope.n_rot = base.qk_rope_head_dim;
            base.rope.style = RopeStyle::Norm;  // rope_interleave (DeepSeek's own layout)
            base.scale = 1.f / std::sqrt(float(base.head_dim));
            if (base.rope.scaling == RopeScaling::Yarn && base.rope.mscale_all_dim > 0) {
                float m = yarn_mscale(base.rope.factor, base.rope.mscale_all_dim);
                base.scale *= m * m;
            }
            break;
        }
        case Family::Llama4:
            base.rope.style = RopeStyle::Norm;  // complex-number RoPE = interleaved pairs
            break;
        case Family::Gemma3n:
            // ref: HF Gemma3nTextAttention: per-head q/k norms with weights, weightless v norm, scaling 1.0
            base.qk_norm = QkNorm::PerHead;
            base.v_norm = true;
            base.scale = 1.f;
            s.final_softcap = float(c.get_f("final_logit_softcapping", 0));
            s.embed_scale = std::sqrt(float(s.dim));
            s.ple_dim = positive(c.req_int("hidden_size_per_layer_input"), "hidden_size_per_layer_input", path);
            s.ple_vocab = positive(c.get_int("vocab_size_per_layer_input", s.vocab), "vocab_size_per_layer_input", path);
            s.altup_inputs = positive(c.get_int("altup_num_inputs", 4), "altup_num_inputs", path);
            s.altup_active = int(c.get_int("altup_active_idx", 0));
            s.laurel_rank = positive(c.get_int("laurel_rank", 64), "laurel_rank", path);
            if (s.altup_active < 0 || s.altup_active >= s.altup_inputs) fail(path, "altup_active_idx is outside altup_num_inputs");
            break;
        default: break;
    }

    std::vector<std::string> layer_types;
    if (c.has("layer_types") && j["layer_types"].is_array())
        for (auto& t : j["layer_types"]) layer_types.push_back(t.is_string() ? t.get<std::string>() : "");

    for (int i = 0; i < s.n_layers; ++i) {
        LayerSpec l;
        l.attn = base;
        l.ffn = dense;
        switch (fam) {
            case Family::Olmo2:
                l.attn_pre_norm = l.ffn_pre_norm = false;
                l.attn_post_norm = l.ffn_post_norm = true;
                break;
            case Family::Gemma3n: {
                l.attn_post_norm = l.ffn_post_norm = true;
                if (!ffn_dims.empty()) l.ffn.ffn_dim = ffn_dims[std::min(size_t(i), ffn_dims.size() - 1)];
                bool sliding = size_t(i) < layer_types.size() ? layer_types[size_t(i)] == "sliding_attention" : (i + 1) % 5 != 0;
                if (sliding) {
                    make_local(l, positive(c.req_int("sliding_window"), "sliding_window", path), float(c.get_f("rope_local_base_freq", 10000)), head_dim);
                }
                float p = 0;
                if (c.has("activation_sparsity_pattern")) {
                    const json& sp = j["activation_sparsity_pattern"];
                    if (sp.is_array() && size_t(i) < sp.size()) p = sp[size_t(i)].get<float>();
                    else if (sp.is_number()) p = sp.get<float>();
                }
                if (p > 0) l.sparsity_std_mult = normal_icdf_f32(p);
                break;
            }
            case Family::Gemma3: {
                l.attn_post_norm = l.ffn_post_norm = true;
                bool sliding;
                if (!layer_types.empty() && size_t(i) < layer_types.size())
                    sliding = layer_types[size_t(i)] == "sliding_attention";
                else
                    sliding = (i + 1) % int(c.get_int("sliding_window_pattern", 6)) != 0;
                if (sliding) {
                    make_local(l, positive(c.req_int("sliding_window"), "sliding_window", path), float(c.get_f("rope_local_base_freq", 10000)), head_dim);
                }
                break;
            }
            case Family::Qwen3Moe: {
                std::vector<int> mlp_only;
                if (c.has("mlp_only_layers"))
                    for (auto& v : j["mlp_only_layers"]) mlp_only.push_back(v.get<int>());
                int step = int(c.get_int("decoder_sparse_step", 1));
                bool is_moe = std::find(mlp_only.begin(), mlp_only.end(), i) == mlp_only.end() && step > 0 &&
                              (i + 1) % step == 0;
                if (is_moe) {
                    l.ffn.moe = true;
                    l.ffn.n_experts = positive(c.req_int("num_experts"), "num_experts", path);
                    l.ffn.top_k = positive(c.req_int("num_experts_per_tok"), "num_experts_per_tok", path);
                    l.ffn.expert_ffn_dim = positive(c.req_int("moe_intermediate_size"), "moe_intermediate_size", path);
                    l.ffn.scoring = Scoring::Softmax;
                    // ref: llama.cpp always renormalises qwen3moe top-k weights (fixtures note 4)
                    l.ffn.norm_topk = c.get_bool("norm_topk_prob", true);
                }
                break;
            }
            case Family::DeepseekV3:
            case Family::KimiK2: {
                int first_dense = int(c.get_int("first_k_dense_replace", 0));
                int freq = int(c.get_int("moe_layer_freq", 1));
                if (c.has("n_routed_experts") && i >= first_dense && freq > 0 && i % freq == 0) {
                    auto& f = l.ffn;
                    f.moe = true;
                    f.n_experts = positive(c.req_int("n_routed_experts"), "n_routed_experts", path);
                    f.top_k = positive(c.req_int("num_experts_per_tok"), "num_experts_per_tok", path);
                    f.expert_ffn_dim = positive(c.req_int("moe_intermediate_size"), "moe_intermediate_size", path);
                    f.n_shared = int(c.get_int("n_shared_experts", 0));
                    f.shared_ffn_dim = f.expert_ffn_dim * f.n_shared;
                    std::string sf = c.get_str("scoring_func", "softmax");
                    f.scoring = sf == "sigmoid" ? Scoring::Sigmoid : Scoring::Softmax;
                    f.n_group = int(c.get_int("n_group", 1));
                    f.topk_group = int(c.get_int("topk_group", 1));
                    f.norm_topk = c.get_bool("norm_topk_prob", false);
                    f.routed_scale = float(c.get_f("routed_scaling_factor", 1));
                    f.selection_bias = c.get_str("topk_method", "greedy") == "noaux_tc";
                }
                break;
            }
            case Family::Llama4: {
                std::vector<int> moe_layers;
                if (c.has("moe_layers"))
                    for (auto& v : j["moe_layers"]) moe_layers.push_back(v.get<int>());
                else {
                    int step = int(c.get_int("interleave_moe_layer_step", 1));
                    for (int k = step - 1; k < s.n_layers; k += step) moe_layers.push_back(k);
                }
                bool use_rope;
                if (c.has("no_rope_layers") && j["no_rope_layers"].is_array() && size_t(i) < j["no_rope_layers"].size())
                    use_rope = j["no_rope_layers"][size_t(i)].get<int>() != 0;
                else
                    use_rope = (i + 1) % int(c.get_int("no_rope_layer_interval", 4)) != 0;
                if (use_rope) {
                    if (c.get_bool("use_qk_norm", true)) l.attn.qk_norm = QkNorm::L2;
                    if (int chunk = int(c.get_int("attention_chunk_size", 0)); chunk > 0) {
                        l.attn.scope = AttnScope::Chunked;
                        l.attn.window = chunk;
                    }
                } else {
                    l.attn.rope.enabled = false;
                    l.attn.rope.scaling = RopeScaling::None;
                    l.attn.rope.factor = 1;
                    l.attn.rope.low_freq_factor = 1;
                    l.attn.rope.high_freq_factor = 4;
                    l.attn.rope.original_max_pos = 0;
                    // The Llama 4 hub configs store a number here (4); transformers reads it as bool(value).
                    l.attn.temperature_tuning = c.has("attn_temperature_tuning") && j["attn_temperature_tuning"].is_number()
                                                    ? j["attn_temperature_tuning"].get<double>() != 0
                                                    : c.get_bool("attn_temperature_tuning", true);
                    l.attn.temp_floor_scale = float(c.get_f("floor_scale", 8192));
                    l.attn.temp_attn_scale = float(c.get_f("attn_scale", 0.1));
                }
                l.ffn.ffn_dim = int(c.get_int("intermediate_size_mlp", ffn_dim));
                if (std::find(moe_layers.begin(), moe_layers.end(), i) != moe_layers.end()) {
                    llama4_moe(l.ffn, positive(c.req_int("num_local_experts"), "num_local_experts", path),
                               positive(c.get_int("num_experts_per_tok", 1), "num_experts_per_tok", path),
                               positive(c.req_int("intermediate_size"), "intermediate_size", path));
                }
                break;
            }
            default: break;
        }
        if (l.ffn.moe) l.ffn.ffn_dim = 0;
        if (!l.attn.rope.enabled) l.attn.rope = RopeSpec{.enabled = false};
        if (!l.ffn.moe && l.ffn.ffn_dim <= 0)
            fail(path, "config.json is missing the required field 'intermediate_size'");
        s.layers.push_back(l);
    }
    if (fam == Family::Gemma3n) assign_kv_sources(s, int(c.get_int("num_kv_shared_layers", 0)));
    validate_spec(s, path);
    return s;
}

ModelSpec spec_from_hf_config_file(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, "cannot open config.json");
    std::stringstream ss;
    ss << in.rdbuf();
    return spec_from_hf_config_text(ss.str(), path);
}

void validate_spec(const ModelSpec& s, const std::string& path) {
    if (s.dim <= 0 || s.n_layers <= 0 || s.vocab <= 0) fail(path, "model dimensions must be positive");
    if (s.n_layers > 4096) fail(path, "absurd layer count " + std::to_string(s.n_layers));
    for (size_t i = 0; i < s.layers.size(); ++i) {
        const auto& a = s.layers[i].attn;
        const auto& f = s.layers[i].ffn;
        std::string L = "layer " + std::to_string(i) + ": ";
        if (a.n_heads <= 0 || a.n_kv_heads <= 0 || a.n_heads % a.n_kv_heads != 0)
            fail(path, L + "num_attention_heads (" + std::to_string(a.n_heads) +
                           ") must be a positive multiple of num_key_value_heads (" + std::to_string(a.n_kv_heads) + ")");
        if (a.rope.enabled && (a.rope.n_rot % 2 != 0 || a.rope.n_rot > a.head_dim))
            fail(path, L + "rotary dimension " + std::to_string(a.rope.n_rot) + " is invalid");
        if (f.moe) {
            if (f.n_experts <= 0) fail(path, L + "n_routed_experts must be positive");
            if (f.top_k <= 0 || f.top_k > f.n_experts)
                fail(path, L + "num_experts_per_tok (top_k = " + std::to_string(f.top_k) + ") must be between 1 and the number of experts (" +
                               std::to_string(f.n_experts) + ")");
            if (f.n_group <= 0 || f.n_experts % f.n_group != 0)
                fail(path, L + "n_group (" + std::to_string(f.n_group) + ") must divide the number of experts (" +
                               std::to_string(f.n_experts) + ")");
            if (f.topk_group <= 0 || f.topk_group > f.n_group)
                fail(path, L + "topk_group (" + std::to_string(f.topk_group) + ") must be between 1 and n_group (" +
                               std::to_string(f.n_group) + ")");
            if (f.n_group > 1 && f.top_k > f.topk_group * (f.n_experts / f.n_group))
                fail(path, L + "num_experts_per_tok exceeds the experts in the topk_group selected groups");
        }
    }
}

// ---- GGUF metadata -------------------------------------------------------------------------

ModelSpec spec_from_gguf(const GgufFile& g) {
    const std::string& path = g.path();
    auto arch_opt = g.get_string("general.architecture");
    if (!arch_opt) fail(path, "GGUF metadata lacks general.architecture");
    const std::string arch = *arch_opt;
    ModelSpec s;
    if (arch == "gpt2") s.family = Family::GPT2;
    else if (arch == "llama") s.family = Family::Llama;
    else if (arch == "qwen3") s.family = Family::Qwen3;
    else if (arch == "qwen3moe") s.family = Family::Qwen3Moe;
    else if (arch == "olmo2") s.family = Family::Olmo2;
    else if (arch == "gemma3") s.family = Family::Gemma3;
    else if (arch == "deepseek2") s.family = Family::DeepseekV3;
    else if (arch == "llama4") s.family = Family::Llama4;
    else if (arch == "gemma3n") s.family = Family::Gemma3n;
    else fail(path, "unsupported architecture '" + arch + "'; supported: " + supported_architectures());
    s.name = g.get_string("general.name").value_or("");
    auto lower = [](std::string x) { for (auto& ch : x) ch = char(std::tolower((unsigned char)ch)); return x; };
    if (s.family == Family::Llama && lower(s.name).find("mistral") != std::string::npos) s.family = Family::Mistral;
    if (s.family == Family::DeepseekV3 && lower(s.name).find("kimi") != std::string::npos) s.family = Family::KimiK2;
    const Family fam = s.family;
    static const char* mt[] = {"gpt2", "llama", "mistral", "qwen3", "qwen3_moe", "olmo2", "gemma3_text", "deepseek_v3", "kimi_k2", "llama4_text", "gemma3n_text"};
    s.model_type = mt[int(fam)];

    auto key = [&](const std::string& k) { return arch + "." + k; };
    auto req = [&](const std::string& k) -> int64_t {
        auto v = g.get_int(key(k));
        if (!v) fail(path, "GGUF metadata lacks the required key '" + key(k) + "'");
        return *v;
    };
    auto geti = [&](const std::string& k, int64_t d) { return g.get_int(key(k)).value_or(d); };
    auto getf = [&](const std::string& k, double d) { return g.get_float(key(k)).value_or(d); };

    s.dim = positive(req("embedding_length"), "embedding_length", path);
    s.n_layers = positive(req("block_count"), "block_count", path);
    s.max_positions = int(geti("context_length", 4096));
    if (auto v = g.get_int(key("vocab_size"))) s.vocab = int(*v);
    else if (auto t = g.find("tokenizer.ggml.tokens")) s.vocab = int(t->as.size());
    else if (auto e = g.tensor("token_embd.weight")) s.vocab = int(e->shape[0]);
    s.bos = int(g.get_int("tokenizer.ggml.bos_token_id").value_or(-1));
    s.eos = int(g.get_int("tokenizer.ggml.eos_token_id").value_or(-1));
    s.tied_embeddings = g.tensor("output.weight") == nullptr;
    s.final_softcap = float(getf("final_logit_softcapping", 0));

    auto per_layer_int = [&](const std::string& k, int layer, int64_t d) -> int64_t {
        auto v = g.find(key(k));
        if (!v) return d;
        if (v->is_array()) return size_t(layer) < v->ai.size() ? v->ai[size_t(layer)] : d;
        return v->i;
    };
    const int n_heads = positive(per_layer_int("attention.head_count", 0, 0), "attention.head_count", path);

    if (fam == Family::GPT2) {
        s.norm_eps = float(getf("attention.layer_norm_epsilon", 1e-5));
        if (auto pe = g.tensor("position_embd.weight")) s.max_positions = int(pe->shape[0]);
        gpt2_layers(s, n_heads, int(req("feed_forward_length")));
        validate_spec(s, path);
        return s;
    }

    s.norm_eps = float(getf("attention.layer_norm_rms_epsilon", 1e-6));
    const int head_dim = int(geti("attention.key_length", s.dim / n_heads));
    const int v_dim = int(geti("attention.value_length", head_dim));

    AttentionSpec base;
    base.n_heads = n_heads;
    base.head_dim = head_dim;
    base.v_head_dim = v_dim;
    base.scale = 1.f / std::sqrt(float(head_dim));
    base.rope.theta = float(getf("rope.freq_base", 10000));
    base.rope.n_rot = int(geti("rope.dimension_count", head_dim));
    base.rope.style = RopeStyle::Neox;
    base.qkv_bias = g.tensor("blk.0.attn_q.bias") != nullptr || g.tensor("blk.0.attn_qkv.bias") != nullptr;
    base.o_bias = g.tensor("blk.0.attn_output.bias") != nullptr;
    if (auto st = g.get_string(key("rope.scaling.type"))) {
        if (*st == "linear") {
            base.rope.scaling = RopeScaling::Linear;
            base.rope.factor = float(getf("rope.scaling.factor", 1));
        } else if (*st == "yarn") {
            base.rope.scaling = RopeScaling::Yarn;
            base.rope.factor = float(getf("rope.scaling.factor", 1));
            base.rope.original_max_pos = int(geti("rope.scaling.original_context_length", 4096));
            base.rope.beta_fast = float(getf("rope.scaling.yarn_beta_fast", 32));
            base.rope.beta_slow = float(getf("rope.scaling.yarn_beta_slow", 1));
            // ref: convert_hf_to_gguf DeepseekV2: yarn_log_multiplier = 0.1 * mscale_all_dim
            base.rope.mscale_all_dim = float(getf("rope.scaling.yarn_log_multiplier", 0) / 0.1);
            base.rope.mscale = base.rope.mscale_all_dim;
        }
    }
    if (const TensorRef* rf = g.tensor("rope_freqs.weight")) {
        // ref: convert_hf_to_gguf LlamaModel: Llama 3.1/3.2 "llama3" scaling is baked into per-pair
        // frequency divisors. The forward pass uses the tensor itself; the spec records the standard
        // llama3 parameters (low 1, high 4, original 8192 in every release) with factor = max divisor.
        if (rf->type != DType::F32 || rf->numel() != base.rope.n_rot / 2)
            fail(path, "tensor 'rope_freqs.weight' must be F32 with n_rot/2 values");
        const float* f = reinterpret_cast<const float*>(rf->data);
        float mx = 1.f;
        for (int64_t i = 0; i < rf->numel(); ++i) mx = std::max(mx, f[i]);
        if (mx > 1.f) {
            base.rope.scaling = RopeScaling::Llama3;
            base.rope.factor = mx;
            base.rope.low_freq_factor = 1.f;
            base.rope.high_freq_factor = 4.f;
            base.rope.original_max_pos = 8192;
        }
    }

    FfnSpec dense;
    dense.ffn_dim = int(geti("feed_forward_length", 0));
    dense.act = Activation::SiLU;

    switch (fam) {
        case Family::Qwen3:
        case Family::Qwen3Moe: base.qk_norm = QkNorm::PerHead; break;
        case Family::Olmo2: base.qk_norm = QkNorm::Full; break;
        case Family::Gemma3:
            base.qk_norm = QkNorm::PerHead;
            dense.act = Activation::GELUTanh;
            // ref: llama.cpp gemma3: 1/sqrt(head_dim), except the 62-layer 27B (query_pre_attn_scalar = dim/heads)
            base.scale = s.n_layers == 62 ? 1.f / std::sqrt(float(s.dim / n_heads)) : 1.f / std::sqrt(float(head_dim));
            base.softcap = float(getf("attn_logit_softcapping", 0));
            s.embed_scale = std::sqrt(float(s.dim));
            break;
        case Family::DeepseekV3:
        case Family::KimiK2: {
            base.kind = AttnKind::MLA;
            base.n_kv_heads = n_heads;
            base.q_lora_rank = int(geti("attention.q_lora_rank", 0));
            base.kv_lora_rank = positive(req("attention.kv_lora_rank"), "attention.kv_lora_rank", path);
            base.qk_rope_head_dim = base.rope.n_rot;
            int k_mla = int(geti("attention.key_length_mla", head_dim));
            base.v_head_dim = int(geti("attention.value_length_mla", v_dim));
            base.qk_nope_head_dim = k_mla - base.qk_rope_head_dim;
            base.head_dim = k_mla;
            base.rope.style = RopeStyle::Norm;
            base.scale = 1.f / std::sqrt(float(k_mla));
            if (base.rope.scaling == RopeScaling::Yarn && base.rope.mscale_all_dim > 0) {
                float m = yarn_mscale(base.rope.factor, base.rope.mscale_all_dim);
                base.scale *= m * m;
            }
            break;
        }
        case Family::Llama4: base.rope.style = RopeStyle::Norm; break;
        case Family::Gemma3n: {
            base.qk_norm = QkNorm::PerHead;
            base.v_norm = true;
            base.scale = 1.f;
            dense.act = Activation::GELUTanh;
            s.embed_scale = std::sqrt(float(s.dim));
            s.ple_dim = int(geti("embedding_length_per_layer_input", 256));
            s.altup_inputs = int(geti("altup.num_inputs", 4));
            s.altup_active = int(geti("altup.active_idx", 0));
            if (auto t = g.tensor("per_layer_token_embd.weight")) s.ple_vocab = int(t->shape[0]);
            if (auto t = g.tensor("blk.0.laurel_l.weight")) s.laurel_rank = int(t->shape[0]);
            break;
        }
        default: break;
    }

    const int n_expert = int(geti("expert_count", 0));
    for (int i = 0; i < s.n_layers; ++i) {
        LayerSpec l;
        l.attn = base;
        if (base.kind != AttnKind::MLA) {
            l.attn.n_kv_heads = positive(per_layer_int("attention.head_count_kv", i, n_heads), "attention.head_count_kv", path);
        }
        l.ffn = dense;
        switch (fam) {
            case Family::Mistral:
            case Family::Llama:
                if (int w = int(geti("attention.sliding_window", 0)); w > 0) {
                    l.attn.scope = AttnScope::Sliding;
                    l.attn.window = w;
                }
                break;
            case Family::Olmo2:
                l.attn_pre_norm = l.ffn_pre_norm = false;
                l.attn_post_norm = l.ffn_post_norm = true;
                break;
            case Family::Gemma3n: {
                l.attn_post_norm = l.ffn_post_norm = true;
                bool sliding = (i + 1) % 5 != 0;
                if (auto v = g.find(key("attention.sliding_window_pattern")); v && v->is_array() && size_t(i) < v->ai.size())
                    sliding = v->ai[size_t(i)] != 0;
                if (sliding) {
                    make_local(l, positive(req("attention.sliding_window"), "attention.sliding_window", path), float(getf("rope.freq_base_swa", 10000)), base.rope.n_rot);
                }
                if (auto v = g.find(key("activation_sparsity_scale")); v && v->is_array() && size_t(i) < v->af.size()) {
                    const double m = v->af[size_t(i)];
                    if (std::isfinite(m) && m > 0) l.sparsity_std_mult = float(m);
                }
                break;
            }
            case Family::Gemma3: {
                l.attn_post_norm = l.ffn_post_norm = true;
                int pattern = int(geti("attention.sliding_window_pattern", 6));
                bool sliding = pattern > 0 && (i + 1) % pattern != 0;
                if (auto v = g.find(key("attention.sliding_window_pattern")); v && v->is_array() && size_t(i) < v->ai.size())
                    sliding = v->ai[size_t(i)] != 0;
                if (sliding) {
                    make_local(l, positive(req("attention.sliding_window"), "attention.sliding_window", path), float(getf("rope.freq_base_swa", 10000)), base.rope.n_rot);
                }
                break;
            }
            case Family::Qwen3Moe:
                l.ffn.moe = true;
                l.ffn.ffn_dim = int(geti("feed_forward_length", 0));
                l.ffn.n_experts = n_expert;
                l.ffn.top_k = int(geti("expert_used_count", 0));
                l.ffn.expert_ffn_dim = int(geti("expert_feed_forward_length", 0));
                l.ffn.norm_topk = true;
                break;
            case Family::DeepseekV3:
            case Family::KimiK2:
                if (i >= geti("leading_dense_block_count", 0) && n_expert > 0) {
                    auto& f = l.ffn;
                    f.moe = true;
                    f.n_experts = n_expert;
                    f.top_k = int(geti("expert_used_count", 0));
                    f.expert_ffn_dim = int(geti("expert_feed_forward_length", 0));
                    f.n_shared = int(geti("expert_shared_count", 0));
                    f.shared_ffn_dim = f.expert_ffn_dim * f.n_shared;
                    f.scoring = geti("expert_gating_func", 1) == 2 ? Scoring::Sigmoid : Scoring::Softmax;
                    f.n_group = int(geti("expert_group_count", 1));
                    f.topk_group = int(geti("expert_group_used_count", 1));
                    f.norm_topk = g.get_bool(key("expert_weights_norm")).value_or(false);
                    f.routed_scale = float(getf("expert_weights_scale", 1));
                    f.selection_bias = g.tensor("blk." + std::to_string(i) + ".exp_probs_b.bias") != nullptr;
                }
                break;
            case Family::Llama4: {
                // ref: llama.cpp llama4: NoPE every 4th layer, chunk 8192, temperature tuning 8192/0.1
                bool use_rope = (i + 1) % 4 != 0;
                if (use_rope) {
                    if (n_expert != 128) l.attn.qk_norm = QkNorm::L2;  // Maverick (128 experts) has no qk-norm
                    l.attn.scope = AttnScope::Chunked;
                    l.attn.window = int(geti("attention.chunk_size", 8192));
                } else {
                    l.attn.rope.enabled = false;
                    l.attn.rope.scaling = RopeScaling::None;
                    l.attn.rope.factor = 1;
                    l.attn.temperature_tuning = true;
                }
                int step = int(geti("interleave_moe_layer_step", 1));
                if (n_expert > 0 && step > 0 && (i + 1) % step == 0) {
                    llama4_moe(l.ffn, n_expert, int(geti("expert_used_count", 1)), int(geti("expert_feed_forward_length", 0)));
                }
                break;
            }
            default: break;
        }
        if (l.ffn.moe) l.ffn.ffn_dim = 0;
        if (!l.attn.rope.enabled) l.attn.rope = RopeSpec{.enabled = false};
        if (!l.ffn.moe && l.ffn.ffn_dim <= 0) fail(path, "GGUF metadata lacks '" + key("feed_forward_length") + "'");
        s.layers.push_back(l);
    }
    if (fam == Family::Gemma3n) assign_kv_sources(s, int(geti("attention.shared_kv_layers", 0)));
    validate_spec(s, path);
    return s;
}

}  // namespace archlens
