#include "engine/quant/quant_ref.h"

#include <algorithm>
#include <cfloat>
#include <cmath>
#include <cstring>
#include <string>
#include <type_traits>

#include "engine/core/error.h"
#include "engine/quant/blocks.h"

namespace archlens::quant::ref {

namespace {

inline float h2f(uint16_t h) { return fp16_to_f32(h); }
inline uint16_t f2h(float f) { return f32_to_fp16(f); }

// ref: ggml-quants.c nearest_int — round half to even through the 1.5*2^23 trick (|v| < 2^22).
inline int nearest_int(float v) {
    float t = v + 12582912.f;
    int32_t i;
    std::memcpy(&i, &t, 4);
    return (i & 0x007fffff) - 0x00400000;
}

constexpr float kGroupMaxEps = 1e-15f;  // ref: ggml-quants.c GROUP_MAX_EPS

// ---------------------------------------------------------------------------------------------
// Dequantization. ref: ggml-quants.c dequantize_row_*

void dequantize_q4_0(const BlockQ4_0* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += kQK) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < kQK / 2; ++j) {
            y[j] = float((x[i].qs[j] & 0xF) - 8) * d;
            y[j + kQK / 2] = float((x[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void dequantize_q4_1(const BlockQ4_1* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += kQK) {
        const float d = h2f(x[i].d), m = h2f(x[i].m);
        for (int j = 0; j < kQK / 2; ++j) {
            y[j] = float(x[i].qs[j] & 0xF) * d + m;
            y[j + kQK / 2] = float(x[i].qs[j] >> 4) * d + m;
        }
    }
}

inline uint32_t load_u32(const uint8_t* p) {
    uint32_t v;
    std::memcpy(&v, p, 4);
    return v;
}

void dequantize_q5_0(const BlockQ5_0* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += kQK) {
        const float d = h2f(x[i].d);
        const uint32_t qh = load_u32(x[i].qh);
        for (int j = 0; j < kQK / 2; ++j) {
            const int h0 = ((qh >> j) << 4) & 0x10;
            const int h1 = (qh >> (j + 12)) & 0x10;
            y[j] = float(((x[i].qs[j] & 0xF) | h0) - 16) * d;
            y[j + kQK / 2] = float(((x[i].qs[j] >> 4) | h1) - 16) * d;
        }
    }
}

void dequantize_q5_1(const BlockQ5_1* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += kQK) {
        const float d = h2f(x[i].d), m = h2f(x[i].m);
        const uint32_t qh = load_u32(x[i].qh);
        for (int j = 0; j < kQK / 2; ++j) {
            const int h0 = ((qh >> j) << 4) & 0x10;
            const int h1 = (qh >> (j + 12)) & 0x10;
            y[j] = float((x[i].qs[j] & 0xF) | h0) * d + m;
            y[j + kQK / 2] = float((x[i].qs[j] >> 4) | h1) * d + m;
        }
    }
}

void dequantize_q8_0(const BlockQ8_0* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += kQK) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < kQK; ++j) y[j] = float(x[i].qs[j]) * d;
    }
}

void dequantize_q8_1(const BlockQ8_1* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += kQK) {
        const float d = h2f(x[i].d);
        for (int j = 0; j < kQK; ++j) y[j] = float(x[i].qs[j]) * d;
    }
}

void dequantize_q2_k(const BlockQ2_K* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        const uint8_t* q = x[i].qs;
        int is = 0;
        for (int half = 0; half < 2; ++half, q += 32) {
            for (int shift = 0; shift < 8; shift += 2) {
                for (int part = 0; part < 2; ++part) {
                    const uint8_t sc = x[i].scales[is++];
                    const float dl = d * float(sc & 0xF), ml = dmin * float(sc >> 4);
                    for (int l = 0; l < 16; ++l)
                        *y++ = dl * float((q[16 * part + l] >> shift) & 3) - ml;
                }
            }
        }
    }
}

void dequantize_q3_k(const BlockQ3_K* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d_all = h2f(x[i].d);
        int8_t scales[16];
        unpack_q3_k_scales(x[i].scales, scales);
        const uint8_t* q = x[i].qs;
        const uint8_t* hm = x[i].hmask;
        uint8_t m = 1;
        int is = 0;
        for (int half = 0; half < 2; ++half, q += 32) {
            for (int shift = 0; shift < 8; shift += 2, m = uint8_t(m << 1)) {
                for (int part = 0; part < 2; ++part) {
                    const float dl = d_all * float(scales[is++] - 32);
                    for (int l = 16 * part; l < 16 * part + 16; ++l) {
                        const int v = ((q[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4);
                        *y++ = dl * float(v);
                    }
                }
            }
        }
    }
}

void dequantize_q4_k(const BlockQ4_K* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        const uint8_t* q = x[i].qs;
        for (int c = 0; c < 4; ++c, q += 32) {
            uint8_t sc, m;
            get_scale_min_k4(2 * c, x[i].scales, &sc, &m);
            const float d1 = d * float(sc), m1 = dmin * float(m);
            get_scale_min_k4(2 * c + 1, x[i].scales, &sc, &m);
            const float d2 = d * float(sc), m2 = dmin * float(m);
            for (int l = 0; l < 32; ++l) *y++ = d1 * float(q[l] & 0xF) - m1;
            for (int l = 0; l < 32; ++l) *y++ = d2 * float(q[l] >> 4) - m2;
        }
    }
}

