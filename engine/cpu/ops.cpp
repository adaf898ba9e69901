#include "engine/cpu/ops.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "engine/core/error.h"
#include "engine/quant/quant.h"

namespace archlens::cpu {

void read_row(const Linear& t, int64_t row, float* out) {
    if (t.transposed) {  // column `row` of an [n_in][ld] float table
        for (int64_t i = 0; i < t.n_in; ++i) {
            float v;
            quant::dequantize_row(t.type, t.data + uint64_t(i * t.ld + row) * uint64_t(dtype_info(t.type).type_size), &v, 1);
            out[i] = v;
        }
        return;
    }
    const uint64_t rb = t.row_stride ? t.row_stride : *dtype_row_bytes(t.type, uint64_t(t.n_in));
    quant::dequantize_row(t.type, t.data + uint64_t(row) * rb, out, t.n_in);
}

void rms_norm(const float* x, const float* w, int64_t n, float eps, float* y) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
    const float scale = float(1.0 / std::sqrt(ss / double(n) + double(eps)));
    if (w)
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale * w[i];
    else
        for (int64_t i = 0; i < n; ++i) y[i] = x[i] * scale;
}

void layer_norm(const float* x, const float* w, const float* b, int64_t n, float eps, float* y) {
    double mean = 0;
    for (int64_t i = 0; i < n; ++i) mean += x[i];
    mean /= double(n);
    double var = 0;
    for (int64_t i = 0; i < n; ++i) var += (x[i] - mean) * (x[i] - mean);
    var /= double(n);
    const double inv = 1.0 / std::sqrt(var + double(eps));
    for (int64_t i = 0; i < n; ++i) {
        float v = float((x[i] - mean) * inv);
        if (w) v *= w[i];
        if (b) v += b[i];
        y[i] = v;
    }
}

static double yarn_corr_dim(double n_rot, double dim, double base, double max_pos) {
    return dim * std::log(max_pos / (n_rot * 2 * M_PI)) / (2 * std::log(base));
}
static double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

void rope_cos_sin(const RopeSpec& r, int64_t pos, float* out, const float* freq_factors) {
    const int half = r.n_rot / 2;
    double mscale = 1.0;
    double low = 0, high = 0;
    if (r.scaling == RopeScaling::Yarn) {
        low = std::max(0.0, std::floor(yarn_corr_dim(r.beta_fast, r.n_rot, r.theta, r.original_max_pos)));
        high = std::min(double(r.n_rot - 1), std::ceil(yarn_corr_dim(r.beta_slow, r.n_rot, r.theta, r.original_max_pos)));
        if (low == high) high += 0.001;
        mscale = yarn_mscale(r.factor, r.mscale) / yarn_mscale(r.factor, r.mscale_all_dim);
    }
    for (int i = 0; i < half; ++i) {
        double inv_freq = 1.0 / std::pow(double(r.theta), double(2 * i) / double(r.n_rot));
        if (freq_factors) {  // ref: ggml rope with freq_factors (GGUF rope_freqs.weight)
            const double ang = double(pos) * inv_freq / double(freq_factors[i]);
            out[2 * i] = float(std::cos(ang));
            out[2 * i + 1] = float(std::sin(ang));
            continue;
        }
        switch (r.scaling) {
            case RopeScaling::None: break;
            case RopeScaling::Linear: inv_freq /= r.factor; break;
            case RopeScaling::Llama3: {
                // ref: HF _compute_llama3_parameters
                const double old = r.original_max_pos, lf = r.low_freq_factor, hf = r.high_freq_factor;
                const double wavelen = 2 * M_PI / inv_freq;
                if (wavelen > old / lf) {
                    inv_freq /= r.factor;
                } else if (wavelen >= old / hf) {
                    const double smooth = (old / wavelen - lf) / (hf - lf);
                    inv_freq = (1 - smooth) * inv_freq / r.factor + smooth * inv_freq;
                }
                break;
            }
            case RopeScaling::Yarn: {
                // ref: DeepSeek-V3 DeepseekV3YarnRotaryEmbedding
                double ramp = std::clamp((double(i) - low) / (high - low), 0.0, 1.0);
                double extra_mask = 1.0 - ramp;
                inv_freq = (inv_freq / r.factor) * (1 - extra_mask) + inv_freq * extra_mask;
                break;
            }
        }
        const double ang = double(pos) * inv_freq;
        out[2 * i] = float(std::cos(ang) * mscale);
        out[2 * i + 1] = float(std::sin(ang) * mscale);
    }
}

