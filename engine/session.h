// A Session runs a Model on the CPU: token ids in, logits out, with its KV cache and probes.
// Tokens are appended at the current position; decoding one token at a time equals a batched
// forward pass over the same tokens.
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "engine/core/thread_pool.h"
#include "engine/model/model.h"
#include "engine/probes.h"

namespace archlens {

struct SessionOptions {
    int64_t n_ctx = 0;   // 0: the model's trained context length
    int n_threads = 0;   // 0: all cores
    // f16 KV cache (llama.cpp's default): half the memory and half the cache traffic of decoding
    // at depth; keys and values are rounded to f16 as they are stored (the batch's own as well,
    // so decoding one token at a time still equals the batched forward pass). MLA's latent cache
    // stays f32. Off by default: the conformance fixtures were made with an f32 cache.
    bool kv_f16 = false;
};

// One layer's cache, head-major: k (n_kv, cap, head_dim), v (n_kv, cap, v_dim), so that one head's
// keys for consecutive positions are contiguous and stream from memory when a query reads them.
// MLA: one "head": k holds the normalised latent (cap, kv_lora), v the shared RoPE key
// (cap, rope_dim). Sliding/chunked layers are rings of at most `window` positions.
struct LayerKv {
    AttnKind kind = AttnKind::Standard;
    AttnScope scope = AttnScope::Global;
    int64_t row_k = 0, row_v = 0;  // values per position (all heads)
    int64_t heads = 1;             // row_k / heads values of one head per position
    int64_t cap = 0, limit = 0;    // allocated and maximum positions
    bool ring = false;
    bool f16 = false;              // rows in k16/v16 instead of k/v
    std::vector<float> k, v;
    std::vector<uint16_t> k16, v16;
    uint64_t bytes() const { return uint64_t(k.size() + v.size()) * sizeof(float) + uint64_t(k16.size() + v16.size()) * 2; }
    int64_t slot(int64_t pos) const { return ring ? pos % cap : pos; }
    // Offset of head h's `per` values at a slot (per = row_k / heads in k, row_v / heads in v).
    int64_t at(int64_t slot, int64_t h, int64_t per) const { return (h * cap + slot) * per; }
};

class Session {
public:
    explicit Session(const Model& model, SessionOptions opts = {});
    ~Session();

    const Model& model() const { return model_; }
    int64_t position() const { return pos_; }
    int64_t n_ctx() const { return n_ctx_; }
    bool kv_f16() const { return kv_f16_; }
    void reset();

    // Runs `tokens` at positions position()..; returns logits [tokens.size()][vocab] when
    // all_logits, else [1][vocab] for the last token.
    std::vector<float> forward(std::span<const int> tokens, bool all_logits = false);

    ProbeConfig& probe_config() { return probe_cfg_; }
    ProbeData& probes() { return probes_; }

    const std::vector<LayerKv>& kv() const { return kv_; }
    uint64_t kv_bytes() const;

private:
    void ensure_kv(int64_t positions);
    void attention_standard(int il, const float* h, int64_t T, float* out);
    void attention_mla(int il, const float* h, int64_t T, float* out);
    void ffn_dense(const Linear& gate, const Linear& up, const Linear& down, const FfnSpec& f, const float* h, int64_t T, float* out,
                   float sparsity_std_mult = 0.f);
    void gemma3n_layers(std::span<const int> tokens, std::vector<float>& x);
    // Final norm + LM head (+ softcap) on `rows` residual rows.
    std::vector<float> head(const float* x, int64_t rows);
    void record_logit_lens(int layer, const float* residual_row);
    void push_attention_rows(int il, const AttentionSpec& a, int64_t pos0, int64_t T, int64_t H,
                             std::vector<std::vector<float>>& captured);
    static void store_batch(LayerKv& kv, int64_t pos0, int64_t T, const float* k, const float* v);
    void ffn_moe(int il, const float* h, int64_t T, float* out);
    void norm(const std::vector<float>& w, const std::vector<float>& b, const float* x, int64_t T, float* y) const;
    const float* freq_factors(const AttentionSpec& a) const;

    const Model& model_;
    int64_t n_ctx_;
    bool kv_f16_ = false;
    int64_t pos_ = 0;
    std::unique_ptr<ThreadPool> pool_;
    std::vector<LayerKv> kv_;
    // This call's K/V of layers whose cache a later layer reuses (Gemma 3n KV sharing): ring
    // caches may already have dropped early batch positions that the sharing layer still needs.
    std::vector<std::vector<float>> batch_k_, batch_v_;
    std::vector<bool> is_kv_source_;
    ProbeConfig probe_cfg_;
    ProbeData probes_;
};

}  // namespace archlens
