#include "engine/quant/quant.h"

#include <string>

#include "engine/core/error.h"
#include "engine/quant/blocks.h"
#include "engine/quant/kernels.h"
#include "engine/quant/quant_ref.h"

namespace archlens::quant {

namespace {

bool is_activation_type(DType t) {
    return t == DType::F32 || t == DType::F16 || t == DType::BF16 || t == DType::Q8_0 ||
           t == DType::Q8_1 || t == DType::Q8_K;
}

bool cpu_has(const char* feature) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    // __builtin_cpu_supports needs a literal, hence the explicit list.
    std::string f(feature);
    if (f == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
    if (f == "avx512")
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
               __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512dq") &&
               __builtin_cpu_supports("avx512vnni");
    return false;
#else
    (void)feature;
    return false;
#endif
}

const KernelTable* table_of(Isa isa) {
    switch (isa) {
        case Isa::Avx2: return detail::avx2_kernels();
        case Isa::Avx512: return detail::avx512_kernels();
        default: return nullptr;
    }
}

struct Dispatch {
    Isa isa = Isa::Scalar;
    const KernelTable* table = nullptr;
    Dispatch() {
        for (Isa cand : {Isa::Avx512, Isa::Avx2}) {
            if (isa_available(cand)) {
                isa = cand;
                table = table_of(cand);
                return;
            }
        }
    }
};

const Dispatch& dispatch() {
    static const Dispatch d;
    return d;
}

VecDotRowsFn kernel_for(const KernelTable* table, DType t) {
    const auto id = uint32_t(t);
    if (!table || id >= uint32_t(KernelTable::kTypes)) return nullptr;
    return table->rows[id];
}

// dtype_info() is a table search; the dot paths run per row, so they use this switch instead.
int block_size_of(DType t) {
    switch (t) {
        case DType::F32:
        case DType::F16:
        case DType::BF16: return 1;
        case DType::Q2_K:
        case DType::Q3_K:
        case DType::Q4_K:
        case DType::Q5_K:
        case DType::Q6_K:
        case DType::Q8_K: return 256;
        default: return 32;
    }
}

void rows_scalar(DType t, int64_t n, const void* w, const void* acts, size_t act_stride,
                 int n_acts, float* out, size_t out_stride) {
    auto a = static_cast<const uint8_t*>(acts);
    for (int r = 0; r < n_acts; ++r) out[size_t(r) * out_stride] = ref::vec_dot(t, n, w, a + r * act_stride);
}

}  // namespace

const char* isa_name(Isa isa) {
    switch (isa) {
        case Isa::Avx2: return "avx2";
        case Isa::Avx512: return "avx512";
        default: return "scalar";
    }
}

bool isa_available(Isa isa) {
    switch (isa) {
        case Isa::Scalar: return true;
        case Isa::Avx2: return detail::avx2_kernels() && cpu_has("avx2");
        case Isa::Avx512: return detail::avx512_kernels() && cpu_has("avx512");
    }
    return false;
}

Isa best_isa() { return dispatch().isa; }

const char* simd_name() { return isa_name(best_isa()); }

float vec_dot_isa(Isa isa, DType t, int64_t n, const void* w, const void* a) {
    float out = 0;
    vec_dot_rows_isa(isa, t, n, w, a, 0, 1, &out, 1);
    return out;
}

void vec_dot_rows_isa(Isa isa, DType t, int64_t n, const void* w, const void* acts,
                      size_t act_stride, int n_acts, float* out, size_t out_stride) {
    const int bs = block_size_of(t);
    if (n < 0 || n % bs != 0) [[unlikely]]
        throw Error("vec_dot: row of " + std::to_string(n) + " elements is not a multiple of " +
                    dtype_name(t) + "'s block size " + std::to_string(bs));
    if (VecDotRowsFn fn = kernel_for(table_of(isa), t))
        return fn(n, w, acts, act_stride, n_acts, out, out_stride);
    rows_scalar(t, n, w, acts, act_stride, n_acts, out, out_stride);
}

void gemm_tile_isa(Isa isa, DType t, int64_t n, const void* w, size_t w_stride, int nw,
                   const void* acts, size_t act_stride, int na, float* out, size_t out_stride) {
    const int bs = block_size_of(t);
    if (n < 0 || n % bs != 0) [[unlikely]]
        throw Error("gemm: row of " + std::to_string(n) + " elements is not a multiple of " +
                    dtype_name(t) + "'s block size " + std::to_string(bs));
    const KernelTable* table = table_of(isa);
    const auto id = uint32_t(t);
    if (table && id < uint32_t(KernelTable::kTypes) && table->tile[id])
        return table->tile[id](n, w, w_stride, nw, acts, act_stride, na, out, out_stride);
    // one weight row at a time against all activations (each row's block decoded once per 4)
    const auto* wb = static_cast<const uint8_t*>(w);
    VecDotRowsFn fn = kernel_for(table, t);
    for (int r = 0; r < nw; ++r) {
        if (fn)
            fn(n, wb + size_t(r) * w_stride, acts, act_stride, na, out + r, out_stride);
        else
            rows_scalar(t, n, wb + size_t(r) * w_stride, acts, act_stride, na, out + r, out_stride);
    }
}

namespace {
const KernelTable::ActPath* act_path_of(const KernelTable* table, DType t) {
    const auto id = uint32_t(t);
    if (!table || id >= uint32_t(KernelTable::kTypes) || !table->act_path[id].tile) return nullptr;
    return &table->act_path[id];
}
}  // namespace

size_t act_row_bytes_isa(Isa isa, DType t, int64_t n) {
    if (const auto* p = act_path_of(table_of(isa), t)) return size_t(n / p->block_elems) * size_t(p->block_bytes);
    return size_t(*dtype_row_bytes(vec_dot_type(t), uint64_t(n)));
}

void quantize_acts_isa(Isa isa, DType t, const float* src, void* dst, int64_t n) {
    if (const auto* p = act_path_of(table_of(isa), t)) {
        if (n % p->block_elems != 0) [[unlikely]]
            throw Error("quantize: row of " + std::to_string(n) + " elements is not a multiple of " +
                        std::to_string(p->block_elems));
        return p->quantize(src, dst, n);
    }
    quantize_row(vec_dot_type(t), src, dst, n);
}

void gemm_tile_acts_isa(Isa isa, DType t, int64_t n, const void* w, size_t w_stride, int nw,
                        const void* acts, size_t act_stride, int na, float* out, size_t out_stride) {
    if (const auto* p = act_path_of(table_of(isa), t)) {
        if (n < 0 || n % p->block_elems != 0) [[unlikely]]
            throw Error("gemm: row of " + std::to_string(n) + " elements is not a multiple of " +
                        dtype_name(t) + "'s block size " + std::to_string(p->block_elems));
        return p->tile(n, w, w_stride, nw, acts, act_stride, na, out, out_stride);
    }
    gemm_tile_isa(isa, t, n, w, w_stride, nw, acts, act_stride, na, out, out_stride);
}

bool supported(DType t) {
    switch (t) {
        case DType::F32:
        case DType::F16:
        case DType::BF16:
        case DType::Q4_0:
        case DType::Q4_1:
        case DType::Q5_0:
        case DType::Q5_1:
        case DType::Q8_0:
        case DType::Q2_K:
        case DType::Q3_K:
        case DType::Q4_K:
        case DType::Q5_K:
        case DType::Q6_K:
        case DType::Q8_K:
            return true;
        default:
            return false;  // Q8_1 is an activation-only type (ggml has no q8_1 weight product)
    }
}

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
    ref::dequantize_row(t, src, dst, n);
}