void rope_apply(float* h, int n_rot, RopeStyle style, const float* cs) {
    const int half = n_rot / 2;
    if (style == RopeStyle::Neox) {
        for (int i = 0; i < half; ++i) {
            const float c = cs[2 * i], s = cs[2 * i + 1];
            const float a = h[i], b = h[i + half];
            h[i] = a * c - b * s;
            h[i + half] = b * c + a * s;
        }
    } else {
        for (int i = 0; i < half; ++i) {
            const float c = cs[2 * i], s = cs[2 * i + 1];
            const float a = h[2 * i], b = h[2 * i + 1];
            h[2 * i] = a * c - b * s;
            h[2 * i + 1] = b * c + a * s;
        }
    }
}

float activation(Activation a, float x) {
    switch (a) {
        case Activation::SiLU: return x / (1.f + std::exp(-x));
        case Activation::GELU: return 0.5f * x * (1.f + std::erf(x * float(M_SQRT1_2)));
        case Activation::GELUTanh: {
            const float k = 0.7978845608028654f;  // sqrt(2/pi)
            return 0.5f * x * (1.f + std::tanh(k * (x + 0.044715f * x * x * x)));
        }
    }
    return x;
}

namespace {

#if defined(__x86_64__)
// GCC 12's avx512fintrin.h (reduce helpers) trips -Wuninitialized on its own temporaries.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
bool have_avx512() {
    static const bool yes = [] {
        __builtin_cpu_init();
        return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    }();
    return yes;
}

// ref: ggml-cpu llamafile/sgemm.cpp tinyBLAS (f32, __m512): one accumulator, 16 lanes per FMA,
// then _mm512_reduce_add_ps; the tail (n % 16) is added in order.
__attribute__((target("avx512f,avx512dq,fma"))) float dot_f32_avx512(const float* a, const float* b, int64_t n) {
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), acc);
    float s = _mm512_reduce_add_ps(acc);
    for (; i < n; ++i) s += a[i] * b[i];
    return s;
}

__attribute__((target("avx512f,avx512dq,fma"))) void axpy_f32_avx512(float a, const float* x, float* y, int64_t n) {
    const __m512 va = _mm512_set1_ps(a);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) _mm512_storeu_ps(y + i, _mm512_fmadd_ps(va, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (; i < n; ++i) y[i] += a * x[i];
}

// Eight reductions at once, each with exactly _mm512_reduce_add_ps's pairing (halves: lanes i and
// i+8, then i and i+4, i and i+2, i and i+1), so every result equals dot_f32's bit for bit.
__attribute__((target("avx512f,avx512dq,fma"))) inline void reduce8(const __m512* v, float* out, int nk) {
    __m512 p[4], q[2];
    for (int k = 0; k < 4; ++k)
        p[k] = _mm512_add_ps(_mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0x44),
                             _mm512_shuffle_f32x4(v[2 * k], v[2 * k + 1], 0xEE));
    for (int k = 0; k < 2; ++k)
        q[k] = _mm512_add_ps(_mm512_shuffle_f32x4(p[2 * k], p[2 * k + 1], 0x88),
                             _mm512_shuffle_f32x4(p[2 * k], p[2 * k + 1], 0xDD));
    // quarter k of q[0] holds v[k]'s four partial sums, of q[1] v[k + 4]'s
    const __m512 r = _mm512_add_ps(_mm512_shuffle_ps(q[0], q[1], 0x44), _mm512_shuffle_ps(q[0], q[1], 0xEE));
    const __m512 f = _mm512_add_ps(_mm512_shuffle_ps(r, r, 0x88), _mm512_shuffle_ps(r, r, 0xDD));
    // quarter k of f: [v[k], v[k + 4], v[k], v[k + 4]]
    const __m512i idx = _mm512_setr_epi32(0, 4, 8, 12, 1, 5, 9, 13, 0, 0, 0, 0, 0, 0, 0, 0);
    _mm512_mask_storeu_ps(out, __mmask16((1u << nk) - 1), _mm512_permutexvar_ps(idx, f));
}

