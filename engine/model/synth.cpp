#include "engine/model/synth.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "engine/core/error.h"
#include "engine/formats/gguf_writer.h"
#include "engine/quant/quant.h"

namespace archlens {

namespace {

// Deterministic normal samples: splitmix64 + Box-Muller, seeded per tensor.
class Rng {
public:
    explicit Rng(uint64_t seed) : s_(seed) {}
    uint64_t next() {
        uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
        z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
        z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
        return z ^ (z >> 31);
    }
    double uniform() { return double((next() >> 11) + 1) * (1.0 / 9007199254740993.0); }
    float normal() {
        if (have_) {
            have_ = false;
            return spare_;
        }
        double u = uniform(), v = uniform();
        double r = std::sqrt(-2.0 * std::log(u));
        spare_ = float(r * std::sin(2 * M_PI * v));
        have_ = true;
        return float(r * std::cos(2 * M_PI * v));
    }

private:
    uint64_t s_;
    bool have_ = false;
    float spare_ = 0;
};

uint64_t hash_name(const std::string& s, uint64_t seed) {
    uint64_t h = 1469598103934665603ull ^ seed;
    for (unsigned char c : s) h = (h ^ c) * 1099511628211ull;
    return h;
}

const char* gguf_arch(Family f) {
    switch (f) {
        case Family::GPT2: return "gpt2";
        case Family::Llama:
        case Family::Mistral: return "llama";
        case Family::Qwen3: return "qwen3";
        case Family::Qwen3Moe: return "qwen3moe";
        case Family::Olmo2: return "olmo2";
        case Family::Gemma3: return "gemma3";
        case Family::DeepseekV3:
        case Family::KimiK2: return "deepseek2";
        case Family::Llama4: return "llama4";
        case Family::Gemma3n: return "gemma3n";
    }
    return "llama";
}

// llama.cpp's fallback when a row is not a multiple of the k-quant block (llama-quant.cpp).
DType fallback(DType t, int64_t n_in) {
    if (n_in % dtype_info(t).block_size == 0) return t;
    DType f = t;
    switch (t) {
        case DType::Q2_K:
        case DType::Q3_K: f = DType::Q4_0; break;
        case DType::Q4_K: f = DType::Q5_0; break;
        case DType::Q5_K: f = DType::Q5_1; break;
        case DType::Q6_K: f = DType::Q8_0; break;
        default: f = DType::F16; break;
    }
    return n_in % dtype_info(f).block_size == 0 ? f : DType::F16;
}

// ref: llama-quant.cpp use_more_bits: first and last eighth of the layers and every third between.
bool use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

struct Planned {
    std::string name;
    std::vector<int64_t> shape;
    enum Init { Linear, Norm, Bias, Embed, Zero } init;
    int64_t fan_in = 1;
    int layer = -1;
};

}  // namespace

void parse_synth_dtype(const std::string& text, SynthOptions& o) {
    std::string t;
    for (char c : text) t += char(std::tolower(static_cast<unsigned char>(c)));
    struct M { const char* n; QuantMix m; DType d; };
    const M mixes[] = {{"q4_k_m", QuantMix::Q4_K_M, DType::Q4_K}, {"q4_k_s", QuantMix::Q4_K_S, DType::Q4_K},
                       {"q5_k_m", QuantMix::Q5_K_M, DType::Q5_K}, {"q3_k_m", QuantMix::Q3_K_M, DType::Q3_K},
                       {"q2_k", QuantMix::Q2_K, DType::Q2_K}};
    for (auto& m : mixes)
        if (t == m.n) {
            o.mix = m.m;
            o.dtype = m.d;
            return;
        }
    auto d = dtype_from_name(t);
    if (!d || *d == DType::Q8_K || *d == DType::Q8_1)
        throw Error("--dtype '" + text + "' is not a weight type (f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, q2_k, q3_k, q4_k, q5_k, q6_k, q4_k_m, q4_k_s, q5_k_m, q3_k_m)");
    o.mix = QuantMix::Uniform;
    o.dtype = *d;
}

SynthVocab synth_vocab(int n_vocab) {
    if (n_vocab < 300) throw Error("synthetic vocabulary needs at least 300 tokens, got " + std::to_string(n_vocab));
    SynthVocab v;
    // GPT-2 byte -> printable code point mapping (ref: openai/gpt-2 encoder.bytes_to_unicode).
    std::vector<int> cp(256);
    int extra = 0;
    for (int b = 0; b < 256; ++b) {
        bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
        cp[size_t(b)] = printable ? b : 256 + extra++;
    }
    auto utf8 = [](int c) {
        std::string s;
        if (c < 0x80) s += char(c);
        else if (c < 0x800) { s += char(0xC0 | (c >> 6)); s += char(0x80 | (c & 0x3F)); }
        else { s += char(0xE0 | (c >> 12)); s += char(0x80 | ((c >> 6) & 0x3F)); s += char(0x80 | (c & 0x3F)); }
        return s;
    };
    for (int b = 0; b < 256; ++b) {
        v.tokens.push_back(utf8(cp[size_t(b)]));
        v.token_types.push_back(1);
    }
    const std::string sp = utf8(cp[' ']);
    // Common English pieces, merged greedily in this order.
    const char* pieces[] = {" t", " a", "he", "in", "re", "on", " the", "er", " s", "at", " w", " o", "en", " c", "it", "is", "an",
                            "or", "es", " b", "ed", " f", "ing", " p", "ou", " to", "ar", " m", " of", "nd", " in", " d", " h",
                            " and", "le", "ic", "as", " th", "ion", "om", "ll", "ent", " n", " l", "st", " re", "ve", " e", "ro",
                            "ly", " be", " g", " T", "ct", " y", "ow", "ut", " is", "ot", "ch", "id", "ad", "et", " I", "am",
                            " S", "ay", " you", " A", "ver", "ith", " on", "ce", " it", " for", "ur", "im", "al", "el", "ol"};
    std::vector<std::string> known;
    for (auto& t : v.tokens) known.push_back(t);
    auto mapped = [&](const std::string& s) {
        std::string m;
        for (unsigned char c : s) m += utf8(cp[c]);
        return m;
    };
    for (const char* p : pieces) {
        if (int(v.tokens.size()) >= n_vocab - 4) break;
        std::string s = p;
        // split as (all but the last char) + (last char), both already tokens when built in order
        std::string left = mapped(s.substr(0, s.size() - 1)), right = mapped(s.substr(s.size() - 1));
        if (std::find(known.begin(), known.end(), left) == known.end()) continue;
        v.merges.push_back(left + " " + right);
        v.tokens.push_back(left + right);
        v.token_types.push_back(1);
        known.push_back(left + right);
    }
    // Pad with unused byte-pair tokens so ids are dense up to the specials.
    for (int a = 'a'; int(v.tokens.size()) < n_vocab - 4 && a <= 'z'; ++a)
        for (int b = 'a'; int(v.tokens.size()) < n_vocab - 4 && b <= 'z'; ++b) {
            std::string t = std::string(1, char(a)) + char(b);
            if (std::find(known.begin(), known.end(), t) != known.end()) continue;
            v.merges.push_back(std::string(1, char(a)) + " " + char(b));
            v.tokens.push_back(t);
            v.token_types.push_back(1);
            known.push_back(t);
        }
    int i = 0;
    while (int(v.tokens.size()) < n_vocab - 4) {
        v.tokens.push_back("<|unused_" + std::to_string(i++) + "|>");
        v.token_types.push_back(5);  // unused
    }
    for (const char* s : {"<|im_start|>", "<|im_end|>", "<|bos|>", "<|eos|>"}) {
        v.tokens.push_back(s);
        v.token_types.push_back(3);  // control
    }
    v.bos = n_vocab - 2;
    v.eos = n_vocab - 1;
    v.chat_template =
        "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}"
        "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";
    (void)sp;
    return v;
}

void write_synthetic_gguf(const ModelSpec& s, const SynthOptions& o, const std::string& path) {
    GgufWriter w;
    w.set_threads(o.threads);
    const std::string arch = gguf_arch(s.family);
    auto K = [&](const std::string& k) { return arch + "." + k; };
    w.set_string("general.architecture", arch);
    w.set_string("general.name", o.name);
    w.set_u32("general.quantization_version", 2);
    w.set_u32(K("context_length"), uint32_t(s.max_positions));
    w.set_u32(K("embedding_length"), uint32_t(s.dim));
    w.set_u32(K("block_count"), uint32_t(s.n_layers));
    w.set_u32(K("vocab_size"), uint32_t(s.vocab));
    const LayerSpec& l0 = s.layers.front();
    const AttentionSpec& a0 = l0.attn;
    int dense_ffn = 0;
    for (auto& l : s.layers)
        if (!l.ffn.moe) dense_ffn = l.ffn.ffn_dim;
    const FfnSpec* moe = nullptr;
    for (auto& l : s.layers)
        if (l.ffn.moe) moe = &l.ffn;
    w.set_u32(K("feed_forward_length"), uint32_t(dense_ffn ? dense_ffn : (moe ? moe->expert_ffn_dim : 0)));
    w.set_u32(K("attention.head_count"), uint32_t(a0.n_heads));
    if (s.family == Family::GPT2) {
        w.set_f32(K("attention.layer_norm_epsilon"), s.norm_eps);
    } else {
        w.set_f32(K("attention.layer_norm_rms_epsilon"), s.norm_eps);
        // Global layers carry the model's base RoPE (Gemma 3's local layers have their own).
        const AttentionSpec* glob = &a0;
        for (auto& l : s.layers)
            if (l.attn.scope == AttnScope::Global && l.attn.rope.enabled) { glob = &l.attn; break; }
        w.set_f32(K("rope.freq_base"), glob->rope.theta);
        if (glob->rope.scaling == RopeScaling::Linear) {
            w.set_string(K("rope.scaling.type"), "linear");
            w.set_f32(K("rope.scaling.factor"), glob->rope.factor);
        } else if (glob->rope.scaling == RopeScaling::Yarn) {
            w.set_string(K("rope.scaling.type"), "yarn");
            w.set_f32(K("rope.scaling.factor"), glob->rope.factor);
            w.set_u32(K("rope.scaling.original_context_length"), uint32_t(glob->rope.original_max_pos));
            w.set_f32(K("rope.scaling.yarn_log_multiplier"), 0.1f * glob->rope.mscale_all_dim);
        }
    }
    if (a0.kind == AttnKind::MLA) {
        w.set_u32(K("attention.head_count_kv"), 1);
        if (a0.q_lora_rank) w.set_u32(K("attention.q_lora_rank"), uint32_t(a0.q_lora_rank));
        w.set_u32(K("attention.kv_lora_rank"), uint32_t(a0.kv_lora_rank));
        w.set_u32(K("attention.key_length"), uint32_t(a0.kv_lora_rank + a0.qk_rope_head_dim));
        w.set_u32(K("attention.value_length"), uint32_t(a0.kv_lora_rank));
        w.set_u32(K("attention.key_length_mla"), uint32_t(a0.qk_nope_head_dim + a0.qk_rope_head_dim));
        w.set_u32(K("attention.value_length_mla"), uint32_t(a0.v_head_dim));
        w.set_u32(K("rope.dimension_count"), uint32_t(a0.qk_rope_head_dim));
    } else if (s.family != Family::GPT2) {
        w.set_u32(K("attention.head_count_kv"), uint32_t(a0.n_kv_heads));
        w.set_u32(K("attention.key_length"), uint32_t(a0.head_dim));
        w.set_u32(K("attention.value_length"), uint32_t(a0.v_head_dim));
        w.set_u32(K("rope.dimension_count"), uint32_t(a0.rope.enabled ? a0.rope.n_rot : a0.head_dim));
    }
    if (s.family == Family::Gemma3n) {
        w.set_u32(K("embedding_length_per_layer_input"), uint32_t(s.ple_dim));
        w.set_u32(K("altup.active_idx"), uint32_t(s.altup_active));
        w.set_u32(K("altup.num_inputs"), uint32_t(s.altup_inputs));
        int shared = 0;
        for (auto& l : s.layers) shared += l.kv_source >= 0;
        w.set_u32(K("attention.shared_kv_layers"), uint32_t(shared));
        std::vector<float> sparsity;
        std::vector<bool> pattern;
        for (auto& l : s.layers) {
            sparsity.push_back(l.sparsity_std_mult > 0 ? l.sparsity_std_mult : -INFINITY);
            pattern.push_back(l.attn.scope == AttnScope::Sliding);
            if (l.attn.scope == AttnScope::Sliding) {
                w.set_f32(K("rope.freq_base_swa"), l.attn.rope.theta);
                w.set_u32(K("attention.sliding_window"), uint32_t(l.attn.window));
            }
        }
        w.set_f32s(K("activation_sparsity_scale"), sparsity);
        w.set_bools(K("attention.sliding_window_pattern"), pattern);
    }
    if (s.family == Family::Gemma3) {
        for (auto& l : s.layers)
            if (l.attn.scope == AttnScope::Sliding) {
                w.set_f32(K("rope.freq_base_swa"), l.attn.rope.theta);
                w.set_u32(K("attention.sliding_window"), uint32_t(l.attn.window));
                break;
            }
        int pattern = 0;
        for (int i = 0; i < s.n_layers; ++i)
            if (s.layers[size_t(i)].attn.scope == AttnScope::Global) { pattern = i + 1; break; }
        if (pattern && pattern != 6) w.set_u32(K("attention.sliding_window_pattern"), uint32_t(pattern));
    }
    if (s.family == Family::Llama4)  // ref: llama.cpp LLM_KV_ATTENTION_CHUNK_SIZE
        for (auto& l : s.layers)
            if (l.attn.scope == AttnScope::Chunked) {
                w.set_u32(K("attention.chunk_size"), uint32_t(l.attn.window));
                break;
            }
    if ((s.family == Family::Llama || s.family == Family::Mistral) && a0.scope == AttnScope::Sliding)
        w.set_u32(K("attention.sliding_window"), uint32_t(a0.window));
    if (s.final_softcap > 0) w.set_f32(K("final_logit_softcapping"), s.final_softcap);
    if (moe) {
        w.set_u32(K("expert_count"), uint32_t(moe->n_experts));
        w.set_u32(K("expert_used_count"), uint32_t(moe->top_k));
        w.set_u32(K("expert_feed_forward_length"), uint32_t(moe->expert_ffn_dim));
        if (s.family == Family::DeepseekV3 || s.family == Family::KimiK2) {
            int lead = 0;
            while (lead < s.n_layers && !s.layers[size_t(lead)].ffn.moe) ++lead;
            w.set_u32(K("leading_dense_block_count"), uint32_t(lead));
            w.set_u32(K("expert_shared_count"), uint32_t(moe->n_shared));
            w.set_f32(K("expert_weights_scale"), moe->routed_scale);
            w.set_bool(K("expert_weights_norm"), moe->norm_topk);
            w.set_u32(K("expert_gating_func"), moe->scoring == Scoring::Sigmoid ? 2 : 1);
            w.set_u32(K("expert_group_count"), uint32_t(moe->n_group));
            w.set_u32(K("expert_group_used_count"), uint32_t(moe->topk_group));
        }
        if (s.family == Family::Llama4) {
            int step = 0;
            for (int i = 0; i < s.n_layers; ++i)
                if (s.layers[size_t(i)].ffn.moe) { step = i + 1; break; }
            w.set_u32(K("interleave_moe_layer_step"), uint32_t(step));
        }
    }
    SynthVocab voc = synth_vocab(s.vocab);
    w.set_string("tokenizer.ggml.model", "gpt2");
    w.set_string("tokenizer.ggml.pre", "default");
    w.set_strings("tokenizer.ggml.tokens", voc.tokens);
    w.set_i32s("tokenizer.ggml.token_type", voc.token_types);
    w.set_strings("tokenizer.ggml.merges", voc.merges);
    w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(voc.bos));
    w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(voc.eos));
    w.set_bool("tokenizer.ggml.add_bos_token", false);
    w.set_bool("tokenizer.ggml.add_eos_token", false);
    w.set_string("tokenizer.chat_template", voc.chat_template);

    // ---- tensor plan (names and shapes exactly as Model::bind_gguf reads them) ----
    std::vector<Planned> plan;
    const int64_t D = s.dim;
    auto lin = [&](std::string n, std::vector<int64_t> shape, int layer) {
        plan.push_back({std::move(n), shape, Planned::Linear, shape.back(), layer});
    };
    auto vec = [&](std::string n, int64_t len, Planned::Init init, int layer = -1) { plan.push_back({std::move(n), {len}, init, 1, layer}); };
    plan.push_back({"token_embd.weight", {s.vocab, D}, Planned::Embed, D, -1});
    if (s.family == Family::Gemma3n) {
        const int64_t LP = int64_t(s.n_layers) * s.ple_dim;
        plan.push_back({"per_layer_token_embd.weight", {s.ple_vocab, LP}, Planned::Embed, D, -1});
        lin("per_layer_model_proj.weight", {LP, D}, -1);
        vec("per_layer_proj_norm.weight", s.ple_dim, Planned::Norm);
        lin("altup_proj.weight", {s.altup_inputs - 1, D, D}, -1);
        lin("altup_unembd_proj.weight", {s.altup_inputs - 1, D, D}, -1);
    }
    if (s.learned_positions) plan.push_back({"position_embd.weight", {s.max_positions, D}, Planned::Embed, D, -1});
    for (int i = 0; i < s.n_layers; ++i) {
        const LayerSpec& ls = s.layers[size_t(i)];
        const AttentionSpec& a = ls.attn;
        const FfnSpec& f = ls.ffn;
        auto n = [&](const char* x) { return "blk." + std::to_string(i) + "." + x; };
        if (ls.attn_pre_norm) {
            vec(n("attn_norm.weight"), D, Planned::Norm);
            if (s.norm_bias) vec(n("attn_norm.bias"), D, Planned::Bias);
        }
        const int64_t qd = int64_t(a.n_heads) * a.head_dim, kd = int64_t(a.n_kv_heads) * a.head_dim, vd = int64_t(a.n_kv_heads) * a.v_head_dim;
        if (a.kind == AttnKind::MLA) {
            const int64_t H = a.n_heads, R = a.kv_lora_rank;
            if (a.q_lora_rank) {
                lin(n("attn_q_a.weight"), {a.q_lora_rank, D}, i);
                vec(n("attn_q_a_norm.weight"), a.q_lora_rank, Planned::Norm);
                lin(n("attn_q_b.weight"), {qd, a.q_lora_rank}, i);
            } else {
                lin(n("attn_q.weight"), {qd, D}, i);
            }
            lin(n("attn_kv_a_mqa.weight"), {R + a.qk_rope_head_dim, D}, i);
            vec(n("attn_kv_a_norm.weight"), R, Planned::Norm);
            lin(n("attn_k_b.weight"), {H, R, a.qk_nope_head_dim}, i);
            lin(n("attn_v_b.weight"), {H, a.v_head_dim, R}, i);
            lin(n("attn_output.weight"), {D, H * a.v_head_dim}, i);
        } else if (s.family == Family::GPT2) {
            lin(n("attn_qkv.weight"), {qd + kd + vd, D}, i);
            vec(n("attn_qkv.bias"), qd + kd + vd, Planned::Bias);
            lin(n("attn_output.weight"), {D, qd}, i);
            vec(n("attn_output.bias"), D, Planned::Bias);
        } else {
            lin(n("attn_q.weight"), {qd, D}, i);
            lin(n("attn_k.weight"), {kd, D}, i);
            lin(n("attn_v.weight"), {vd, D}, i);
            lin(n("attn_output.weight"), {D, int64_t(a.n_heads) * a.v_head_dim}, i);
            if (a.qkv_bias) {
                vec(n("attn_q.bias"), qd, Planned::Bias);
                vec(n("attn_k.bias"), kd, Planned::Bias);
                vec(n("attn_v.bias"), vd, Planned::Bias);
            }
            if (a.o_bias) vec(n("attn_output.bias"), D, Planned::Bias);
        }
        if (a.qk_norm == QkNorm::PerHead) {
            vec(n("attn_q_norm.weight"), a.head_dim, Planned::Norm);
            vec(n("attn_k_norm.weight"), a.head_dim, Planned::Norm);
        } else if (a.qk_norm == QkNorm::Full) {
            vec(n("attn_q_norm.weight"), qd, Planned::Norm);
            vec(n("attn_k_norm.weight"), kd, Planned::Norm);
        }
        if (ls.attn_post_norm) vec(n("post_attention_norm.weight"), D, Planned::Norm);
        if (ls.ffn_pre_norm) {
            vec(n("ffn_norm.weight"), D, Planned::Norm);
            if (s.norm_bias) vec(n("ffn_norm.bias"), D, Planned::Bias);
        }
        if (!f.moe) {
            if (f.gated) lin(n("ffn_gate.weight"), {f.ffn_dim, D}, i);
            lin(n("ffn_up.weight"), {f.ffn_dim, D}, i);
            lin(n("ffn_down.weight"), {D, f.ffn_dim}, i);
            if (f.bias) {
                vec(n("ffn_up.bias"), f.ffn_dim, Planned::Bias);
                vec(n("ffn_down.bias"), D, Planned::Bias);
            }
        } else {
            const int64_t E = f.n_experts, F = f.expert_ffn_dim;
            lin(n("ffn_gate_inp.weight"), {E, D}, i);
            if (f.selection_bias) vec(n("exp_probs_b.bias"), E, Planned::Bias);
            lin(n("ffn_gate_exps.weight"), {E, F, D}, i);
            lin(n("ffn_up_exps.weight"), {E, F, D}, i);
            lin(n("ffn_down_exps.weight"), {E, D, F}, i);
            if (f.n_shared) {
                lin(n("ffn_gate_shexp.weight"), {f.shared_ffn_dim, D}, i);
                lin(n("ffn_up_shexp.weight"), {f.shared_ffn_dim, D}, i);
                lin(n("ffn_down_shexp.weight"), {D, f.shared_ffn_dim}, i);
            }
        }
        if (ls.ffn_post_norm) vec(n("post_ffw_norm.weight"), D, Planned::Norm);
        if (s.family == Family::Gemma3n) {
            const int64_t P = s.ple_dim, N = s.altup_inputs, R = s.laurel_rank;
            lin(n("inp_gate.weight"), {P, D}, i);
            lin(n("proj.weight"), {D, P}, i);
            vec(n("post_norm.weight"), D, Planned::Norm);
            lin(n("altup_correct_coef.weight"), {N, N}, i);
            vec(n("altup_correct_scale.weight"), D, Planned::Norm);
            lin(n("altup_predict_coef.weight"), {N * N, N}, i);
            lin(n("altup_router.weight"), {N, D}, i);
            vec(n("altup_router_norm.weight"), D, Planned::Norm);
            lin(n("laurel_l.weight"), {R, D}, i);
            lin(n("laurel_r.weight"), {D, R}, i);
            vec(n("laurel_post_norm.weight"), D, Planned::Norm);
        }
    }
    vec("output_norm.weight", D, Planned::Norm);
    if (s.norm_bias) vec("output_norm.bias", D, Planned::Bias);
    if (!s.tied_embeddings) lin("output.weight", {s.vocab, D}, -1);
    // Llama 3.1/3.2 scaling travels as per-pair frequency divisors (ref: convert_hf_to_gguf).
    if (a0.rope.scaling == RopeScaling::Llama3 && a0.rope.enabled) plan.push_back({"rope_freqs.weight", {a0.rope.n_rot / 2}, Planned::Zero, 1, -1});

    // ---- types ----
    auto type_for = [&](const Planned& p) -> DType {
        if (p.shape.size() == 1) return DType::F32;
        if (p.name.find("ffn_gate_inp") != std::string::npos) return DType::F32;  // llama.cpp keeps routers in f32
        DType t = o.dtype;
        const bool is_out = p.name == "output.weight" || (s.tied_embeddings && p.name == "token_embd.weight");
        const bool v_or_down = p.name.find("attn_v.weight") != std::string::npos || p.name.find("ffn_down") != std::string::npos;
        switch (o.mix) {
            case QuantMix::Uniform: break;
            case QuantMix::Q4_K_M:
                if (is_out) t = DType::Q6_K;
                else if (v_or_down && use_more_bits(p.layer, s.n_layers)) t = DType::Q6_K;
                break;
            case QuantMix::Q5_K_M:
                if (is_out) t = DType::Q6_K;
                else if (v_or_down && use_more_bits(p.layer, s.n_layers)) t = DType::Q6_K;
                break;
            case QuantMix::Q4_K_S:
                if (is_out) t = DType::Q6_K;
                else if (v_or_down && p.layer < s.n_layers / 8) t = DType::Q5_K;
                break;
            case QuantMix::Q3_K_M:
                if (is_out) t = DType::Q6_K;
                else if (p.name.find("attn_v.weight") != std::string::npos) t = p.layer < 2 ? DType::Q5_K : DType::Q4_K;
                else if (p.name.find("ffn_down") != std::string::npos) t = p.layer < s.n_layers / 16 ? DType::Q5_K : DType::Q4_K;
                else if (p.name.find("attn_output") != std::string::npos) t = DType::Q4_K;
                break;
            case QuantMix::Q2_K:
                if (is_out) t = DType::Q6_K;
                else if (v_or_down) t = DType::Q3_K;
                break;
        }
        return fallback(t, p.shape.back());
    };

    const size_t n_tensors = plan.size();
    std::mutex progress_mutex;  // tensors are generated on several threads (GgufWriter::write)
    for (size_t index = 0; index < n_tensors; ++index) {
        const Planned& pl = plan[index];
        const DType t = type_for(pl);
        Planned p = pl;
        const uint64_t seed = hash_name(p.name, o.seed);
        std::vector<float> freq;
        if (p.name == "rope_freqs.weight") {
            const RopeSpec& r = a0.rope;
            for (int i = 0; i < r.n_rot / 2; ++i) {
                const double inv = 1.0 / std::pow(double(r.theta), double(2 * i) / r.n_rot), wl = 2 * M_PI / inv;
                const double old = r.original_max_pos;
                double f = 1.0;
                if (wl > old / r.low_freq_factor) f = r.factor;
                else if (wl >= old / r.high_freq_factor) {
                    const double sm = (old / wl - r.low_freq_factor) / (r.high_freq_factor - r.low_freq_factor);
                    f = 1.0 / ((1 - sm) / r.factor + sm);
                }
                freq.push_back(float(f));
            }
        }
        w.add_tensor_lazy(p.name, t, p.shape, [p, t, seed, freq, &s, &o, index, n_tensors, &progress_mutex](std::vector<uint8_t>& out) {
            if (o.progress) {
                std::lock_guard<std::mutex> lock(progress_mutex);
                o.progress(p.name, index, n_tensors);
            }
            Rng rng(seed);
            const int64_t n_in = p.shape.back();
            int64_t rows = 1;
            for (size_t i = 0; i + 1 < p.shape.size(); ++i) rows *= p.shape[i];
            const uint64_t rb = *dtype_row_bytes(t, uint64_t(n_in));
            out.resize(size_t(rb * uint64_t(rows)));
            std::vector<float> row(static_cast<size_t>(n_in));
            const float lin_std = float(1.0 / std::sqrt(double(p.fan_in)));
            for (int64_t r = 0; r < rows; ++r) {
                for (int64_t i = 0; i < n_in; ++i) {
                    float v = 0;
                    switch (p.init) {
                        case Planned::Linear: v = rng.normal() * lin_std; break;
                        case Planned::Embed: v = rng.normal() * (s.family == Family::Gemma3 || s.family == Family::Gemma3n ? 0.1f : 0.5f); break;
                        case Planned::Norm: v = 1.f + 0.1f * rng.normal(); break;
                        case Planned::Bias: v = 0.02f * rng.normal(); break;
                        case Planned::Zero: v = freq.empty() ? 0.f : freq[size_t(i)]; break;
                    }
                    row[size_t(i)] = v;
                }
                if (o.edit_row) o.edit_row(p.name, r, row.data(), n_in);
                quant::quantize_row_ref(t, row.data(), out.data() + uint64_t(r) * rb, n_in);
            }
        });
    }
    // Atomic: write a temporary file, then rename, so a half-written model is never picked up.
    // A name of our own: two processes (or threads) writing the same demo must not collide.
    static std::atomic<uint64_t> counter{0};
    const std::string tmp = path + ".partial." + std::to_string(::getpid()) + "." + std::to_string(counter++);
    w.write(tmp);
    std::error_code ec;
    std::filesystem::rename(tmp, path, ec);
    if (ec) throw Error(path + ": cannot move the written model into place: " + ec.message());
}

}  // namespace archlens
