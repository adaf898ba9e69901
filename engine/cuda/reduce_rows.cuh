// Row kernels with double-precision sums, as the CPU backend computes them (Gemma 3n's magnitude
// matching and activation sparsity). Shared by the forward pass and the single-operation entry
// points the tests hold to the CPU. Internal to engine/cuda.
#pragma once
#include "engine/cuda/cuda_api.h"

namespace archlens::ARCHLENS_CUDA_NS {
namespace {

// Σ over the block in double, returned to every thread (`red`: 33 doubles of shared memory).
__device__ double block_sum_d(double v, double* red) {
    for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
    const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, n_warps = (blockDim.x + 31) >> 5;
    __syncthreads();
    if (lane == 0) red[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < n_warps ? red[lane] : 0.0;
        for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
        if (lane == 0) red[32] = v;
    }
    __syncthreads();
    return red[32];
}

// One block per row: row r of v scaled to the RMS of row r of ref (HF clamps v's mean square at
// 1e-5), as the CPU's match_magnitude(v, rms(ref)).
[[maybe_unused]] __global__ void match_rms_kernel(float* v, const float* ref, int n) {
    __shared__ double red[33];
    float* vr = v + int64_t(blockIdx.x) * n;
    const float* rr = ref + int64_t(blockIdx.x) * n;
    double a = 0, b = 0;
    for (int i = threadIdx.x; i < n; i += blockDim.x) a += double(rr[i]) * rr[i], b += double(vr[i]) * vr[i];
    a = block_sum_d(a, red);
    b = block_sum_d(b, red);
    const float target = float(sqrt(a / double(n))), mag = float(sqrt(fmax(b / double(n), 1e-5)));
    for (int i = threadIdx.x; i < n; i += blockDim.x) vr[i] = vr[i] * target / mag;
}

// ref: HF Gemma3nTextMLP._gaussian_topk on each row's first F values (row stride ld): keep what
// lies above mean + k·std (population std), shifted down by that cutoff.
[[maybe_unused]] __global__ void gaussian_topk_kernel(float* g, int ld, int F, float k) {
    __shared__ double red[33];
    float* r = g + int64_t(blockIdx.x) * ld;
    double s = 0;
    for (int i = threadIdx.x; i < F; i += blockDim.x) s += r[i];
    const double mean = block_sum_d(s, red) / double(F);
    double v = 0;
    for (int i = threadIdx.x; i < F; i += blockDim.x) v += (r[i] - mean) * (r[i] - mean);
    v = block_sum_d(v, red);
    const float cutoff = float(mean + sqrt(v / double(F)) * double(k));
    for (int i = threadIdx.x; i < F; i += blockDim.x) r[i] = fmaxf(0.f, r[i] - cutoff);
}

}  // namespace
}  // namespace archlens::ARCHLENS_CUDA_NS