void dequantize_q5_k(const BlockQ5_K* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(x[i].d), dmin = h2f(x[i].dmin);
        const uint8_t* ql = x[i].qs;
        const uint8_t* qh = x[i].qh;
        uint8_t u1 = 1, u2 = 2;
        for (int c = 0; c < 4; ++c, ql += 32, u1 = uint8_t(u1 << 2), u2 = uint8_t(u2 << 2)) {
            uint8_t sc, m;
            get_scale_min_k4(2 * c, x[i].scales, &sc, &m);
            const float d1 = d * float(sc), m1 = dmin * float(m);
            get_scale_min_k4(2 * c + 1, x[i].scales, &sc, &m);
            const float d2 = d * float(sc), m2 = dmin * float(m);
            for (int l = 0; l < 32; ++l)
                *y++ = d1 * float((ql[l] & 0xF) + ((qh[l] & u1) ? 16 : 0)) - m1;
            for (int l = 0; l < 32; ++l)
                *y++ = d2 * float((ql[l] >> 4) + ((qh[l] & u2) ? 16 : 0)) - m2;
        }
    }
}

void dequantize_q6_k(const BlockQ6_K* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i) {
        const float d = h2f(x[i].d);
        const uint8_t* ql = x[i].ql;
        const uint8_t* qh = x[i].qh;
        const int8_t* sc = x[i].scales;
        for (int half = 0; half < 2; ++half, y += 128, ql += 64, qh += 32, sc += 8) {
            for (int l = 0; l < 32; ++l) {
                const int is = l / 16;
                const int q1 = ((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
                const int q2 = ((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
                const int q3 = ((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
                const int q4 = ((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
                // ref: (d * sc) * q, in that order
                y[l] = d * float(sc[is]) * float(q1);
                y[l + 32] = d * float(sc[is + 2]) * float(q2);
                y[l + 64] = d * float(sc[is + 4]) * float(q3);
                y[l + 96] = d * float(sc[is + 6]) * float(q4);
            }
        }
    }
}

void dequantize_q8_k(const BlockQ8_K* x, float* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, y += kQKK)
        for (int j = 0; j < kQKK; ++j) y[j] = x[i].d * float(x[i].qs[j]);
}

// ---------------------------------------------------------------------------------------------
// Reference weight quantizers. ref: ggml-quants.c quantize_row_*_ref

void quantize_q4_0(const float* x, BlockQ4_0* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
        float amax = 0, max = 0;
        for (int j = 0; j < kQK; ++j)
            if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
        const float d = max / -8;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < kQK / 2; ++j) {
            // ref: truncation of x*id + 8.5 through int8_t, then MIN(15, ·)
            const int a = std::min(15, int(int8_t(x[j] * id + 8.5f)));
            const int b = std::min(15, int(int8_t(x[j + kQK / 2] * id + 8.5f)));
            y[i].qs[j] = uint8_t(uint8_t(a) | (uint8_t(b) << 4));
        }
    }
}

void quantize_q4_1(const float* x, BlockQ4_1* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < kQK; ++j) min = std::min(min, x[j]), max = std::max(max, x[j]);
        const float d = (max - min) / 15;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        for (int j = 0; j < kQK / 2; ++j) {
            const int a = std::min(15, int(int8_t((x[j] - min) * id + 0.5f)));
            const int b = std::min(15, int(int8_t((x[j + kQK / 2] - min) * id + 0.5f)));
            y[i].qs[j] = uint8_t(uint8_t(a) | (uint8_t(b) << 4));
        }
    }
}

void quantize_q5_0(const float* x, BlockQ5_0* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
        float amax = 0, max = 0;
        for (int j = 0; j < kQK; ++j)
            if (amax < std::fabs(x[j])) amax = std::fabs(x[j]), max = x[j];
        const float d = max / -16;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        uint32_t qh = 0;
        for (int j = 0; j < kQK / 2; ++j) {
            const uint8_t a = uint8_t(std::min(31, int(int8_t(x[j] * id + 16.5f))));
            const uint8_t b = uint8_t(std::min(31, int(int8_t(x[j + kQK / 2] * id + 16.5f))));
            y[i].qs[j] = uint8_t((a & 0xF) | ((b & 0xF) << 4));
            qh |= uint32_t((a & 0x10) >> 4) << j;
            qh |= uint32_t((b & 0x10) >> 4) << (j + kQK / 2);
        }
        std::memcpy(y[i].qh, &qh, 4);
    }
}

void quantize_q5_1(const float* x, BlockQ5_1* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
        float min = FLT_MAX, max = -FLT_MAX;
        for (int j = 0; j < kQK; ++j) min = std::min(min, x[j]), max = std::max(max, x[j]);
        const float d = (max - min) / 31;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        y[i].m = f2h(min);
        uint32_t qh = 0;
        for (int j = 0; j < kQK / 2; ++j) {
            const uint8_t a = uint8_t((x[j] - min) * id + 0.5f);
            const uint8_t b = uint8_t((x[j + kQK / 2] - min) * id + 0.5f);
            y[i].qs[j] = uint8_t((a & 0xF) | ((b & 0xF) << 4));
            qh |= uint32_t((a & 0x10) >> 4) << j;
            qh |= uint32_t((b & 0x10) >> 4) << (j + kQK / 2);
        }
        std::memcpy(y[i].qh, &qh, 4);
    }
}

void quantize_q8_0_weight(const float* x, BlockQ8_0* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
        float amax = 0;
        for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        for (int j = 0; j < kQK; ++j) y[i].qs[j] = int8_t(std::round(x[j] * id));
    }
}

void quantize_q8_1_weight(const float* x, BlockQ8_1* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += kQK) {
        float amax = 0;
        for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
        const float d = amax / 127;
        const float id = d != 0 ? 1.0f / d : 0.0f;
        y[i].d = f2h(d);
        int sum = 0;
        for (int j = 0; j < kQK; ++j) {
            y[i].qs[j] = int8_t(std::round(x[j] * id));
            sum += y[i].qs[j];
        }
        y[i].s = f2h(float(sum) * d);
    }
}

