// ModelSpec: the normalized, format-independent description of an architecture. Built from an HF
// config.json or from GGUF metadata (the same spec either way); the only input of the forward
// pass, parameter counting, KV accounting and the diagram. Per-layer entries are table rows:
// Gemma 3's 5:1 window pattern, DeepSeek's dense first layers and Llama 4's NoPE layers are data.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

namespace archlens {

enum class Family { GPT2, Llama, Mistral, Qwen3, Qwen3Moe, Olmo2, Gemma3, DeepseekV3, KimiK2, Llama4, Gemma3n };

enum class NormKind { RMSNorm, LayerNorm };
enum class Activation { SiLU, GELU, GELUTanh };
enum class AttnKind { Standard, MLA };         // Standard covers MHA and GQA
enum class AttnScope { Global, Sliding, Chunked };
enum class RopeStyle { Neox, Norm };           // rotate_half vs interleaved pairs (HF semantics)
enum class RopeScaling { None, Linear, Llama3, Yarn };
enum class QkNorm { None, PerHead, Full, L2 };  // Full: over n_heads*head_dim (OLMo 2); L2: weightless
enum class Scoring { Softmax, Sigmoid };

struct RopeSpec {
    bool enabled = true;  // false: NoPE layer
    float theta = 10000.f;
    RopeStyle style = RopeStyle::Neox;
    int n_rot = 0;  // rotated dims per head (MLA: qk_rope_head_dim)
    RopeScaling scaling = RopeScaling::None;
    float factor = 1.f;
    float low_freq_factor = 1.f, high_freq_factor = 4.f;  // llama3
    int original_max_pos = 0;                             // llama3 / yarn
    float beta_fast = 32.f, beta_slow = 1.f;              // yarn
    float mscale = 1.f, mscale_all_dim = 0.f;             // yarn (DeepSeek)
    bool operator==(const RopeSpec&) const = default;
};

struct AttentionSpec {
    AttnKind kind = AttnKind::Standard;
    int n_heads = 0, n_kv_heads = 0;
    int head_dim = 0;    // q/k head dim (MLA: nope + rope)
    int v_head_dim = 0;  // v head dim
    bool qkv_bias = false, o_bias = false;
    QkNorm qk_norm = QkNorm::None;
    float scale = 0;  // softmax scale applied to q·k
    AttnScope scope = AttnScope::Global;
    int window = 0;  // sliding: tokens seen including the query; chunked: chunk size
    float softcap = 0;
    RopeSpec rope;
    // MLA (DeepSeek-V3 / Kimi K2)
    int q_lora_rank = 0, kv_lora_rank = 0, qk_nope_head_dim = 0, qk_rope_head_dim = 0;
    // Llama 4 NoPE layers: q *= 1 + attn_scale * ln(floor((pos+1)/floor_scale) + 1)
    bool temperature_tuning = false;
    float temp_floor_scale = 8192.f, temp_attn_scale = 0.1f;
    bool v_norm = false;  // Gemma 3n: weightless RMSNorm over each value head
    // The first key the query at position p sees (sliding: the window includes the query; chunked:
    // its chunk's start) — every backend's masks and the probes' key_begin.
    int64_t key_begin(int64_t p) const {
        if (window <= 0) return 0;
        if (scope == AttnScope::Sliding) return p - window + 1 > 0 ? p - window + 1 : 0;
        if (scope == AttnScope::Chunked) return p / window * window;
        return 0;
    }
    bool operator==(const AttentionSpec&) const = default;
};

struct FfnSpec {
    bool moe = false;
    Activation act = Activation::SiLU;
    bool gated = true;  // SwiGLU/GeGLU; false: plain up -> act -> down (GPT-2)
    bool bias = false;
    int ffn_dim = 0;  // dense hidden size
    // MoE
    int n_experts = 0, top_k = 0, expert_ffn_dim = 0;
    int n_shared = 0, shared_ffn_dim = 0;  // shared_ffn_dim = total hidden of the shared expert(s)
    Scoring scoring = Scoring::Softmax;
    int n_group = 1, topk_group = 1;
    bool norm_topk = false;
    float routed_scale = 1.f;
    bool selection_bias = false;  // e_score_correction_bias (noaux_tc)
    bool weight_on_input = false;  // Llama 4: router weight scales the expert input
    bool operator==(const FfnSpec&) const = default;
};

struct LayerSpec {
    AttentionSpec attn;
    FfnSpec ffn;
    // Norm placement: pre = before the sub-block on its input; post = on its output, inside the
    // residual (OLMo 2, Gemma 3).
    bool attn_pre_norm = true, attn_post_norm = false;
    bool ffn_pre_norm = true, ffn_post_norm = false;
    // Gemma 3n: Gaussian top-k activation sparsity on the FFN gate, cutoff mean + k·std
    // (k = icdf(target sparsity); 0 = dense), and KV reuse of an earlier layer (-1 = own cache).
    float sparsity_std_mult = 0.f;
    int kv_source = -1;
    bool operator==(const LayerSpec&) const = default;
};

struct ModelSpec {
    Family family = Family::Llama;
    std::string model_type;  // HF model_type, e.g. "qwen3_moe"
    std::string name;
    int vocab = 0, dim = 0, n_layers = 0;
    int max_positions = 0;  // context length the model was trained for
    NormKind norm = NormKind::RMSNorm;
    float norm_eps = 1e-6f;
    bool norm_bias = false;   // LayerNorm with bias (GPT-2)
    bool learned_positions = false;
    float embed_scale = 1.f;  // Gemma: sqrt(dim)
    bool tied_embeddings = false;
    float final_softcap = 0;
    int bos = -1, eos = -1;
    // Gemma 3n: per-layer embeddings (PLE, ple_dim per layer from a ple_vocab-row table), AltUp
    // residual streams and LAuReL's low-rank residual.
    int ple_dim = 0, ple_vocab = 0;
    int altup_inputs = 0, altup_active = 0;
    int laurel_rank = 0;
    std::vector<LayerSpec> layers;

    bool operator==(const ModelSpec&) const = default;
    bool has_moe() const;
    bool has_mla() const;
};

const char* family_name(Family f);
const char* activation_name(Activation a);
std::string supported_architectures();  // for error messages

// Parameter counts derived from the spec alone (embeddings, attention, ffn/experts, norms).
struct ParamCounts {
    uint64_t per_layer_embedding = 0;  // Gemma 3n PLE table: streamable, outside the "effective" count
    uint64_t embedding = 0, attention = 0, ffn_dense = 0, experts = 0, shared_experts = 0,
             router = 0, norms = 0, lm_head = 0;
    uint64_t altup_laurel = 0;  // Gemma 3n: AltUp, LAuReL, PLE projection and per-layer gates
    uint64_t total = 0, active = 0;  // active: per token (MoE: top_k experts; Gemma 3n: without the PLE table)
};
ParamCounts count_params(const ModelSpec& spec);

// KV-cache values (not bytes) stored per token by one layer: k+v (standard) or latent+rope (MLA).
uint64_t kv_values_per_token(const AttentionSpec& a);
// KV bytes for a context of n tokens at `bytes_per_value`, honouring sliding/chunked capacity.
uint64_t kv_bytes_at(const ModelSpec& spec, uint64_t n_tokens, double bytes_per_value);

}  // namespace archlens
