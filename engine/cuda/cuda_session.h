// The forward pass on the GPU (CUDA + cuBLAS), for the dense decoder families: GPT-2, Llama 3,
// Mistral, Qwen3 dense, OLMo 2 and Gemma 3 with F32, F16 or BF16 weights. Weights are uploaded
// once, as stored (no conversion), the KV cache lives on the device, matrix products run through
// cublasGemmEx with the activations converted to the weight's type first (what the CPU backend and
// ggml do: bf16 weights multiply bf16 activations, f32 accumulation), everything else in own
// kernels. Plain C++ header: no CUDA types leak out.
//
// Not yet on the GPU (unsupported_reason names the first one a model needs; the CPU backend runs
// them): quantized GGUF weights, mixture-of-experts layers, Multi-head Latent Attention, Gemma 3n,
// and the probes (attention capture, routing, logit lens).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/model/model.h"

namespace archlens::cuda {

// Empty when `model` can run on the CUDA backend, else what stops it (a feature or a tensor).
std::string unsupported_reason(const Model& model);

class CudaSession {
public:
    // Uploads the weights and allocates a KV cache of n_ctx positions (0: the model's context).
    // Throws archlens::Error naming the CUDA call and its reason, an unsupported feature, or a
    // model larger than the device's free memory.
    explicit CudaSession(const Model& model, int64_t n_ctx = 0);
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
    uint64_t kv_bytes() const;      // device memory of the KV cache
    std::string device_name() const;

private:
    struct Impl;
    std::unique_ptr<Impl> impl_;
};

}  // namespace archlens::cuda
