// CPU operations on f32 activations. Each is the plainly correct reference that other backends
// are tested against; matmul dispatches to the weight type's dot product (engine/quant).
#pragma once
#include <cstdint>
#include <initializer_list>

#include "engine/core/thread_pool.h"
#include "engine/model/spec.h"
#include "engine/model/weights.h"
#include "engine/probes.h"

namespace archlens::cpu {

// y[T][n_out] = x[T][n_in] · Wᵀ (+ bias). x and y are dense rows.
void matmul(ThreadPool& pool, const Linear& w, const float* x, int64_t T, float* y);
// Several products of one input (q/k/v, gate/up): y_i = x · W_iᵀ, each exactly matmul's result,
// with the activations converted once and all rows in one dispatch when the weights share their
// activation format (else one matmul each).
struct MatmulOut {
    const Linear* w;
    float* y;
};
void matmul_many(ThreadPool& pool, std::initializer_list<MatmulOut> outs, const float* x, int64_t T);
// One row of an embedding-like table (any weight type) as f32.
void read_row(const Linear& table, int64_t row, float* out);

// y = x̂ · w (w may be empty: weightless). In place allowed.
void rms_norm(const float* x, const float* w, int64_t n, float eps, float* y);
void layer_norm(const float* x, const float* w, const float* b, int64_t n, float eps, float* y);

// Rotates one head vector in place at position pos (n_rot leading dims).
struct RopeTable;
void rope_apply(float* head, int n_rot, RopeStyle style, const float* cos_sin /* [n_rot/2][2] */);
// cos/sin for a position: out[i] = {cos, sin} for frequency pair i; includes YaRN's mscale.
void rope_cos_sin(const RopeSpec& r, int64_t pos, float* out, const float* freq_factors = nullptr);

float activation(Activation a, float x);

// Σ a[i]·b[i] in f32: 16-lane FMA chunks then one reduction where AVX-512 is present (the order
// of ggml-cpu's f32 products, llamafile sgemm KN = 16), sequential otherwise. For attention.
float dot_f32(const float* a, const float* b, int64_t n);
// y[i] += a · x[i]
void axpy_f32(float a, const float* x, float* y, int64_t n);
// out[a * ldo + j] = dot_f32(q[a], k[j], n) for a < nq, j < nk, bit for bit (keys in blocks of
// eight sharing one transposed reduction; nq queries sharing each key load).
// Keys as f32 or as f16 (the f16 KV cache: each widened exactly to f32 first).
void dot_keys(const float* const* q, int nq, const float* const* k, int nk, int64_t n, float* out, int64_t ldo);
void dot_keys(const float* const* q, int nq, const uint16_t* const* k, int nk, int64_t n, float* out, int64_t ldo);
// o[a][0..n) = Σ_j p[a * ldp + j] · v[j][0..n) for a < nq: bit for bit what zeroing o[a] and
// calling axpy_f32 for j = 0, 1, … gives, with o held in registers. Values as f32 or f16.
// accumulate: o[a] is not zeroed but continued (the same chain as one call over more keys).
void weighted_sum(const float* p, int64_t ldp, int nq, const float* const* v, int nk, int64_t n, float* const* o,
                  bool accumulate = false);
void weighted_sum(const float* p, int64_t ldp, int nq, const uint16_t* const* v, int nk, int64_t n, float* const* o,
                  bool accumulate = false);
void softmax(float* x, int64_t n);
// out[i] = x[i] as f16 (round to nearest even, as f32_to_fp16), and x[i] replaced by that value.
void to_f16(float* x, int64_t n, uint16_t* out);
// softmax with a vectorized exp (within about 1 ulp of std::exp; llama.cpp's soft_max uses its own
// vector exp as well). For attention rows; routing keeps the scalar one.
void softmax_fast(float* x, int64_t n);

// Gemma 3n's activation sparsity on one row of gate values: r = max(0, r − (mean + k·std)),
// population std. ref: HF Gemma3nTextMLP._gaussian_topk
void gaussian_topk(float* r, int64_t n, float k);

// One token's MoE routing decision from its router logits (n_experts of them): probs gets the
// softmax/sigmoid over every expert, sel and wts the top_k experts (descending selection score:
// the bias, groups and Llama 4's raw-logit order decide who wins, not the weights) and their final
// weights (normalised, routed scale). The CPU backend routes through this; the CUDA backend's
// routing kernel (engine/cuda/moe.cuh) is held to it.
void moe_route(const FfnSpec& f, const float* logits, const float* selection_bias, float* probs, int* sel, float* wts);

// moe_route for T tokens (logits [T][n_experts], sel/wts [T][top_k]) of MoE layer `layer` at
// positions pos0.., counting each selection in probes.expert_load and recording a RoutingRecord
// per token when cfg.routing (moe_record).
void moe_route_tokens(const FfnSpec& f, const float* logits, const float* selection_bias, int64_t T, int layer, int n_layers,
                      int64_t pos0, const ProbeConfig& cfg, ProbeData& probes, int* sel, float* wts);

// The probes of T tokens' routing in MoE layer `layer`: each selection counted in
// probes.expert_load, and per token (when cfg.routing) a RoutingRecord with its experts, weights
// and the router's probabilities (probs [T][n_experts]). Both backends record through this.
void moe_record(const FfnSpec& f, int64_t T, int layer, int n_layers, int64_t pos0, const int* sel, const float* wts, const float* probs,
                const ProbeConfig& cfg, ProbeData& probes);

}  // namespace archlens::cpu
