// The forward pass on the GPU (CUDA + cuBLAS) for every architecture the CPU backend runs: GPT-2,
// Llama 3, Mistral, Qwen3, Qwen3 MoE, OLMo 2, Gemma 3, Gemma 3n (AltUp, LAuReL, per-layer inputs
// whose table rows are read on the host as tokens arrive, activation sparsity, KV sharing,
// MatFormer slices), Llama 4, DeepSeek-V3 and Kimi K2 (MLA). Weights are uploaded once, as stored
// (never converted), the KV cache lives on the device, everything else runs in own kernels.
// Matrix products: a decode step's few tokens (<= 8) through matvec_kernel, which reads every
// stored type itself (F32/F16/BF16 rows 16 bytes per lane; Q4_0 … Q8_0, Q2_K … Q6_K blocks as
// stored); more tokens through cublasGemmEx with the activations converted to the weight's type
// first (what the CPU backend and ggml do: bf16 weights multiply bf16 activations, f32
// accumulation), quantized weights dequantized a bounded slab of rows at a time (never a copy of
// the model) and multiplied with f32 activations — llama.cpp's CPU quantizes the activations
// instead, so quantized models agree with it to the looser fixture bound (~0.15), not to 1e-6 as
// the CPU backend does. MoE layers route on the device (engine/cuda/moe.cuh).
// Plain C++ header: no CUDA types leak out.
//
// Refused (unsupported_reason names the first one a model needs; the CPU backend runs it): head
// dimensions above the attention kernel's 1024, weight types dequant.cuh does not read,
// rows that are not whole blocks.
#pragma once
#include "engine/cuda/cuda_ns.h"
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/gpu_types.h"
#include "engine/model/model.h"
#include "engine/probes.h"

namespace archlens::ARCHLENS_CUDA_NS {

// Empty when `model` can run on the CUDA backend, else what stops it (a feature or a tensor).
std::string unsupported_reason(const Model& model);

// The device's per-element dequantization (engine/cuda/dequant.cuh) run on the host, for the
// tests that hold it to quant::dequantize_row. n must be a multiple of the type's block size.
// runs: eight elements at a time as the decode mat-vec reads quantized blocks (dequant_run8).
void dequantize_row_host(DType t, const void* src, float* dst, int64_t n, bool runs = false);

class CudaSession {
public:
    // Uploads the weights and allocates a KV cache of n_ctx positions (0: the model's context).
    // Throws archlens::Error naming the CUDA call and its reason, an unsupported feature, or a
    // model larger than the device's free memory.
    // ring_batch: tokens per pass for models with windowed layers (sliding or chunked attention),
    // whose device cache is a ring of window + ring_batch - 1 positions rather than the whole
    // context; longer batches run in pieces. 0: 1024. kv_f16: the cache of standard attention
    // layers holds f16 (half the memory; as the CPU backend's --kv-type f16), MLA's stays f32.
    explicit CudaSession(const Model& model, int64_t n_ctx = 0, int64_t ring_batch = 0, bool kv_f16 = false);
    ~CudaSession();
    CudaSession(const CudaSession&) = delete;
    CudaSession& operator=(const CudaSession&) = delete;

    // As Session::forward: tokens at positions position().., logits [T][vocab] when all_logits,
    // else [1][vocab] for the last token.
    std::vector<float> forward(std::span<const int> tokens, bool all_logits = false);
    void reset();
    int64_t position() const;
    int64_t n_ctx() const;
    uint64_t weight_bytes() const;  // device memory of the uploaded weights
    uint64_t kv_bytes() const;      // device memory of the KV cache (allocated for the whole context)
    std::vector<uint64_t> kv_bytes_per_layer() const;  // what each layer's cache holds for the positions so far
    uint64_t buffer_bytes() const;  // everything else on the device: scratch, staging, RoPE tables, cuBLAS workspace
    std::string device_name() const;

