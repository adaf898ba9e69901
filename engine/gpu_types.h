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

}  // namespace archlens
