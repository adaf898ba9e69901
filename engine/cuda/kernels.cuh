// The forward pass's kernels (norms, RoPE, the attention heads' steps, attention and its probe,
// activations, the KV store, Gemma 3n's stream arithmetic, …), shared by the forward pass
// (cuda_session.cu) and the single-operation entry points the tests hold to the CPU
// (cuda_ops.cu): what is tested is what runs. Internal to engine/cuda.
#pragma once
#include "engine/cuda/cuda_api.h"
#include <cstdint>
#include <type_traits>

#include "engine/core/dtype.h"
#include "engine/cuda/check.cuh"
#include "engine/cuda/dequant.cuh"
#include "engine/model/spec.h"

// Each including file uses some of these: no warnings for the rest.
#if defined(__CUDACC__)
#pragma nv_diagnostic push
#pragma nv_diag_suppress 177
#elif defined(__GNUC__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-function"
#endif

namespace archlens::ARCHLENS_CUDA_NS {
namespace {

void check_launch(const char* kernel) { check(cudaGetLastError(), kernel); }

int blocks_for(int64_t n, int threads) { return int((n + threads - 1) / threads); }

// ---- reductions --------------------------------------------------------------------------------

// Sum / max over the block, returned to every thread. `red` holds 33 values of shared memory.
template <typename V>
__device__ V block_sum(V v, V* red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, n_warps = (blockDim.x + 31) >> 5;
    __syncthreads();  // red may still be read by a previous reduction
    if (lane == 0) red[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < n_warps ? red[lane] : V(0);
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) red[32] = v;
    }
    __syncthreads();
    return red[32];
}

__device__ float block_max(float v, float* red) {
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, n_warps = (blockDim.x + 31) >> 5;
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < n_warps ? red[lane] : -INFINITY;
        for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_down_sync(0xffffffffu, v, o));
        if (lane == 0) red[32] = v;
    }
    __syncthreads();
    return red[32];
}

// ---- kernels -----------------------------------------------------------------------------------

// Embedding gather: x[t] = row of `table` (any type dequant.cuh reads, as stored) × scale, or
// x[t] += that row when add; the row is ids[t], or the position *pos0 + t when ids is null (GPT-2's
// learned positions). grid T, as cpu::read_row reads rows.
__global__ void embed_rows_kernel(DType type, const uint8_t* table, size_t row_bytes, int D, const int* ids, const int64_t* pos0,
                                  float scale, bool add, float* x) {
    GRID_DEPENDENCY();
    const int t = blockIdx.x;
    const int64_t r = ids ? int64_t(ids[t]) : *pos0 + t;
    const uint8_t* row = table + size_t(r) * row_bytes;
    const int be = block_elems(type), bb = block_bytes(type);
    float* out = x + int64_t(t) * D;
    for (int i = threadIdx.x; i < D; i += blockDim.x) {
        const float v = dequant_element(type, row + size_t(i / be) * size_t(bb), i % be) * scale;
        out[i] = add ? out[i] + v : v;
    }
}

// v = p[0..7]: two 16-byte loads where p is 16-byte aligned (vec), else eight. A lane's eight
// activations are 32 bytes beside its neighbour's: eight 4-byte loads a lane would take the
// warp's loads eight memory transactions (or shared-memory bank conflicts) each, which capped the
// decode products at ~40% of the H200's bandwidth (2026-12-04).
__device__ __forceinline__ void load8(const float* p, bool vec, float (&v)[8]) {
    if (vec) {
        DEVICE_ALIGNED(p, 16);
        const float4 a = *reinterpret_cast<const float4*>(p), b = *reinterpret_cast<const float4*>(p + 4);
        v[0] = a.x, v[1] = a.y, v[2] = a.z, v[3] = a.w, v[4] = b.x, v[5] = b.y, v[6] = b.z, v[7] = b.w;
    } else {
#pragma unroll
        for (int j = 0; j < 8; ++j) v[j] = p[j];
    }
}

// A prompt's activations as a 16-bit product input: eight values a thread — two 16-byte loads, one
// 16-byte store where x and y are 16-byte aligned (vec), else eight of each. (One value a thread
// moved 6 bytes per 4-byte load and ran at ~1 TB/s on the H200: 11% of 8B's prefill, 2026-12-04.)
// v stored as an output of type f32, BF16 or F16 (round to nearest even)
__device__ __forceinline__ void to_out(float v, float& o) { o = v; }
__device__ __forceinline__ void to_out(float v, __nv_bfloat16& o) { o = __float2bfloat16_rn(v); }
__device__ __forceinline__ void to_out(float v, __half& o) { o = __float2half_rn(v); }
template <typename OT>
__device__ __forceinline__ void convert8(const float* x, OT* y, int64_t n, bool vec) {
    const int64_t i = (int64_t(blockIdx.x) * blockDim.x + threadIdx.x) * 8;
    if (vec && i + 8 <= n) {
        float v[8];
        load8(x + i, true, v);
        OT o[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) to_out(v[j], o[j]);
        uint4 pack;
        memcpy(&pack, o, 16);
        DEVICE_ALIGNED(y + i, 16);
        *reinterpret_cast<uint4*>(y + i) = pack;
    } else {
        for (int64_t j = i; j < n && j < i + 8; ++j) to_out(x[j], y[j]);
    }
}
__global__ void to_bf16_kernel(const float* x, __nv_bfloat16* y, int64_t n, bool vec) {
    GRID_DEPENDENCY();
    convert8(x, y, n, vec);
}
__global__ void to_f16_kernel(const float* x, __half* y, int64_t n, bool vec) {
    GRID_DEPENDENCY();
    convert8(x, y, n, vec);
}

__global__ void add_bias_kernel(float* y, const float* b, int64_t rows, int n) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < rows * n) y[i] += b[i % n];
}

__global__ void add_kernel(float* x, const float* y, int64_t n) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] += y[i];
}

// Llama 4's attention temperature tuning on the queries of NoPE layers: row t (position p) of
// [rows][n] times log(floor((p + 1) / floor_scale) + 1) · attn_scale + 1, in double as Session.
__global__ void temperature_kernel(float* x, int64_t rows, int n, const int64_t* pos0, double floor_scale, double attn_scale) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * n) return;
    const double p = double(*pos0 + i / n);
    x[i] *= float(log(floor((p + 1.0) / floor_scale) + 1.0) * attn_scale + 1.0);
}

// The logit lens of one row of logits: out[0] = the most probable id (the lowest on ties), out[1]
// its softmax probability, 1 / Σ exp(l - max). One block of kLensThreads.
constexpr int kLensThreads = 256;
__global__ void lens_kernel(const float* logits, int n, float* out) {
    GRID_DEPENDENCY();
    __shared__ float best[kLensThreads];
    __shared__ int best_i[kLensThreads];
    const int tid = threadIdx.x;
    float m = -INFINITY;
    int mi = 0x7fffffff;
    for (int i = tid; i < n; i += blockDim.x)
        if (logits[i] > m) m = logits[i], mi = i;  // strided: the first maximum of this thread's elements
    best[tid] = m;
    best_i[tid] = mi;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if (tid < o && (best[tid + o] > best[tid] || (best[tid + o] == best[tid] && best_i[tid + o] < best_i[tid]))) {
            best[tid] = best[tid + o];
            best_i[tid] = best_i[tid + o];
        }
        __syncthreads();
    }
    m = best[0];
    const int arg = best_i[0];
    __syncthreads();
    float sum = 0.f;
    for (int i = tid; i < n; i += blockDim.x) sum += expf(logits[i] - m);
    best[tid] = sum;
    __syncthreads();
    for (int o = blockDim.x / 2; o > 0; o >>= 1) {
        if (tid < o) best[tid] += best[tid + o];
        __syncthreads();
    }
    if (tid == 0) {
        out[0] = float(arg);
        out[1] = 1.f / best[0];
    }
}

