// Weights of a loaded model, as views into the memory map (never copies), in one canonical naming
// (llama.cpp's blk.N.* names). Only small 1-D vectors (norm weights, biases) are converted to f32.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/dtype.h"

namespace archlens {

// y[n_out] = W x[n_in] (+ bias). Plain storage: n_out rows of n_in elements (nn.Linear, ggml).
// Transposed storage: n_in rows of `ld` elements, output o at column o (HF Conv1D, Llama 4's fused
// experts, the transposed use of MLA's kv_b_proj); float types only.
struct Linear {
    const uint8_t* data = nullptr;
    DType type = DType::F32;
    int64_t n_out = 0, n_in = 0;
    bool transposed = false;
    int64_t ld = 0;                 // transposed: elements per stored row
    uint64_t row_stride = 0;        // plain: bytes from one row to the next (0 = packed; MatFormer's
                                    // down projection keeps a column prefix of each stored row)
    std::vector<float> bias;        // (n_out) or empty
    std::string name;               // canonical name, for messages and the diagram
    uint64_t nbytes = 0;            // bytes of this view

    bool present() const { return data != nullptr; }
};

struct Expert {
    Linear gate, up, down;  // gate/up: (ffn, dim); down: (dim, ffn)
};

struct LayerWeights {
    std::vector<float> attn_norm, attn_norm_b;       // (dim)
    std::vector<float> post_attn_norm;               // (dim) OLMo 2 / Gemma 3
    std::vector<float> ffn_norm, ffn_norm_b;         // (dim)
    std::vector<float> post_ffn_norm;                // (dim)
    Linear q, k, v, qkv, o;                          // qkv: GPT-2's fused projection
    std::vector<float> q_norm, k_norm;               // (head_dim) or (n_heads*head_dim) for OLMo 2
    // MLA
    Linear q_a, q_b, kv_a;                           // q_a: (q_lora, dim); q_b: (n_heads*qk, q_lora); kv_a: (kv_lora+rope, dim)
    std::vector<float> q_a_norm, kv_a_norm;          // (q_lora), (kv_lora)
    std::vector<Linear> k_absorb;                    // per head: nope -> kv_lora (q_nope into latent space)
    std::vector<Linear> v_expand;                    // per head: kv_lora -> v_head_dim
    // FFN
    Linear gate, up, down;                           // dense FFN (GPT-2: up/down only)
    Linear router;                                   // (n_experts, dim)
    std::vector<float> selection_bias;               // (n_experts) e_score_correction_bias
    std::vector<Expert> experts;
    Expert shared;                                   // present when spec has shared experts
    // Gemma 3n
    Linear ple_gate, ple_proj;                       // (ple_dim, dim), (dim, ple_dim)
    std::vector<float> ple_post_norm;                // (dim)
    Linear altup_correct, altup_predict, altup_router;  // (n, n), (n*n, n), (n, dim)
    std::vector<float> altup_correct_scale, altup_router_norm;  // (dim)
    Linear laurel_l, laurel_r;                       // (rank, dim), (dim, rank)
    std::vector<float> laurel_post_norm;             // (dim)
};

struct ModelWeights {
    Linear tok_embd;                  // (vocab, dim) rows read by id
    Linear pos_embd;                  // (n_positions, dim) GPT-2
    std::vector<float> out_norm, out_norm_b;
    Linear lm_head;                   // (vocab, dim); the embedding when tied
    std::vector<LayerWeights> layers;
    std::vector<float> rope_freq_factors;  // (n_rot/2) GGUF rope_freqs: inv_freq[i] /= factor[i]
    // Gemma 3n: per-layer embedding table (ple_vocab, n_layers*ple_dim), read row by row from the
    // memory map as tokens arrive; its projection from the main embedding; AltUp stream maps.
    Linear ple_table, ple_model_proj;                // ple_model_proj: (n_layers*ple_dim, dim)
    std::vector<float> ple_proj_norm;                // (ple_dim)
    std::vector<Linear> altup_proj, altup_unembd;    // n-1 of (dim, dim)
    std::vector<int> ple_layers;                     // MatFormer slice: running layer -> its block of the
                                                     // per-layer tables (empty = the identity)
};

}  // namespace archlens
