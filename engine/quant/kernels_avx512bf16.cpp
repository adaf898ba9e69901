// BF16 × BF16 on AVX512_BF16 (Zen 4/5, Sapphire Rapids and later): vdpbf16ps multiplies pairs of
// bf16 exactly and adds them into f32 lanes, 32 elements per instruction.
//
// Order, as llama.cpp's prefill/decode for bf16 weights on such a CPU (llamafile sgemm tinyBLAS
// with KN = 32, __m512bh; ref: ggml-cpu/llamafile/sgemm.cpp): one 16-lane accumulator per
// (row, activation) pair, one vdpbf16ps per 32 elements in order, then _mm512_reduce_add_ps.
// An n that is not a multiple of 32 finishes with plain f32 products (sgemm then declines and
// ggml's own bf16 dot runs; those shapes do not occur in the fixtures).
#include "engine/quant/kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "engine/core/dtype.h"

#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512bf16")
namespace archlens::quant::avx512bf16 {

struct KBF16 {
    static constexpr int kUnitW = 1, kTileW = 4, kTileA = 4, kDecodeW = 4;
    template <int NW, int NA>
    static void micro(int64_t n, const void* const* wv, const void* const* av, float* out, ptrdiff_t pf) {
        const uint16_t* x[NW];
        const uint16_t* y[NA];
        for (int r = 0; r < NW; ++r) x[r] = static_cast<const uint16_t*>(wv[r]);
        for (int a = 0; a < NA; ++a) y[a] = static_cast<const uint16_t*>(av[a]);
        __m512 acc[NW][NA];
        for (int r = 0; r < NW; ++r)
            for (int a = 0; a < NA; ++a) acc[r][a] = _mm512_setzero_ps();
        int64_t i = 0;
        for (; i + 32 <= n; i += 32) {
            __m512bh w[NW];
            if (pf)
                for (int r = 0; r < NW; ++r) _mm_prefetch(reinterpret_cast<const char*>(x[r] + i) + pf, _MM_HINT_T1);
            for (int r = 0; r < NW; ++r) w[r] = (__m512bh)_mm512_loadu_si512(x[r] + i);
            for (int a = 0; a < NA; ++a) {
                const __m512bh ya = (__m512bh)_mm512_loadu_si512(y[a] + i);
                for (int r = 0; r < NW; ++r) acc[r][a] = _mm512_dpbf16_ps(acc[r][a], w[r], ya);
            }
        }
        for (int a = 0; a < NA; ++a)
            for (int r = 0; r < NW; ++r) {
                float s = _mm512_reduce_add_ps(acc[r][a]);
                for (int64_t j = i; j < n; ++j) s += bf16_to_f32(x[r][j]) * bf16_to_f32(y[a][j]);
                out[a * NW + r] = s;
            }
    }
};

#define AL_TILE_DRIVER_ONCE_PER_NAMESPACE 1
#include "engine/quant/tile_driver.h"
#undef AL_TILE_DRIVER_ONCE_PER_NAMESPACE

}  // namespace archlens::quant::avx512bf16
#pragma GCC pop_options
#pragma GCC diagnostic pop

namespace archlens::quant::detail {
VecDotRowsFn avx512bf16_rows() { return avx512bf16::rows_via_tile<avx512bf16::KBF16>; }
GemmTileFn avx512bf16_tile() { return avx512bf16::tile<avx512bf16::KBF16>; }
}  // namespace archlens::quant::detail

#else
namespace archlens::quant::detail {
VecDotRowsFn avx512bf16_rows() { return nullptr; }
GemmTileFn avx512bf16_tile() { return nullptr; }
}  // namespace archlens::quant::detail
#endif