// One row by the whole block: y = x / rms(x) (· w), the CPU's rms_norm; y may be shared memory
// (the mat-vec prologue's normalised input), published to the block before it returns; y may be x.
// Thread t sums its elements t, t + blockDim, … in that order, loaded kNormLoads at a time so that
// their loads are in flight together (a 4096-wide row, 256 threads: two round trips instead of one
// per element, or per four as unrolled — the decode mat-vecs' prologue, which every block of them
// runs before its weight loads). A masked slot adds 0·0, which leaves the sum's bits as they were:
// the values are those of the one-element-at-a-time loop. (Sixteen at a time and the row kept in
// registers took the norm mat-vecs from 64 registers to 96: fewer resident blocks.)
constexpr int kNormLoads = 8;
__device__ __forceinline__ void rms_norm_row(const float* xr, const float* w, int n, float eps, float* yr, float* red) {
    const int t = int(threadIdx.x), nt = int(blockDim.x);
    float ss = 0.f;
    for (int base = 0; base < n; base += kNormLoads * nt) {
        float v[kNormLoads];
#pragma unroll
        for (int k = 0; k < kNormLoads; ++k) {
            const int i = base + t + k * nt;
            v[k] = i < n ? xr[i] : 0.f;
        }
#pragma unroll
        for (int k = 0; k < kNormLoads; ++k) ss += v[k] * v[k];
    }
    ss = block_sum(ss, red);
    const float scale = rsqrtf(ss / float(n) + eps);
    for (int base = 0; base < n; base += kNormLoads * nt) {
        float wv[kNormLoads], xv[kNormLoads];
#pragma unroll
        for (int k = 0; k < kNormLoads; ++k) {
            const int i = base + t + k * nt;
            wv[k] = w && i < n ? w[i] : 1.f;
            xv[k] = i < n ? xr[i] : 0.f;
        }
#pragma unroll
        for (int k = 0; k < kNormLoads; ++k) {
            const int i = base + t + k * nt;
            if (i < n) yr[i] = xv[k] * scale * wv[k];
        }
    }
    __syncthreads();
}

// One block per row of n: y = x / rms(x) (· w).
__global__ void rms_norm_kernel(const float* x, const float* w, int n, float eps, float* y) {
    GRID_DEPENDENCY();
    __shared__ float red[33];
    rms_norm_row(x + int64_t(blockIdx.x) * n, w, n, eps, y + int64_t(blockIdx.x) * n, red);
}

// One block per row: x += y, then out = RMSNorm(x)·w — the residual add fused with the norm that
// follows it; the same sums in the same order as add_kernel then rms_norm_kernel (256 threads).
__global__ void add_rms_norm_kernel(float* x, const float* y, const float* w, int n, float eps, float* out) {
    GRID_DEPENDENCY();
    __shared__ float red[33];
    float* xr = x + int64_t(blockIdx.x) * n;
    const float* yr = y + int64_t(blockIdx.x) * n;
    float* orow = out + int64_t(blockIdx.x) * n;
    float ss = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        const float v = xr[i] + yr[i];
        xr[i] = v;
        ss += v * v;
    }
    ss = block_sum(ss, red);
    const float scale = rsqrtf(ss / float(n) + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) orow[i] = xr[i] * scale * (w ? w[i] : 1.f);
}

// One block per row: y = (x - mean) / sqrt(var + eps) (· w) (+ b), the CPU's layer_norm.
__global__ void layer_norm_kernel(const float* x, const float* w, const float* b, int n, float eps, float* y) {
    GRID_DEPENDENCY();
    __shared__ float red[33];
    const float* xr = x + int64_t(blockIdx.x) * n;
    float* yr = y + int64_t(blockIdx.x) * n;
    float s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) s += xr[i];
    const float mean = block_sum(s, red) / float(n);
    float v = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) v += (xr[i] - mean) * (xr[i] - mean);
    const float inv = rsqrtf(block_sum(v, red) / float(n) + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        float o = (xr[i] - mean) * inv;
        if (w) o *= w[i];
        if (b) o += b[i];
        yr[i] = o;
    }
}

// Positions are read from device memory (*pos0: the batch's first position), never passed by
// value, so that a captured decode step (CUDA graph) replays correctly at every position.

// grid (T, heads), n_rot / 2 threads: rotates head h of token t in x ([T][row] floats, heads of hd)
// with the cos/sin row of its position in the context's table cs[n_ctx][n_rot] (pairs (cos, sin));
// neox = rotate_half pairs (i, i + n_rot/2), else interleaved pairs (2i, 2i+1) — cpu::rope_apply.
__global__ void rope_kernel(float* x, int row, int hd, const float* cs, int n_rot, int neox, const int64_t* pos0) {
    GRID_DEPENDENCY();
    const int t = blockIdx.x, h = blockIdx.y, i = threadIdx.x, half = n_rot / 2;
    if (i >= half) return;
    float* v = x + int64_t(t) * row + int64_t(h) * hd;
    const int64_t r = (*pos0 + t) * n_rot;
    const float c = cs[r + 2 * i], s = cs[r + 2 * i + 1];
    const int ia = neox ? i : 2 * i, ib = neox ? i + half : 2 * i + 1;
    const float a = v[ia], b = v[ib];
    v[ia] = a * c - b * s;
    v[ib] = b * c + a * s;
}

// Copies T rows of `per` values for each of `heads` heads from src[t][heads][per] into the
// head-major cache [heads][cap][per] at positions pos0 + t (position j in slot j % cap: a ring for
// windowed layers, whose cache holds only the positions a query can still see).
// The cache's element type: f32, or f16 (--kv-type f16, as the CPU backend's: every key and value
// rounded to f16 when stored and widened exactly when read).
__device__ __forceinline__ float kv_ld(const float* p) { return *p; }
__device__ __forceinline__ float kv_ld(const __half* p) { return __half2float(*p); }
__device__ __forceinline__ void kv_st(float* p, float v) { *p = v; }
__device__ __forceinline__ void kv_st(__half* p, float v) { *p = __float2half_rn(v); }

template <typename KT>
__global__ void store_kv_kernel(const float* src, KT* cache, int64_t T, int heads, int per, int64_t cap, const int64_t* pos0) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= T * heads * per) return;
    const int64_t t = i / (int64_t(heads) * per), h = (i / per) % heads, d = i % per;
    kv_st(cache + (h * cap + (*pos0 + t) % cap) * per + d, src[i]);
}

constexpr int kAttnMaxDim = 1024;  // head_dim and v_head_dim up to this (MLA: kv_lora + rope = 576)

// What qkv_heads_kernel does to each head after the projections (AttentionSpec's steps).
struct HeadOps {
    const float *q_norm = nullptr, *k_norm = nullptr;  // per-head RMSNorm weights (qk_norm PerHead)
    bool qk_norm = false, v_norm = false, l2 = false;
    const float* rope = nullptr;  // cos/sin table [n_ctx][n_rot], or none (NoPE)
    int n_rot = 0, neox = 0;
    bool temperature = false;  // Llama 4's NoPE-layer query scaling
    double floor_scale = 0, attn_scale = 0;
    float eps = 0;
};

// The attention block between the projections and the attention itself, one block of
// kHeadThreads per (token t, head j) — j < H: query heads, then KV key heads, then KV value heads:
// per-head QK-norm, RoPE, Llama 4's L2 norm and temperature, Gemma 3n's V-norm, and the keys and
// values stored into the cache (a ring's slot). Queries go to q [T][H·hd]. Replaces split, norm,
// RoPE and store launches with one; every step computes as the separate kernels do.
constexpr int kHeadThreads = 128;

// The first element of the strided loops a thread takes in head_steps: its index among the first
// kHeadThreads threads, none (n) beyond them.
__device__ __forceinline__ int head_lane(int n) { return int(threadIdx.x) < kHeadThreads ? int(threadIdx.x) : n; }

// Head j's steps (see qkv_heads_kernel) on its row v [n] in shared memory, of token t at position
// p, for a block of kHeadThreads or more threads (all of them call it: it synchronises). Only the
// first kHeadThreads threads touch elements, in kHeadThreads strides, so a wider block computes the
// same sums in the same order (block_sum adds its extra warps' exact zeros).
template <typename KT>
__device__ void head_steps(float* v, float* red, int t, int j, int H, int KV, int hd, int vd, const HeadOps& o, float* q, KT* kc, KT* vc,
                           int64_t cap, int64_t p) {
    const bool is_q = j < H, is_k = !is_q && j < H + KV;
    const int h = is_q ? j : is_k ? j - H : j - H - KV, n = is_q || is_k ? hd : vd;
    const int d0 = head_lane(n);
    auto rms = [&](const float* w) {  // rms_norm_kernel's sums, in place
        float ss = 0.f;
        for (int d = d0; d < n; d += kHeadThreads) ss += v[d] * v[d];
        ss = block_sum(ss, red);  // also the barrier after the loads before
        const float scale = rsqrtf(ss / float(n) + o.eps);
        for (int d = d0; d < n; d += kHeadThreads) v[d] = v[d] * scale * (w ? w[d] : 1.f);
        __syncthreads();
    };
    __syncthreads();
    if (is_q || is_k) {
        if (o.qk_norm) rms(is_q ? o.q_norm : o.k_norm);
        if (o.rope) {
            const int half = o.n_rot / 2;
            for (int i = head_lane(half); i < half; i += kHeadThreads) {
                const float c = o.rope[p * o.n_rot + 2 * i], s = o.rope[p * o.n_rot + 2 * i + 1];
                const int ia = o.neox ? i : 2 * i, ib = o.neox ? i + half : 2 * i + 1;
                const float a = v[ia], b = v[ib];
                v[ia] = a * c - b * s;
                v[ib] = b * c + a * s;
            }
            __syncthreads();
        }
        if (o.l2) rms(nullptr);
        if (is_q && o.temperature) {
            const float f = float(log(floor((double(p) + 1.0) / o.floor_scale) + 1.0) * o.attn_scale + 1.0);
            for (int d = d0; d < n; d += kHeadThreads) v[d] *= f;
            __syncthreads();
        }
    } else if (o.v_norm) {
        rms(nullptr);
    }
    if (is_q) {
        for (int d = d0; d < n; d += kHeadThreads) q[(int64_t(t) * H + h) * hd + d] = v[d];
    } else {
        KT* c = (is_k ? kc : vc) + (int64_t(h) * cap + p % cap) * n;
        for (int d = d0; d < n; d += kHeadThreads) kv_st(c + d, v[d]);
    }
}

