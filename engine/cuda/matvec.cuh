// The matrix-vector product for a few tokens (decode), shared by the forward pass and the
// single-operation entry point the tests hold to the CPU (cuda::matvec). Internal to engine/cuda.
#pragma once
#include "engine/cuda/cuda_api.h"
#include <cstdint>
#include <string>
#include <type_traits>
#include "engine/cuda/check.cuh"
#include "engine/cuda/dequant.cuh"
#include "engine/cuda/kernels.cuh"

namespace archlens::ARCHLENS_CUDA_NS {
namespace {

constexpr int kMatvecMaxT = 8;   // up to this many tokens: one pass over the weights, no GEMM
constexpr int kMatvecWarps = 4;  // weight rows per block, one per warp
constexpr int kRowBatch = 8;     // 16-byte weight loads a lane has in flight (F16/BF16 rows)
constexpr size_t kPrefetchBytes = 4096;  // of each row, asked into L2 before the kernel waits for its input

// Weights are read by no kernel's writes, so a product can ask for its rows' first bytes before
// GRID_DEPENDENCY: under programmatic launches that fetch overlaps the previous kernel's tail.
// Only the first kPrefetchBytes of each row (what its first loads need), so that the rows of
// every resident warp fit the L2 together.
__device__ __forceinline__ void prefetch_row(const uint8_t* row, size_t row_bytes, int lane) {
    const size_t n = row_bytes < kPrefetchBytes ? row_bytes : kPrefetchBytes;
    for (size_t o = size_t(lane) * 128; o < n; o += 32 * 128) PREFETCH_L2(row + o);
}

// An activation as the product sees it: rounded to the weight's type for F16/BF16 weights (what
// the GEMM path's conversion does, and what the CPU backend and ggml do), else as is.
__device__ __forceinline__ float act_in(DType t, float v) {
    if (t == DType::BF16) return __bfloat162float(__float2bfloat16_rn(v));
    if (t == DType::F16) return __half2float(__float2half_rn(v));
    return v;
}

// BF16/F16 rows whose lanes read eight weights (16 bytes) at a time: n_in a multiple of 256.
__device__ __forceinline__ bool half_rows(DType t, int n_in) { return (t == DType::BF16 || t == DType::F16) && n_in % 256 == 0; }

// RB 16-byte loads of one lane's share of a half row: the eight weights at b0 + u·256 for u < RB
// (b0 = lane·8 + a multiple of 256·RB), issued before any is used; those past n_in left zero.
template <int RB>
__device__ __forceinline__ void half_load(const uint8_t* row, int b0, int n_in, uint4 (&raw)[RB]) {
#pragma unroll
    for (int u = 0; u < RB; ++u) {
        const int i0 = b0 + u * 256;
        raw[u] = make_uint4(0u, 0u, 0u, 0u);
        if (i0 < n_in) {
            DEVICE_ALIGNED(row + size_t(i0) * 2, 16);
            raw[u] = *reinterpret_cast<const uint4*>(row + size_t(i0) * 2);
        }
    }
}

// acc[t] += the weights half_load read at b0 · xs·x[t] at the same elements, element by element
// in order (every caller's sums are the same sums in the same order).
template <int NT, int RB>
__device__ __forceinline__ void half_dot(DType type, const uint4 (&raw)[RB], int b0, int n_in, const float* x, int64_t ldx, bool xvec, float xs,
                                         float (&acc)[NT]) {
#pragma unroll
    for (int u = 0; u < RB; ++u) {
        const int i0 = b0 + u * 256;
        if (i0 >= n_in) break;
        uint16_t hv[8];
        memcpy(hv, &raw[u], 16);
        float wv[8];
#pragma unroll
        for (int j = 0; j < 8; ++j) wv[j] = type == DType::BF16 ? bf16_bits(hv[j]) : half_bits(hv[j]);
#pragma unroll
        for (int t = 0; t < NT; ++t) {
            float xe[8];
            load8(x + int64_t(t) * ldx + i0, xvec, xe);
#pragma unroll
            for (int j = 0; j < 8; ++j) acc[t] += wv[j] * act_in(type, xs * xe[j]);
        }
    }
}

__device__ __forceinline__ bool x_vec(const float* x, int64_t ldx) { return (reinterpret_cast<uintptr_t>(x) & 15) == 0 && ldx % 4 == 0; }

// RB 16-byte loads a lane keeps in flight over a half row for NT tokens: fewer as the tokens'
// sums take the registers (ptxas -v put a batch of 8 in local memory at 3 tokens, of 4 at 7)
template <int NT>
constexpr int kHalfBatch = NT <= 2 ? kRowBatch : NT <= 5 ? kRowBatch / 2 : kRowBatch / 4;

// The rest of a half row's dot product after its first batch, `first` (half_load at lane·8, read
// before the kernel waited for its input: see the kernels below).
template <int NT, int RB>
__device__ __forceinline__ void half_row_dot_from(DType type, const uint4 (&first)[RB], const uint8_t* row, int n_in, const float* x, int64_t ldx,
                                                  float xs, float (&acc)[NT], int lane) {
    const bool xvec = x_vec(x, ldx);
    half_dot<NT, RB>(type, first, lane * 8, n_in, x, ldx, xvec, xs, acc);
    for (int b0 = lane * 8 + 256 * RB; b0 < n_in; b0 += 256 * RB) {
        uint4 raw[RB];
        half_load<RB>(row, b0, n_in, raw);
        half_dot<NT, RB>(type, raw, b0, n_in, x, ldx, xvec, xs, acc);
    }
}

// acc[t] += Σ_i row[i] · xs·x[t][i] over this lane's share of one weight row (n_in weights, rows
// of x ldx apart), f32 accumulation; the caller reduces acc over the warp. F16/BF16 rows are read
// 16 bytes per lane (eight weights) in batches of RB loads issued together (one round trip to
// memory per batch instead of one per load; the sums stay in element order), F32 rows four per
// lane, quantized rows eight weights per lane through dequant_run8 (the blocks as stored: no
// dequantized copy; one scale decode per eight weights), anything else element by element. xs
// scales the activations before their rounding (Llama 4's expert input); 1 leaves them exact.
template <int NT>
__device__ __forceinline__ void row_dot(DType type, const uint8_t* row, int n_in, const float* x, int64_t ldx, float xs, float (&acc)[NT],
                                        int lane) {
    if (half_rows(type, n_in)) {
        constexpr int RB = kHalfBatch<NT>;
        const bool xvec = x_vec(x, ldx);
        for (int b0 = lane * 8; b0 < n_in; b0 += 256 * RB) {
            uint4 raw[RB];
            half_load<RB>(row, b0, n_in, raw);
            half_dot<NT, RB>(type, raw, b0, n_in, x, ldx, xvec, xs, acc);
        }
    } else if (type == DType::F32 && n_in % 128 == 0) {
#pragma unroll 4
        for (int i0 = lane * 4; i0 < n_in; i0 += 128) {
            DEVICE_ALIGNED(row + size_t(i0) * 4, 16);
            const uint4 raw = *reinterpret_cast<const uint4*>(row + size_t(i0) * 4);
            float wv[4];
            memcpy(wv, &raw, 16);
#pragma unroll
            for (int j = 0; j < 4; ++j)
#pragma unroll
                for (int t = 0; t < NT; ++t) acc[t] += wv[j] * (xs * x[int64_t(t) * ldx + i0 + j]);
        }
    } else if (block_elems(type) >= 32) {
        // quantized blocks as stored, eight weights at a time: their scale decoded once per eight
        const int be = block_elems(type), bb = block_bytes(type);
#pragma unroll 2
        for (int i0 = lane * 8; i0 < n_in; i0 += 256) {
            float wv[8];
            dequant_run8(type, row + size_t(i0 / be) * size_t(bb), i0 % be, wv);
#pragma unroll
            for (int j = 0; j < 8; ++j)
#pragma unroll
                for (int t = 0; t < NT; ++t) acc[t] += wv[j] * (xs * x[int64_t(t) * ldx + i0 + j]);
        }
    } else {
        const int be = block_elems(type), bb = block_bytes(type);
        for (int i = lane; i < n_in; i += 32) {
            const float wv = dequant_element(type, row + size_t(i / be) * size_t(bb), i % be);
#pragma unroll
            for (int t = 0; t < NT; ++t) acc[t] += wv * act_in(type, xs * x[int64_t(t) * ldx + i]);
        }
    }
}

__device__ __forceinline__ float warp_sum(float v) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    return v;  // lane 0 holds the sum
}

// y[t·ldy + r] = Σ_i W[r][i] · x[t][i] (+ bias[r]) for NT tokens: one warp per weight row, the row
// read once for all NT tokens. A half row's first batch of loads goes out before GRID_DEPENDENCY
// (weights are written by no kernel): under programmatic launches it is in flight while the kernel
// before finishes, and in any case while this one waits; other types ask for the row into L2.
template <int NT>
__global__ void matvec_kernel(DType type, const uint8_t* w, size_t row_bytes, int n_out, int n_in, const float* x, float* y, int ldy,
                              const float* bias, bool accumulate) {
    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
    const int r = int(blockIdx.x) * kMatvecWarps + warp;
    const uint8_t* row = w + size_t(r) * row_bytes;
    constexpr int RB = kHalfBatch<NT>;
    // not for 3+ tokens: their sums and the held batch went to local memory (ptxas -v)
    const bool pre = NT <= 2 && r < n_out && half_rows(type, n_in);
    uint4 first[RB];
    if (pre) half_load<RB>(row, lane * 8, n_in, first);
    else if (r < n_out) prefetch_row(row, row_bytes, lane);
    GRID_DEPENDENCY();
    if (r >= n_out) return;  // the whole warp: shuffles below stay within live warps
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = 0.f;
    if (pre) half_row_dot_from<NT, RB>(type, first, row, n_in, x, n_in, 1.f, acc, lane);
    else row_dot<NT>(type, row, n_in, x, n_in, 1.f, acc, lane);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
        const float v = warp_sum(acc[t]) + (bias ? bias[r] : 0.f);
        if (lane == 0) {
            float* o = y + int64_t(t) * ldy + r;
            *o = accumulate ? *o + v : v;  // accumulate: the residual add in the product's epilogue
        }
    }
}

