#include "engine/teaching_models.h"

#include <cmath>
#include <cstdio>
#include <cstring>

namespace archlens::teaching {

namespace {
bool ends_with(const std::string& s, const char* suffix) {
    const size_t n = std::strlen(suffix);
    return s.size() >= n && s.compare(s.size() - n, n, suffix) == 0;
}
int layer_of(const std::string& name) { return name.rfind("blk.", 0) == 0 ? std::atoi(name.c_str() + 4) : -1; }
}  // namespace

std::string induction_config(const InductionLayout& l) {
    char buf[512];
    std::snprintf(buf, sizeof buf,
                  R"({"model_type":"gpt2","vocab_size":%d,"n_embd":%d,"n_layer":2,"n_head":2,"n_positions":%d,"n_inner":8,)"
                  R"("layer_norm_epsilon":1e-5})",
                  l.vocab, l.dim(), l.positions);
    return buf;
}

void configure_induction(const InductionLayout& l, SynthOptions& o) {
    const int V = l.vocab, P = l.positions, D = l.dim(), hd = l.head_dim();
    const int A = 0, B = V, POS = 2 * V, BAL = 2 * V + P;
    const float s = 1.f;
    // LayerNorm keeps these zero-mean vectors and divides by their RMS: x0 = s(e_tok + e_pos − 2e_bal)
    // has RMS s·√(6/D); after layer 0 adds s(e_prev − e_bal), s·√(12/D).
    const float u0 = std::sqrt(float(D) / 6.f), u1 = std::sqrt(float(D) / 12.f);
    const float margin = 16.f;  // score gap of the intended key, in softmax units
    const float beta0 = margin * std::sqrt(float(hd)) / (u0 * u0), beta1 = margin * std::sqrt(float(hd)) / (u1 * u1);
    const float kappa = 3.f;  // the copied token outweighs the current token in the tied unembedding
    o.edit_row = [=](const std::string& name, int64_t row, float* v, int64_t n) {
        std::fill(v, v + n, 0.f);
        const int il = layer_of(name);
        if (name == "token_embd.weight") {
            v[A + row] = s;
            v[BAL] = -s;
        } else if (name == "position_embd.weight") {
            v[POS + row] = s;
            v[BAL] = -s;
        } else if (ends_with(name, "norm.weight")) {
            std::fill(v, v + n, 1.f);
        } else if (ends_with(name, "attn_qkv.weight")) {
            const int64_t part = row / D, i = row % D;  // 0 q, 1 k, 2 v; i = head 0 dim when < hd
            if (i >= hd) return;                         // head 1 stays silent
            if (il == 0) {
                if (part == 0 && i + 1 < P) v[POS + i + 1] = beta0;  // query at p looks for position p−1
                if (part == 1 && i < P) v[POS + i] = 1.f;
                if (part == 2 && i < V) v[A + i] = 1.f;               // value: the key's token
            } else {
                if (part == 0 && i < V) v[A + i] = beta1;             // query: my token
                if (part == 1 && i < V) {
                    v[B + i] = 1.f;  // key: the token before it
                    // Position 0 has no previous token (its previous-token head can only look at
                    // itself): push its key away so it never matches.
                    v[POS + 0] = -2.f;
                }
                if (part == 2 && i < V) v[A + i] = 1.f;               // value: the key's own token
            }
        } else if (ends_with(name, "attn_output.weight")) {
            // row = residual dim, column = concatenated head dims (head 0 first)
            if (il == 0) {
                if (row >= B && row < B + V) v[row - B] = s / u0;
                if (row == BAL)
                    for (int i = 0; i < V; ++i) v[i] = -s / u0;
            } else {
                if (row >= A && row < A + V) v[row - A] = kappa * s / u1;
                if (row == BAL)
                    for (int i = 0; i < V; ++i) v[i] = -kappa * s / u1;
            }
        }
        // everything else (biases, MLP) stays zero: attention-only
    };
}

int char_class(int id, int vocab) {
    if (id >= vocab - 4) return 3;  // special tokens
    if (id >= 256) return 1;        // merged pieces of the synthetic vocabulary are letters (maybe with a space)
    const unsigned char b = static_cast<unsigned char>(id);
    if (b >= '0' && b <= '9') return 0;
    if ((b >= 'a' && b <= 'z') || (b >= 'A' && b <= 'Z') || b >= 0x80) return 1;
    if (b > ' ' && b < 0x7f) return 2;
    return 3;
}

std::string class_router_config() {
    return R"({"model_type":"qwen3_moe","vocab_size":512,"hidden_size":64,"intermediate_size":128,
        "moe_intermediate_size":32,"num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,
        "num_experts":4,"num_experts_per_tok":1,"norm_topk_prob":true,"rms_norm_eps":1e-6,"rope_theta":10000.0,
        "max_position_embeddings":2048})";
}

void configure_class_router(SynthOptions& o, int vocab) {
    o.edit_row = [vocab](const std::string& name, int64_t row, float* v, int64_t n) {
        if (name == "token_embd.weight") {
            for (int64_t i = 0; i < n; ++i) v[i] *= 0.05f;  // keep a little identity
            for (int c = 0; c < 4; ++c) v[c] = 0.f;
            v[char_class(int(row), vocab)] = 4.f;
        } else if (name == "output.weight") {
        } else if (ends_with(name, "attn_output.weight")) {
            std::fill(v, v + n, 0.f);  // attention visible in the views, but adds nothing here
        } else if (ends_with(name, "ffn_norm.weight")) {
            std::fill(v, v + n, 1.f);
        } else if (ends_with(name, "ffn_gate_inp.weight")) {
            std::fill(v, v + n, 0.f);
            v[row] = 8.f;  // expert `row` listens to class `row`
        } else if (ends_with(name, "ffn_down_exps.weight")) {
            for (int64_t i = 0; i < n; ++i) v[i] *= 0.1f;  // small updates keep the class marks dominant
        }
    };
}

}  // namespace archlens::teaching