// The attention block between the projections and the attention itself, one block of
// kHeadThreads per (token t, head j) — j < H: query heads, then KV key heads, then KV value heads:
// per-head QK-norm, RoPE, Llama 4's L2 norm and temperature, Gemma 3n's V-norm, and the keys and
// values stored into the cache (a ring's slot). Queries go to q [T][H·hd]. Replaces split, norm,
// RoPE and store launches with one; every step computes as the separate kernels do.
template <typename KT>
__global__ void qkv_heads_kernel(const float* qs, const float* ks, const float* vs, int q_row, int k_row, int v_row, int H, int KV, int hd,
                                 int vd, HeadOps o, float* q, KT* kc, KT* vc, int64_t cap, const int64_t* pos0) {
    GRID_DEPENDENCY();
    __shared__ float v[kAttnMaxDim];
    __shared__ float red[33];
    const int t = blockIdx.x, j = blockIdx.y;
    const bool is_q = j < H, is_k = !is_q && j < H + KV;
    const int h = is_q ? j : is_k ? j - H : j - H - KV, n = is_q || is_k ? hd : vd;
    const float* src = (is_q ? qs : is_k ? ks : vs) + int64_t(t) * (is_q ? q_row : is_k ? k_row : v_row) + int64_t(h) * n;
    for (int d = head_lane(n); d < n; d += kHeadThreads) v[d] = src[d];
    head_steps<KT>(v, red, t, j, H, KV, hd, vd, o, q, kc, vc, cap, *pos0 + t);
}

// Splits GPT-2's fused [T][q | k | v] rows.
__global__ void split_qkv_kernel(const float* qkv, int64_t T, int qd, int kd, int vd, float* q, float* k, float* v) {
    GRID_DEPENDENCY();
    const int row = qd + kd + vd;
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= T * row) return;
    const int64_t t = i / row;
    const int c = int(i % row);
    if (c < qd) q[t * qd + c] = qkv[i];
    else if (c < qd + kd) k[t * kd + c - qd] = qkv[i];
    else v[t * vd + c - qd - kd] = qkv[i];
}

// The activation as act_fn's code: 0 SiLU, 1 GELU (erf), 2 GELU (tanh).
inline int act_code(Activation a) { return a == Activation::SiLU ? 0 : a == Activation::GELU ? 1 : 2; }

__device__ float act_fn(int act, float x) {
    switch (act) {
        case 0: return x / (1.f + expf(-x));                            // SiLU
        case 1: return 0.5f * x * (1.f + erff(x * 0.70710678118654752f));  // GELU (erf)
        default: {                                                      // GELU (tanh)
            const float k = 0.7978845608028654f;
            return 0.5f * x * (1.f + tanhf(k * (x + 0.044715f * x * x * x)));
        }
    }
}

__global__ void act_mul_kernel(float* u, const float* g, int act, int64_t n) {  // u = act(g) · u
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) u[i] *= act_fn(act, g[i]);
}

// u[t][c] = act(gu[t][c]) · gu[t][F + c]: the fused [gate ; up] product's two halves, as f32 or
// already as the next product's BF16/F16 input (no conversion pass). Grid (columns / 4 / 256, rows
// — a row per blockIdx.y, striding when T exceeds the grid's 65535): four columns a thread, read 16
// bytes at a time where F is a multiple of 4 (gu from an allocation's start); no 64-bit division.
template <typename OT>
__global__ void act_mul_split_kernel(const float* gu, int64_t T, int F, int act, OT* u) {
    GRID_DEPENDENCY();
    const int c = (int(blockIdx.x) * int(blockDim.x) + int(threadIdx.x)) * 4;
    if (c >= F) return;
    for (int64_t t = blockIdx.y; t < T; t += gridDim.y) {
        const float* g = gu + t * 2 * F;
        OT* o = u + t * F;
        if (F % 4 == 0) {
            DEVICE_ALIGNED(g + c, 16);
            const float4 a = *reinterpret_cast<const float4*>(g + c), b = *reinterpret_cast<const float4*>(g + F + c);
            to_out(act_fn(act, a.x) * b.x, o[c]);
            to_out(act_fn(act, a.y) * b.y, o[c + 1]);
            to_out(act_fn(act, a.z) * b.z, o[c + 2]);
            to_out(act_fn(act, a.w) * b.w, o[c + 3]);
        } else {
            for (int j = c; j < F && j < c + 4; ++j) to_out(act_fn(act, g[j]) * g[F + j], o[j]);
        }
    }
}

__global__ void act_kernel(float* u, int act, int64_t n) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) u[i] = act_fn(act, u[i]);
}

// dst[i] = src[rows[i]] · scale[i] (scale may be null), rows of n floats.
__global__ void gather_rows_kernel(const float* src, const int* rows, const float* scale, int64_t n_rows, int n, float* dst) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n_rows * n) return;
    const int64_t r = i / n;
    dst[i] = src[int64_t(rows[r]) * n + i % n] * (scale ? scale[r] : 1.f);
}

// dst[rows[i]] += src[i] · scale[i] (scale may be null); a row appears once per launch.
__global__ void scatter_add_rows_kernel(const float* src, const int* rows, const float* scale, int64_t n_rows, int n, float* dst) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= n_rows * n) return;
    const int64_t r = i / n;
    dst[int64_t(rows[r]) * n + i % n] += src[i] * (scale ? scale[r] : 1.f);
}

__global__ void softcap_kernel(float* x, float cap, int64_t n) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] = cap * tanhf(x[i] / cap);
}

// out[r][c] = element c of weight row r (rows of row_bytes bytes), one thread per element.
// Rows of a quantized weight as f32 or BF16 (the prompt's slab products; QuantGemm).
template <class OutT>
__global__ void dequant_rows_kernel(DType t, const uint8_t* w, size_t row_bytes, int64_t rows, int n_in, OutT* out) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * n_in) return;
    const int64_t r = i / n_in;
    const int c = int(i % n_in), be = block_elems(t), bb = block_bytes(t);
    const float v = dequant_element(t, w + size_t(r) * row_bytes + size_t(c / be) * size_t(bb), c % be);
    if constexpr (std::is_same_v<OutT, float>) out[i] = v;
    else out[i] = __float2bfloat16_rn(v);
}

constexpr int64_t kDequantSlab = int64_t(16) << 20;  // f32 elements of dequantized rows at a time (twice as many BF16)


constexpr int kAttnThreads = 256;
// ---- Gemma 3n (engine/cpu/gemma3n.cpp on the device) -------------------------------------------

__global__ void scale_kernel(float* x, float s, int64_t n) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] *= s;
}

__global__ void div_kernel(float* x, float s, int64_t n) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] /= s;
}

__global__ void tanh_kernel(float* x, int64_t n) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) x[i] = tanhf(x[i]);
}

// Per-layer inputs: pli = (pli + table rows · √P) · 2^-½ (pli already the normed projection).
__global__ void ple_mix_kernel(float* pli, const float* rows, float row_scale, float mix, int64_t n) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) pli[i] = (pli[i] + rows[i] * row_scale) * mix;
}

