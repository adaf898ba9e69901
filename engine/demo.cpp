#include "engine/demo.h"

#include <cstdlib>
#include <filesystem>

#include "engine/core/error.h"
#include "engine/model/spec_parse.h"
#include "engine/model/synth.h"
#include "engine/teaching_models.h"

namespace archlens::demo {

namespace fs = std::filesystem;

namespace {

struct Demo {
    DemoInfo info;
    const char* config;  // an HF config.json: the demo is built from the same parser as real models
};

// Constructed demos (weights set analytically, see teaching_models.h).
struct Constructed {
    DemoInfo info;
    std::string (*config)();
    void (*configure)(SynthOptions&);
};

const Constructed kConstructed[] = {
    {{"induction", "Induction heads (constructed)", "a previous-token head and an induction head that continue repeated sequences"},
     [] { return teaching::induction_config({}); },
     [](SynthOptions& o) { teaching::configure_induction({}, o); }},
    {{"moe-router", "Character-class router (constructed)", "a MoE whose router sends digits, letters, punctuation and spaces to different experts"},
     [] { return teaching::class_router_config(); },
     [](SynthOptions& o) { teaching::configure_class_router(o, 512); }},
};

// Tiny shapes that keep every architectural feature visible (windows shorter than a chat turn,
// several experts, MLA ranks well below the head dims). Version in the file name: bump it when a
// demo's definition changes so stale caches are not reused.
const Demo kDemos[] = {
    {{"llama3", "Llama 3 (tiny)", "GQA, RoPE, RMSNorm pre-norm, SwiGLU"},
     R"({"model_type":"llama","vocab_size":512,"hidden_size":128,"intermediate_size":384,"num_hidden_layers":4,
         "num_attention_heads":8,"num_key_value_heads":2,"max_position_embeddings":2048,"rms_norm_eps":1e-5,
         "rope_theta":500000.0,"tie_word_embeddings":false})"},
    {{"gpt2", "GPT-2 (tiny)", "learned positions, LayerNorm, GELU MLP, MHA"},
     R"({"model_type":"gpt2","vocab_size":512,"n_embd":128,"n_layer":4,"n_head":4,"n_positions":1024,
         "layer_norm_epsilon":1e-5})"},
    {{"qwen3", "Qwen3 (tiny)", "GQA with per-head QK-norm, tied embeddings"},
     R"({"model_type":"qwen3","vocab_size":512,"hidden_size":128,"intermediate_size":384,"num_hidden_layers":4,
         "num_attention_heads":8,"num_key_value_heads":2,"head_dim":32,"max_position_embeddings":2048,
         "rms_norm_eps":1e-6,"rope_theta":1000000.0,"tie_word_embeddings":true})"},
    {{"qwen3-moe", "Qwen3-MoE (tiny)", "16 experts, top-4 softmax routing, no shared expert"},
     R"({"model_type":"qwen3_moe","vocab_size":512,"hidden_size":128,"intermediate_size":384,"moe_intermediate_size":64,
         "num_hidden_layers":4,"num_attention_heads":8,"num_key_value_heads":2,"head_dim":32,"num_experts":16,
         "num_experts_per_tok":4,"norm_topk_prob":true,"max_position_embeddings":2048,"rms_norm_eps":1e-6,
         "rope_theta":1000000.0})"},
    {{"deepseek-v3", "DeepSeek-V3 (tiny)", "MLA latent KV cache, 1 dense + MoE layers, shared expert, sigmoid group routing"},
     R"({"model_type":"deepseek_v3","vocab_size":512,"hidden_size":128,"intermediate_size":384,"moe_intermediate_size":64,
         "num_hidden_layers":4,"num_attention_heads":8,"num_key_value_heads":8,"n_shared_experts":1,"n_routed_experts":16,
         "routed_scaling_factor":2.5,"kv_lora_rank":64,"q_lora_rank":96,"qk_rope_head_dim":16,"v_head_dim":32,
         "qk_nope_head_dim":32,"topk_method":"noaux_tc","n_group":4,"topk_group":2,"num_experts_per_tok":4,
         "first_k_dense_replace":1,"norm_topk_prob":true,"scoring_func":"sigmoid","max_position_embeddings":2048,
         "rms_norm_eps":1e-6,"rope_theta":10000.0})"},
    {{"kimi-k2", "Kimi K2 (tiny)", "DeepSeek-V3 architecture with more experts and fewer heads"},
     R"({"model_type":"kimi_k2","vocab_size":512,"hidden_size":128,"intermediate_size":384,"moe_intermediate_size":64,
         "num_hidden_layers":4,"num_attention_heads":4,"num_key_value_heads":4,"n_shared_experts":1,"n_routed_experts":32,
         "routed_scaling_factor":2.827,"kv_lora_rank":64,"q_lora_rank":96,"qk_rope_head_dim":16,"v_head_dim":32,
         "qk_nope_head_dim":32,"topk_method":"noaux_tc","n_group":1,"topk_group":1,"num_experts_per_tok":4,
         "first_k_dense_replace":1,"norm_topk_prob":true,"scoring_func":"sigmoid","max_position_embeddings":2048,
         "rms_norm_eps":1e-6,"rope_theta":10000.0})"},
    {{"olmo2", "OLMo 2 (tiny)", "norms after attention and FFN inside the residual, QK-norm over the projection"},
     R"({"model_type":"olmo2","vocab_size":512,"hidden_size":128,"intermediate_size":384,"num_hidden_layers":4,
         "num_attention_heads":4,"num_key_value_heads":4,"max_position_embeddings":2048,"rms_norm_eps":1e-6,
         "rope_theta":500000.0})"},
    {{"gemma3", "Gemma 3 (tiny)", "5 sliding-window layers (window 32) per global layer, pre+post norms, GeGLU"},
     R"({"model_type":"gemma3_text","vocab_size":512,"hidden_size":128,"intermediate_size":384,"num_hidden_layers":6,
         "num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"hidden_activation":"gelu_pytorch_tanh",
         "max_position_embeddings":2048,"rms_norm_eps":1e-6,"rope_theta":1000000.0,"rope_local_base_freq":10000.0,
         "query_pre_attn_scalar":32,"sliding_window":32,"sliding_window_pattern":6})"},
    {{"mistral-small", "Mistral Small 3.1 (tiny)", "dense GQA with an explicit head_dim, θ = 1e9"},
     R"({"model_type":"mistral","vocab_size":512,"hidden_size":128,"intermediate_size":384,"num_hidden_layers":4,
         "num_attention_heads":8,"num_key_value_heads":2,"head_dim":32,"max_position_embeddings":2048,
         "rms_norm_eps":1e-5,"rope_theta":1000000000.0})"},
    {{"llama4", "Llama 4 (tiny)", "MoE every 2nd layer with a shared expert, NoPE every 4th layer, chunked attention"},
     R"({"model_type":"llama4_text","vocab_size":512,"hidden_size":128,"intermediate_size":64,"intermediate_size_mlp":384,
         "num_hidden_layers":4,"num_attention_heads":8,"num_key_value_heads":2,"head_dim":16,"num_local_experts":8,
         "num_experts_per_tok":1,"interleave_moe_layer_step":2,"use_qk_norm":true,"attention_chunk_size":8192,
         "max_position_embeddings":16384,"rms_norm_eps":1e-5,"rope_theta":500000.0})"},
    {{"sliding-window", "Sliding window 8 (tiny)", "every layer sees only the last 8 tokens: the attention band"},
     R"({"model_type":"mistral","vocab_size":512,"hidden_size":128,"intermediate_size":384,"num_hidden_layers":2,
         "num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"max_position_embeddings":2048,
         "rms_norm_eps":1e-5,"rope_theta":10000.0,"sliding_window":8})"},
    {{"global-window", "Same model, global attention (tiny)", "the sliding-window demo's twin with full causal attention"},
     R"({"model_type":"mistral","vocab_size":512,"hidden_size":128,"intermediate_size":384,"num_hidden_layers":2,
         "num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"max_position_embeddings":2048,
         "rms_norm_eps":1e-5,"rope_theta":10000.0})"},
    {{"gemma3n", "Gemma 3n (tiny)", "per-layer embeddings, AltUp streams, LAuReL, activation sparsity, KV sharing"},
     R"({"model_type":"gemma3n_text","vocab_size":512,"vocab_size_per_layer_input":512,"hidden_size":64,
         "hidden_size_per_layer_input":32,"intermediate_size":256,"num_hidden_layers":10,"num_attention_heads":4,
         "num_key_value_heads":1,"head_dim":32,"hidden_activation":"gelu_pytorch_tanh","max_position_embeddings":2048,
         "rms_norm_eps":1e-6,"rope_theta":1000000.0,"rope_local_base_freq":10000.0,"sliding_window":32,
         "layer_types":["sliding_attention","sliding_attention","sliding_attention","sliding_attention","full_attention",
                        "sliding_attention","sliding_attention","sliding_attention","sliding_attention","full_attention"],
         "final_logit_softcapping":30.0,"altup_active_idx":0,"altup_num_inputs":4,"laurel_rank":16,
         "num_kv_shared_layers":4,"activation_sparsity_pattern":[0.95,0.95,0.95,0,0,0,0,0,0,0]})"},
};