// ref: ggml-cpu/arch/x86/quants.c quantize_row_q8_0 (AVX2): d = amax/127 stored as fp16, the
// multiplier is 127/amax (not 1/d) and _mm256_round_ps rounds half to even.
template <class Block>
float quantize_q8_act_block(const float* x, Block& y) {
    float amax = 0;
    for (int j = 0; j < kQK; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.f;
    y.d = f2h(d);
    const float id = amax != 0.0f ? 127.f / amax : 0.0f;
    int sum = 0;
    for (int j = 0; j < kQK; ++j) {
        const int v = std::clamp(nearest_int(x[j] * id), -128, 127);  // packs saturate
        y.qs[j] = int8_t(v);
        sum += v;
    }
    return d * float(sum);
}

// ref: ggml-quants.c quantize_row_q8_K_ref — scale from the signed element of largest |x|.
void quantize_q8_k(const float* x, BlockQ8_K* y, int64_t nb) {
    for (int64_t i = 0; i < nb; ++i, x += kQKK) {
        float max = 0, amax = 0;
        for (int j = 0; j < kQKK; ++j)
            if (std::fabs(x[j]) > amax) amax = std::fabs(x[j]), max = x[j];
        if (amax == 0) {
            y[i].d = 0;
            std::memset(y[i].qs, 0, sizeof y[i].qs);
            std::memset(y[i].bsums, 0, sizeof y[i].bsums);
            continue;
        }
        const float iscale = -127.f / max;
        for (int j = 0; j < kQKK; ++j) y[i].qs[j] = int8_t(std::min(127, nearest_int(iscale * x[j])));
        for (int g = 0; g < kQKK / 16; ++g) {
            int sum = 0;
            for (int l = 0; l < 16; ++l) sum += y[i].qs[16 * g + l];
            y[i].bsums[g] = int16_t(sum);
        }
        y[i].d = 1 / iscale;
    }
}

// ref: ggml-quants.c make_qx_quants (rmse_type 1, no importance weights: w = x^2).
float make_qx_quants(int n, int nmax, const float* x, int8_t* L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
    if (amax < kGroupMaxEps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    float iscale = -float(nmax) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = int8_t(l + nmax);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * float(l);
        suml2 += w * float(l) * float(l);
    }
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;
    for (int is = -9; is <= 9; ++is) {
        if (is == 0) continue;
        iscale = -(float(nmax) + 0.1f * float(is)) / max;
        sumlx = suml2 = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
            const float w = x[i] * x[i];
            sumlx += w * x[i] * float(l);
            suml2 += w * float(l) * float(l);
        }
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            for (int i = 0; i < n; ++i)
                L[i] = int8_t(nmax + std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1));
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

// ref: ggml-quants.c make_q3_quants (do_rmse = true).
float make_q3_quants(int n, int nmax, const float* x, int8_t* L) {
    float max = 0, amax = 0;
    for (int i = 0; i < n; ++i)
        if (std::fabs(x[i]) > amax) amax = std::fabs(x[i]), max = x[i];
    if (amax < kGroupMaxEps) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        return 0.f;
    }
    const float iscale = -float(nmax) / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; ++i) {
        const int l = std::clamp(nearest_int(iscale * x[i]), -nmax, nmax - 1);
        L[i] = int8_t(l);
        const float w = x[i] * x[i];
        sumlx += w * x[i] * float(l);
        suml2 += w * float(l) * float(l);
    }
    for (int itry = 0; itry < 5; ++itry) {
        int n_changed = 0;
        for (int i = 0; i < n; ++i) {
            const float w = x[i] * x[i];
            float slx = sumlx - w * x[i] * float(L[i]);
            if (slx > 0) {
                float sl2 = suml2 - w * float(L[i]) * float(L[i]);
                int new_l = std::clamp(nearest_int(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * float(new_l);
                    sl2 += w * float(new_l) * float(new_l);
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = int8_t(new_l);
                        sumlx = slx;
                        suml2 = sl2;
                        ++n_changed;
                    }
                }
            }
        }
        if (!n_changed) break;
    }
    for (int i = 0; i < n; ++i) L[i] = int8_t(L[i] + nmax);
    return sumlx / suml2;
}