// AltUp predict: pred_i = st_i + Σ_j c[t][i·N + j] · st_j over streams [N][T][D].
__global__ void altup_predict_kernel(const float* st, const float* c, int T, int N, int D, float* pred) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, TD = int64_t(T) * D;
    if (i >= TD * N) return;
    const int s = int(i / TD), t = int(i % TD / D);
    const int64_t td = i % TD;
    float out = st[i];
    for (int j = 0; j < N; ++j) out += c[(int64_t(t) * N + s) * N + j] * st[int64_t(j) * TD + td];
    pred[i] = out;
}

// AltUp correct: st_i = pred_i + (d[t][i] + 1) · (y − pred_active).
__global__ void altup_correct_kernel(float* st, const float* pred, const float* y, const float* d, int act, int T, int N, int D) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x, TD = int64_t(T) * D;
    if (i >= TD * N) return;
    const int s = int(i / TD), t = int(i % TD / D);
    const int64_t td = i % TD;
    const float di = d[int64_t(t) * N + s] + 1.f;
    st[i] = pred[i] + di * (y[td] - pred[int64_t(act) * TD + td]);
}

// y = (a + b + c) · 2^-½ (attention, its input and LAuReL averaged into the residual).
__global__ void sum3_scale_kernel(const float* a, const float* b, const float* c, float s, float* y, int64_t n) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < n) y[i] = (a[i] + b[i] + c[i]) * s;
}

// y[t][e] = x[t][e] · w[e]
__global__ void mul_cols_kernel(const float* x, const float* w, int64_t rows, int n, float* y) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i < rows * n) y[i] = x[i] * w[i % n];
}

// The per-layer input gate: g[t][e] = gelu_tanh(g[t][e]) · pli[t][blk][e] (pli rows of L blocks of P).
__global__ void ple_gate_kernel(float* g, const float* pli, int T, int P, int L, int blk) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= int64_t(T) * P) return;
    const int64_t t = i / P, e = i % P;
    g[i] = act_fn(2, g[i]) * pli[(t * L + blk) * P + e];
}

constexpr int64_t kRingBatch = 1024;  // tokens per pass for models with windowed (ring) caches
constexpr int kAttnPerThread = kAttnMaxDim / kAttnThreads;
constexpr int kAttnChunk = 1024;   // keys scored per pass (online softmax across passes)

// The first key query position p sees: scope 0 global, 1 sliding (the window includes the query),
// 2 chunked — Session::key_begin.
__device__ __forceinline__ int64_t attn_key_lo(int64_t p, int scope, int window) {
    if (window > 0 && scope == 1) return p - window + 1 > 0 ? p - window + 1 : 0;
    if (window > 0 && scope == 2) return p / window * window;
    return 0;
}

// grid (T, H), kAttnThreads threads: softmax(scale · q·k (softcapped)) · v over the keys lo..p of
// query t (position pos0 + t), head h reading KV head h / (H / KV) of the head-major caches: key j
// at kc[(kvh·cap + j % cap)·hd], value j at vc[(kvh·cap + j % cap)·v_stride] (v_stride = vd, or
// MLA's values as the first vd floats of each key row; cap the ring's size, or the context).
// scope: 0 global, 1 sliding (window includes the query), 2 chunked (attn_key_lo).
// q · key over hd dimensions by one warp (lane d reads dimensions d, d + 32, …: coalesced rows),
// the same sum on every lane, for U keys at once: their loads are independent, so a lane has U
// (times the unrolled dimensions) loads in flight instead of one key's round trip after another.
// Each key's sum is formed exactly as for U = 1 (same terms, same order, same shuffle tree), so
// every kernel that scores keys through this gets the same scores: the probe's recomputed scores
// equal the ones attention_kernel normalised.
template <int U, typename KT>
__device__ __forceinline__ void warp_dots(const float* qv, const KT* const (&keys)[U], int hd, int lane, float (&s)[U]) {
#pragma unroll
    for (int u = 0; u < U; ++u) s[u] = 0.f;
#pragma unroll 4
    for (int d = lane; d < hd; d += 32) {
        const float qd = qv[d];
#pragma unroll
        for (int u = 0; u < U; ++u) s[u] += qd * kv_ld(keys[u] + d);
    }
#pragma unroll
    for (int u = 0; u < U; ++u) {
        for (int o = 16; o > 0; o >>= 1) s[u] += __shfl_down_sync(0xffffffffu, s[u], o);
        s[u] = __shfl_sync(0xffffffffu, s[u], 0);
    }
}
template <typename KT>
__device__ __forceinline__ float warp_dot(const float* qv, const KT* key, int hd, int lane) {
    const KT* keys[1] = {key};
    float s[1];
    warp_dots<1>(qv, keys, hd, lane, s);
    return s[0];
}

constexpr int kScoreKeys = 8;  // keys a warp scores at once (a 64-key split: one round of loads)
constexpr int kValueKeys = 8;  // keys a warp adds into its output share at once
constexpr int kAttnLaneDims = kAttnMaxDim / 32;

// The scaled (and softcapped) scores of keys j0 .. j0 + kScoreKeys − 1 of the n from ring slot
// base on (cap slots, rows of hd), by one warp: attention_kernel and attention_probs_kernel both
// score through this, so the probe's scores are the ones the softmax used. Keys past n are read as
// key n − 1 (a valid row) and their scores left for the caller to ignore.
template <typename KT>
__device__ __forceinline__ void score_keys(const float* qv, const KT* kh, int64_t base, int64_t cap, int hd, int64_t j0, int64_t n,
                                           float scale, float softcap, int lane, float (&s)[kScoreKeys]) {
    const KT* keys[kScoreKeys];
#pragma unroll
    for (int u = 0; u < kScoreKeys; ++u) {
        const int64_t j = j0 + u < n ? j0 + u : n - 1;
        keys[u] = kh + (base + j < cap ? base + j : base + j - cap) * hd;
    }
    warp_dots<kScoreKeys>(qv, keys, hd, lane, s);
#pragma unroll
    for (int u = 0; u < kScoreKeys; ++u) {
        s[u] *= scale;
        if (softcap > 0.f) s[u] = softcap * tanhf(s[u] / softcap);
    }
}