// ref: ggml-cpu/ggml-cpu.c type_traits_cpu[].vec_dot_type
DType vec_dot_type(DType t) {
    switch (t) {
        case DType::Q4_0:
        case DType::Q5_0:
        case DType::Q8_0: return DType::Q8_0;
        case DType::Q4_1:
        case DType::Q5_1: return DType::Q8_1;
        case DType::Q2_K:
        case DType::Q3_K:
        case DType::Q4_K:
        case DType::Q5_K:
        case DType::Q6_K: return DType::Q8_K;
        default: return t;  // F32, F16, BF16 multiply their own type
    }
}

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
    if (is_activation_type(t)) {
        const KernelTable* table = dispatch().table;
        const auto id = uint32_t(t);
        if (table && id < uint32_t(KernelTable::kTypes) && table->quantize[id] && n % block_size_of(t) == 0)
            return table->quantize[id](src, dst, n);
        return ref::quantize_row_act(t, src, dst, n);
    }
    ref::quantize_row_weight(t, src, dst, n);
}

void quantize_row_ref(DType t, const float* src, void* dst, int64_t n) {
    ref::quantize_row_weight(t, src, dst, n);
}

float vec_dot(DType t, int64_t n, const void* w, const void* a) {
    return vec_dot_isa(dispatch().isa, t, n, w, a);
}

void vec_dot_rows(DType t, int64_t n, const void* w_row, const void* acts, size_t act_stride_bytes,
                  int n_acts, float* out, size_t out_stride) {
    vec_dot_rows_isa(dispatch().isa, t, n, w_row, acts, act_stride_bytes, n_acts, out, out_stride);
}

void gemm_tile(DType t, int64_t n, const void* w, size_t w_stride, int nw, const void* acts,
               size_t act_stride, int na, float* out, size_t out_stride) {
    gemm_tile_isa(dispatch().isa, t, n, w, w_stride, nw, acts, act_stride, na, out, out_stride);
}

size_t act_row_bytes(DType t, int64_t n) { return act_row_bytes_isa(dispatch().isa, t, n); }

bool same_acts(DType a, DType b) {
    const KernelTable* table = dispatch().table;
    const auto* pa = act_path_of(table, a);
    const auto* pb = act_path_of(table, b);
    if (pa || pb)
        return pa && pb && pa->quantize == pb->quantize && pa->block_elems == pb->block_elems && pa->block_bytes == pb->block_bytes;
    return vec_dot_type(a) == vec_dot_type(b);
}

void quantize_acts(DType t, const float* src, void* dst, int64_t n) {
    quantize_acts_isa(dispatch().isa, t, src, dst, n);
}

void gemm_tile_acts(DType t, int64_t n, const void* w, size_t w_stride, int nw, const void* acts,
                    size_t act_stride, int na, float* out, size_t out_stride) {
    gemm_tile_acts_isa(dispatch().isa, t, n, w, w_stride, nw, acts, act_stride, na, out, out_stride);
}

}  // namespace archlens::quant