// The grouped expert product of a few routed tokens: pair p = blockIdx.y (token p / K, its k-th
// expert e = sel[p]) multiplies its input row x[p / x_div] (times xscale[p] when given) by expert
// e's weight (experts[e], every expert the same type and shape) into y[p][n_out]. The expert is
// read on the device, so a decode step with MoE layers needs no host round trip and can be a graph.
[[maybe_unused]] __global__ void moe_matvec_kernel(DType type, const uint8_t* const* experts, const int* sel, size_t row_bytes, int n_out, int n_in,
                                  const float* x, int x_div, const float* xscale, float* y) {
    GRID_DEPENDENCY();
    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
    const int r = int(blockIdx.x) * kMatvecWarps + warp, p = int(blockIdx.y);
    if (r >= n_out) return;
    float acc[1] = {0.f};
    row_dot<1>(type, experts[sel[p]] + size_t(r) * row_bytes, n_in, x + int64_t(p / x_div) * n_in, n_in, xscale ? xscale[p] : 1.f, acc,
               lane);
    const float v = warp_sum(acc[0]);
    if (lane == 0) y[int64_t(p) * n_out + r] = v;
}

// The same product for every head h = blockIdx.y of an attention layer at once (MLA's per-head
// absorbed key and value projections in a decode step): head h's weight heads[h] (every head the
// same type and shape), its input rows at x + h·x_hs, t·x_ld apart, its output rows at
// y + h·y_hs, t·y_ld apart — the heads' slices of the query and output rows, read and written
// in place.
template <int NT>
__global__ void heads_matvec_kernel(DType type, const uint8_t* const* heads, size_t row_bytes, int n_out, int n_in, const float* x,
                                    int64_t x_ld, int64_t x_hs, float* y, int64_t y_ld, int64_t y_hs) {
    GRID_DEPENDENCY();
    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
    const int r = int(blockIdx.x) * kMatvecWarps + warp, hh = int(blockIdx.y);
    if (r >= n_out) return;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) acc[t] = 0.f;
    row_dot<NT>(type, heads[hh] + size_t(r) * row_bytes, n_in, x + int64_t(hh) * x_hs, x_ld, 1.f, acc, lane);
