// One element of a ggml weight block, for device kernels and (the same code compiled for the
// host) for the tests that hold it to quant::dequantize_row. Block layouts: engine/quant/blocks.h.
// ref: ggml-quants.c dequantize_row_* — the same formulas and float operation order, written per
// element so that one thread can produce any element of a row.
#pragma once
#include "engine/cuda/cuda_api.h"

#include <cstdint>
#include <cstring>

#include "engine/core/dtype.h"
#include "engine/quant/blocks.h"

namespace archlens::ARCHLENS_CUDA_NS {

__host__ __device__ inline float half_bits(uint16_t h) { return __half2float(__ushort_as_half(h)); }

__host__ __device__ inline float bf16_bits(uint16_t h) {
    const uint32_t u = uint32_t(h) << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

// Elements per block, or 0 for a type this code does not read.
__host__ __device__ inline int block_elems(DType t) {
    switch (t) {
        case DType::F32:
        case DType::F16:
        case DType::BF16: return 1;
        case DType::Q4_0:
        case DType::Q4_1:
        case DType::Q5_0:
        case DType::Q5_1:
        case DType::Q8_0: return 32;
        case DType::Q2_K:
        case DType::Q3_K:
        case DType::Q4_K:
        case DType::Q5_K:
        case DType::Q6_K: return 256;
        default: return 0;
    }
}

__host__ __device__ inline int block_bytes(DType t) {
    switch (t) {
        case DType::F32: return 4;
        case DType::F16:
        case DType::BF16: return 2;
        case DType::Q4_0: return int(sizeof(quant::BlockQ4_0));
        case DType::Q4_1: return int(sizeof(quant::BlockQ4_1));
        case DType::Q5_0: return int(sizeof(quant::BlockQ5_0));
        case DType::Q5_1: return int(sizeof(quant::BlockQ5_1));
        case DType::Q8_0: return int(sizeof(quant::BlockQ8_0));
        case DType::Q2_K: return int(sizeof(quant::BlockQ2_K));
        case DType::Q3_K: return int(sizeof(quant::BlockQ3_K));
        case DType::Q4_K: return int(sizeof(quant::BlockQ4_K));
        case DType::Q5_K: return int(sizeof(quant::BlockQ5_K));
        case DType::Q6_K: return int(sizeof(quant::BlockQ6_K));
        default: return 0;
    }
}

__host__ __device__ inline void scale_min_k4(int j, const uint8_t* q, int& sc, int& m) {
    if (j < 4) {
        sc = q[j] & 63;
        m = q[j + 4] & 63;
    } else {
        sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// The fields Q4_K and Q5_K share (Q5_K adds qh), at their offsets in either block.
struct K45 {
    const uint8_t* scales;
    const uint8_t* qs;
    uint16_t d, dmin;
};
__host__ __device__ inline K45 k45_fields(bool five, const uint8_t* b) {
    using namespace quant;
    if (five) {
        const auto* x = reinterpret_cast<const BlockQ5_K*>(b);
        return {x->scales, x->qs, x->d, x->dmin};
    }
    const auto* x = reinterpret_cast<const BlockQ4_K*>(b);
    return {x->scales, x->qs, x->d, x->dmin};
}

// Element j (0 <= j < block_elems(t)) of the block at `b`.
__host__ __device__ inline float dequant_element(DType t, const uint8_t* b, int j) {
    using namespace quant;
    switch (t) {
        case DType::F32: {
            float f;
            memcpy(&f, b, 4);
            return f;
        }
        case DType::F16: return half_bits(uint16_t(b[0] | (b[1] << 8)));
        case DType::BF16: return bf16_bits(uint16_t(b[0] | (b[1] << 8)));
        case DType::Q4_0: {
            const auto* x = reinterpret_cast<const BlockQ4_0*>(b);
            const int q = j < 16 ? (x->qs[j] & 0xF) : (x->qs[j - 16] >> 4);
            return float(q - 8) * half_bits(x->d);
        }
        case DType::Q4_1: {
            const auto* x = reinterpret_cast<const BlockQ4_1*>(b);
            const int q = j < 16 ? (x->qs[j] & 0xF) : (x->qs[j - 16] >> 4);
            return float(q) * half_bits(x->d) + half_bits(x->m);
        }
        case DType::Q5_0:
        case DType::Q5_1: {
            const uint8_t* qh8 = t == DType::Q5_0 ? reinterpret_cast<const BlockQ5_0*>(b)->qh : reinterpret_cast<const BlockQ5_1*>(b)->qh;
            const uint8_t* qs = t == DType::Q5_0 ? reinterpret_cast<const BlockQ5_0*>(b)->qs : reinterpret_cast<const BlockQ5_1*>(b)->qs;
            const uint32_t qh = uint32_t(qh8[0]) | (uint32_t(qh8[1]) << 8) | (uint32_t(qh8[2]) << 16) | (uint32_t(qh8[3]) << 24);
            const int jj = j % 16;
            const int h = j < 16 ? int(((qh >> jj) << 4) & 0x10) : int((qh >> (jj + 12)) & 0x10);
            const int q = (j < 16 ? (qs[jj] & 0xF) : (qs[jj] >> 4)) | h;
            if (t == DType::Q5_0) return float(q - 16) * half_bits(reinterpret_cast<const BlockQ5_0*>(b)->d);
            const auto* x = reinterpret_cast<const BlockQ5_1*>(b);
            return float(q) * half_bits(x->d) + half_bits(x->m);
        }
        case DType::Q8_0: {
            const auto* x = reinterpret_cast<const BlockQ8_0*>(b);
            return float(x->qs[j]) * half_bits(x->d);
        }
        case DType::Q2_K: {
            const auto* x = reinterpret_cast<const BlockQ2_K*>(b);
            const int half = j / 128, r = j % 128, s = r / 32, part = (r % 32) / 16, l = r % 16;
            const int sc = x->scales[half * 8 + s * 2 + part];
            const float dl = half_bits(x->d) * float(sc & 0xF), ml = half_bits(x->dmin) * float(sc >> 4);
            return dl * float((x->qs[32 * half + 16 * part + l] >> (2 * s)) & 3) - ml;
        }
        case DType::Q3_K: {
            const auto* x = reinterpret_cast<const BlockQ3_K*>(b);
            const int half = j / 128, r = j % 128, s = r / 32, part = (r % 32) / 16, l = 16 * part + r % 16;
            const int is = half * 8 + s * 2 + part;
            const int lo = is < 8 ? (x->scales[is] & 0xF) : (x->scales[is - 8] >> 4);
            const int hi = (x->scales[8 + is % 4] >> (2 * (is / 4))) & 3;
            const float dl = half_bits(x->d) * float((lo | (hi << 4)) - 32);
            const int m = 1 << (4 * half + s);
            const int v = ((x->qs[32 * half + l] >> (2 * s)) & 3) - ((x->hmask[l] & m) ? 0 : 4);
            return dl * float(v);
        }
        case DType::Q4_K:
        case DType::Q5_K: {
            const bool five = t == DType::Q5_K;
            const K45 f = k45_fields(five, b);
            const uint8_t *scales = f.scales, *qs = f.qs;
            const uint16_t d16 = f.d, m16 = f.dmin;
            const int c = j / 64, r = j % 64, l = r % 32;
            int sc, m;
            scale_min_k4(2 * c + (r >= 32 ? 1 : 0), scales, sc, m);
            const float d1 = half_bits(d16) * float(sc), m1 = half_bits(m16) * float(m);
            int q = r < 32 ? (qs[32 * c + l] & 0xF) : (qs[32 * c + l] >> 4);
            if (five) {
                const int u = r < 32 ? (1 << (2 * c)) : (2 << (2 * c));
                q += (reinterpret_cast<const BlockQ5_K*>(b)->qh[l] & u) ? 16 : 0;
            }
            return d1 * float(q) - m1;
        }
        case DType::Q6_K: {
            const auto* x = reinterpret_cast<const BlockQ6_K*>(b);
            const int half = j / 128, r = j % 128, quarter = r / 32, l = r % 32;
            const uint8_t* ql = x->ql + 64 * half;
            const uint8_t* qh = x->qh + 32 * half;
            const int8_t* sc = x->scales + 8 * half;
            const int lo = quarter == 0 ? (ql[l] & 0xF) : quarter == 1 ? (ql[l + 32] & 0xF) : quarter == 2 ? (ql[l] >> 4) : (ql[l + 32] >> 4);
            const int q = (lo | (((qh[l] >> (2 * quarter)) & 3) << 4)) - 32;
            return half_bits(x->d) * float(sc[l / 16 + 2 * quarter]) * float(q);
        }
        default: return 0.f;
    }
}

// Elements j0 .. j0+7 (j0 a multiple of 8) of a quantized block (block_elems(t) >= 32) into w: the
// decode step's mat-vec reads weights eight at a time, and eight aligned elements always share
// one scale (and minimum), decoded once here; each element is the same float expression as
// dequant_element's, so both give identical values.
__host__ __device__ inline void dequant_run8(DType t, const uint8_t* b, int j0, float (&w)[8]) {
    using namespace quant;
    switch (t) {
        case DType::Q4_0: {
            const auto* x = reinterpret_cast<const BlockQ4_0*>(b);
            const float d = half_bits(x->d);
            const int sh = j0 < 16 ? 0 : 4, o = j0 % 16;
            for (int k = 0; k < 8; ++k) w[k] = float(((x->qs[o + k] >> sh) & 0xF) - 8) * d;
            return;
        }
        case DType::Q4_1: {
            const auto* x = reinterpret_cast<const BlockQ4_1*>(b);
            const float d = half_bits(x->d), m = half_bits(x->m);
            const int sh = j0 < 16 ? 0 : 4, o = j0 % 16;
            for (int k = 0; k < 8; ++k) w[k] = float((x->qs[o + k] >> sh) & 0xF) * d + m;
            return;
        }
        case DType::Q5_0:
        case DType::Q5_1: {
            const bool one = t == DType::Q5_1;
            const uint8_t* qh8 = one ? reinterpret_cast<const BlockQ5_1*>(b)->qh : reinterpret_cast<const BlockQ5_0*>(b)->qh;
            const uint8_t* qs = one ? reinterpret_cast<const BlockQ5_1*>(b)->qs : reinterpret_cast<const BlockQ5_0*>(b)->qs;
            const float d = half_bits(one ? reinterpret_cast<const BlockQ5_1*>(b)->d : reinterpret_cast<const BlockQ5_0*>(b)->d);
            const float m = one ? half_bits(reinterpret_cast<const BlockQ5_1*>(b)->m) : 0.f;
            const uint32_t qh = uint32_t(qh8[0]) | (uint32_t(qh8[1]) << 8) | (uint32_t(qh8[2]) << 16) | (uint32_t(qh8[3]) << 24);
            const int sh = j0 < 16 ? 0 : 4, o = j0 % 16;
            for (int k = 0; k < 8; ++k) {
                const int jj = o + k;
                const int h = j0 < 16 ? int(((qh >> jj) << 4) & 0x10) : int((qh >> (jj + 12)) & 0x10);
                const int q = ((qs[jj] >> sh) & 0xF) | h;
                w[k] = one ? float(q) * d + m : float(q - 16) * d;
            }
            return;
        }
        case DType::Q8_0: {
            const auto* x = reinterpret_cast<const BlockQ8_0*>(b);
            const float d = half_bits(x->d);
            for (int k = 0; k < 8; ++k) w[k] = float(x->qs[j0 + k]) * d;
            return;
        }
        case DType::Q2_K: {
            const auto* x = reinterpret_cast<const BlockQ2_K*>(b);
            const int half = j0 / 128, r = j0 % 128, s = r / 32, part = (r % 32) / 16, l = r % 16;
            const int sc = x->scales[half * 8 + s * 2 + part];
            const float dl = half_bits(x->d) * float(sc & 0xF), ml = half_bits(x->dmin) * float(sc >> 4);
            const uint8_t* q = x->qs + 32 * half + 16 * part + l;
            for (int k = 0; k < 8; ++k) w[k] = dl * float((q[k] >> (2 * s)) & 3) - ml;
            return;
        }
        case DType::Q3_K: {
            const auto* x = reinterpret_cast<const BlockQ3_K*>(b);
            const int half = j0 / 128, r = j0 % 128, s = r / 32, part = (r % 32) / 16, l = 16 * part + r % 16;
            const int is = half * 8 + s * 2 + part;
            const int lo = is < 8 ? (x->scales[is] & 0xF) : (x->scales[is - 8] >> 4);
            const int hi = (x->scales[8 + is % 4] >> (2 * (is / 4))) & 3;
            const float dl = half_bits(x->d) * float((lo | (hi << 4)) - 32);
            const int m = 1 << (4 * half + s);
            for (int k = 0; k < 8; ++k) w[k] = dl * float(((x->qs[32 * half + l + k] >> (2 * s)) & 3) - ((x->hmask[l + k] & m) ? 0 : 4));
            return;
        }
        case DType::Q4_K:
        case DType::Q5_K: {
            const bool five = t == DType::Q5_K;
            const K45 f = k45_fields(five, b);
            const uint8_t *scales = f.scales, *qs = f.qs;
            const uint16_t d16 = f.d, m16 = f.dmin;
            const int c = j0 / 64, r = j0 % 64, l = r % 32, sh = r < 32 ? 0 : 4;
            int sc, m;
            scale_min_k4(2 * c + (r >= 32 ? 1 : 0), scales, sc, m);
            const float d1 = half_bits(d16) * float(sc), m1 = half_bits(m16) * float(m);
            const int u = r < 32 ? (1 << (2 * c)) : (2 << (2 * c));
            const uint8_t* qh = five ? reinterpret_cast<const BlockQ5_K*>(b)->qh : nullptr;
            for (int k = 0; k < 8; ++k) {
                int q = (qs[32 * c + l + k] >> sh) & 0xF;
                if (five) q += (qh[l + k] & u) ? 16 : 0;
                w[k] = d1 * float(q) - m1;
            }
            return;
        }
        case DType::Q6_K: {
            const auto* x = reinterpret_cast<const BlockQ6_K*>(b);
            const int half = j0 / 128, r = j0 % 128, quarter = r / 32, l = r % 32;
            const uint8_t* ql = x->ql + 64 * half + (quarter & 1) * 32;
            const uint8_t* qh = x->qh + 32 * half;
            const int sh = quarter < 2 ? 0 : 4;
            const float ds = half_bits(x->d) * float(x->scales[8 * half + l / 16 + 2 * quarter]);
            for (int k = 0; k < 8; ++k) {
                const int q = (((ql[l + k] >> sh) & 0xF) | (((qh[l + k] >> (2 * quarter)) & 3) << 4)) - 32;
                w[k] = ds * float(q);
            }
            return;
        }
        default:
            for (int k = 0; k < 8; ++k) w[k] = dequant_element(t, b, j0 + k);
    }
}

}  // namespace archlens::ARCHLENS_CUDA_NS