// out[qi * ldo + j] = dot_f32(q[qi], k[j], n) for NQ queries sharing each key load (n % 16 == 0).
// Keys/values as f32 or f16 (the f16 KV cache): 16 lanes loaded as f32 either way.
__attribute__((target("avx512f,avx512dq,fma"))) inline __m512 load16(const float* p) { return _mm512_loadu_ps(p); }
__attribute__((target("avx512f,avx512dq,fma"))) inline __m512 load16(const uint16_t* p) {
    return _mm512_cvtph_ps(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
}

template <int NQ, class KT>
__attribute__((target("avx512f,avx512dq,fma"))) void dot_keys_avx512(const float* const* q, const KT* const* k,
                                                                     int nk, int64_t n, float* out, int64_t ldo) {
    for (int j0 = 0; j0 < nk; j0 += 8) {
        const int m = std::min(8, nk - j0);
        const KT* kp[8];
        for (int j = 0; j < 8; ++j) kp[j] = k[j0 + std::min(j, m - 1)];
        __m512 acc[NQ][8];
        for (int a = 0; a < NQ; ++a)
            for (int j = 0; j < 8; ++j) acc[a][j] = _mm512_setzero_ps();
        for (int64_t i = 0; i < n; i += 16) {
            __m512 qv[NQ];
            for (int a = 0; a < NQ; ++a) qv[a] = _mm512_loadu_ps(q[a] + i);
            for (int j = 0; j < 8; ++j) {
                const __m512 kv = load16(kp[j] + i);
                for (int a = 0; a < NQ; ++a) acc[a][j] = _mm512_fmadd_ps(qv[a], kv, acc[a][j]);
            }
        }
        for (int a = 0; a < NQ; ++a) reduce8(acc[a], out + a * ldo + j0, m);
    }
}

// Four queries (two tokens of a two-head group) against keys four at a time, each key row loaded
// once for all four: the same per-(query, key) FMA sequence as dot_keys_avx512 and the same
// reduction (reduce8, its last four inputs repeats), so the same bits.
template <class KT>
__attribute__((target("avx512f,avx512dq,fma"))) void dot_keys4_avx512(const float* const* q, const KT* const* k, int nk,
                                                                      int64_t n, float* out, int64_t ldo) {
    for (int j0 = 0; j0 < nk; j0 += 4) {
        const int m = std::min(4, nk - j0);
        const KT* kp[4];
        for (int j = 0; j < 4; ++j) kp[j] = k[j0 + std::min(j, m - 1)];
        __m512 acc[4][4];
        for (int a = 0; a < 4; ++a)
            for (int j = 0; j < 4; ++j) acc[a][j] = _mm512_setzero_ps();
        for (int64_t i = 0; i < n; i += 16) {
            __m512 qv[4];
            for (int a = 0; a < 4; ++a) qv[a] = _mm512_loadu_ps(q[a] + i);
            for (int j = 0; j < 4; ++j) {
                const __m512 kv = load16(kp[j] + i);
                for (int a = 0; a < 4; ++a) acc[a][j] = _mm512_fmadd_ps(qv[a], kv, acc[a][j]);
            }
        }
        for (int a = 0; a < 4; ++a) {
            const __m512 v8[8] = {acc[a][0], acc[a][1], acc[a][2], acc[a][3], acc[a][0], acc[a][1], acc[a][2], acc[a][3]};
            reduce8(v8, out + a * ldo + j0, m);
        }
    }
}

// o[qi][0..n) = Σ_j p[qi * ldp + j] · v[j][0..n), keys in order (the FMA sequence of repeated
// axpy_f32 into a zeroed o), NQ outputs sharing each value load, in slabs of 128 floats held in
// registers (n % 16 == 0).
template <int NQ, class VT>
__attribute__((target("avx512f,avx512dq,fma"))) void weighted_sum_avx512(const float* p, int64_t ldp, const VT* const* v,
                                                                         int nk, int64_t n, float* const* o, bool accumulate) {
    for (int64_t c0 = 0; c0 < n; c0 += 128) {
        const int nc = int(std::min<int64_t>(128, n - c0) / 16);
        __m512 acc[NQ][8];
        for (int a = 0; a < NQ; ++a)
            for (int c = 0; c < 8; ++c) acc[a][c] = accumulate && c < nc ? _mm512_loadu_ps(o[a] + c0 + 16 * c) : _mm512_setzero_ps();
        if (nc == 8) {
            for (int j = 0; j < nk; ++j) {
                const VT* vj = v[j] + c0;
                __m512 pa[NQ];
                for (int a = 0; a < NQ; ++a) pa[a] = _mm512_set1_ps(p[a * ldp + j]);
                for (int c = 0; c < 8; ++c) {
                    const __m512 x = load16(vj + 16 * c);
                    for (int a = 0; a < NQ; ++a) acc[a][c] = _mm512_fmadd_ps(pa[a], x, acc[a][c]);
                }
            }
        } else {
            for (int j = 0; j < nk; ++j) {
                const VT* vj = v[j] + c0;
                for (int c = 0; c < nc; ++c) {
                    const __m512 x = load16(vj + 16 * c);
                    for (int a = 0; a < NQ; ++a) acc[a][c] = _mm512_fmadd_ps(_mm512_set1_ps(p[a * ldp + j]), x, acc[a][c]);
                }
            }
        }
        for (int a = 0; a < NQ; ++a)
            for (int c = 0; c < nc; ++c) _mm512_storeu_ps(o[a] + c0 + 16 * c, acc[a][c]);
    }
}

// Four queries sharing each value load, in slabs of 64 floats (16 accumulators): the same
// per-element FMA chain as weighted_sum_avx512.
template <class VT>
__attribute__((target("avx512f,avx512dq,fma"))) void weighted_sum4_avx512(const float* p, int64_t ldp, const VT* const* v,
                                                                          int nk, int64_t n, float* const* o, bool accumulate) {
    for (int64_t c0 = 0; c0 < n; c0 += 64) {
        const int nc = int(std::min<int64_t>(64, n - c0) / 16);
        __m512 acc[4][4];
        for (int a = 0; a < 4; ++a)
            for (int c = 0; c < 4; ++c) acc[a][c] = accumulate && c < nc ? _mm512_loadu_ps(o[a] + c0 + 16 * c) : _mm512_setzero_ps();
        for (int j = 0; j < nk; ++j) {
            const VT* vj = v[j] + c0;
            __m512 pa[4];
            for (int a = 0; a < 4; ++a) pa[a] = _mm512_set1_ps(p[a * ldp + j]);
            for (int c = 0; c < nc; ++c) {
                const __m512 x = load16(vj + 16 * c);
                for (int a = 0; a < 4; ++a) acc[a][c] = _mm512_fmadd_ps(pa[a], x, acc[a][c]);
            }
        }
        for (int a = 0; a < 4; ++a)
            for (int c = 0; c < nc; ++c) _mm512_storeu_ps(o[a] + c0 + 16 * c, acc[a][c]);
    }
}

// e^x for 16 lanes (Cephes expf: x = n·ln2 + r, degree-6 polynomial, 2^n by vscalefps); within
// about 1 ulp of std::exp, underflowing to 0 below -104.
__attribute__((target("avx512f,avx512dq,fma"))) inline __m512 exp_avx512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7228f)), _mm512_set1_ps(-104.0f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504088896341f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.9875691500e-4f);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    const __m512 y = _mm512_add_ps(_mm512_fmadd_ps(_mm512_mul_ps(p, r), r, r), _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(y, n);
}