#pragma unroll
    for (int t = 0; t < NT; ++t) {
        const float v = warp_sum(acc[t]);
        if (lane == 0) y[int64_t(hh) * y_hs + int64_t(t) * y_ld + r] = v;
    }
}

// A fused [gate ; up] weight (rows 0..F gate, F..2F up) and the activation after it: warp r
// takes gate row r and up row F + r and writes act(gate) · up (biases added first) for each of NT
// tokens into y[t·ldy + r] — the sums and the activation of the separate product and
// act_mul_split_kernel, without the [T][2F] intermediate or its launch. Half rows are read in
// batches that hold the gate's and the up's loads together (one round trip for both rows where
// they are short: 1024 wide, four loads a lane each), each row's sums in element order.
template <int NT>
constexpr int kGatedBatch = kHalfBatch<NT> / 2;  // loads a lane has in flight per row
template <int RB>
struct RowPair {
    uint4 g[RB], u[RB];
};
template <int RB>
__device__ __forceinline__ void pair_load(const uint8_t* w, size_t row_bytes, int F, int r, int b0, int n_in, RowPair<RB>& p) {
    half_load<RB>(w + size_t(r) * row_bytes, b0, n_in, p.g);
    half_load<RB>(w + size_t(F + r) * row_bytes, b0, n_in, p.u);
}
// first: the half rows' first batch (pair_load at lane·8) when have_first (read before the kernel's wait)
template <int NT>
__device__ __forceinline__ void gated_rows(DType type, const uint8_t* w, size_t row_bytes, int F, int n_in, const float* x, float xs,
                                           int act, const float* bias, int r, int lane, float* y, int64_t ldy,
                                           const RowPair<kGatedBatch<NT>>& first, bool have_first) {
    float ag[NT], au[NT];
#pragma unroll
    for (int t = 0; t < NT; ++t) ag[t] = au[t] = 0.f;
    if (half_rows(type, n_in)) {
        constexpr int RB = kGatedBatch<NT>;
        const bool xvec = x_vec(x, n_in);
        int b0 = lane * 8;
        if (have_first) {
            half_dot<NT, RB>(type, first.g, b0, n_in, x, n_in, xvec, xs, ag);
            half_dot<NT, RB>(type, first.u, b0, n_in, x, n_in, xvec, xs, au);
            b0 += 256 * RB;
        }
        for (; b0 < n_in; b0 += 256 * RB) {
            RowPair<RB> p;
            pair_load<RB>(w, row_bytes, F, r, b0, n_in, p);
            half_dot<NT, RB>(type, p.g, b0, n_in, x, n_in, xvec, xs, ag);
            half_dot<NT, RB>(type, p.u, b0, n_in, x, n_in, xvec, xs, au);
        }
    } else {
        row_dot<NT>(type, w + size_t(r) * row_bytes, n_in, x, n_in, xs, ag, lane);
        row_dot<NT>(type, w + size_t(F + r) * row_bytes, n_in, x, n_in, xs, au, lane);
    }
#pragma unroll
    for (int t = 0; t < NT; ++t) {
        const float g = warp_sum(ag[t]), u = warp_sum(au[t]);
        if (lane == 0) y[int64_t(t) * ldy + r] = act_fn(act, g + (bias ? bias[r] : 0.f)) * (u + (bias ? bias[F + r] : 0.f));
    }
}