constexpr int kVersion = 2;

}  // namespace

std::vector<DemoInfo> demo_models() {
    std::vector<DemoInfo> v;
    for (auto& d : kDemos) v.push_back(d.info);
    for (auto& d : kConstructed) v.push_back(d.info);
    return v;
}

std::string default_demo_dir() {
    if (const char* x = std::getenv("XDG_CACHE_HOME"); x && *x) return std::string(x) + "/archlens/demo";
    if (const char* h = std::getenv("HOME"); h && *h) return std::string(h) + "/.cache/archlens/demo";
    return (fs::temp_directory_path() / "archlens-demo").string();
}

namespace {

// Writes the demo once (deterministic: same seed, same bytes) and returns its path.
std::string write_once(const std::string& name, const std::string& dir, const std::string& config, const std::string& title,
                       void (*configure)(SynthOptions&)) {
    fs::path path = fs::path(dir) / (name + "-v" + std::to_string(kVersion) + ".gguf");
    std::error_code ec;
    if (fs::exists(path, ec)) return path.string();
    fs::create_directories(dir, ec);
    if (ec) throw Error(dir + ": cannot create the demo model folder: " + ec.message());
    ModelSpec spec = spec_from_hf_config_text(config, "demo:" + name);
    SynthOptions o;
    o.seed = 20250101;
    o.name = "ArchLens demo " + title;
    if (configure) configure(o);
    write_synthetic_gguf(spec, o, path.string());
    return path.string();
}

}  // namespace

std::string ensure_demo_model(const std::string& name, const std::string& dir) {
    for (auto& d : kDemos)
        if (d.info.name == name) return write_once(name, dir, d.config, d.info.title + " (random weights)", nullptr);
    for (auto& d : kConstructed)
        if (d.info.name == name) return write_once(name, dir, d.config(), d.info.title, d.configure);
    std::string names;
    for (auto& d : demo_models()) names += (names.empty() ? "" : ", ") + d.name;
    throw Error("unknown demo model '" + name + "'; available: " + names);
}

std::string resolve_model_path(const std::string& p) {
    if (p.rfind("demo:", 0) == 0) return ensure_demo_model(p.substr(5), default_demo_dir());
    return p;
}

}  // namespace archlens::demo