__attribute__((target("avx512f,avx512dq,fma"))) void softmax_avx512(float* x, int64_t n) {
    __m512 vm = _mm512_set1_ps(-INFINITY);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) vm = _mm512_max_ps(vm, _mm512_loadu_ps(x + i));
    float m = _mm512_reduce_max_ps(vm);
    for (; i < n; ++i) m = std::max(m, x[i]);
    const __m512 mm = _mm512_set1_ps(m);
    __m512d s0 = _mm512_setzero_pd(), s1 = _mm512_setzero_pd();
    for (i = 0; i + 16 <= n; i += 16) {
        const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), mm));
        _mm512_storeu_ps(x + i, e);
        s0 = _mm512_add_pd(s0, _mm512_cvtps_pd(_mm512_castps512_ps256(e)));
        s1 = _mm512_add_pd(s1, _mm512_cvtps_pd(_mm512_extractf32x8_ps(e, 1)));
    }
    double sum = _mm512_reduce_add_pd(_mm512_add_pd(s0, s1));
    for (; i < n; ++i) {
        x[i] = std::exp(x[i] - m);
        sum += x[i];
    }
    const float inv = float(1.0 / sum);
    const __m512 vi = _mm512_set1_ps(inv);
    for (i = 0; i + 16 <= n; i += 16) _mm512_storeu_ps(x + i, _mm512_mul_ps(_mm512_loadu_ps(x + i), vi));
    for (; i < n; ++i) x[i] *= inv;
}
#pragma GCC diagnostic pop
#endif

}  // namespace