template <int NT>
__global__ void gated_matvec_kernel(DType type, const uint8_t* w, size_t row_bytes, int F, int n_in, const float* x, int act,
                                    const float* bias, float* y) {
    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
    const int r = int(blockIdx.x) * kMatvecWarps + warp;
    const bool pre = r < F && half_rows(type, n_in);
    RowPair<kGatedBatch<NT>> first;
    if (pre) pair_load(w, row_bytes, F, r, lane * 8, n_in, first);
    else if (r < F) prefetch_row(w + size_t(r) * row_bytes, row_bytes, lane), prefetch_row(w + size_t(F + r) * row_bytes, row_bytes, lane);
    GRID_DEPENDENCY();
    if (r >= F) return;
    gated_rows<NT>(type, w, row_bytes, F, n_in, x, 1.f, act, bias, r, lane, y, F, first, pre);
}

// moe_matvec_kernel's pairs through gated_rows: pair p's act(gate) · up into y[p][F].
[[maybe_unused]] __global__ void moe_gated_matvec_kernel(DType type, const uint8_t* const* experts, const int* sel, size_t row_bytes, int F,
                                                         int n_in, const float* x, int x_div, const float* xscale, int act, float* y) {
    GRID_DEPENDENCY();
    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
    const int r = int(blockIdx.x) * kMatvecWarps + warp, p = int(blockIdx.y);
    if (r >= F) return;
    gated_rows<1>(type, experts[sel[p]], row_bytes, F, n_in, x + int64_t(p / x_div) * n_in, xscale ? xscale[p] : 1.f, act, nullptr, r,
                  lane, y + int64_t(p) * F, F, RowPair<kGatedBatch<1>>{}, false);
}

