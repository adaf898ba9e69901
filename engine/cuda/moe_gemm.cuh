// A prompt's routed experts without the host: the (token, expert) pairs sorted by expert on the
// device (moe_group_kernel), then each expert's [gate ; up] and down products over exactly its
// pairs' rows as tiles of one grouped kernel (moe_group_gemm_kernel), for every weight type the
// mat-vec reads (quantized blocks as stored, decoded into shared memory a tile at a time). The
// launch shapes depend only on the token count, so nothing waits for the routing: one MoE layer is
// four kernels instead of a synchronisation and a few launches per expert. Internal to engine/cuda.
#pragma once
#include "engine/cuda/cuda_api.h"
#include <algorithm>
#include "engine/cuda/check.cuh"
#include "engine/cuda/dequant.cuh"
#include "engine/cuda/kernels.cuh"
#include "engine/cuda/matvec.cuh"

namespace archlens::ARCHLENS_CUDA_NS {
namespace {

constexpr int kGroupRows = 32;         // pairs a tile
constexpr int kGroupCols = 64;         // output columns a tile
constexpr int kGroupK = 32;            // inputs a step
constexpr int kGroupThreads = 256;
constexpr int kGroupMaxExperts = 1024;  // experts a layer the sort holds in shared memory
constexpr int kGroupPairs = 4096;       // pairs a chunk of a prompt (bounds the scratch)

// Tiles a chunk of P pairs over E experts can need at most: ⌈P / rows⌉ plus one partial tile per expert.
inline int64_t group_tile_bound(int64_t P, int64_t E) { return (P + kGroupRows - 1) / kGroupRows + std::min(P, E); }

// One block: the P pairs' experts sel[p] sorted into slots (order[slot] = p, each expert's pairs
// contiguous, experts ascending) and the tile table (tiles[3·i] = expert, first slot, end slot),
// n_tiles[0] its length. Within an expert the order is whatever the atomics give: every row of
// the products is computed alone, so the results do not depend on it.
__global__ void moe_group_kernel(const int* sel, int P, int E, int* order, int* tiles, int* n_tiles) {
    GRID_DEPENDENCY();
    __shared__ int count[kGroupMaxExperts], start[kGroupMaxExperts];
    for (int e = int(threadIdx.x); e < E; e += int(blockDim.x)) count[e] = 0;
    __syncthreads();
    for (int p = int(threadIdx.x); p < P; p += int(blockDim.x)) atomicAdd(&count[sel[p]], 1);
    __syncthreads();
    if (threadIdx.x == 0) {
        int off = 0, nt = 0;
        for (int e = 0; e < E; ++e) {
            start[e] = off;
            for (int r = 0; r < count[e]; r += kGroupRows, ++nt) {
                tiles[3 * nt] = e;
                tiles[3 * nt + 1] = off + r;
                tiles[3 * nt + 2] = off + (count[e] - r < kGroupRows ? count[e] : r + kGroupRows);
            }
            off += count[e];
            count[e] = 0;  // reused as each expert's fill
        }
        n_tiles[0] = nt;
    }
    __syncthreads();
    for (int p = int(threadIdx.x); p < P; p += int(blockDim.x)) {
        const int e = sel[p];
        order[start[e] + atomicAdd(&count[e], 1)] = p;
    }
}

// Tile blockIdx.x of the table (expert e, slots s0 .. s1) times columns blockIdx.y·kGroupCols …:
//   plain:  y[out(s)][c] = Σ_i in(s)[i] · W_e[c][i]                          (c < n_out)
//   gated:  y[out(s)][c] = act(Σ_i in(s)[i] · W_e[c][i]) · Σ_i in(s)[i] · W_e[n_out + c][i]
// in(s): gather ? row order[s] / gather of x, scaled by xscale[order[s]] when given : row s of x;
// out(s): scatter ? order[s] : s. Activations round as the mat-vec rounds them (act_in).
// The products run on tensor cores in 3xTF32 (as attention_mma_kernel: f32 accuracy): warp w of
// the eight takes the 16 × 16 output tile (rows 16·(w / 4), columns 16·(w % 4)), and for a gated
// product the up tile beside it; the sums go through shared memory to the epilogue. F16 and BF16
// experts (their activations rounded to the same type) are exact in TF32: one product a step. Every output
// element is its own row's and column's dot product, so a row's result does not depend on which
// pairs share its tile (chunking cannot change it).
constexpr int kGroupLd = kGroupK + 4;  // padded rows of the staged tiles (wmma: 32-byte aligned, 16-byte strides)
static_assert(kGroupRows == 32 && kGroupCols == 64 && kGroupThreads == 256, "eight warps, one 16 × 16 output tile each");

template <bool Gated>
__global__ void moe_group_gemm_kernel(DType type, const uint8_t* const* experts, size_t row_bytes, int n_out, int n_in,
                                      const int* tiles, const int* n_tiles, const int* order, const float* x, int gather,
                                      const float* xscale, bool scatter, int act, float* y) {
    GRID_DEPENDENCY();
#if !defined(__CUDA_ARCH__) || __CUDA_ARCH__ >= 800
    using namespace nvcuda;
    using FragA = wmma::fragment<wmma::matrix_a, 16, 16, 8, wmma::precision::tf32, wmma::row_major>;
    using FragW = wmma::fragment<wmma::matrix_b, 16, 16, 8, wmma::precision::tf32, wmma::col_major>;
    constexpr int WR = Gated ? 2 * kGroupCols : kGroupCols;
    __shared__ __align__(32) float as[kGroupRows * kGroupLd];  // [row][k]
    __shared__ __align__(32) float ws[WR * kGroupLd];          // [weight row][k]: columns of the product
    __shared__ __align__(32) float cs[kGroupRows * (WR + 4)];  // the sums, [row][column]
    __shared__ int64_t in_row[kGroupRows], out_row[kGroupRows];
    __shared__ float in_scale[kGroupRows];
    if (int(blockIdx.x) >= n_tiles[0]) return;  // the whole block: the bound over-counts
    const int e = tiles[3 * blockIdx.x], s0 = tiles[3 * blockIdx.x + 1], rows = tiles[3 * blockIdx.x + 2] - s0;
    const int c0 = int(blockIdx.y) * kGroupCols, tid = int(threadIdx.x), warp = tid >> 5;
    if (tid < kGroupRows) {
        const int s = s0 + (tid < rows ? tid : 0), p = order[s];
        in_row[tid] = gather ? p / gather : s;
        in_scale[tid] = gather && xscale ? xscale[p] : 1.f;
        out_row[tid] = scatter ? p : s;
    }
    const uint8_t* w = experts[e];
    const int be = block_elems(type), bb = block_bytes(type);
    const int wr0 = 16 * (warp / 4), wc0 = 16 * (warp % 4);  // the warp's output tile
    const bool exact = type == DType::F16 || type == DType::BF16;
    MmaAcc acc, accu;
    wmma::fill_fragment(acc, 0.f);
    wmma::fill_fragment(accu, 0.f);
    __syncthreads();
    for (int k0 = 0; k0 < n_in; k0 += kGroupK) {
        for (int i = tid; i < kGroupRows * kGroupK; i += kGroupThreads) {
            const int r = i / kGroupK, kk = i % kGroupK, k = k0 + kk;
            as[r * kGroupLd + kk] = r < rows && k < n_in ? act_in(type, in_scale[r] * x[in_row[r] * n_in + k]) : 0.f;
        }
        // the weights: runs of eight inputs of one row (a quantized block's run decoded at once)
        for (int i = tid; i < WR * (kGroupK / 8); i += kGroupThreads) {
            const int wr = i / (kGroupK / 8), kk = (i % (kGroupK / 8)) * 8, k = k0 + kk;
            const int c = c0 + (Gated && wr >= kGroupCols ? wr - kGroupCols : wr);
            const int64_t row = Gated && wr >= kGroupCols ? int64_t(n_out) + c : c;
            float v[8];
            if (c >= n_out) {
                for (int j = 0; j < 8; ++j) v[j] = 0.f;
            } else if (be >= 32 && k + 8 <= n_in) {
                dequant_run8(type, w + size_t(row) * row_bytes + size_t(k / be) * size_t(bb), k % be, v);
            } else {
                for (int j = 0; j < 8; ++j)
                    v[j] = k + j < n_in ? dequant_element(type, w + size_t(row) * row_bytes + size_t((k + j) / be) * size_t(bb), (k + j) % be)
                                        : 0.f;
            }
            for (int j = 0; j < 8; ++j) ws[wr * kGroupLd + kk + j] = v[j];
        }
        __syncthreads();
#pragma unroll
        for (int k8 = 0; k8 < kGroupK / 8; ++k8) {
            FragA a, a_big, a_small;
            wmma::load_matrix_sync(a, as + wr0 * kGroupLd + k8 * 8, kGroupLd);
            tf32_split(a, a_big, a_small);
            FragW wf;  // element (k, column) at ws[column · ld + k]
            wmma::load_matrix_sync(wf, ws + wc0 * kGroupLd + k8 * 8, kGroupLd);
            mma_3xtf32(acc, a_big, a_small, wf, exact);
            if (Gated) {
                wmma::load_matrix_sync(wf, ws + (kGroupCols + wc0) * kGroupLd + k8 * 8, kGroupLd);
                mma_3xtf32(accu, a_big, a_small, wf, exact);
            }
        }
        __syncthreads();  // the tiles are rewritten by the next step
    }
    wmma::store_matrix_sync(cs + wr0 * (WR + 4) + wc0, acc, WR + 4, wmma::mem_row_major);
    if (Gated) wmma::store_matrix_sync(cs + wr0 * (WR + 4) + kGroupCols + wc0, accu, WR + 4, wmma::mem_row_major);
    __syncthreads();
    for (int i = tid; i < kGroupRows * kGroupCols; i += kGroupThreads) {
        const int r = i / kGroupCols, cc = i % kGroupCols, c = c0 + cc;
        if (r >= rows || c >= n_out) continue;
        const float g = cs[r * (WR + 4) + cc];
        y[out_row[r] * n_out + c] = Gated ? act_fn(act, g) * cs[r * (WR + 4) + kGroupCols + cc] : g;
    }
#else
    __trap();  // device code built for an architecture without TF32 products: a launch error, not a wrong answer
#endif
}

// The launches over a chunk of P pairs (sel: their experts) of one layer, into the scratch given.
struct GroupScratch {
    int* order = nullptr;
    int* tiles = nullptr;
    int* n_tiles = nullptr;
};

inline void launch_moe_group(cudaStream_t stream, const int* sel, int P, int E, const GroupScratch& g) {
    LAUNCH_SYNC(moe_group_kernel, 1, kGroupThreads, stream)(sel, P, E, g.order, g.tiles, g.n_tiles);
    check(cudaGetLastError(), "moe_group_kernel");
}

template <bool Gated>
void launch_moe_group_gemm(cudaStream_t stream, DType type, const uint8_t* const* experts, size_t row_bytes, int n_out, int n_in, int P,
                           int E, const GroupScratch& g, const float* x, int gather, const float* xscale, bool scatter, int act, float* y) {
    const dim3 grid{unsigned(group_tile_bound(P, E)), unsigned((n_out + kGroupCols - 1) / kGroupCols), 1u};
    LAUNCH_SYNC(moe_group_gemm_kernel<Gated>, grid, kGroupThreads, stream)(type, experts, row_bytes, n_out, n_in, g.tiles, g.n_tiles, g.order, x,
                                                                          gather, xscale, scatter, act, y);
    check(cudaGetLastError(), "moe_group_gemm_kernel");
}

}  // namespace
}  // namespace archlens::ARCHLENS_CUDA_NS