float dot_f32(const float* a, const float* b, int64_t n) {
#if defined(__x86_64__)
    if (have_avx512()) return dot_f32_avx512(a, b, n);
#endif
    float s = 0;
    for (int64_t i = 0; i < n; ++i) s += a[i] * b[i];
    return s;
}

void axpy_f32(float a, const float* x, float* y, int64_t n) {
#if defined(__x86_64__)
    if (have_avx512()) return axpy_f32_avx512(a, x, y, n);
#endif
    for (int64_t i = 0; i < n; ++i) y[i] += a * x[i];
}

namespace {

// f16 rows widened to f32 for the portable path (the AVX-512 kernels load them directly).
const float* widen(const float* x, int64_t, std::vector<float>&) { return x; }
const float* widen(const uint16_t* x, int64_t n, std::vector<float>& buf) {
    buf.resize(size_t(n));
    for (int64_t i = 0; i < n; ++i) buf[size_t(i)] = fp16_to_f32(x[i]);
    return buf.data();
}

constexpr int kKeyBlock = 32;  // keys (16 KiB of f32 rows at head_dim 128) shared by query groups in L1

template <class KT>
void dot_keys_any(const float* const* q, int nq, const KT* const* k, int nk, int64_t n, float* out, int64_t ldo) {
#if defined(__x86_64__)
    if (have_avx512() && n % 16 == 0) {
        // More than four queries: keys in blocks of kKeyBlock, every query group over a block
        // before the next, so that each key row comes from memory once and from L1 after that.
        const int kb = nq > 4 ? kKeyBlock : nk;
        for (int j0 = 0; j0 < nk; j0 += kb) {
            const int m = std::min(kb, nk - j0);
            int a = 0;
            for (; a + 4 <= nq; a += 4) dot_keys4_avx512(q + a, k + j0, m, n, out + a * ldo + j0, ldo);
            for (; a + 2 <= nq; a += 2) dot_keys_avx512<2>(q + a, k + j0, m, n, out + a * ldo + j0, ldo);
            if (a < nq) dot_keys_avx512<1>(q + a, k + j0, m, n, out + a * ldo + j0, ldo);
        }
        return;
    }
#endif
    std::vector<float> buf;
    for (int j = 0; j < nk; ++j) {
        const float* kj = widen(k[j], n, buf);
        for (int a = 0; a < nq; ++a) out[a * ldo + j] = dot_f32(q[a], kj, n);
    }
}

template <class VT>
void weighted_sum_any(const float* p, int64_t ldp, int nq, const VT* const* v, int nk, int64_t n, float* const* o,
                      bool accumulate) {
#if defined(__x86_64__)
    if (have_avx512() && n % 16 == 0) {
        // As dot_keys: more than four queries take the values a block at a time, each query group
        // continuing its sums from block to block (the same chain as one pass).
        const int kb = nq > 4 ? kKeyBlock : std::max(nk, 1);
        for (int j0 = 0; j0 < nk || (nk == 0 && j0 == 0); j0 += kb) {
            const int m = std::min(kb, nk - j0);
            const bool acc = accumulate || j0 > 0;
            int a = 0;
            for (; a + 4 <= nq; a += 4) weighted_sum4_avx512(p + a * ldp + j0, ldp, v + j0, m, n, o + a, acc);
            for (; a + 2 <= nq; a += 2) weighted_sum_avx512<2>(p + a * ldp + j0, ldp, v + j0, m, n, o + a, acc);
            if (a < nq) weighted_sum_avx512<1>(p + a * ldp + j0, ldp, v + j0, m, n, o + a, acc);
        }
        return;
    }
#endif
    std::vector<float> buf;
    if (!accumulate)
        for (int a = 0; a < nq; ++a) std::fill(o[a], o[a] + n, 0.f);
    for (int j = 0; j < nk; ++j) {
        const float* vj = widen(v[j], n, buf);
        for (int a = 0; a < nq; ++a) axpy_f32(p[a * ldp + j], vj, o[a], n);
    }
}

}  // namespace