// ---- a single token's RMSNorm in the product's prologue ----
// The decode step's norm before a sublayer is one row: as its own kernel it is a single block and a
// graph node of pure latency. These kernels normalise the token's residual row themselves: every
// block computes RMSNorm(x)·nw into shared memory with rms_norm_kernel's own code (256 threads,
// the same sums in the same order, so the values are identical), then its warps multiply their
// rows by it. n_in up to kNormMaxDim.
constexpr int kNormMaxDim = 8192;
constexpr int kNormWarps = 8;

// The norm-prologue product of this warp's row `row` (live: the warp has a row), summed over the
// warp: the row's first batch of loads goes out before GRID_DEPENDENCY and the norm (as
// matvec_kernel's), in flight while the block waits and reduces the input row x into xs.
__device__ __forceinline__ float norm_row_product(DType type, const uint8_t* row, size_t row_bytes, bool live, int n_in, const float* x,
                                                  const float* nw, float eps, float* xs, float* red, int lane) {
    const bool pre = live && half_rows(type, n_in);
    uint4 first[kRowBatch];
    if (pre) half_load<kRowBatch>(row, lane * 8, n_in, first);
    else if (live) prefetch_row(row, row_bytes, lane);
    GRID_DEPENDENCY();
    rms_norm_row(x, nw, n_in, eps, xs, red);
    if (!live) return 0.f;  // the whole warp: no shuffle below
    float acc[1] = {0.f};
    if (pre) half_row_dot_from<1, kRowBatch>(type, first, row, n_in, xs, n_in, 1.f, acc, lane);
    else row_dot<1>(type, row, n_in, xs, n_in, 1.f, acc, lane);
    return warp_sum(acc[0]);
}

__global__ void LAUNCH_BOUNDS(32 * kNormWarps, 4) norm_matvec_kernel(DType type, const uint8_t* w, size_t row_bytes, int n_out, int n_in, const float* x, const float* nw,
                                   float eps, float* y, const float* bias) {
    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
    const int r = int(blockIdx.x) * kNormWarps + warp;
    __shared__ __align__(16) float xs[kNormMaxDim];
    __shared__ float red[33];
    const float v = norm_row_product(type, w + size_t(r) * row_bytes, row_bytes, r < n_out, n_in, x, nw, eps, xs, red, lane);
    if (r < n_out && lane == 0) y[r] = v + (bias ? bias[r] : 0.f);
}

__global__ void LAUNCH_BOUNDS(32 * kNormWarps, 4) norm_gated_matvec_kernel(DType type, const uint8_t* w, size_t row_bytes, int F, int n_in, const float* x, const float* nw,
                                         float eps, int act, const float* bias, float* y) {
    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
    const int r = int(blockIdx.x) * kNormWarps + warp;
    const bool pre = r < F && half_rows(type, n_in);
    RowPair<kGatedBatch<1>> first;
    if (pre) pair_load(w, row_bytes, F, r, lane * 8, n_in, first);
    else if (r < F) prefetch_row(w + size_t(r) * row_bytes, row_bytes, lane), prefetch_row(w + size_t(F + r) * row_bytes, row_bytes, lane);
    GRID_DEPENDENCY();
    __shared__ __align__(16) float xs[kNormMaxDim];
    __shared__ float red[33];
    rms_norm_row(x, nw, n_in, eps, xs, red);
    if (r >= F) return;
    gated_rows<1>(type, w, row_bytes, F, n_in, xs, 1.f, act, bias, r, lane, y, F, first, pre);
}