// grid (T, H, S), kAttnThreads threads: softmax(scale · q·k (softcapped)) · v over the keys lo..p of
// query t (position pos0 + t), head h reading KV head h / (H / KV) of the head-major caches: key j
// at kc[(kvh·cap + j % cap)·hd], value j at vc[(kvh·cap + j % cap)·v_stride] (v_stride = vd, or
// MLA's values as the first vd floats of each key row; cap the ring's size, or the context).
// scope: 0 global, 1 sliding (window includes the query), 2 chunked (attn_key_lo).
// Keys in chunks of kAttnChunk (online softmax across chunks): each warp scores kScoreKeys keys at
// a time (warp_dots), then adds kValueKeys keys' values at a time into its share of the output
// (lane l holds dimensions l, l + 32, …, every warp its own keys), the warps' shares summed in
// warp order at the end. Decode steps (few queries, many keys) split each query's keys over S
// blocks (flash-decoding), merged by the last block to finish.
template <typename KT>
__global__ void attention_kernel(const float* q, int q_row, const KT* kc, const KT* vc, int v_stride, int64_t cap, int H,
                                 int KV, int hd, int vd, const int64_t* pos0, int scope, int window, float scale, float softcap,
                                 float* out, float* stats, float* part, int* tickets, int min_keys, int probe_head,
                                 float* probe, int64_t probe_ld) {
    GRID_DEPENDENCY();
    __shared__ float qs[kAttnMaxDim];
    __shared__ float sc[kAttnChunk];
    __shared__ float vsum[kAttnMaxDim];
    __shared__ float red[33];
    const int t = blockIdx.x, h = blockIdx.y, kvh = h / (H / KV), tid = threadIdx.x;
    const int warp = tid >> 5, lane = tid & 31, n_warps = int(blockDim.x) >> 5;
    const int64_t p = *pos0 + t;
    const int64_t lo = attn_key_lo(p, scope, window);
    // the captured head's row of probabilities (the probe; attention_probs_kernel's row, written here
    // without that kernel): the scores as they are made, then exp(s - max) / sum once max and sum are
    // known — by this block, or by the block that merges the splits
    float* prow = probe && h == probe_head ? probe + int64_t(t) * probe_ld : nullptr;
    for (int d = tid; d < hd; d += blockDim.x) qs[d] = q[int64_t(t) * q_row + int64_t(h) * hd + d];
    __syncthreads();
    const KT* kh = kc + int64_t(kvh) * cap * hd;
    const KT* vh = vc + int64_t(kvh) * cap * v_stride;
    // this block's keys a..b: all of lo..p, or split z of S (flash-decoding: few queries, many keys)
    const int S = int(gridDim.z), z = int(blockIdx.z);
    int64_t a = lo, b = p;
    if (S > 1) {
        int64_t seg = (p - lo + S) / S;  // ⌈(p − lo + 1) / S⌉
        if (seg < min_keys) seg = min_keys;
        a = lo + z * seg;
        b = a + seg - 1 < p ? a + seg - 1 : p;  // a > b: an empty split (a short context)
    }
    float m = -INFINITY, l = 0.f, vacc[kAttnLaneDims];
#pragma unroll
    for (int c = 0; c < kAttnLaneDims; ++c) vacc[c] = 0.f;
    for (int64_t c0 = a; c0 <= b; c0 += kAttnChunk) {
        const int n = int(b - c0 + 1 < kAttnChunk ? b - c0 + 1 : kAttnChunk);
        float cmax = -INFINITY;
        const int64_t base = c0 % cap;  // keys lo..p span at most cap positions: one wrap at most
        for (int j0 = warp * kScoreKeys; j0 < n; j0 += n_warps * kScoreKeys) {
            float s[kScoreKeys];
            score_keys(qs, kh, base, cap, hd, j0, n, scale, softcap, lane, s);
#pragma unroll
            for (int u = 0; u < kScoreKeys; ++u) {
                if (j0 + u >= n) break;
                const float su = s[u];
                if (lane == 0) {
                    sc[j0 + u] = su;
                    if (prow) prow[c0 + j0 + u - lo] = su;
                }
                cmax = fmaxf(cmax, su);
            }
        }
        const float new_m = fmaxf(m, block_max(cmax, red));
        const float factor = __expf(m - new_m);  // 0 on the first chunk (m = -inf)
        float csum = 0.f;
        for (int j = tid; j < n; j += blockDim.x) {
            const float e = __expf(sc[j] - new_m);
            sc[j] = e;
            csum += e;
        }
        csum = block_sum(csum, red);  // also the barrier that publishes sc
        l = l * factor + csum;
#pragma unroll
        for (int c = 0; c < kAttnLaneDims; ++c) vacc[c] *= factor;
        for (int j0 = warp * kValueKeys; j0 < n; j0 += n_warps * kValueKeys) {
            const KT* vrow[kValueKeys];
            float pj[kValueKeys];
#pragma unroll
            for (int u = 0; u < kValueKeys; ++u) {
                const int j = j0 + u < n ? j0 + u : n - 1;
                const int64_t slot = base + j < cap ? base + j : base + j - cap;
                vrow[u] = vh + slot * v_stride;
                pj[u] = j0 + u < n ? sc[j] : 0.f;  // past the chunk: weight 0
            }
#pragma unroll
            for (int c = 0; c < kAttnLaneDims; ++c) {
                const int d = lane + 32 * c;
                if (32 * c >= vd) break;
                if (d < vd) {
                    float v[kValueKeys];
#pragma unroll
                    for (int u = 0; u < kValueKeys; ++u) v[u] = kv_ld(vrow[u] + d);
#pragma unroll
                    for (int u = 0; u < kValueKeys; ++u) vacc[c] += pj[u] * v[u];
                }
            }
        }
        m = new_m;
        __syncthreads();  // sc is rewritten by the next chunk
    }
    // the warps' shares of the output summed in warp order into vsum
    for (int w = 0; w < n_warps; ++w) {
        if (warp == w)
#pragma unroll
            for (int c = 0; c < kAttnLaneDims; ++c) {
                const int d = lane + 32 * c;
                if (32 * c >= vd) break;
                if (d < vd) vsum[d] = w == 0 ? vacc[c] : vsum[d] + vacc[c];
            }
        __syncthreads();
    }
    float acc[kAttnPerThread];
#pragma unroll
    for (int k = 0; k < kAttnPerThread; ++k) {
        const int d = tid + k * kAttnThreads;
        acc[k] = d < vd ? vsum[d] : 0.f;
    }
    if (S > 1) {
        // Publish this split's (max, sum, unnormalised output) row; the block that arrives last at
        // the (query, head)'s ticket merges the S rows in split order, writes the output and the
        // softmax's max and sum as one pass would, and resets the ticket for the next launch.
        const int64_t row = int64_t(vd) + 2;
        float* all = part + (int64_t(t) * H + h) * S * row;
        float* mine = all + z * row;
        if (tid == 0) mine[0] = m, mine[1] = l;
#pragma unroll
        for (int k = 0; k < kAttnPerThread; ++k) {
            const int d = tid + k * kAttnThreads;
            if (d < vd) mine[2 + d] = acc[k];
        }
        __threadfence();  // the row is visible device-wide before the ticket says so
        __syncthreads();
        __shared__ int last;
        if (tid == 0) last = atomicAdd(tickets + int64_t(t) * H + h, 1) == S - 1;
        __syncthreads();
        if (!last) return;
        __threadfence();
        float M = -INFINITY;
        for (int j = 0; j < S; ++j) M = fmaxf(M, __ldcg(all + j * row));  // split 0 is never empty: M is finite
        float L = 0.f;
        for (int j = 0; j < S; ++j) L += __ldcg(all + j * row + 1) * __expf(__ldcg(all + j * row) - M);
#pragma unroll
        for (int k = 0; k < kAttnPerThread; ++k) {
            const int d = tid + k * kAttnThreads;
            if (d < vd) {
                float o = 0.f;
                for (int j = 0; j < S; ++j) o += __ldcg(all + j * row + 2 + d) * __expf(__ldcg(all + j * row) - M);
                out[(int64_t(t) * H + h) * vd + d] = o / L;
            }
        }
        if (tid == 0) {
            if (stats) stats[(int64_t(t) * H + h) * 2] = M, stats[(int64_t(t) * H + h) * 2 + 1] = L;
            tickets[int64_t(t) * H + h] = 0;
        }
        if (prow) {  // every split's scores are in the row (published before their tickets)
            const float inv = 1.f / L;
            for (int64_t j = lo + tid; j <= p; j += blockDim.x) prow[j - lo] = __expf(__ldcg(prow + (j - lo)) - M) * inv;
        }
        return;
    }
#pragma unroll
    for (int k = 0; k < kAttnPerThread; ++k) {
        const int d = tid + k * kAttnThreads;
        if (d < vd) out[(int64_t(t) * H + h) * vd + d] = acc[k] / l;
    }
    if (stats && tid == 0) {  // the softmax's max and sum, for the probes
        stats[(int64_t(t) * H + h) * 2] = m;
        stats[(int64_t(t) * H + h) * 2 + 1] = l;
    }
    if (prow) {  // the scores this block wrote (barriers since), as attention_probs_kernel makes them
        const float inv = 1.f / l;
        for (int64_t j = a + tid; j <= b; j += blockDim.x) prow[j - lo] = __expf(prow[j - lo] - m) * inv;
    }
}

// A prompt's attention through matrix products (CudaSession's gemm_attention): the rows of S hold
// the scores q·k of queries t0 .. t0 + Tq − 1 against keys klo, klo + 1, …, row (t, h) at
// S + (h·Tq + t)·ld. grid (Tq, H): each row becomes its query's softmax over the keys lo..p it
// sees (scale, softcap, the masks of attention_kernel), 0 elsewhere, in place; the softmax's max
// and sum go to stats [T][H][2] (row t0 + t), as attention_kernel leaves them for the probes.
__global__ void attn_softmax_rows_kernel(float* S, int64_t ld, int Tq, int t0, int H, int64_t klo, const int64_t* pos0, int scope,
                                         int window, float scale, float softcap, float* stats) {
    GRID_DEPENDENCY();
    __shared__ float red[33];
    const int t = blockIdx.x, h = blockIdx.y;
    float* row = S + (int64_t(h) * Tq + t) * ld;
    const int64_t p = *pos0 + t0 + t;
    const int64_t c0 = attn_key_lo(p, scope, window) - klo, c1 = p - klo;  // the query's keys: columns c0..c1
    float mx = -INFINITY;
    for (int64_t c = c0 + threadIdx.x; c <= c1; c += blockDim.x) {
        float s = row[c] * scale;
        if (softcap > 0.f) s = softcap * tanhf(s / softcap);
        row[c] = s;
        mx = fmaxf(mx, s);
    }
    const float m = block_max(mx, red);
    float sum = 0.f;
    for (int64_t c = c0 + threadIdx.x; c <= c1; c += blockDim.x) {  // each thread its own columns again
        const float e = __expf(row[c] - m);
        row[c] = e;
        sum += e;
    }
    const float l = block_sum(sum, red), inv = 1.f / l;
    for (int64_t c = threadIdx.x; c < ld; c += blockDim.x) row[c] = c >= c0 && c <= c1 ? row[c] * inv : 0.f;
    if (threadIdx.x == 0 && stats) {
        stats[(int64_t(t0 + t) * H + h) * 2] = m;
        stats[(int64_t(t0 + t) * H + h) * 2 + 1] = l;
    }
}

