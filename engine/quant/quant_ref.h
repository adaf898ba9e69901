// Scalar reference paths: the plainly-correct versions every SIMD kernel is tested against.
// Dot products follow ggml-cpu's *_generic functions operation for operation (same integer
// sums, same float accumulation order), so they reproduce a non-SIMD llama.cpp build exactly.
#pragma once
#include <cstdint>

#include "engine/core/dtype.h"

namespace archlens::quant::ref {

void dequantize_row(DType t, const void* src, float* dst, int64_t n);

// ggml's quantize_row_*_ref for weights (what llama-quantize writes without an imatrix).
// For Q8_0/Q8_1 this is the roundf() reference, not the activation quantizer.
void quantize_row_weight(DType t, const float* src, void* dst, int64_t n);

// ggml-cpu's activation quantizer on x86 (quantize_row_q8_0 / _q8_1 AVX2 path: id = 127/amax,
// round half to even; quantize_row_q8_K_ref for Q8_K).
void quantize_row_act(DType t, const float* src, void* dst, int64_t n);

// w: row of type t; a: row of vec_dot_type(t).
float vec_dot(DType t, int64_t n, const void* w, const void* a);

}  // namespace archlens::quant::ref
