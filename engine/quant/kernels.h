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

// A tile of the matrix product: out[a * out_stride + r] = (w + r * w_stride) · (acts + a *
// act_stride) for r < nw, a < na. Each (row, activation) pair runs exactly the operation sequence
// of vec_dot, whatever the tile shape, so decode (na = 1) and prefill agree bit for bit.
using GemmTileFn = void (*)(int64_t n, const void* w, size_t w_stride, int nw, const void* acts,
                            size_t act_stride, int na, float* out, size_t out_stride);

// nullptr where the tier has no kernel for that type id (the scalar reference is used instead;
// a missing tile falls back to rows).
struct KernelTable {
    static constexpr int kTypes = 31;  // ggml type ids 0..30
    VecDotRowsFn rows[kTypes] = {};
    GemmTileFn tile[kTypes] = {};
    // activation quantizers (Q8_0, Q8_K, BF16): bit for bit the reference ones
    using QuantizeFn = void (*)(const float* src, void* dst, int64_t n);
    QuantizeFn quantize[kTypes] = {};
    // The matmul path (quant::quantize_acts / gemm_tile_acts): weight types whose kernels read
    // activations in a layout of their own (the values of vec_dot_type's, arranged for the
    // kernel: BlockQ8_K64 for the k-quants, BlockQ8_0A for Q8_0), indexed by weight type.
    struct ActPath {
        QuantizeFn quantize = nullptr;  // f32 row -> the layout
        GemmTileFn tile = nullptr;
        int block_elems = 0, block_bytes = 0;
    };
    ActPath act_path[kTypes] = {};
};

namespace detail {
const KernelTable* avx2_kernels();    // nullptr when not compiled
const KernelTable* avx512_kernels();  // nullptr when not compiled
// BF16 rows/tile on AVX512_BF16 (vdpbf16ps); nullptr when not compiled. The AVX-512 table uses
// them where the CPU has the extension.
VecDotRowsFn avx512bf16_rows();
GemmTileFn avx512bf16_tile();
}  // namespace detail

// Runs tier `isa` (must be available) for type t; falls back to the scalar reference.
float vec_dot_isa(Isa isa, DType t, int64_t n, const void* w, const void* a);
void vec_dot_rows_isa(Isa isa, DType t, int64_t n, const void* w, const void* acts,
                      size_t act_stride, int n_acts, float* out, size_t out_stride);
void gemm_tile_isa(Isa isa, DType t, int64_t n, const void* w, size_t w_stride, int nw,
                   const void* acts, size_t act_stride, int na, float* out, size_t out_stride);
// The matmul path on tier `isa`: activation row size, conversion and tile (see quant.h).
size_t act_row_bytes_isa(Isa isa, DType t, int64_t n);
void quantize_acts_isa(Isa isa, DType t, const float* src, void* dst, int64_t n);
void gemm_tile_acts_isa(Isa isa, DType t, int64_t n, const void* w, size_t w_stride, int nw,
                        const void* acts, size_t act_stride, int na, float* out, size_t out_stride);

}  // namespace archlens::quant