// A prompt's captured head from cuBLAS attention's own probabilities (gemm_attention): S holds
// that head's rows of a chunk of queries from t0 on, as attn_softmax_rows_kernel left them
// (columns from key klo, ld apart); row t0 + t of the probe (row_len floats, from the query's first
// key) gets the query's keys. The probabilities the layer used, with no scores recomputed.
__global__ void probe_rows_from_scores_kernel(const float* S, int64_t ld, int t0, int64_t klo, const int64_t* pos0, int scope,
                                              int window, int64_t row_len, float* probe) {
    GRID_DEPENDENCY();
    const int t = blockIdx.x;
    const int64_t p = *pos0 + t0 + t, c0 = attn_key_lo(p, scope, window) - klo, n = p - klo - c0 + 1;
    const float* src = S + int64_t(t) * ld + c0;
    float* dst = probe + int64_t(t0 + t) * row_len;
    for (int64_t i = threadIdx.x; i < n; i += blockDim.x) dst[i] = src[i];
}

// ---- prompt attention in tiles ----
// A prompt's queries attend in tiles: a block takes kTileQ consecutive queries of one head and
// walks their keys kTileK at a time, each key and value row loaded once into shared memory for the
// whole tile (one block per query re-reads every key and value from L2 for each query, which at
// thousands of tokens costs more than the prompt's matrix products). Thread (row r = tid / 16,
// lane c = tid % 16) scores query r against key c of the step, keeps query r's running max and
// sum (the 16 lanes of a row agree through shuffles within their half-warp) and owns dimensions
// c, c + 16, … of query r's output. Same masks, scale, softcap and outputs (and the softmax's max
// and sum for the probe) as attention_kernel; f32 sums in another order.
constexpr int kTileQ = 16, kTileK = 16, kTileMaxDim = 256;
constexpr int kTilePerThread = kTileMaxDim / 16;

template <typename KT>
__global__ void attention_tile_kernel(const float* q, int q_row, const KT* kc, const KT* vc, int v_stride, int64_t cap, int H, int KV,
                                      int hd, int vd, int T, const int64_t* pos0, int scope, int window, float scale, float softcap,
                                      float* out, float* stats) {
    GRID_DEPENDENCY();
    __shared__ float qs[kTileQ][kTileMaxDim];
    __shared__ float kv[kTileK][kTileMaxDim + 1];  // padded rows: the 16 lanes of a row read distinct banks
    __shared__ float ps[kTileQ][kTileK];
    const int h = blockIdx.y, kvh = h / (H / KV), tid = threadIdx.x, r = tid / 16, c = tid % 16;
    const int t0 = int(blockIdx.x) * kTileQ, nq = T - t0 < kTileQ ? T - t0 : kTileQ;
    const int64_t P0 = *pos0;
    for (int i = tid; i < kTileQ * hd; i += blockDim.x) {
        const int qi = i / hd, d = i % hd;
        qs[qi][d] = qi < nq ? q[int64_t(t0 + qi) * q_row + int64_t(h) * hd + d] : 0.f;
    }
    const bool valid = r < nq;
    const int64_t p = P0 + t0 + r, lo = valid ? attn_key_lo(p, scope, window) : 0;
    const int64_t first = attn_key_lo(P0 + t0, scope, window), last = P0 + t0 + nq - 1;  // keys of the whole tile (lo grows with p)
    const KT* kh = kc + int64_t(kvh) * cap * hd;
    const KT* vh = vc + int64_t(kvh) * cap * v_stride;
    float m = -INFINITY, l = 0.f, acc[kTilePerThread];
#pragma unroll
    for (int i = 0; i < kTilePerThread; ++i) acc[i] = 0.f;
    for (int64_t c0 = first; c0 <= last; c0 += kTileK) {
        const int nk = int(last - c0 + 1 < kTileK ? last - c0 + 1 : kTileK);
        const int64_t base = c0 % cap;  // the step's keys in ring order (they span at most cap positions)
        __syncthreads();  // the previous step's values are read
        for (int i = tid; i < kTileK * hd; i += blockDim.x) {
            const int kj = i / hd, d = i % hd;
            const int64_t slot = base + kj < cap ? base + kj : base + kj - cap;
            kv[kj][d] = kj < nk ? kv_ld(kh + slot * hd + d) : 0.f;
        }
        __syncthreads();
        const int64_t j = c0 + c;
        float sv = -INFINITY;
        if (valid && c < nk && j >= lo && j <= p) {
            float dot = 0.f;
            for (int d = 0; d < hd; ++d) dot += qs[r][d] * kv[c][d];
            sv = dot * scale;
            if (softcap > 0.f) sv = softcap * tanhf(sv / softcap);
        }
        float cmax = sv;
        for (int o = 8; o > 0; o >>= 1) cmax = fmaxf(cmax, __shfl_xor_sync(0xffffffffu, cmax, o, 16));
        const float new_m = fmaxf(m, cmax);
        const float e = sv == -INFINITY ? 0.f : __expf(sv - new_m);
        const float factor = m == -INFINITY ? 0.f : __expf(m - new_m);
        float esum = e;
        for (int o = 8; o > 0; o >>= 1) esum += __shfl_xor_sync(0xffffffffu, esum, o, 16);
        l = l * factor + esum;
        m = new_m;
        ps[r][c] = e;
        __syncthreads();  // scores published, keys read: the values replace them
        for (int i = tid; i < kTileK * vd; i += blockDim.x) {
            const int kj = i / vd, d = i % vd;
            const int64_t slot = base + kj < cap ? base + kj : base + kj - cap;
            kv[kj][d] = kj < nk ? kv_ld(vh + slot * v_stride + d) : 0.f;
        }
        __syncthreads();
#pragma unroll
        for (int i = 0; i < kTilePerThread; ++i) {
            const int d = c + 16 * i;
            if (d < vd) {
                float a = acc[i] * factor;
                for (int kj = 0; kj < kTileK; ++kj) a += ps[r][kj] * kv[kj][d];
                acc[i] = a;
            }
        }
    }
    if (!valid) return;
    const int64_t row = int64_t(t0 + r) * H + h;
#pragma unroll
    for (int i = 0; i < kTilePerThread; ++i) {
        const int d = c + 16 * i;
        if (d < vd) out[row * vd + d] = acc[i] / l;
    }
    if (stats && c == 0) stats[row * 2] = m, stats[row * 2 + 1] = l;
}

// ---- prompt attention on tensor cores ----
// The same attention as attention_tile_kernel, with q·kᵀ and p·v as warp matrix products on tensor
// cores, in 3xTF32: each f32 operand x is split into big = tf32(x) and small = tf32(x − big), and
// a·b is summed as small_a·big_b + big_a·small_b + big_a·big_b (f32 sums) — about f32's accuracy
// (plain TF32, 10-bit mantissas, moved the fixtures' BF16 logits by ~2e-2) at a third of TF32's
// rate. With an f16 cache the keys and values are TF32 numbers already (small part zero), so the
// products are two, not three (the same sums). Heads up to kMmaMaxDim wide.
// A block takes kMmaQ = 64 consecutive queries of one head, four warps of 16 query rows each; the
// keys go by in steps of kMmaK = 32, key and value rows staged in shared memory once for the
// block. The query rows stay in shared memory (held in registers they pushed the kernel to 255
// registers and spills): 75 KiB of dynamic shared memory a block (mma_attention_setup allows it),
// two blocks a multiprocessor. One pass over the keys, with the online softmax: each step's scores
// go through the warp's own 16 rows of shared memory, where lanes 2r and 2r + 1 take query row r's
// 16 + 16 keys of the step, update its running max and sum, and replace the scores with
// exp(score − max); the output fragments are rescaled by exp(old max − new max) before the step's
// p·v. The fragments' element layout is the hardware's and unknown to the code, so a row map —
// an accumulator fragment loaded from a tile whose every element is its row number — tells each
// element's row (fragments of one type share their layout); the rows' factors sit in the score
// rows' padding. The sum divides in the epilogue. Same masks, scale, softcap, outputs and the
// softmax's max and sum (for the probe) as the other kernels.
constexpr int kMmaQ = 64, kMmaK = 32, kMmaMaxDim = 128, kMmaThreads = 128;
constexpr int kMmaLd = kMmaMaxDim + 4, kMmaSLd = kMmaK + 4;  // padded rows: 32-byte aligned at every 8th row and 8th column
constexpr int kMmaAlphaCol = kMmaK;                          // a score row's padding: that row's rescale factor
static_assert(kMmaThreads == 32 * kMmaQ / 16, "a warp per 16 query rows");
static_assert(kMmaAlphaCol < kMmaSLd && kMmaSLd >= 16, "the factor and the row map fit in the score rows");
// dynamic shared memory: queries [64][ld], keys [32][ld], values [32][ld], scores [64][sld]
constexpr size_t kMmaSmemBytes = sizeof(float) * (size_t(kMmaQ + 2 * kMmaK) * kMmaLd + size_t(kMmaQ) * kMmaSLd);