    // Single-token steps replay as one CUDA graph (MoE layers route on the device; a layer the
    // routing kernel cannot take routes on the host and keeps the step eager) (captured at
    // the first such step, again when a buffer moves or the probes change). decode_mode() says
    // "graph" after such a step, or why the step ran eagerly; set_graphs(false) forces eager steps.
    std::string decode_mode() const;
    bool kv_f16() const;
    void set_graphs(bool on);
    // Fused kernels (the attention heads' steps from the projections to the cache in one kernel, a
    // residual add with the following RMSNorm; in decode steps the gated activation inside the
    // [gate ; up] mat-vec, MLA's per-head products in one launch, and for a single token a
    // pre-norm sublayer's norm in its first product and its residual add in its last) are on by
    // default; off runs
    // each step as its own kernel, for comparison (they compute the same sums in the same order).
    void set_fusion(bool on);
    // With fusion on, a dense single-token step's attention RMSNorm, q|k|v product and per-head
    // steps in one launch (on by default; GpuTuning::heads_fusion); off: the normed product, then
    // the heads kernel. The same sums either way.
    void set_heads_fusion(bool on);
    // Programmatic dependent launches (compute capability 9.0+; off by default, GpuTuning::pdl): each kernel of a
    // forward pass may be scheduled while the one before it finishes, and waits inside for its
    // results (GRID_DEPENDENCY, cuda_api.h); decode graphs keep these edges. Off: every launch
    // waits for the one before it, for comparison. programmatic_launches(): whether they are used.
    void set_programmatic_launches(bool on);
    bool programmatic_launches() const;
    // Quantized weights multiply a prompt (more than 8 tokens) as dequantized slabs with cuBLAS:
    // TF32 by default (f32 slabs on TF32 tensor cores: ~3e-3 on logits, as BF16 models differ),
    // BF16 slabs and activations (half the slab traffic, twice the tensor rate), or exact F32
    // (engine/gpu_types.h).
    void set_quant_gemm(QuantGemm q);
    // Split-key attention for decode batches (<= 8 tokens): each query's keys walked by `splits`
    // blocks of at least min_keys keys (0: as many as fill the device's multiprocessors about
    // twice, none for contexts under min_keys; the default min_keys is 64). For comparison and
    // tests; the automatic choice is the default.
    void set_attention_splits(int splits, int min_keys);
    // Prompts (more than 8 tokens) attend in tiles of 16 queries that share each key and value
    // load (heads up to 256 wide; MLA's wider latent rows use the per-query kernel); off: one
    // block per query, for comparison.
    void set_prompt_attention_tiles(bool on);
    // With tiles on, prompts whose heads are up to 128 wide (multiples of 8; values of 16) attend on
    // tensor cores (compute capability 8.0+): q·kᵀ and p·v as warp matrix products in 3xTF32 (each
    // f32 operand split into two TF32 parts, three products: f32 accuracy), 64 queries a block;
    // off: the f32 tiles, for comparison.
    void set_tensor_core_attention(bool on);
    // A prompt (more than 8 tokens) whose layer has an f32 cache attends through cuBLAS f32
    // products (scores of a chunk of queries against the keys it sees, the softmax in place, then
    // probabilities times values) rather than the kernels above (default on; the tensor-core and
    // tiled kernels keep f16 caches). Off: those kernels, for comparison.
    void set_gemm_attention(bool on);
    // Those products on TF32 tensor cores in layers whose own products round their activations as
    // far or further (BF16/F16 weights; quantized ones unless set_quant_gemm(F32)); layers of f32
    // weights keep f32 products either way (default on; off: f32 products everywhere).
    void set_tf32_attention(bool on);
    // A prompt's device-routed MoE layers through the grouped kernels (default), or each expert's
    // rows gathered on the host's routing and multiplied with cuBLAS (for measuring one against the
    // other). chunk_pairs: (token, expert) pairs a chunk, 1..4096 (4096 by default; fewer for tests).
    void set_grouped_moe(bool on, int chunk_pairs = 4096);
    int64_t graph_launches() const;
    // Decode graphs captured so far: one for each set of probes (the logit lens, the attention
    // heads captured) as it is first met; up to four are kept, so switching between them replays.
    int64_t graph_captures() const;
    // Per-kernel GPU time (archlens-cli bench --gpu-profile): while on, every kernel launch and
    // cuBLAS product of a forward pass is timed between CUDA events (engine/cuda/profile.h), and
    // decode steps run eagerly (decode_mode() says so). take_profile(): the totals since the last
    // call, longest first.
    void set_profiling(bool on);
    std::vector<KernelTime> take_profile();

    // The probes, as Session's: attention probabilities of the captured heads (recomputed for
    // those heads only, from the softmax's max and sum), routing, the logit lens and the top-k.
    // MoE routing is decided by moe_route_kernel, held to cpu::moe_route, and recorded as on the CPU.
    ProbeConfig& probe_config();
    ProbeData& probes();

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace archlens::ARCHLENS_CUDA_NS
