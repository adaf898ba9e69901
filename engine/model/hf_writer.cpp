#include "engine/model/hf_writer.h"

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <nlohmann/json.hpp>

#include "engine/core/error.h"
#include "engine/formats/gguf.h"
#include "engine/model/model.h"
#include "engine/quant/quant.h"

namespace archlens {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

// One HF tensor, f32 values in HF layout.
struct Out {
    std::string name;
    std::vector<int64_t> shape;
    std::vector<float> data;
};

std::vector<float> as_f32(const TensorRef& t) {
    std::vector<float> v(static_cast<size_t>(t.numel()));
    const int64_t row = t.shape.back();
    const uint64_t rb = *dtype_row_bytes(t.type, uint64_t(row));
    for (int64_t r = 0; r < t.numel() / row; ++r) quant::dequantize_row(t.type, t.data + uint64_t(r) * rb, v.data() + r * row, row);
    return v;
}

json config_json(const ModelSpec& s) {
    json j;
    j["model_type"] = s.model_type;
    j["vocab_size"] = s.vocab;
    j["torch_dtype"] = "float32";
    if (s.bos >= 0) j["bos_token_id"] = s.bos;
    if (s.eos >= 0) j["eos_token_id"] = s.eos;
    const LayerSpec& l0 = s.layers.front();
    const AttentionSpec& a = l0.attn;
    if (s.family == Family::GPT2) {
        j["n_embd"] = s.dim;
        j["n_layer"] = s.n_layers;
        j["n_head"] = a.n_heads;
        j["n_positions"] = s.max_positions;
        j["n_inner"] = l0.ffn.ffn_dim;
        j["layer_norm_epsilon"] = s.norm_eps;
        j["activation_function"] = "gelu_new";
        j["tie_word_embeddings"] = true;
        return j;
    }
    int dense = 0;
    const FfnSpec* moe = nullptr;
    for (auto& l : s.layers) {
        if (!l.ffn.moe) dense = l.ffn.ffn_dim;
        else moe = &l.ffn;
    }
    const AttentionSpec* glob = &a;
    for (auto& l : s.layers)
        if (l.attn.scope != AttnScope::Sliding && l.attn.rope.enabled) {
            glob = &l.attn;
            break;
        }
    j["hidden_size"] = s.dim;
    j["num_hidden_layers"] = s.n_layers;
    j["num_attention_heads"] = a.n_heads;
    j["num_key_value_heads"] = a.n_kv_heads;
    j["head_dim"] = a.head_dim;
    j["intermediate_size"] = dense ? dense : (moe ? moe->expert_ffn_dim : 0);
    j["max_position_embeddings"] = s.max_positions;
    j["rms_norm_eps"] = s.norm_eps;
    j["rope_theta"] = glob->rope.theta;
    j["tie_word_embeddings"] = s.tied_embeddings;
    j["attention_bias"] = a.qkv_bias;
    j["hidden_act"] = "silu";
    const RopeSpec& r = glob->rope;
    if (r.scaling == RopeScaling::Llama3)
        j["rope_scaling"] = {{"rope_type", "llama3"}, {"factor", r.factor}, {"low_freq_factor", r.low_freq_factor},
                             {"high_freq_factor", r.high_freq_factor}, {"original_max_position_embeddings", r.original_max_pos}};
    else if (r.scaling == RopeScaling::Linear)
        j["rope_scaling"] = {{"rope_type", "linear"}, {"factor", r.factor}};
    else if (r.scaling == RopeScaling::Yarn)
        j["rope_scaling"] = {{"rope_type", "yarn"}, {"factor", r.factor}, {"original_max_position_embeddings", r.original_max_pos},
                             {"beta_fast", r.beta_fast}, {"beta_slow", r.beta_slow}, {"mscale", r.mscale}, {"mscale_all_dim", r.mscale_all_dim}};
    std::vector<std::string> types;
    for (auto& l : s.layers) types.push_back(l.attn.scope == AttnScope::Sliding ? "sliding_attention" : "full_attention");
    switch (s.family) {
        case Family::Mistral:
        case Family::Llama:
            if (a.scope == AttnScope::Sliding) {
                j["model_type"] = "mistral";  // HF's llama config has no sliding window; mistral's does
                j["sliding_window"] = a.window;
            }
            break;
        case Family::Qwen3Moe: {
            j["num_experts"] = moe->n_experts;
            j["num_experts_per_tok"] = moe->top_k;
            j["moe_intermediate_size"] = moe->expert_ffn_dim;
            j["norm_topk_prob"] = moe->norm_topk;
            std::vector<int> dense_layers;
            for (int i = 0; i < s.n_layers; ++i)
                if (!s.layers[size_t(i)].ffn.moe) dense_layers.push_back(i);
            j["mlp_only_layers"] = dense_layers;
            break;
        }
        case Family::Gemma3:
        case Family::Gemma3n:
            j.erase("hidden_act");
            j["hidden_activation"] = "gelu_pytorch_tanh";
            j["layer_types"] = types;
            for (auto& l : s.layers)
                if (l.attn.scope == AttnScope::Sliding) {
                    j["sliding_window"] = l.attn.window;
                    j["rope_local_base_freq"] = l.attn.rope.theta;
                    break;
                }
            if (s.final_softcap > 0) j["final_logit_softcapping"] = s.final_softcap;
            if (s.family == Family::Gemma3) {
                j["query_pre_attn_scalar"] = std::lround(1.0 / (double(a.scale) * a.scale));
                if (a.softcap > 0) j["attn_logit_softcapping"] = a.softcap;
            } else {
                j["hidden_size_per_layer_input"] = s.ple_dim;
                j["vocab_size_per_layer_input"] = s.ple_vocab;
                j["altup_num_inputs"] = s.altup_inputs;
                j["altup_active_idx"] = s.altup_active;
                j["laurel_rank"] = s.laurel_rank;
                int shared = 0;
                std::vector<double> sparsity;
                for (auto& l : s.layers) {
                    shared += l.kv_source >= 0;
                    // the target sparsity p whose normal quantile is the stored multiplier
                    const double p = l.sparsity_std_mult > 0 ? 0.5 * std::erfc(-double(l.sparsity_std_mult) / M_SQRT2) : 0.0;
                    sparsity.push_back(std::round(p * 1e6) / 1e6);
                }
                j["num_kv_shared_layers"] = shared;
                j["activation_sparsity_pattern"] = sparsity;
                std::vector<int> dims;  // per layer: MatFormer models may differ layer to layer
                for (auto& l : s.layers) dims.push_back(l.ffn.ffn_dim);
                j["intermediate_size"] = dims;
            }
            break;
        case Family::DeepseekV3:
        case Family::KimiK2: {
            j["q_lora_rank"] = a.q_lora_rank ? json(a.q_lora_rank) : json(nullptr);
            j["kv_lora_rank"] = a.kv_lora_rank;
            j["qk_nope_head_dim"] = a.qk_nope_head_dim;
            j["qk_rope_head_dim"] = a.qk_rope_head_dim;
            j["v_head_dim"] = a.v_head_dim;
            j["rope_interleave"] = true;
            if (dense) j["intermediate_size"] = dense;
            int first_moe = 0;
            while (first_moe < s.n_layers && !s.layers[size_t(first_moe)].ffn.moe) ++first_moe;
            j["first_k_dense_replace"] = first_moe;
            j["moe_layer_freq"] = 1;
            if (moe) {
                j["n_routed_experts"] = moe->n_experts;
                j["num_experts_per_tok"] = moe->top_k;
                j["moe_intermediate_size"] = moe->expert_ffn_dim;
                j["n_shared_experts"] = moe->n_shared;
                j["scoring_func"] = moe->scoring == Scoring::Sigmoid ? "sigmoid" : "softmax";
                j["topk_method"] = moe->selection_bias ? "noaux_tc" : "greedy";
                j["n_group"] = moe->n_group;
                j["topk_group"] = moe->topk_group;
                j["norm_topk_prob"] = moe->norm_topk;
                j["routed_scaling_factor"] = moe->routed_scale;
            }
            break;
        }
        case Family::Llama4: {
            std::vector<int> moe_layers, no_rope;
            bool qk = false, tt = false;
            int chunk = 0;
            for (int i = 0; i < s.n_layers; ++i) {
                const LayerSpec& l = s.layers[size_t(i)];
                if (l.ffn.moe) moe_layers.push_back(i);
                no_rope.push_back(l.attn.rope.enabled ? 1 : 0);
                qk |= l.attn.qk_norm == QkNorm::L2;
                tt |= l.attn.temperature_tuning;
                if (l.attn.scope == AttnScope::Chunked) chunk = l.attn.window;
            }
            j["moe_layers"] = moe_layers;
            j["no_rope_layers"] = no_rope;
            j["use_qk_norm"] = qk;
            j["attn_temperature_tuning"] = tt;
            if (chunk) j["attention_chunk_size"] = chunk;
            j["intermediate_size_mlp"] = dense;
            if (moe) {
                j["intermediate_size"] = moe->expert_ffn_dim;
                j["num_local_experts"] = moe->n_experts;
                j["num_experts_per_tok"] = moe->top_k;
            }
            break;
        }
        default: break;
    }
    return j;
}

}  // namespace