// ref: ggml-quants.c make_qkx2_quants — affine (scale, min) fit with a small search over the
// scale, minimising the weighted |error| (use_mad) or squared error.
float make_qkx2_quants(int n, int nmax, const float* x, const float* weights, uint8_t* L,
                       float* the_min, uint8_t* Laux, float rmin, float rdelta, int nstep,
                       bool use_mad) {
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; ++i) {
        if (x[i] < min) min = x[i];
        if (x[i] > max) max = x[i];
        const float w = weights[i];
        sum_w += w;
        sum_x += w * x[i];
    }
    if (min > 0) min = 0;
    if (max == min) {
        for (int i = 0; i < n; ++i) L[i] = 0;
        *the_min = -min;
        return 0.f;
    }
    float iscale = float(nmax) / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; ++i) {
        const int l = nearest_int(iscale * (x[i] - min));
        L[i] = uint8_t(std::clamp(l, 0, nmax));
        float diff = scale * float(L[i]) + min - x[i];
        diff = use_mad ? std::fabs(diff) : diff * diff;
        best_error += weights[i] * diff;
    }
    if (nstep < 1) {
        *the_min = -min;
        return scale;
    }
    for (int is = 0; is <= nstep; ++is) {
        iscale = (rmin + rdelta * float(is) + float(nmax)) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; ++i) {
            const int l = std::clamp(nearest_int(iscale * (x[i] - min)), 0, nmax);
            Laux[i] = uint8_t(l);
            const float w = weights[i];
            sum_l += w * float(l);
            sum_l2 += w * float(l) * float(l);
            sum_xl += w * float(l) * x[i];
        }
        const float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float cur_error = 0;
            for (int i = 0; i < n; ++i) {
                float diff = this_scale * float(Laux[i]) + this_min - x[i];
                diff = use_mad ? std::fabs(diff) : diff * diff;
                cur_error += weights[i] * diff;
            }
            if (cur_error < best_error) {
                for (int i = 0; i < n; ++i) L[i] = Laux[i];
                best_error = cur_error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

// ref: ggml-quants.c quantize_row_q2_K_ref
void quantize_q2_k(const float* x, BlockQ2_K* y, int64_t nb) {
    uint8_t L[kQKK], Laux[16];
    float weights[16], mins[16], scales[16];
    const float q4scale = 15.f;
    for (int64_t i = 0; i < nb; ++i, x += kQKK) {
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; ++j) {
            for (int l = 0; l < 16; ++l) weights[l] = std::fabs(x[16 * j + l]);
            scales[j] = make_qkx2_quants(16, 3, x + 16 * j, weights, L + 16 * j, &mins[j], Laux,
                                         -0.5f, 0.1f, 15, true);
            max_scale = std::max(max_scale, scales[j]);
            max_min = std::max(max_min, mins[j]);
        }
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; ++j) y[i].scales[j] = uint8_t(nearest_int(iscale * scales[j]));
            y[i].d = f2h(max_scale / q4scale);
        } else {
            for (int j = 0; j < 16; ++j) y[i].scales[j] = 0;
            y[i].d = f2h(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < 16; ++j)
                y[i].scales[j] = uint8_t(y[i].scales[j] | (nearest_int(iscale * mins[j]) << 4));
            y[i].dmin = f2h(max_min / q4scale);
        } else {
            y[i].dmin = f2h(0.f);
        }
        for (int j = 0; j < 16; ++j) {
            const float d = h2f(y[i].d) * float(y[i].scales[j] & 0xF);
            if (d == 0) continue;
            const float dm = h2f(y[i].dmin) * float(y[i].scales[j] >> 4);
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] = uint8_t(std::clamp(nearest_int((x[16 * j + ii] + dm) / d), 0, 3));
        }
        for (int j = 0; j < kQKK; j += 128)
            for (int l = 0; l < 32; ++l)
                y[i].qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) |
                                             (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
}

// ref: ggml-quants.c quantize_row_q3_K_ref
void quantize_q3_k(const float* x, BlockQ3_K* y, int64_t nb) {
    int8_t L[kQKK];
    float scales[16];
    for (int64_t i = 0; i < nb; ++i, x += kQKK) {
        float max_scale = 0, amax = 0;
        for (int j = 0; j < 16; ++j) {
            scales[j] = make_q3_quants(16, 4, x + 16 * j, L + 16 * j);
            if (std::fabs(scales[j]) > amax) amax = std::fabs(scales[j]), max_scale = scales[j];
        }
        std::memset(y[i].scales, 0, 12);
        if (max_scale != 0) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; ++j) {
                int8_t l = int8_t(nearest_int(iscale * scales[j]));
                l = int8_t(std::clamp(int(l), -32, 31) + 32);
                if (j < 8)
                    y[i].scales[j] = uint8_t(l & 0xF);
                else
                    y[i].scales[j - 8] = uint8_t(y[i].scales[j - 8] | ((l & 0xF) << 4));
                l = int8_t(l >> 4);
                y[i].scales[j % 4 + 8] = uint8_t(y[i].scales[j % 4 + 8] | (l << (2 * (j / 4))));
            }
            y[i].d = f2h(1 / iscale);
        } else {
            y[i].d = f2h(0.f);
        }
        int8_t sc[16];
        unpack_q3_k_scales(y[i].scales, sc);
        for (int j = 0; j < 16; ++j) {
            const float d = h2f(y[i].d) * float(sc[j] - 32);
            if (d == 0) continue;
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] = int8_t(std::clamp(nearest_int(x[16 * j + ii] / d), -4, 3) + 4);
        }
        std::memset(y[i].hmask, 0, sizeof y[i].hmask);
        // the high bit of element j goes to bit j/32 of hmask[j % 32]
        for (int j = 0; j < kQKK; ++j) {
            if (L[j] > 3) {
                y[i].hmask[j % 32] = uint8_t(y[i].hmask[j % 32] | (1 << (j / 32)));
                L[j] = int8_t(L[j] - 4);
            }
        }
        for (int j = 0; j < kQKK; j += 128)
            for (int l = 0; l < 32; ++l)
                y[i].qs[j / 4 + l] = uint8_t(L[j + l] | (L[j + l + 32] << 2) |
                                             (L[j + l + 64] << 4) | (L[j + l + 96] << 6));
    }
}

