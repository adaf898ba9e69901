// CUDA backend entry points, callable from plain C++ (no CUDA headers leak out). Every CUDA or
// cuBLAS failure becomes an archlens::Error naming the call and the reason; nothing aborts.
// The forward pass on the GPU is the CUDA issue's work; these are the first operations, each
// tested against the CPU reference where a device exists.
#pragma once
#include "engine/cuda/cuda_ns.h"
#include <cstddef>
#include <cstdint>
#include <string>

#include "engine/core/dtype.h"
#include "engine/model/spec.h"

namespace archlens::ARCHLENS_CUDA_NS {

struct DeviceInfo {
    bool available = false;
    std::string reason;  // why not, when unavailable
    std::string name;
    int cc_major = 0, cc_minor = 0;
    size_t total_bytes = 0, free_bytes = 0;
};

DeviceInfo probe_device();

// y[rows][n] = x̂ · w, on the device (inputs and outputs are host buffers).
void rms_norm(const float* x, const float* w, int rows, int n, float eps, float* y);
// y[T][n_out] = x[T][n_in] · Wᵀ with cuBLAS (W row-major [n_out][n_in], f32).
void matmul_f32(const float* w, int n_out, int n_in, const float* x, int T, float* y);
// y[T][n_out] = x[T][n_in] · Wᵀ for 1 <= T <= 8 through the decode step's matrix-vector kernel:
// W as stored ([n_out] rows of any type dequant.cuh reads, n_in whole blocks), activations rounded
// to F16/BF16 for such weights. Host buffers in and out.
void matvec(DType t, const void* w, int n_out, int n_in, const float* x, int T, float* y);
// The routing of T tokens of MoE layer spec f by the device's routing kernel: logits [T][n_experts]
// → probs [T][n_experts], sel and wts [T][top_k], as cpu::moe_route decides them. selection_bias
// (n_experts) may be null. Host buffers in and out.
void moe_route(const FfnSpec& f, const float* logits, int T, const float* selection_bias, float* probs, int* sel, float* wts);
// Gemma 3n's activation sparsity on each row of [rows][n] in place (cpu::gaussian_topk).
void gaussian_topk(float* x, int rows, int n, float k);
// Each row of v [rows][n] scaled to the RMS of the same row of ref (Gemma 3n's AltUp streams).
void match_rms(float* v, const float* ref, int rows, int n);
// In-place row softmax over [rows][n].
void softmax_rows(float* x, int rows, int n);

}  // namespace archlens::ARCHLENS_CUDA_NS