// One token's attention prologue in one launch (decode_fast): norm_matvec_kernel's product into
// qkv [q | k | v] (H heads of hd, KV of hd, KV of vd), and the last block to finish a head's rows
// runs qkv_heads_kernel's steps on that head (head_steps: the same sums) — the heads start as
// their rows come in, without a second launch and its wait for the whole product. A block's
// kNormWarps rows lie in one head (hd and vd multiples of kNormWarps: norm_qkv_heads_fits); the
// blocks of head j count themselves at tickets[j], reset by the last one for the next launch.
inline bool norm_qkv_heads_fits(int hd, int vd, int n_in) {
    return hd % kNormWarps == 0 && vd % kNormWarps == 0 && hd <= kAttnMaxDim && vd <= kAttnMaxDim && n_in <= kNormMaxDim;
}
template <typename KT>
__global__ void LAUNCH_BOUNDS(32 * kNormWarps, 4)
    norm_qkv_heads_kernel(DType type, const uint8_t* w, size_t row_bytes, int n_in, const float* x, const float* nw, float eps, const float* bias,
                          float* qkv, int H, int KV, int hd, int vd, HeadOps o, float* q, KT* kc, KT* vc, int64_t cap, const int64_t* pos0,
                          int* tickets) {
    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31;
    const int r0 = int(blockIdx.x) * kNormWarps, r = r0 + warp;  // the grid covers the rows exactly
    __shared__ __align__(16) float xs[kNormMaxDim];
    __shared__ float red[33];
    const float val = norm_row_product(type, w + size_t(r) * row_bytes, row_bytes, true, n_in, x, nw, eps, xs, red, lane);
    if (lane == 0) qkv[r] = val + (bias ? bias[r] : 0.f);
    const int qd = H * hd, kd = KV * hd;
    const int j = r0 < qd ? r0 / hd : r0 < qd + kd ? H + (r0 - qd) / hd : H + KV + (r0 - qd - kd) / vd;
    const int n = j < H + KV ? hd : vd;
    __threadfence();  // the rows are visible device-wide before the ticket says so
    __syncthreads();
    __shared__ int last;
    if (threadIdx.x == 0) last = atomicAdd(tickets + j, 1) == n / kNormWarps - 1;
    __syncthreads();
    if (!last) return;
    __threadfence();
    if (threadIdx.x == 0) tickets[j] = 0;
    __shared__ float v[kAttnMaxDim];
    const float* src = qkv + (j < H ? j * hd : j < H + KV ? qd + (j - H) * hd : qd + kd + (j - H - KV) * vd);
    for (int d = head_lane(n); d < n; d += kHeadThreads) v[d] = __ldcg(src + d);  // other blocks' rows: past L1
    head_steps<KT>(v, red, 0, j, H, KV, hd, vd, o, q, kc, vc, cap, *pos0);
}

// Calls f(std::integral_constant<int, T>) for 1 <= T <= kMatvecMaxT: the token count as a
// template argument of the mat-vec kernels.
template <class F>
void with_tokens(int T, F&& f) {
    switch (T) {
        case 1: f(std::integral_constant<int, 1>{}); break;
        case 2: f(std::integral_constant<int, 2>{}); break;
        case 3: f(std::integral_constant<int, 3>{}); break;
        case 4: f(std::integral_constant<int, 4>{}); break;
        case 5: f(std::integral_constant<int, 5>{}); break;
        case 6: f(std::integral_constant<int, 6>{}); break;
        case 7: f(std::integral_constant<int, 7>{}); break;
        case 8: f(std::integral_constant<int, 8>{}); break;
        default: throw Error("matvec: " + std::to_string(T) + " tokens (1.." + std::to_string(kMatvecMaxT) + ")");
    }
}

// Launches matvec_kernel<T> on `stream` for 1 <= T <= kMatvecMaxT tokens.
// accumulate: y += the product (the residual add in its epilogue).
inline void launch_matvec(cudaStream_t stream, DType type, const uint8_t* w, size_t row_bytes, int n_out, int n_in, const float* x,
                          int T, float* y, int ldy, const float* bias, bool accumulate = false) {
    const unsigned grid = unsigned((n_out + kMatvecWarps - 1) / kMatvecWarps), threads = 32 * kMatvecWarps;
    with_tokens(T, [&](auto n) {
        LAUNCH_SYNC(matvec_kernel<decltype(n)::value>, grid, threads, stream)(type, w, row_bytes, n_out, n_in, x, y, ldy, bias, accumulate);
    });
    check(cudaGetLastError(), "matvec_kernel");
}