#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
using MmaAcc = nvcuda::wmma::fragment<nvcuda::wmma::accumulator, 16, 16, 8, float>;
// f's f32 elements as their TF32 big and small parts
template <class F>
__device__ __forceinline__ void tf32_split(const F& f, F& big, F& small) {
    for (int e = 0; e < f.num_elements; ++e) {
        big.x[e] = nvcuda::wmma::__float_to_tf32(f.x[e]);
        small.x[e] = nvcuda::wmma::__float_to_tf32(f.x[e] - big.x[e]);
    }
}
// acc += a·b in 3xTF32, a already split; exact: both operands hold TF32 values already (F16 and
// BF16 numbers do), so their small parts are zero and one product gives the same sums
template <class FA, class FB>
__device__ __forceinline__ void mma_3xtf32(MmaAcc& acc, const FA& a_big, const FA& a_small, const FB& b, bool exact = false) {
    FB b_big, b_small;
    tf32_split(b, b_big, b_small);
    if (!exact) {
        nvcuda::wmma::mma_sync(acc, a_small, b_big, acc);
        nvcuda::wmma::mma_sync(acc, a_big, b_small, acc);
    }
    nvcuda::wmma::mma_sync(acc, a_big, b_big, acc);
}
// the same when only b holds TF32 values (an f16 cache's keys and values): b's small part is zero,
// so its product is left out and b needs no split
template <bool BExact, class FA, class FB>
__device__ __forceinline__ void mma_split_a(MmaAcc& acc, const FA& a_big, const FA& a_small, const FB& b) {
    if constexpr (BExact) {
        nvcuda::wmma::mma_sync(acc, a_small, b, acc);
        nvcuda::wmma::mma_sync(acc, a_big, b, acc);
    } else {
        mma_3xtf32(acc, a_big, a_small, b);
    }
}
#endif

template <typename KT>
__global__ void attention_mma_kernel(const float* q, int q_row, const KT* kc, const KT* vc, int v_stride, int64_t cap, int H, int KV,
                                     int hd, int vd, int T, const int64_t* pos0, int scope, int window, float scale, float softcap,
                                     float* out, float* stats) {
    GRID_DEPENDENCY();
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    using namespace nvcuda;
    using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
    using FragKt = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
    using FragV = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
    constexpr bool kv_tf32 = std::is_same_v<KT, __half>;  // f16 numbers are TF32 numbers
    DYNAMIC_SHARED(float, smem);
    float* qs = smem;                 // the queries, then each warp's output in its own rows
    float* ks = qs + kMmaQ * kMmaLd;  // the step's keys
    float* vs = ks + kMmaK * kMmaLd;  // the step's values
    float* ss = vs + kMmaK * kMmaLd;  // each warp's 16 rows of scores, then of exp(score − max); the rows' factors in the padding
    const int h = blockIdx.y, kvh = h / (H / KV), tid = threadIdx.x, warp = tid >> 5, lane = tid & 31;
    const int t0 = int(blockIdx.x) * kMmaQ, nq = T - t0 < kMmaQ ? T - t0 : kMmaQ;
    const int64_t P0 = *pos0;
    for (int i = tid; i < kMmaQ * hd; i += blockDim.x) {
        const int qi = i / hd, d = i % hd;
        qs[qi * kMmaLd + d] = qi < nq ? q[int64_t(t0 + qi) * q_row + int64_t(h) * hd + d] : 0.f;
    }
    // (the first step's barrier publishes them)
    const int kd = hd / 8, nv = vd / 16;
    const float* qw = qs + warp * 16 * kMmaLd;  // the warp's 16 query rows
    float* sw = ss + warp * 16 * kMmaSLd;       // the warp's 16 score rows
    const int r = lane >> 1, half = lane & 1, qi = warp * 16 + r;  // this lane's query row and key half
    const bool valid = qi < nq;
    const int64_t p = P0 + t0 + qi, lo = valid ? attn_key_lo(p, scope, window) : 0;
    const int64_t first = attn_key_lo(P0 + t0, scope, window), last = P0 + t0 + nq - 1;  // keys of the whole tile
    const KT* kh = kc + int64_t(kvh) * cap * hd;
    const KT* vh = vc + int64_t(kvh) * cap * v_stride;
    float* srow = sw + r * kMmaSLd + half * 16;  // this lane's 16 scores of the step
    // the row map: element e of any of this lane's MmaAcc fragments lies in row rows.x[e] of its tile
    MmaAcc rows;
    for (int i = lane; i < 16 * 16; i += 32) sw[(i >> 4) * kMmaSLd + (i & 15)] = float(i >> 4);
    __syncwarp();
    wmma::load_matrix_sync(rows, sw, kMmaSLd, wmma::mem_row_major);
    __syncwarp();  // read before the first scores replace it
    // the step's key and value rows into shared memory
    auto stage = [&](int64_t c0, int nk) {
        const int64_t base = c0 % cap;  // the step's keys in ring order (they span at most cap positions)
        __syncthreads();                // the previous step's rows are read
        for (int i = tid; i < kMmaK * hd; i += blockDim.x) {
            const int kj = i / hd, d = i % hd;
            const int64_t slot = base + kj < cap ? base + kj : base + kj - cap;
            ks[kj * kMmaLd + d] = kj < nk ? kv_ld(kh + slot * hd + d) : 0.f;
        }
        for (int i = tid; i < kMmaK * vd; i += blockDim.x) {
            const int kj = i / vd, d = i % vd;
            const int64_t slot = base + kj < cap ? base + kj : base + kj - cap;
            vs[kj * kMmaLd + d] = kj < nk ? kv_ld(vh + slot * v_stride + d) : 0.f;
        }
        __syncthreads();
    };
    // score c of this lane's half of the step (key c0 + half·16 + c), scaled and capped; -inf when masked
    auto score = [&](int64_t c0, int nk, int c) -> float {
        const int col = half * 16 + c;
        const int64_t j = c0 + col;
        if (!valid || col >= nk || j < lo || j > p) return -INFINITY;
        float sv = srow[c] * scale;
        if (softcap > 0.f) sv = softcap * tanhf(sv / softcap);
        return sv;
    };
    float m = -INFINITY, l = 0.f;
    MmaAcc of[kMmaMaxDim / 16];
#pragma unroll
    for (int n = 0; n < kMmaMaxDim / 16; ++n) wmma::fill_fragment(of[n], 0.f);
    for (int64_t c0 = first; c0 <= last; c0 += kMmaK) {
        const int nk = int(last - c0 + 1 < kMmaK ? last - c0 + 1 : kMmaK);
        stage(c0, nk);
        {  // the warp's 16 × 32 raw scores q·k into its rows of ss
            MmaAcc sf[kMmaK / 16];
#pragma unroll
            for (int nt = 0; nt < kMmaK / 16; ++nt) wmma::fill_fragment(sf[nt], 0.f);
#pragma unroll
            for (int k = 0; k < kMmaMaxDim / 8; ++k)
                if (k < kd) {
                    FragA qf, q_big, q_small;
                    wmma::load_matrix_sync(qf, qw + k * 8, kMmaLd);
                    tf32_split(qf, q_big, q_small);
#pragma unroll
                    for (int nt = 0; nt < kMmaK / 16; ++nt) {
                        FragKt kf;  // kᵀ: element (d, key) at ks[key · ld + d]
                        wmma::load_matrix_sync(kf, ks + nt * 16 * kMmaLd + k * 8, kMmaLd);
                        mma_split_a<kv_tf32>(sf[nt], q_big, q_small, kf);
                    }
                }
#pragma unroll
            for (int nt = 0; nt < kMmaK / 16; ++nt) wmma::store_matrix_sync(sw + nt * 16, sf[nt], kMmaSLd, wmma::mem_row_major);
            __syncwarp();
        }
        // the row's new max and sum; the scores become exp(score − new max), the factor exp(old − new)
        float sv[16], cmax = -INFINITY;
#pragma unroll
        for (int c = 0; c < 16; ++c) cmax = fmaxf(cmax, sv[c] = score(c0, nk, c));
        cmax = fmaxf(cmax, __shfl_xor_sync(0xffffffffu, cmax, 1));
        const float new_m = fmaxf(m, cmax);
        const float alpha = m == -INFINITY ? 0.f : __expf(m - new_m);  // the output so far is 0 while m is -inf
        float esum = 0.f;
#pragma unroll
        for (int c = 0; c < 16; ++c) {
            const float e = sv[c] == -INFINITY ? 0.f : __expf(sv[c] - new_m);
            srow[c] = e;  // only this lane reads and writes these 16
            esum += e;
        }
        esum += __shfl_xor_sync(0xffffffffu, esum, 1);
        l = l * alpha + esum;
        m = new_m;
        if (half == 0) sw[r * kMmaSLd + kMmaAlphaCol] = alpha;
        __syncwarp();
#pragma unroll
        for (int n = 0; n < kMmaMaxDim / 16; ++n)
            if (n < nv)
#pragma unroll
                for (int e = 0; e < of[n].num_elements; ++e) of[n].x[e] *= sw[int(rows.x[e]) * kMmaSLd + kMmaAlphaCol];
#pragma unroll
        for (int k = 0; k < kMmaK / 8; ++k) {
            FragA pf, p_big, p_small;  // the warp's 16 rows × keys 8k..8k+7
            wmma::load_matrix_sync(pf, sw + k * 8, kMmaSLd);
            tf32_split(pf, p_big, p_small);
#pragma unroll
            for (int n = 0; n < kMmaMaxDim / 16; ++n)
                if (n < nv) {
                    FragV vf;  // value rows 8k..8k+7, dimensions 16n..16n+15
                    wmma::load_matrix_sync(vf, vs + k * 8 * kMmaLd + n * 16, kMmaLd);
                    mma_split_a<kv_tf32>(of[n], p_big, p_small, vf);
                }
        }
        __syncwarp();  // the probabilities and factors are read before the next step's scores replace them
    }
    // the output through the warp's own query rows (no other warp reads them)
#pragma unroll
    for (int n = 0; n < kMmaMaxDim / 16; ++n)
        if (n < nv) wmma::store_matrix_sync(qs + warp * 16 * kMmaLd + n * 16, of[n], kMmaLd, wmma::mem_row_major);
    __syncwarp();
    for (int rr = 0; rr < 16; ++rr) {  // row rr of the warp: its sum from lane 2·rr, its dimensions across the lanes
        const float lr = __shfl_sync(0xffffffffu, l, 2 * rr);
        const int qr = warp * 16 + rr;
        if (qr >= nq) continue;
        const int64_t row = int64_t(t0 + qr) * H + h;
        for (int d = lane; d < vd; d += 32) out[row * vd + d] = qs[qr * kMmaLd + d] / lr;
    }
    if (stats && valid && half == 0) {
        const int64_t row = int64_t(t0 + qi) * H + h;
        stats[row * 2] = m, stats[row * 2 + 1] = l;
    }
#else
    __trap();  // device code built for an architecture without TF32 products: a launch error, not a wrong answer
#endif
}

