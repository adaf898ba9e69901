// Row-level conversions between f32 and every weight type, and the dot products the matmul uses.
// Semantics follow ggml-cpu exactly: a product with a weight of type T first converts the
// activation row to vec_dot_type(T) (Q8_0 for q4_0/q5_0/q8_0…, Q8_K for the k-quants, BF16 for
// bf16, F16 for f16), then accumulates per block. That is what makes logits match llama.cpp's.
#pragma once
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

}  // namespace archlens::quant
