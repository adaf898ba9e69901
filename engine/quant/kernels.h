// SIMD dot-product kernels and their runtime dispatch (internal to engine/quant; tests and benches
// use it to compare every instruction set with the scalar reference).
//
// Each x86 tier is one build of kernels_x86_impl.h: AVX2 (+FMA, F16C) and AVX-512 (F/BW/VL/DQ +
// VNNI, BF16 dot when the CPU has AVX512_BF16). A kernel is a template over the number of
// activation rows it consumes per pass, so vec_dot (1 row) and vec_dot_rows (the prefill path:
// each weight block is decoded once for up to 4 activation rows) share one body.
#pragma once
#include <cstddef>
#include <cstdint>

#include "engine/core/dtype.h"

namespace archlens::quant {

enum class Isa { Scalar = 0, Avx2 = 1, Avx512 = 2 };

const char* isa_name(Isa isa);
bool isa_available(Isa isa);  // compiled in and supported by this CPU
Isa best_isa();

// out[r * out_stride] = w · (acts + r * act_stride) for r < n_acts.
using VecDotRowsFn = void (*)(int64_t n, const void* w, const void* acts, size_t act_stride,
                              int n_acts, float* out, size_t out_stride);

// nullptr where the tier has no kernel for that type id (the scalar reference is used instead).
struct KernelTable {
    static constexpr int kTypes = 31;  // ggml type ids 0..30
    VecDotRowsFn rows[kTypes] = {};
};

namespace detail {
const KernelTable* avx2_kernels();    // nullptr when not compiled
const KernelTable* avx512_kernels();  // nullptr when not compiled
}  // namespace detail

// Runs tier `isa` (must be available) for type t; falls back to the scalar reference.
float vec_dot_isa(Isa isa, DType t, int64_t n, const void* w, const void* a);
void vec_dot_rows_isa(Isa isa, DType t, int64_t n, const void* w, const void* acts,
                      size_t act_stride, int n_acts, float* out, size_t out_stride);

}  // namespace archlens::quant