// Launches heads_matvec_kernel<T> over `heads` heads.
inline void launch_heads_matvec(cudaStream_t stream, DType type, const uint8_t* const* w, size_t row_bytes, int n_out, int n_in, int heads,
                                const float* x, int64_t x_ld, int64_t x_hs, int T, float* y, int64_t y_ld, int64_t y_hs) {
    const dim3 grid{unsigned((n_out + kMatvecWarps - 1) / kMatvecWarps), unsigned(heads), 1u};
    with_tokens(T, [&](auto n) {
        LAUNCH_SYNC(heads_matvec_kernel<decltype(n)::value>, grid, 32 * kMatvecWarps, stream)(type, w, row_bytes, n_out, n_in, x, x_ld,
                                                                                              x_hs, y, y_ld, y_hs);
    });
    check(cudaGetLastError(), "heads_matvec_kernel");
}

}  // namespace
}  // namespace archlens::ARCHLENS_CUDA_NS

namespace archlens::ARCHLENS_CUDA_NS {
namespace {

// Launches gated_matvec_kernel<T>: y [T][F] = act(x·gateᵀ) · (x·upᵀ) from the [gate ; up] rows w.
inline void launch_gated_matvec(cudaStream_t stream, DType type, const uint8_t* w, size_t row_bytes, int F, int n_in, const float* x, int T,
                                int act, const float* bias, float* y) {
    const unsigned grid = unsigned((F + kMatvecWarps - 1) / kMatvecWarps);
    with_tokens(T, [&](auto n) {
        LAUNCH_SYNC(gated_matvec_kernel<decltype(n)::value>, grid, 32 * kMatvecWarps, stream)(type, w, row_bytes, F, n_in, x, act, bias, y);
    });
    check(cudaGetLastError(), "gated_matvec_kernel");
}

}  // namespace
}  // namespace archlens::ARCHLENS_CUDA_NS

namespace archlens::ARCHLENS_CUDA_NS {
namespace {

// One token: y [n_out] = RMSNorm(x)·nw · Wᵀ (+ bias); gated: y [F] = act(gate) · up of the
// normalised row. n_in <= kNormMaxDim.
inline void launch_norm_matvec(cudaStream_t stream, DType type, const uint8_t* w, size_t row_bytes, int n_out, int n_in, const float* x,
                               const float* nw, float eps, float* y, const float* bias) {
    LAUNCH_SYNC(norm_matvec_kernel, unsigned((n_out + kNormWarps - 1) / kNormWarps), 32 * kNormWarps, stream)(type, w, row_bytes, n_out, n_in,
                                                                                                             x, nw, eps, y, bias);
    check(cudaGetLastError(), "norm_matvec_kernel");
}
inline void launch_norm_gated_matvec(cudaStream_t stream, DType type, const uint8_t* w, size_t row_bytes, int F, int n_in, const float* x,
                                     const float* nw, float eps, int act, const float* bias, float* y) {
    LAUNCH_SYNC(norm_gated_matvec_kernel, unsigned((F + kNormWarps - 1) / kNormWarps), 32 * kNormWarps, stream)(type, w, row_bytes, F, n_in, x,
                                                                                                               nw, eps, act, bias, y);
    check(cudaGetLastError(), "norm_gated_matvec_kernel");
}

// Launches norm_qkv_heads_kernel over the fused [q ; k ; v] weight w (H·hd + KV·hd + KV·vd rows).
template <typename KT>
void launch_norm_qkv_heads(cudaStream_t stream, DType type, const uint8_t* w, size_t row_bytes, int n_in, const float* x, const float* nw,
                           float eps, const float* bias, float* qkv, int H, int KV, int hd, int vd, const HeadOps& o, float* q, KT* kc, KT* vc,
                           int64_t cap, const int64_t* pos0, int* tickets) {
    const int n_out = (H + KV) * hd + KV * vd;
    LAUNCH_SYNC(norm_qkv_heads_kernel<KT>, unsigned(n_out / kNormWarps), 32 * kNormWarps, stream)(type, w, row_bytes, n_in, x, nw, eps, bias, qkv, H,
                                                                                              KV, hd, vd, o, q, kc, vc, cap, pos0, tickets);
    check(cudaGetLastError(), "norm_qkv_heads_kernel");
}

}  // namespace
}  // namespace archlens::ARCHLENS_CUDA_NS