void dot_keys(const float* const* q, int nq, const float* const* k, int nk, int64_t n, float* out, int64_t ldo) {
    dot_keys_any(q, nq, k, nk, n, out, ldo);
}
void dot_keys(const float* const* q, int nq, const uint16_t* const* k, int nk, int64_t n, float* out, int64_t ldo) {
    dot_keys_any(q, nq, k, nk, n, out, ldo);
}
void weighted_sum(const float* p, int64_t ldp, int nq, const float* const* v, int nk, int64_t n, float* const* o,
                  bool accumulate) {
    weighted_sum_any(p, ldp, nq, v, nk, n, o, accumulate);
}
void weighted_sum(const float* p, int64_t ldp, int nq, const uint16_t* const* v, int nk, int64_t n, float* const* o,
                  bool accumulate) {
    weighted_sum_any(p, ldp, nq, v, nk, n, o, accumulate);
}

#if defined(__x86_64__)
namespace {
__attribute__((target("avx2,f16c"))) void to_f16_f16c(float* x, int64_t n, uint16_t* out) {
    int64_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m128i h = _mm256_cvtps_ph(_mm256_loadu_ps(x + i), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
        _mm256_storeu_ps(x + i, _mm256_cvtph_ps(h));
    }
    for (; i < n; ++i) {
        out[i] = f32_to_fp16(x[i]);
        x[i] = fp16_to_f32(out[i]);
    }
}
}  // namespace
#endif

void to_f16(float* x, int64_t n, uint16_t* out) {
#if defined(__x86_64__)
    if (__builtin_cpu_supports("f16c")) return to_f16_f16c(x, n, out);
#endif
    for (int64_t i = 0; i < n; ++i) {
        out[i] = f32_to_fp16(x[i]);
        x[i] = fp16_to_f32(out[i]);
    }
}

void softmax_fast(float* x, int64_t n) {
#if defined(__x86_64__)
    if (have_avx512()) return softmax_avx512(x, n);
#endif
    softmax(x, n);
}

void softmax(float* x, int64_t n) {
    float m = -INFINITY;
    for (int64_t i = 0; i < n; ++i) m = std::max(m, x[i]);
    double sum = 0;
    for (int64_t i = 0; i < n; ++i) {
        x[i] = std::exp(x[i] - m);
        sum += x[i];
    }
    const float inv = float(1.0 / sum);
    for (int64_t i = 0; i < n; ++i) x[i] *= inv;
}

void gaussian_topk(float* r, int64_t n, float k) {
    double mean = 0, var = 0;
    for (int64_t i = 0; i < n; ++i) mean += r[i];
    mean /= double(n);
    for (int64_t i = 0; i < n; ++i) var += (r[i] - mean) * (r[i] - mean);
    const float cutoff = float(mean + std::sqrt(var / double(n)) * double(k));
    for (int64_t i = 0; i < n; ++i) r[i] = std::max(0.f, r[i] - cutoff);
}