void write_hf_twin(const Model& m, const std::string& dir) {
    const GgufFile* g = m.gguf();
    if (!g) throw Error(m.path() + ": write_hf_twin needs a GGUF model");
    const ModelSpec& s = m.spec();
    const bool permuted = g->get_string("general.architecture").value_or("") == "llama";
    std::vector<Out> outs;
    auto find = [&](const std::string& n) -> const TensorRef* { return g->tensor(n); };
    auto add = [&](std::string name, std::vector<int64_t> shape, std::vector<float> data) {
        outs.push_back({std::move(name), std::move(shape), std::move(data)});
    };
    auto simple = [&](const std::string& gname, const std::string& hname, float add_value = 0.f) {
        const TensorRef* t = find(gname);
        if (!t) return;
        auto v = as_f32(*t);
        if (add_value != 0.f)
            for (auto& x : v) x += add_value;
        add(hname, t->shape, std::move(v));
    };
    auto transposed = [&](const std::string& gname, const std::string& hname) {  // [out][in] -> [in][out]
        const TensorRef* t = find(gname);
        if (!t) return;
        auto v = as_f32(*t);
        const int64_t R = t->shape[0], C = t->shape[1];
        std::vector<float> o(v.size());
        for (int64_t r = 0; r < R; ++r)
            for (int64_t c = 0; c < C; ++c) o[size_t(c * R + r)] = v[size_t(r * C + c)];
        add(hname, {C, R}, std::move(o));
    };
    // ref: convert_hf_to_gguf LlamaModel.permute — undo it: HF row h·hd + s·hd/2 + j = GGUF row h·hd + 2j + s.
    auto unpermuted = [&](const std::string& gname, const std::string& hname, int heads) {
        const TensorRef* t = find(gname);
        if (!t) return;
        auto v = as_f32(*t);
        if (!permuted) {
            add(hname, t->shape, std::move(v));
            return;
        }
        const int64_t rows = t->shape[0], in = t->shape[1], hd = rows / heads;
        std::vector<float> o(v.size());
        for (int64_t h = 0; h < heads; ++h)
            for (int64_t j = 0; j < hd / 2; ++j)
                for (int64_t sgn = 0; sgn < 2; ++sgn)
                    std::memcpy(&o[size_t((h * hd + sgn * hd / 2 + j) * in)], &v[size_t((h * hd + 2 * j + sgn) * in)], size_t(in) * 4);
        add(hname, t->shape, std::move(o));
    };
    const float norm_add = s.family == Family::Gemma3 ? -1.f : 0.f;  // GGUF holds 1+w, HF holds w

    if (s.family == Family::GPT2) {
        simple("token_embd.weight", "transformer.wte.weight");
        simple("position_embd.weight", "transformer.wpe.weight");
        simple("output_norm.weight", "transformer.ln_f.weight");
        simple("output_norm.bias", "transformer.ln_f.bias");
        for (int i = 0; i < s.n_layers; ++i) {
            auto b = [&](const char* x) { return "blk." + std::to_string(i) + "." + x; };
            const std::string h = "transformer.h." + std::to_string(i) + ".";
            simple(b("attn_norm.weight"), h + "ln_1.weight");
            simple(b("attn_norm.bias"), h + "ln_1.bias");
            transposed(b("attn_qkv.weight"), h + "attn.c_attn.weight");
            simple(b("attn_qkv.bias"), h + "attn.c_attn.bias");
            transposed(b("attn_output.weight"), h + "attn.c_proj.weight");
            simple(b("attn_output.bias"), h + "attn.c_proj.bias");
            simple(b("ffn_norm.weight"), h + "ln_2.weight");
            simple(b("ffn_norm.bias"), h + "ln_2.bias");
            transposed(b("ffn_up.weight"), h + "mlp.c_fc.weight");
            simple(b("ffn_up.bias"), h + "mlp.c_fc.bias");
            transposed(b("ffn_down.weight"), h + "mlp.c_proj.weight");
            simple(b("ffn_down.bias"), h + "mlp.c_proj.bias");
        }
    } else {
        simple("token_embd.weight", "model.embed_tokens.weight");
        simple("output_norm.weight", "model.norm.weight", norm_add);
        simple("output.weight", "lm_head.weight");
        if (s.family == Family::Gemma3n) {
            simple("per_layer_token_embd.weight", "model.embed_tokens_per_layer.weight");
            simple("per_layer_model_proj.weight", "model.per_layer_model_projection.weight");
            simple("per_layer_proj_norm.weight", "model.per_layer_projection_norm.weight");
            for (const char* which : {"altup_proj.weight", "altup_unembd_proj.weight"}) {
                const TensorRef* t = find(which);
                auto v = as_f32(*t);
                const int64_t D = t->shape[1] * t->shape[2];
                for (int64_t k = 0; k < t->shape[0]; ++k)
                    add(std::string(which[6] == 'p' ? "model.altup_projections." : "model.altup_unembed_projections.") + std::to_string(k) +
                            ".weight",
                        {t->shape[1], t->shape[2]}, std::vector<float>(v.begin() + k * D, v.begin() + (k + 1) * D));
            }
        }
        const bool l4 = s.family == Family::Llama4;
        for (int i = 0; i < s.n_layers; ++i) {
            const LayerSpec& ls = s.layers[size_t(i)];
            const AttentionSpec& a = ls.attn;
            auto b = [&](const char* x) { return "blk." + std::to_string(i) + "." + x; };
            const std::string h = "model.layers." + std::to_string(i) + ".", at = h + "self_attn.",
                              mlp = h + (l4 ? "feed_forward." : "mlp.");
            simple(b("attn_norm.weight"), h + "input_layernorm.weight", norm_add);
            simple(b("post_attention_norm.weight"), h + "post_attention_layernorm.weight", norm_add);
            simple(b("ffn_norm.weight"), h + (ls.attn_post_norm ? "pre_feedforward_layernorm.weight" : "post_attention_layernorm.weight"),
                   norm_add);
            simple(b("post_ffw_norm.weight"), h + "post_feedforward_layernorm.weight", norm_add);
            if (a.kind == AttnKind::MLA) {
                simple(b("attn_q.weight"), at + "q_proj.weight");
                simple(b("attn_q_a.weight"), at + "q_a_proj.weight");
                simple(b("attn_q_a_norm.weight"), at + "q_a_layernorm.weight");
                simple(b("attn_q_b.weight"), at + "q_b_proj.weight");
                simple(b("attn_kv_a_mqa.weight"), at + "kv_a_proj_with_mqa.weight");
                simple(b("attn_kv_a_norm.weight"), at + "kv_a_layernorm.weight");
                // ref: convert_hf_to_gguf DeepseekV2: kv_b_proj = per head [k rows (from k_b, transposed); v rows]
                const TensorRef *kb = find(b("attn_k_b.weight")), *vb = find(b("attn_v_b.weight"));
                auto K = as_f32(*kb), Vv = as_f32(*vb);
                const int64_t H = a.n_heads, R = a.kv_lora_rank, NP = a.qk_nope_head_dim, V = a.v_head_dim;
                std::vector<float> kvb(size_t(H * (NP + V) * R));
                for (int64_t hh = 0; hh < H; ++hh) {
                    for (int64_t n = 0; n < NP; ++n)
                        for (int64_t r = 0; r < R; ++r) kvb[size_t((hh * (NP + V) + n) * R + r)] = K[size_t((hh * R + r) * NP + n)];
                    for (int64_t v = 0; v < V; ++v)
                        std::memcpy(&kvb[size_t((hh * (NP + V) + NP + v) * R)], &Vv[size_t((hh * V + v) * R)], size_t(R) * 4);
                }
                add(at + "kv_b_proj.weight", {H * (NP + V), R}, std::move(kvb));
            } else {
                unpermuted(b("attn_q.weight"), at + "q_proj.weight", a.n_heads);
                unpermuted(b("attn_k.weight"), at + "k_proj.weight", a.n_kv_heads);
                simple(b("attn_v.weight"), at + "v_proj.weight");
                simple(b("attn_q.bias"), at + "q_proj.bias");
                simple(b("attn_k.bias"), at + "k_proj.bias");
                simple(b("attn_v.bias"), at + "v_proj.bias");
            }
            simple(b("attn_output.weight"), at + "o_proj.weight");
            simple(b("attn_output.bias"), at + "o_proj.bias");
            simple(b("attn_q_norm.weight"), at + "q_norm.weight", a.qk_norm == QkNorm::PerHead ? norm_add : 0.f);
            simple(b("attn_k_norm.weight"), at + "k_norm.weight", a.qk_norm == QkNorm::PerHead ? norm_add : 0.f);
            simple(b("ffn_gate.weight"), mlp + "gate_proj.weight");
            simple(b("ffn_up.weight"), mlp + "up_proj.weight");
            simple(b("ffn_down.weight"), mlp + "down_proj.weight");
            simple(b("ffn_gate_inp.weight"), mlp + (l4 ? "router.weight" : "gate.weight"));
            simple(b("exp_probs_b.bias"), mlp + "gate.e_score_correction_bias");
            const std::string sh = mlp + (l4 ? "shared_expert." : "shared_experts.");
            simple(b("ffn_gate_shexp.weight"), sh + "gate_proj.weight");
            simple(b("ffn_up_shexp.weight"), sh + "up_proj.weight");
            simple(b("ffn_down_shexp.weight"), sh + "down_proj.weight");
            if (const TensorRef* ge = find(b("ffn_gate_exps.weight"))) {
                auto G = as_f32(*ge), U = as_f32(*find(b("ffn_up_exps.weight"))), Dn = as_f32(*find(b("ffn_down_exps.weight")));
                const int64_t E = ge->shape[0], F = ge->shape[1], D = ge->shape[2];
                if (l4) {  // ref: HF Llama4TextExperts: gate_up_proj [E, D, 2F] (x @ W), down_proj [E, F, D]
                    std::vector<float> gu(size_t(E * D * 2 * F)), dp(size_t(E * F * D));
                    for (int64_t e = 0; e < E; ++e)
                        for (int64_t f = 0; f < F; ++f)
                            for (int64_t d = 0; d < D; ++d) {
                                gu[size_t((e * D + d) * 2 * F + f)] = G[size_t((e * F + f) * D + d)];
                                gu[size_t((e * D + d) * 2 * F + F + f)] = U[size_t((e * F + f) * D + d)];
                                dp[size_t((e * F + f) * D + d)] = Dn[size_t((e * D + d) * F + f)];
                            }
                    add(mlp + "experts.gate_up_proj", {E, D, 2 * F}, std::move(gu));
                    add(mlp + "experts.down_proj", {E, F, D}, std::move(dp));
                } else {
                    for (int64_t e = 0; e < E; ++e) {
                        const std::string ex = mlp + "experts." + std::to_string(e) + ".";
                        add(ex + "gate_proj.weight", {F, D}, std::vector<float>(G.begin() + e * F * D, G.begin() + (e + 1) * F * D));
                        add(ex + "up_proj.weight", {F, D}, std::vector<float>(U.begin() + e * F * D, U.begin() + (e + 1) * F * D));
                        add(ex + "down_proj.weight", {D, F}, std::vector<float>(Dn.begin() + e * D * F, Dn.begin() + (e + 1) * D * F));
                    }
                }
            }
            if (s.family == Family::Gemma3n) {
                simple(b("inp_gate.weight"), h + "per_layer_input_gate.weight");
                simple(b("proj.weight"), h + "per_layer_projection.weight");
                simple(b("post_norm.weight"), h + "post_per_layer_input_norm.weight");
                simple(b("altup_correct_coef.weight"), h + "altup.correction_coefs.weight");
                simple(b("altup_correct_scale.weight"), h + "altup.correct_output_scale");
                simple(b("altup_predict_coef.weight"), h + "altup.prediction_coefs.weight");
                simple(b("altup_router.weight"), h + "altup.modality_router.weight");
                simple(b("altup_router_norm.weight"), h + "altup.router_norm.weight");
                simple(b("laurel_l.weight"), h + "laurel.linear_left.weight");
                simple(b("laurel_r.weight"), h + "laurel.linear_right.weight");
                simple(b("laurel_post_norm.weight"), h + "laurel.post_laurel_norm.weight");
            }
        }
    }

    std::error_code ec;
    fs::create_directories(dir, ec);
    if (ec) throw Error(dir + ": cannot create the folder: " + ec.message());
    {
        std::ofstream c(fs::path(dir) / "config.json");
        c << config_json(s).dump(2) << "\n";
        if (!c) throw Error(dir + "/config.json: write failed");
    }
    json header = json::object();
    uint64_t off = 0;
    for (auto& o : outs) {
        header[o.name] = {{"dtype", "F32"}, {"shape", o.shape}, {"data_offsets", {off, off + o.data.size() * 4}}};
        off += o.data.size() * 4;
    }
    std::string hs = header.dump();
    while (hs.size() % 8) hs += ' ';
    const std::string path = (fs::path(dir) / "model.safetensors").string();
    std::ofstream f(path, std::ios::binary);
    const uint64_t n = hs.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f.write(hs.data(), std::streamsize(hs.size()));
    for (auto& o : outs) f.write(reinterpret_cast<const char*>(o.data.data()), std::streamsize(o.data.size() * 4));
    if (!f) throw Error(path + ": write failed");
}

}  // namespace archlens
