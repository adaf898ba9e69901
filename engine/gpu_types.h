// Plain types the CUDA backend shares with the rest of the engine and the CLI (no CUDA headers).
#pragma once
#include <cstdint>
#include <string>

namespace archlens {

// One kernel's GPU time in a profiled run (archlens-cli bench --gpu-profile; engine/cuda/profile.h).
struct KernelTime {
    std::string kernel;  // the kernel as launched (template arguments included), or the cuBLAS call
    int64_t calls = 0;
    double ms = 0;  // summed over the calls, from CUDA events around each
};

// How the CUDA backend multiplies a prompt (more than 8 tokens) by quantized weights: rows
// dequantized a bounded slab at a time, then cuBLAS on
//   F32:  f32 slabs and activations, exact f32 products (for comparison);
//   TF32: f32 slabs on TF32 tensor cores (inputs rounded to 10-bit mantissas, f32 sums; default);
//   BF16: BF16 slabs and BF16 activations (8-bit mantissas, f32 sums): half the slab traffic and
//         twice TF32's tensor rate; activations rounded as for BF16 models (llama.cpp's own CUDA
//         and CPU paths round them further, to F16 or 8-bit integers).
enum class QuantGemm { F32, TF32, BF16 };

// The CUDA backend's switches, for measuring one choice against another (archlens-cli bench):
// the defaults are what a session runs with, less what ARCHLENS_CUDA_OFF turns off.
struct GpuTuning {
    bool graphs = true;        // single-token steps as one CUDA graph
    bool fusion = true;        // fused kernels (else one kernel per step)
    // with fusion on, a dense single-token step's attention norm, q|k|v product and per-head steps
    // (QK-norm, RoPE, cache store) as one launch (norm_qkv_heads_kernel, per-head tickets); off: the
    // normed product, then the heads kernel (the same sums; one launch and one grid wait a layer more)
    bool heads_fusion = true;
    // programmatic dependent launches (Hopper) where the device has them: off, as measured on an
    // H200 (2026-12-04, Qwen3-0.6B BF16 graph decode: 1.6% and 8.3% slower with them on — the next
    // kernel's early blocks hold the multiprocessors' slots while they wait)
    bool pdl = false;
    bool prompt_tiles = true;  // prompt attention in tiles of queries
    bool tc_attention = true;  // those tiles on tensor cores (3xTF32) where the heads fit
    bool gemm_attention = true;  // prompts with an f32 cache: scores and p·v as cuBLAS f32 products
    // those products on TF32 tensor cores (inputs rounded to 10-bit mantissas, f32 sums) in layers
    // whose own matrix products already round their activations as far or further (BF16/F16 weights,
    // or quantized ones with quant_gemm TF32 or BF16); layers of f32 weights keep exact f32 products.
    // 10-bit mantissas are an F16 KV cache's, llama.cpp's default; turned off, BF16 logits stay
    // within summation order of the CPU backend (emulator: NMSE 1.6e-7 against 1.7e-5 with it)
    bool tf32_attention = true;
    QuantGemm quant_gemm = QuantGemm::TF32;  // quantized weights' prompt products (above)
    bool grouped_moe = true;   // a prompt's MoE layers through the grouped expert kernels
    int attn_splits = 0;       // split-key decode attention: 0 automatic, 1 none, N forced
    int split_min_keys = 64;  // keys per split at least (measured on an H200, 2026-12-04: 256 left most splits of a 600-key context empty)
};

// The defaults with the switches named in the environment variable ARCHLENS_CUDA_OFF turned off: a
// comma-separated list of graphs, fusion, heads-fusion, pdl, tiles, tc-attention, gemm-attention, tf32-attention, grouped-moe (the names of
// bench's --gpu-* switches), as llama.cpp's GGML_CUDA_DISABLE_GRAPHS: to find, on a device where
// something fails, which choice it comes from, with any program (every CUDA session starts from
// it). An unknown name throws, naming the variable and the accepted names.
GpuTuning gpu_tuning_from_env();

}  // namespace archlens
