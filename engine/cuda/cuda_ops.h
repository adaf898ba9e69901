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
// The forward pass's own kernels (engine/cuda/kernels.cuh), one call each, host buffers in and out:
// y = LayerNorm(x)·w + b over rows of n (w, b may be null).
void layer_norm(const float* x, const float* w, const float* b, int rows, int n, float eps, float* y);
// x += y, out = RMSNorm(x)·w: the residual add fused with the next norm.
void add_rms_norm(float* x, const float* y, const float* w, int rows, int n, float eps, float* out);
// RoPE on x [T][heads][hd] in place at positions pos0.., cos_sin the table [pos0 + T][n_rot] as
// cpu::rope_cos_sin makes it; neox: rotate_half pairs, else interleaved.
void rope(float* x, int T, int heads, int hd, const float* cos_sin, int n_rot, bool neox, int64_t pos0);
// out [rows][F] = act(gate) · up from gate_up [rows][gate F ; up F]; act 0 SiLU, 1 GELU, 2 GELU-tanh.
void gated_activation(int act, const float* gate_up, int rows, int F, float* out);
// Attention of T queries at positions pos0.. over keys/values of positions 0..pos0 + T - 1 (k, v
// [P][KV][dim]), stored through the session's KV store into a cache of cap positions (0: all; a
// ring when smaller, written store_batch positions at a time), f32 or f16; out [T][H][vd], and
// probs [T][P] of head probe_head when given (the probe kernel's rows, zeros before the window).
// Run twice, so that the split form's tickets are shown to reset.
struct AttentionCase {
    int T = 1, H = 1, KV = 1, hd = 0, vd = 0;
    int64_t pos0 = 0, cap = 0, store_batch = 1 << 30;
    int scope = 0, window = 0;  // 0 global, 1 sliding, 2 chunked
    float scale = 1.f, softcap = 0.f;
    bool f16 = false;
    int probe_head = 0;
    // split-key (flash-decoding) form: each query's keys in `splits` parts of at least min_keys,
    // merged by the last part to finish; 1: one block walks them all
    int splits = 1, min_keys = 1;
    // the prompt kernel (queries in tiles sharing each key and value load; head dims up to 256)
    bool tiled = false;
    // the tensor-core prompt kernel (3xTF32 products; hd % 8 == 0, vd % 16 == 0, both up to 128)
    bool mma = false;
};
void attention(const AttentionCase& c, const float* q, const float* k, const float* v, float* out, float* probs);
// Rows ids[0..T) of an embedding table ([n_rows] rows of D, any type dequant.cuh reads) × scale.
void embed_rows(DType t, const void* table, int n_rows, int D, const int* ids, int T, float scale, float* out);

}  // namespace archlens::ARCHLENS_CUDA_NS
