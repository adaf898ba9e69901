// AVX2 + FMA + F16C tier (any x86-64 CPU from ~2013 on). See kernels_x86_impl.h.
#include "engine/quant/kernels.h"

#if defined(__x86_64__)
#include <immintrin.h>

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "engine/quant/blocks.h"

#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
namespace archlens::quant::avx2 {
#define AL_TIER_AVX512 0
#include "engine/quant/kernels_x86_impl.h"
#undef AL_TIER_AVX512
}  // namespace archlens::quant::avx2
#pragma GCC pop_options

namespace archlens::quant::detail {
const KernelTable* avx2_kernels() {
    static const KernelTable table = avx2::make_table();
    return &table;
}
}  // namespace archlens::quant::detail

#else
namespace archlens::quant::detail {
const KernelTable* avx2_kernels() { return nullptr; }
}  // namespace archlens::quant::detail
#endif