// Shared by Q4_K and Q5_K: ref: ggml-quants.c quantize_row_q4_K_ref / quantize_row_q5_K_ref.
// Returns the per-element levels in L; writes d, dmin and the packed scales.
template <class Block>
void quantize_k_scales_mins(const float* x, Block& y, uint8_t* L, int nmax, float rmin,
                            int nstep) {
    uint8_t Laux[32];
    float weights[32], mins[8], scales[8];
    float max_scale = 0, max_min = 0;
    for (int j = 0; j < 8; ++j) {
        float sum_x2 = 0;
        for (int l = 0; l < 32; ++l) sum_x2 += x[32 * j + l] * x[32 * j + l];
        const float av_x = std::sqrt(sum_x2 / 32);
        for (int l = 0; l < 32; ++l) weights[l] = av_x + std::fabs(x[32 * j + l]);
        scales[j] = make_qkx2_quants(32, nmax, x + 32 * j, weights, L + 32 * j, &mins[j], Laux,
                                     rmin, 0.1f, nstep, false);
        max_scale = std::max(max_scale, scales[j]);
        max_min = std::max(max_min, mins[j]);
    }
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; ++j) {
        uint8_t ls = uint8_t(nearest_int(inv_scale * scales[j]));
        uint8_t lm = uint8_t(nearest_int(inv_min * mins[j]));
        ls = std::min<uint8_t>(63, ls);
        lm = std::min<uint8_t>(63, lm);
        if (j < 4) {
            y.scales[j] = ls;
            y.scales[j + 4] = lm;
        } else {
            y.scales[j + 4] = uint8_t((ls & 0xF) | ((lm & 0xF) << 4));
            y.scales[j - 4] = uint8_t(y.scales[j - 4] | ((ls >> 4) << 6));
            y.scales[j] = uint8_t(y.scales[j] | ((lm >> 4) << 6));
        }
    }
    y.d = f2h(max_scale / 63.f);
    y.dmin = f2h(max_min / 63.f);
    for (int j = 0; j < 8; ++j) {
        uint8_t sc, m;
        get_scale_min_k4(j, y.scales, &sc, &m);
        const float d = h2f(y.d) * float(sc);
        if (d == 0) continue;
        const float dm = h2f(y.dmin) * float(m);
        for (int ii = 0; ii < 32; ++ii)
            L[32 * j + ii] = uint8_t(std::clamp(nearest_int((x[32 * j + ii] + dm) / d), 0, nmax));
    }
}

void quantize_q4_k(const float* x, BlockQ4_K* y, int64_t nb) {
    uint8_t L[kQKK];
    for (int64_t i = 0; i < nb; ++i, x += kQKK) {
        quantize_k_scales_mins(x, y[i], L, 15, -1.f, 20);
        uint8_t* q = y[i].qs;
        for (int j = 0; j < kQKK; j += 64, q += 32)
            for (int l = 0; l < 32; ++l) q[l] = uint8_t(L[j + l] | (L[j + l + 32] << 4));
    }
}

void quantize_q5_k(const float* x, BlockQ5_K* y, int64_t nb) {
    uint8_t L[kQKK];
    for (int64_t i = 0; i < nb; ++i, x += kQKK) {
        quantize_k_scales_mins(x, y[i], L, 31, -0.5f, 15);
        uint8_t* qh = y[i].qh;
        uint8_t* ql = y[i].qs;
        std::memset(qh, 0, 32);
        uint8_t m1 = 1, m2 = 2;
        for (int n = 0; n < kQKK; n += 64, ql += 32, m1 = uint8_t(m1 << 2), m2 = uint8_t(m2 << 2)) {
            for (int j = 0; j < 32; ++j) {
                int l1 = L[n + j], l2 = L[n + j + 32];
                if (l1 > 15) l1 -= 16, qh[j] = uint8_t(qh[j] | m1);
                if (l2 > 15) l2 -= 16, qh[j] = uint8_t(qh[j] | m2);
                ql[j] = uint8_t(l1 | (l2 << 4));
            }
        }
    }
}