void moe_route(const FfnSpec& f, const float* lg, const float* selection_bias, float* probs, int* sel, float* wts) {
    const int64_t E = f.n_experts, K = f.top_k;
    if (f.scoring == Scoring::Softmax) {
        std::copy(lg, lg + E, probs);
        softmax(probs, E);
    } else {
        for (int64_t e = 0; e < E; ++e) probs[e] = 1.f / (1.f + std::exp(-lg[e]));
    }
    // Selection score: the bias (noaux_tc) changes which experts win, not their weights.
    // Llama 4 selects by raw logit (same order as its sigmoid).
    std::vector<float> choose(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e)
        choose[size_t(e)] = f.weight_on_input ? lg[e] : probs[e] + (f.selection_bias ? selection_bias[e] : 0.f);
    if (f.n_group > 1) {
        // ref: DeepSeek-V3 MoEGate: group score = sum of the group's top-2 selection scores
        const int64_t per = E / f.n_group;
        std::vector<std::pair<float, int>> gs;
        for (int g = 0; g < f.n_group; ++g) {
            std::vector<float> v(choose.begin() + g * per, choose.begin() + (g + 1) * per);
            std::partial_sort(v.begin(), v.begin() + std::min<int64_t>(2, per), v.end(), std::greater<float>());
            float sc = v[0] + (per > 1 ? v[1] : 0.f);
            gs.push_back({sc, g});
        }
        std::stable_sort(gs.begin(), gs.end(), [](auto& x, auto& y) { return x.first > y.first; });
        std::vector<bool> keep(size_t(f.n_group), false);
        for (int g = 0; g < f.topk_group; ++g) keep[size_t(gs[size_t(g)].second)] = true;
        for (int64_t e = 0; e < E; ++e)
            if (!keep[size_t(e / per)]) choose[size_t(e)] = -INFINITY;
    }
    std::vector<int> idx(static_cast<size_t>(E));
    for (int64_t e = 0; e < E; ++e) idx[size_t(e)] = int(e);
    std::stable_sort(idx.begin(), idx.end(), [&](int x, int y) { return choose[size_t(x)] > choose[size_t(y)]; });
    float sum = 0;
    for (int64_t k = 0; k < K; ++k) {
        sel[k] = idx[size_t(k)];
        wts[k] = probs[idx[size_t(k)]];
        sum += probs[idx[size_t(k)]];
    }
    for (int64_t k = 0; k < K; ++k) {
        if (f.norm_topk) wts[k] /= sum;
        wts[k] *= f.routed_scale;
    }
}

void moe_record(const FfnSpec& f, int64_t T, int layer, int n_layers, int64_t pos0, const int* sel, const float* wts, const float* probs,
                const ProbeConfig& cfg, ProbeData& probes) {
    const int64_t E = f.n_experts, K = f.top_k;
    if (probes.expert_load.size() < size_t(n_layers)) probes.expert_load.resize(size_t(n_layers));
    auto& load = probes.expert_load[size_t(layer)];
    if (load.size() < size_t(E)) load.resize(size_t(E), 0);
    for (int64_t t = 0; t < T; ++t) {
        for (int64_t k = 0; k < K; ++k) load[size_t(sel[t * K + k])]++;
        if (cfg.routing) {
            RoutingRecord r;
            r.layer = layer;
            r.pos = pos0 + t;
            r.experts.assign(sel + t * K, sel + (t + 1) * K);
            r.weights.assign(wts + t * K, wts + (t + 1) * K);
            r.router_probs.assign(probs + t * E, probs + (t + 1) * E);
            probes.routing.push_back(std::move(r));
        }
    }
}

void moe_route_tokens(const FfnSpec& f, const float* logits, const float* selection_bias, int64_t T, int layer, int n_layers,
                      int64_t pos0, const ProbeConfig& cfg, ProbeData& probes, int* sel, float* wts) {
    const int64_t E = f.n_experts, K = f.top_k;
    std::vector<float> probs(static_cast<size_t>(T * E));
    for (int64_t t = 0; t < T; ++t) moe_route(f, logits + t * E, selection_bias, probs.data() + t * E, sel + t * K, wts + t * K);
    moe_record(f, T, layer, n_layers, pos0, sel, wts, probs.data(), cfg, probes);
}

}  // namespace archlens::cpu
