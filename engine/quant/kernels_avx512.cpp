// AVX-512 tier (F/BW/VL/DQ + VNNI: Ice Lake, Zen 4 and later). See kernels_x86_impl.h.
#include "engine/quant/kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "engine/core/dtype.h"
#include "engine/quant/blocks.h"
#include "engine/quant/quant_ref.h"

// GCC 12's avx512fintrin.h (reduce/cvtph helpers) trips -Wuninitialized on its own temporaries.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512dq,avx512vnni")
namespace archlens::quant::avx512 {
#define AL_TIER_AVX512 1
#include "engine/quant/kernels_x86_impl.h"
#undef AL_TIER_AVX512
}  // namespace archlens::quant::avx512
#pragma GCC pop_options
#pragma GCC diagnostic pop

namespace archlens::quant::detail {
const KernelTable* avx512_kernels() {
    static const KernelTable table = [] {
        KernelTable t = avx512::make_table();
        // vdpbf16ps where the CPU has AVX512_BF16 (llama.cpp's bf16 order on such CPUs)
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx512bf16") && avx512bf16_tile()) {
            t.rows[uint32_t(DType::BF16)] = avx512bf16_rows();
            t.tile[uint32_t(DType::BF16)] = avx512bf16_tile();
        }
        return t;
    }();
    return &table;
}
}  // namespace archlens::quant::detail

#else
namespace archlens::quant::detail {
const KernelTable* avx512_kernels() { return nullptr; }
}  // namespace archlens::quant::detail
#endif