// The tensor-core kernel takes the head (hd, vd multiples of 8 and 16, up to kMmaMaxDim) and needs
// compute capability 8.0 (TF32 warp matrix products).
inline bool mma_attention_fits(int hd, int vd) { return hd % 8 == 0 && vd % 16 == 0 && hd <= kMmaMaxDim && vd <= kMmaMaxDim && hd > 0 && vd > 0; }
// Allows attention_mma_kernel its dynamic shared memory (above the default 48 KiB): before its
// first launch in a device context.
inline void mma_attention_setup() {
    check(cudaFuncSetAttribute(attention_mma_kernel<float>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kMmaSmemBytes)),
          "cudaFuncSetAttribute (attention_mma_kernel<float>)");
    check(cudaFuncSetAttribute(attention_mma_kernel<__half>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(kMmaSmemBytes)),
          "cudaFuncSetAttribute (attention_mma_kernel<__half>)");
}

// dst[t][c] = src[t][c] for c < n: rows of n floats between strided buffers (ld in floats).
__global__ void copy_rows_kernel(const float* src, int64_t ld_src, float* dst, int64_t ld_dst, int64_t rows, int n) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= rows * n) return;
    dst[(i / n) * ld_dst + i % n] = src[(i / n) * ld_src + i % n];
}

// The probabilities of one captured head h: grid (T, B), row t of `probs` (row_len floats) gets
// exp(s_j - max) / sum for the keys lo..p of query t, from the max and sum attention_kernel left
// in stats — the same scores recomputed; the B blocks of a row share its keys (a decode step's
// one row would otherwise be one block walking the whole context).
template <typename KT>
__global__ void attention_probs_kernel(const float* q, int q_row, const KT* kc, int64_t cap, int H, int KV, int hd,
                                       const int64_t* pos0, int scope, int window, float scale, float softcap,
                                       const float* stats, int h, int64_t row_len, float* probs) {
    GRID_DEPENDENCY();
    const int t = blockIdx.x, kvh = h / (H / KV);
    const int64_t p = *pos0 + t;
    const int64_t lo = attn_key_lo(p, scope, window);
    const float m = stats[(int64_t(t) * H + h) * 2], inv = 1.f / stats[(int64_t(t) * H + h) * 2 + 1];
    const float* qv = q + int64_t(t) * q_row + int64_t(h) * hd;
    const KT* kh = kc + int64_t(kvh) * cap * hd;
    float* row = probs + int64_t(t) * row_len;
    const int64_t base = lo % cap;
    const int lane = int(threadIdx.x) & 31;
    const int64_t n = p - lo + 1;
    const int64_t warps = int64_t(gridDim.y) * (blockDim.x >> 5);  // every block of row t: its keys split between them
    for (int64_t j0 = (int64_t(blockIdx.y) * (blockDim.x >> 5) + (threadIdx.x >> 5)) * kScoreKeys; j0 < n; j0 += warps * kScoreKeys) {
        float s[kScoreKeys];  // kScoreKeys keys a warp, scored as attention_kernel scores them
        score_keys(qv, kh, base, cap, hd, j0, n, scale, softcap, lane, s);
#pragma unroll
        for (int u = 0; u < kScoreKeys; ++u) {
            if (j0 + u >= n) break;
            if (lane == 0) row[j0 + u] = __expf(s[u] - m) * inv;
        }
    }
}

// ---- row reductions in double, as the CPU backend computes them (Gemma 3n) ----

// One block per row: row r of v scaled to the RMS of row r of ref (HF clamps v's mean square at
// 1e-5), as the CPU's match_magnitude(v, rms(ref)).
__global__ void match_rms_kernel(float* v, const float* ref, int n) {
    GRID_DEPENDENCY();
    __shared__ double red[33];
    float* vr = v + int64_t(blockIdx.x) * n;
    const float* rr = ref + int64_t(blockIdx.x) * n;
    double a = 0, b = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) a += double(rr[i]) * rr[i], b += double(vr[i]) * vr[i];
    a = block_sum(a, red);
    b = block_sum(b, red);
    const float target = float(sqrt(a / double(n))), mag = float(sqrt(fmax(b / double(n), 1e-5)));
    for (int i = threadIdx.x; i < n; i += blockDim.x) vr[i] = vr[i] * target / mag;
}

// ref: HF Gemma3nTextMLP._gaussian_topk on each row's first F values (row stride ld): keep what
// lies above mean + k·std (population std), shifted down by that cutoff.
__global__ void gaussian_topk_kernel(float* g, int ld, int F, float k) {
    GRID_DEPENDENCY();
    __shared__ double red[33];
    float* r = g + int64_t(blockIdx.x) * ld;
    double s = 0;
    for (int i = threadIdx.x; i < F; i += blockDim.x) s += r[i];
    const double mean = block_sum(s, red) / double(F);
    double v = 0;
    for (int i = threadIdx.x; i < F; i += blockDim.x) v += (r[i] - mean) * (r[i] - mean);
    v = block_sum(v, red);
    const float cutoff = float(mean + sqrt(v / double(F)) * double(k));
    for (int i = threadIdx.x; i < F; i += blockDim.x) r[i] = fmaxf(0.f, r[i] - cutoff);
}

}  // namespace
}  // namespace archlens::ARCHLENS_CUDA_NS

#if defined(__CUDACC__)
#pragma nv_diagnostic pop
#elif defined(__GNUC__)
#pragma GCC diagnostic pop
#endif
