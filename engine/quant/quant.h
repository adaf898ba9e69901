// Row-level conversions between f32 and every weight type, and the dot products the matmul uses.
// Semantics follow ggml-cpu exactly: a product with a weight of type T first converts the
// activation row to vec_dot_type(T) (Q8_0 for q4_0/q5_0/q8_0…, Q8_K for the k-quants, BF16 for
// bf16, F16 for f16), then accumulates per block. That is what makes logits match llama.cpp's.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/core/dtype.h"

namespace archlens::quant {

// True when this build can dequantize / multiply weights of type t.
bool supported(DType t);

// dst[0..n) = src as f32. n must be a multiple of the type's block size.
void dequantize_row(DType t, const void* src, float* dst, int64_t n);

// The activation type a weight of type t is multiplied with (ggml's vec_dot_type).
DType vec_dot_type(DType t);

// Quantizes an f32 row to type t (round-to-nearest reference quantizer for weights; the exact
// ggml activation quantizer for Q8_0/Q8_K/BF16/F16). dst holds dtype_row_bytes(t, n) bytes.
void quantize_row(DType t, const float* src, void* dst, int64_t n);

// Dot product of n elements: w is a row of type t, a is a row of vec_dot_type(t).
float vec_dot(DType t, int64_t n, const void* w, const void* a);

// --- additions -------------------------------------------------------------------------------

// ggml's quantize_row_*_ref, i.e. what llama-quantize writes without an imatrix. Equals
// quantize_row except for Q8_0/Q8_1, whose weight quantizer rounds half away from zero with
// 1/d while the activation quantizer (quantize_row) rounds half to even with 127/amax.
void quantize_row_ref(DType t, const float* src, void* dst, int64_t n);

// Prefill: one weight row against n_acts activation rows (each of vec_dot_type(t), the r-th at
// acts + r * act_stride_bytes). out[r * out_stride] (out_stride in floats) receives exactly
// vec_dot(t, n, w_row, act_r). Faster than n_acts vec_dot calls: each weight block is decoded
// once per group of activation rows.
void vec_dot_rows(DType t, int64_t n, const void* w_row, const void* acts, size_t act_stride_bytes,
                  int n_acts, float* out, size_t out_stride);

// Matrix tile: out[a * out_stride + r] = vec_dot(t, n, w + r * w_stride, acts + a * act_stride)
// for r < nw, a < na, bit for bit. Weight rows are decoded once per group of activations and
// activations loaded once per group of weight rows (the decode and prefill kernel of the matmul).
void gemm_tile(DType t, int64_t n, const void* w, size_t w_stride, int nw, const void* acts,
               size_t act_stride, int na, float* out, size_t out_stride);

// The matmul's activation path. gemm_tile reads vec_dot_type(t) rows; the matmul instead converts
// each activation row once per call with quantize_acts into act_row_bytes(t, n) bytes, a layout
// that may be private to the selected kernels (AVX-512: Q8_K with 64-byte aligned quants, Q8_0 with
// its vpdpbusd correction), and multiplies with gemm_tile_acts, which gives bit for bit gemm_tile's
// results. Rows lie act_row_bytes apart from a 64-byte aligned start.
size_t act_row_bytes(DType t, int64_t n);
// True when quantize_acts writes the same bytes for weights of types a and b (one conversion can
// then serve products with both).
bool same_acts(DType a, DType b);
void quantize_acts(DType t, const float* src, void* dst, int64_t n);
void gemm_tile_acts(DType t, int64_t n, const void* w, size_t w_stride, int nw, const void* acts,
                    size_t act_stride, int na, float* out, size_t out_stride);

// Name of the instruction set the dot products run on ("avx512", "avx2", "scalar").
const char* simd_name();

}  // namespace archlens::quant