// ref: ggml-quants.c quantize_row_q6_K_ref
void quantize_q6_k(const float* x, BlockQ6_K* y, int64_t nb) {
    int8_t L[kQKK];
    float scales[16];
    for (int64_t i = 0; i < nb; ++i, x += kQKK) {
        float max_scale = 0, max_abs_scale = 0;
        for (int ib = 0; ib < 16; ++ib) {
            scales[ib] = make_qx_quants(16, 32, x + 16 * ib, L + 16 * ib);
            if (std::fabs(scales[ib]) > max_abs_scale)
                max_abs_scale = std::fabs(scales[ib]), max_scale = scales[ib];
        }
        if (max_abs_scale < kGroupMaxEps) {
            std::memset(&y[i], 0, sizeof(BlockQ6_K));
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[i].d = f2h(1 / iscale);
        for (int ib = 0; ib < 16; ++ib)
            y[i].scales[ib] = int8_t(std::min(127, nearest_int(iscale * scales[ib])));
        for (int j = 0; j < 16; ++j) {
            const float d = h2f(y[i].d) * float(y[i].scales[j]);
            if (d == 0) continue;
            for (int ii = 0; ii < 16; ++ii)
                L[16 * j + ii] = int8_t(std::clamp(nearest_int(x[16 * j + ii] / d), -32, 31) + 32);
        }
        uint8_t* ql = y[i].ql;
        uint8_t* qh = y[i].qh;
        for (int j = 0; j < kQKK; j += 128, ql += 64, qh += 32) {
            for (int l = 0; l < 32; ++l) {
                const int q1 = L[j + l] & 0xF, q2 = L[j + l + 32] & 0xF;
                const int q3 = L[j + l + 64] & 0xF, q4 = L[j + l + 96] & 0xF;
                ql[l] = uint8_t(q1 | (q3 << 4));
                ql[l + 32] = uint8_t(q2 | (q4 << 4));
                qh[l] = uint8_t((L[j + l] >> 4) | ((L[j + l + 32] >> 4) << 2) |
                                ((L[j + l + 64] >> 4) << 4) | ((L[j + l + 96] >> 4) << 6));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Dot products. ref: ggml-cpu/quants.c ggml_vec_dot_*_generic — same integer sums, same float
// operation order.

float dot_q4_0(const BlockQ4_0* x, const BlockQ8_0* y, int64_t nb) {
    float sumf = 0;
    for (int64_t i = 0; i < nb; ++i) {
        int s0 = 0, s1 = 0;
        for (int j = 0; j < kQK / 2; ++j) {
            s0 += ((x[i].qs[j] & 0xF) - 8) * y[i].qs[j];
            s1 += ((x[i].qs[j] >> 4) - 8) * y[i].qs[j + kQK / 2];
        }
        sumf += float(s0 + s1) * h2f(x[i].d) * h2f(y[i].d);
    }
    return sumf;
}

float dot_q4_1(const BlockQ4_1* x, const BlockQ8_1* y, int64_t nb) {
    float sumf = 0;
    for (int64_t i = 0; i < nb; ++i) {
        int s0 = 0, s1 = 0;
        for (int j = 0; j < kQK / 2; ++j) {
            s0 += (x[i].qs[j] & 0xF) * y[i].qs[j];
            s1 += (x[i].qs[j] >> 4) * y[i].qs[j + kQK / 2];
        }
        sumf += (h2f(x[i].d) * h2f(y[i].d)) * float(s0 + s1) + h2f(x[i].m) * h2f(y[i].s);
    }
    return sumf;
}

float dot_q5_0(const BlockQ5_0* x, const BlockQ8_0* y, int64_t nb) {
    float sumf = 0;
    for (int64_t i = 0; i < nb; ++i) {
        const uint32_t qh = load_u32(x[i].qh);
        int s0 = 0, s1 = 0;
        for (int j = 0; j < kQK / 2; ++j) {
            const int h0 = ((qh >> j) << 4) & 0x10;
            const int h1 = (qh >> (j + 12)) & 0x10;
            s0 += (((x[i].qs[j] & 0xF) | h0) - 16) * y[i].qs[j];
            s1 += (((x[i].qs[j] >> 4) | h1) - 16) * y[i].qs[j + kQK / 2];
        }
        sumf += (h2f(x[i].d) * h2f(y[i].d)) * float(s0 + s1);
    }
    return sumf;
}

float dot_q5_1(const BlockQ5_1* x, const BlockQ8_1* y, int64_t nb) {
    float sumf = 0;
    for (int64_t i = 0; i < nb; ++i) {
        const uint32_t qh = load_u32(x[i].qh);
        int s0 = 0, s1 = 0;
        for (int j = 0; j < kQK / 2; ++j) {
            const int h0 = ((qh >> j) << 4) & 0x10;
            const int h1 = (qh >> (j + 12)) & 0x10;
            s0 += ((x[i].qs[j] & 0xF) | h0) * y[i].qs[j];
            s1 += ((x[i].qs[j] >> 4) | h1) * y[i].qs[j + kQK / 2];
        }
        sumf += (h2f(x[i].d) * h2f(y[i].d)) * float(s0 + s1) + h2f(x[i].m) * h2f(y[i].s);
    }
    return sumf;
}

float dot_q8_0(const BlockQ8_0* x, const BlockQ8_0* y, int64_t nb) {
    float sumf = 0;
    for (int64_t i = 0; i < nb; ++i) {
        int s = 0;
        for (int j = 0; j < kQK; ++j) s += x[i].qs[j] * y[i].qs[j];
        sumf += float(s) * (h2f(x[i].d) * h2f(y[i].d));
    }
    return sumf;
}

float dot_q2_k(const BlockQ2_K* x, const BlockQ8_K* y, int64_t nb) {
    float sumf = 0;
    for (int64_t i = 0; i < nb; ++i) {
        const uint8_t* q2 = x[i].qs;
        const int8_t* q8 = y[i].qs;
        const uint8_t* sc = x[i].scales;
        int summs = 0;
        for (int j = 0; j < 16; ++j) summs += y[i].bsums[j] * (sc[j] >> 4);
        const float dall = y[i].d * h2f(x[i].d);
        const float dmin = y[i].d * h2f(x[i].dmin);
        int isum = 0, is = 0;
        for (int half = 0; half < 2; ++half, q2 += 32) {
            for (int shift = 0; shift < 8; shift += 2, q8 += 32) {
                for (int part = 0; part < 2; ++part) {
                    const int d = sc[is++] & 0xF;
                    int isuml = 0;
                    for (int l = 16 * part; l < 16 * part + 16; ++l)
                        isuml += q8[l] * ((q2[l] >> shift) & 3);
                    isum += d * isuml;
                }
            }
        }
        sumf += dall * float(isum) - dmin * float(summs);
    }
    return sumf;
}

// The generic k-quant kernels unpack each block to int8 a[256], accumulate scale*q8*a into 8
// int32 lanes (lane = index mod 8) and add d*lane into 8 float sums kept across blocks.
struct LaneSums {
    float sums[8] = {};
    void add_block(const int8_t* a, const int8_t* q8, const int* scale_of_8chunk, float d) {
        int32_t aux32[8] = {};
        for (int c = 0; c < kQKK / 8; ++c)
            for (int l = 0; l < 8; ++l)
                aux32[l] += scale_of_8chunk[c] * int16_t(q8[8 * c + l] * a[8 * c + l]);
        for (int l = 0; l < 8; ++l) sums[l] += d * float(aux32[l]);
    }
    float finish(float sumf) const {
        for (int l = 0; l < 8; ++l) sumf += sums[l];
        return sumf;
    }
};

float dot_q3_k(const BlockQ3_K* x, const BlockQ8_K* y, int64_t nb) {
    LaneSums acc;
    int8_t a[kQKK];
    int scale8[kQKK / 8];
    for (int64_t i = 0; i < nb; ++i) {
        const uint8_t* q3 = x[i].qs;
        const uint8_t* hm = x[i].hmask;
        int8_t* p = a;
        uint8_t m = 1;
        for (int half = 0; half < 2; ++half, q3 += 32)
            for (int shift = 0; shift < 8; shift += 2, p += 32, m = uint8_t(m << 1))
                for (int l = 0; l < 32; ++l)
                    p[l] = int8_t(((q3[l] >> shift) & 3) - ((hm[l] & m) ? 0 : 4));
        int8_t sc[16];
        unpack_q3_k_scales(x[i].scales, sc);
        for (int c = 0; c < kQKK / 8; ++c) scale8[c] = sc[c / 2] - 32;
        acc.add_block(a, y[i].qs, scale8, h2f(x[i].d) * y[i].d);
    }
    return acc.finish(0.f);
}

// Q4_K / Q5_K scale+min unpacking via the kmask trick of the generic kernel.
inline void unpack_k4_scales_mins(const uint8_t* packed, uint8_t scales[8], uint8_t mins[8]) {
    for (int j = 0; j < 8; ++j) get_scale_min_k4(j, packed, &scales[j], &mins[j]);
}

template <class Block>
float dot_q45_k(const Block* x, const BlockQ8_K* y, int64_t nb) {
    LaneSums acc;
    float sumf = 0;
    int8_t a[kQKK];
    int scale8[kQKK / 8];
    for (int64_t i = 0; i < nb; ++i) {
        const uint8_t* q4 = x[i].qs;
        int8_t* p = a;
        for (int c = 0; c < 4; ++c, q4 += 32, p += 64) {
            for (int l = 0; l < 32; ++l) {
                p[l] = int8_t(q4[l] & 0xF);
                p[l + 32] = int8_t(q4[l] >> 4);
            }
            if constexpr (std::is_same_v<Block, BlockQ5_K>) {
                const uint8_t* hm = x[i].qh;
                for (int l = 0; l < 32; ++l) {
                    p[l] = int8_t(p[l] + ((hm[l] >> (2 * c)) & 1) * 16);
                    p[l + 32] = int8_t(p[l + 32] + ((hm[l] >> (2 * c + 1)) & 1) * 16);
                }
            }
        }
        uint8_t scales[8], mins[8];
        unpack_k4_scales_mins(x[i].scales, scales, mins);
        int sumi = 0;
        for (int j = 0; j < 16; ++j) sumi += y[i].bsums[j] * mins[j / 2];
        for (int c = 0; c < kQKK / 8; ++c) scale8[c] = scales[c / 4];
        acc.add_block(a, y[i].qs, scale8, h2f(x[i].d) * y[i].d);
        const float dmin = h2f(x[i].dmin) * y[i].d;
        sumf -= dmin * float(sumi);
    }
    return acc.finish(sumf);
}

float dot_q6_k(const BlockQ6_K* x, const BlockQ8_K* y, int64_t nb) {
    LaneSums acc;
    int8_t a[kQKK];
    int scale8[kQKK / 8];
    for (int64_t i = 0; i < nb; ++i) {
        const uint8_t* ql = x[i].ql;
        const uint8_t* qh = x[i].qh;
        for (int half = 0; half < 2; ++half, ql += 64, qh += 32) {
            int8_t* p = a + 128 * half;
            for (int l = 0; l < 32; ++l) {
                p[l] = int8_t(((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32);
                p[l + 32] = int8_t(((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32);
                p[l + 64] = int8_t(((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32);
                p[l + 96] = int8_t(((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32);
            }
        }
        for (int c = 0; c < kQKK / 8; ++c) scale8[c] = x[i].scales[c / 2];
        acc.add_block(a, y[i].qs, scale8, h2f(x[i].d) * y[i].d);
    }
    return acc.finish(0.f);
}

float dot_q8_k(const BlockQ8_K* x, const BlockQ8_K* y, int64_t nb) {
    float sumf = 0;
    for (int64_t i = 0; i < nb; ++i) {
        int s = 0;
        for (int j = 0; j < kQKK; ++j) s += x[i].qs[j] * y[i].qs[j];
        sumf += float(s) * (x[i].d * y[i].d);
    }
    return sumf;
}

// Unquantized dots: ggml sums in SIMD lanes (order unspecified); the reference sums in double,
// the most accurate answer, which the SIMD paths are compared with.
float dot_f32(const float* x, const float* y, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += double(x[i]) * double(y[i]);
    return float(s);
}

float dot_f16(const uint16_t* x, const uint16_t* y, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += double(h2f(x[i])) * double(h2f(y[i]));
    return float(s);
}

float dot_bf16(const uint16_t* x, const uint16_t* y, int64_t n) {
    double s = 0;
    for (int64_t i = 0; i < n; ++i) s += double(bf16_to_f32(x[i])) * double(bf16_to_f32(y[i]));
    return float(s);
}

[[noreturn]] void unsupported(const char* what, DType t) {
    throw Error(std::string(what) + ": type " + dtype_name(t) + " is not supported");
}

int64_t blocks_of(DType t, int64_t n) {
    const int bs = dtype_info(t).block_size;
    if (n < 0 || n % bs != 0)
        throw Error(std::string("row of ") + std::to_string(n) + " elements is not a multiple of " +
                    dtype_name(t) + "'s block size " + std::to_string(bs));
    return n / bs;
}

}  // namespace

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
    const int64_t nb = blocks_of(t, n);
    switch (t) {
        case DType::F32: std::memcpy(dst, src, size_t(n) * 4); return;
        case DType::F16: {
            auto s = static_cast<const uint16_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = h2f(s[i]);
            return;
        }
        case DType::BF16: {
            auto s = static_cast<const uint16_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
            return;
        }
        case DType::Q4_0: return dequantize_q4_0(static_cast<const BlockQ4_0*>(src), dst, nb);
        case DType::Q4_1: return dequantize_q4_1(static_cast<const BlockQ4_1*>(src), dst, nb);
        case DType::Q5_0: return dequantize_q5_0(static_cast<const BlockQ5_0*>(src), dst, nb);
        case DType::Q5_1: return dequantize_q5_1(static_cast<const BlockQ5_1*>(src), dst, nb);
        case DType::Q8_0: return dequantize_q8_0(static_cast<const BlockQ8_0*>(src), dst, nb);
        case DType::Q8_1: return dequantize_q8_1(static_cast<const BlockQ8_1*>(src), dst, nb);
        case DType::Q2_K: return dequantize_q2_k(static_cast<const BlockQ2_K*>(src), dst, nb);
        case DType::Q3_K: return dequantize_q3_k(static_cast<const BlockQ3_K*>(src), dst, nb);
        case DType::Q4_K: return dequantize_q4_k(static_cast<const BlockQ4_K*>(src), dst, nb);
        case DType::Q5_K: return dequantize_q5_k(static_cast<const BlockQ5_K*>(src), dst, nb);
        case DType::Q6_K: return dequantize_q6_k(static_cast<const BlockQ6_K*>(src), dst, nb);
        case DType::Q8_K: return dequantize_q8_k(static_cast<const BlockQ8_K*>(src), dst, nb);
    }
    unsupported("dequantize", t);
}

void quantize_row_weight(DType t, const float* src, void* dst, int64_t n) {
    const int64_t nb = blocks_of(t, n);
    switch (t) {
        case DType::Q4_0: return quantize_q4_0(src, static_cast<BlockQ4_0*>(dst), nb);
        case DType::Q4_1: return quantize_q4_1(src, static_cast<BlockQ4_1*>(dst), nb);
        case DType::Q5_0: return quantize_q5_0(src, static_cast<BlockQ5_0*>(dst), nb);
        case DType::Q5_1: return quantize_q5_1(src, static_cast<BlockQ5_1*>(dst), nb);
        case DType::Q8_0: return quantize_q8_0_weight(src, static_cast<BlockQ8_0*>(dst), nb);
        case DType::Q8_1: return quantize_q8_1_weight(src, static_cast<BlockQ8_1*>(dst), nb);
        case DType::Q2_K: return quantize_q2_k(src, static_cast<BlockQ2_K*>(dst), nb);
        case DType::Q3_K: return quantize_q3_k(src, static_cast<BlockQ3_K*>(dst), nb);
        case DType::Q4_K: return quantize_q4_k(src, static_cast<BlockQ4_K*>(dst), nb);
        case DType::Q5_K: return quantize_q5_k(src, static_cast<BlockQ5_K*>(dst), nb);
        case DType::Q6_K: return quantize_q6_k(src, static_cast<BlockQ6_K*>(dst), nb);
        default: return quantize_row_act(t, src, dst, n);
    }
}

void quantize_row_act(DType t, const float* src, void* dst, int64_t n) {
    const int64_t nb = blocks_of(t, n);
    switch (t) {
        case DType::F32: std::memcpy(dst, src, size_t(n) * 4); return;
        case DType::F16: {
            auto d = static_cast<uint16_t*>(dst);
            for (int64_t i = 0; i < n; ++i) d[i] = f2h(src[i]);
            return;
        }
        case DType::BF16: {
            auto d = static_cast<uint16_t*>(dst);
            for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
            return;
        }
        case DType::Q8_0: {
            auto y = static_cast<BlockQ8_0*>(dst);
            for (int64_t i = 0; i < nb; ++i) quantize_q8_act_block(src + i * kQK, y[i]);
            return;
        }
        case DType::Q8_1: {
            auto y = static_cast<BlockQ8_1*>(dst);
            for (int64_t i = 0; i < nb; ++i) y[i].s = f2h(quantize_q8_act_block(src + i * kQK, y[i]));
            return;
        }
        case DType::Q8_K: return quantize_q8_k(src, static_cast<BlockQ8_K*>(dst), nb);
        default: break;
    }
    unsupported("quantize (activation)", t);
}

float vec_dot(DType t, int64_t n, const void* w, const void* a) {
    const int64_t nb = blocks_of(t, n);
    switch (t) {
        case DType::F32:
            return dot_f32(static_cast<const float*>(w), static_cast<const float*>(a), n);
        case DType::F16:
            return dot_f16(static_cast<const uint16_t*>(w), static_cast<const uint16_t*>(a), n);
        case DType::BF16:
            return dot_bf16(static_cast<const uint16_t*>(w), static_cast<const uint16_t*>(a), n);
        case DType::Q4_0:
            return dot_q4_0(static_cast<const BlockQ4_0*>(w), static_cast<const BlockQ8_0*>(a), nb);
        case DType::Q4_1:
            return dot_q4_1(static_cast<const BlockQ4_1*>(w), static_cast<const BlockQ8_1*>(a), nb);
        case DType::Q5_0:
            return dot_q5_0(static_cast<const BlockQ5_0*>(w), static_cast<const BlockQ8_0*>(a), nb);
        case DType::Q5_1:
            return dot_q5_1(static_cast<const BlockQ5_1*>(w), static_cast<const BlockQ8_1*>(a), nb);
        case DType::Q8_0:
            return dot_q8_0(static_cast<const BlockQ8_0*>(w), static_cast<const BlockQ8_0*>(a), nb);
        case DType::Q2_K:
            return dot_q2_k(static_cast<const BlockQ2_K*>(w), static_cast<const BlockQ8_K*>(a), nb);
        case DType::Q3_K:
            return dot_q3_k(static_cast<const BlockQ3_K*>(w), static_cast<const BlockQ8_K*>(a), nb);
        case DType::Q4_K:
            return dot_q45_k(static_cast<const BlockQ4_K*>(w), static_cast<const BlockQ8_K*>(a), nb);
        case DType::Q5_K:
            return dot_q45_k(static_cast<const BlockQ5_K*>(w), static_cast<const BlockQ8_K*>(a), nb);
        case DType::Q6_K:
            return dot_q6_k(static_cast<const BlockQ6_K*>(w), static_cast<const BlockQ8_K*>(a), nb);
        case DType::Q8_K:
            return dot_q8_k(static_cast<const BlockQ8_K*>(w), static_cast<const BlockQ8_K*>(a), nb);
        default: break;
    }
    unsupported("vec_dot", t);
}

}  // namespace archlens::quant::ref
