// MoE routing on the device: the router's logits to each token's experts and weights, exactly as
// cpu::moe_route decides them (softmax or sigmoid scores, the selection bias of noaux_tc, DeepSeek-V3's
// group-limited choice, top-k with ties to the lower expert, normalised and scaled weights), and the
// weighted sum of the experts' outputs. Shared by the forward pass and the single-operation entry
// point the tests hold to the CPU (cuda::moe_route). Internal to engine/cuda.
#pragma once
#include "engine/cuda/cuda_api.h"
#include "engine/cuda/check.cuh"
#include "engine/model/spec.h"

namespace archlens::ARCHLENS_CUDA_NS {
namespace {

constexpr int kMoeMaxExperts = 1024;  // experts per layer the routing kernel holds (Kimi K2: 384)
constexpr int kMoeMaxK = 16;          // experts per token
constexpr int kMoeMaxGroups = 64;
constexpr int kRouteThreads = 256;

struct RouteParams {
    int E = 0, K = 0;
    bool sigmoid = false, weight_on_input = false, norm_topk = false;
    int n_group = 1, topk_group = 1;
    float routed_scale = 1.f;
};

inline RouteParams route_params(const FfnSpec& f) {
    RouteParams p;
    p.E = f.n_experts;
    p.K = f.top_k;
    p.sigmoid = f.scoring != Scoring::Softmax;
    p.weight_on_input = f.weight_on_input;
    p.norm_topk = f.norm_topk;
    p.n_group = f.n_group;
    p.topk_group = f.topk_group;
    p.routed_scale = f.routed_scale;
    return p;
}

// Why a layer's routing cannot run on the device ("" when it can).
inline std::string route_unsupported(const FfnSpec& f) {
    if (f.n_experts > kMoeMaxExperts) return std::to_string(f.n_experts) + " experts (at most " + std::to_string(kMoeMaxExperts) + ")";
    if (f.top_k < 1 || f.top_k > kMoeMaxK || f.top_k > f.n_experts) return "top-" + std::to_string(f.top_k) + " routing";
    if (f.n_group > 1 && (f.n_group > kMoeMaxGroups || f.n_experts % f.n_group != 0 || f.topk_group < 1 || f.topk_group > f.n_group))
        return "expert groups " + std::to_string(f.n_group) + "/" + std::to_string(f.topk_group);
    return {};
}

// The block's largest value among the not-taken entries of v[0..n), ties to the lower index (as
// std::stable_sort by descending score orders them). Every thread gets the index.
__device__ int block_argmax(const float* v, const unsigned char* taken, int n, float* rv, int* ri) {
    float best = -INFINITY;
    int bi = 0x7fffffff;
    for (int i = int(threadIdx.x); i < n; i += int(blockDim.x))
        if (!taken[i] && (v[i] > best || bi == 0x7fffffff)) best = v[i], bi = i;  // strided: the first of the largest
    for (int o = 16; o > 0; o >>= 1) {
        const float ob = __shfl_down_sync(0xffffffffu, best, o);
        const int oi = __shfl_down_sync(0xffffffffu, bi, o);
        if (oi != 0x7fffffff && (bi == 0x7fffffff || ob > best || (ob == best && oi < bi))) best = ob, bi = oi;
    }
    const int warp = int(threadIdx.x) >> 5, lane = int(threadIdx.x) & 31, n_warps = (int(blockDim.x) + 31) >> 5;
    __syncthreads();
    if (lane == 0) rv[warp] = best, ri[warp] = bi;
    __syncthreads();
    if (threadIdx.x == 0) {
        for (int w = 1; w < n_warps; ++w)
            if (ri[w] != 0x7fffffff && (bi == 0x7fffffff || rv[w] > best || (rv[w] == best && ri[w] < bi))) best = rv[w], bi = ri[w];
        ri[32] = bi;
    }
    __syncthreads();
    return ri[32];
}

// One block per token t: logits [T][E] → sel/wts [T][K] and, when probs is given, the router's
// probabilities [T][E] (the routing probe).
__global__ void moe_route_kernel(const float* logits, RouteParams p, const float* selection_bias, int* sel, float* wts, float* probs) {
    GRID_DEPENDENCY();
    __shared__ float pr[kMoeMaxExperts], ch[kMoeMaxExperts];
    __shared__ unsigned char taken[kMoeMaxExperts];
    __shared__ float rv[33];
    __shared__ int ri[33];
    __shared__ float gscore[kMoeMaxGroups];
    __shared__ unsigned char gtaken[kMoeMaxGroups];
    __shared__ float inv;
    const int t = int(blockIdx.x), E = p.E, K = p.K;
    const float* lg = logits + int64_t(t) * E;
    // scores: softmax (max-subtracted exponentials over their sum) or the sigmoid
    if (!p.sigmoid) {
        float m = -INFINITY;
        for (int e = int(threadIdx.x); e < E; e += int(blockDim.x)) m = fmaxf(m, lg[e]);
        for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_down_sync(0xffffffffu, m, o));
        if ((threadIdx.x & 31) == 0) rv[threadIdx.x >> 5] = m;
        __syncthreads();
        if (threadIdx.x == 0) {
            for (int w = 1; w < int(blockDim.x + 31) / 32; ++w) m = fmaxf(m, rv[w]);
            rv[32] = m;
        }
        __syncthreads();
        m = rv[32];
        for (int e = int(threadIdx.x); e < E; e += int(blockDim.x)) pr[e] = expf(lg[e] - m);
        __syncthreads();
        if (threadIdx.x == 0) {  // one ordered sum, in double as the CPU
            double sum = 0;
            for (int e = 0; e < E; ++e) sum += pr[e];
            inv = float(1.0 / sum);
        }
        __syncthreads();
        for (int e = int(threadIdx.x); e < E; e += int(blockDim.x)) pr[e] *= inv;
    } else {
        for (int e = int(threadIdx.x); e < E; e += int(blockDim.x)) pr[e] = 1.f / (1.f + expf(-lg[e]));
    }
    __syncthreads();
    // selection scores: the bias moves the choice, not the weights; Llama 4 chooses by raw logit
    for (int e = int(threadIdx.x); e < E; e += int(blockDim.x)) {
        ch[e] = p.weight_on_input ? lg[e] : pr[e] + (selection_bias ? selection_bias[e] : 0.f);
        taken[e] = 0;
    }
    __syncthreads();
    if (p.n_group > 1) {  // ref: DeepSeek-V3 MoEGate: a group scores the sum of its top two
        const int per = E / p.n_group;
        for (int g = int(threadIdx.x); g < p.n_group; g += int(blockDim.x)) {
            float a = -INFINITY, b = -INFINITY;
            for (int e = g * per; e < (g + 1) * per; ++e) {
                if (ch[e] > a) b = a, a = ch[e];
                else if (ch[e] > b) b = ch[e];
            }
            gscore[g] = a + (per > 1 ? b : 0.f);
            gtaken[g] = 0;
        }
        __syncthreads();
        if (threadIdx.x == 0)
            for (int k = 0; k < p.topk_group; ++k) {
                int bi = -1;
                for (int g = 0; g < p.n_group; ++g)
                    if (!gtaken[g] && (bi < 0 || gscore[g] > gscore[bi])) bi = g;
                gtaken[bi] = 1;
            }
        __syncthreads();
        for (int e = int(threadIdx.x); e < E; e += int(blockDim.x))
            if (!gtaken[e / per]) ch[e] = -INFINITY;
        __syncthreads();
    }
    for (int k = 0; k < K; ++k) {
        const int e = block_argmax(ch, taken, E, rv, ri);
        if (threadIdx.x == 0) {
            taken[e] = 1;
            sel[t * K + k] = e;
            wts[t * K + k] = pr[e];
        }
        __syncthreads();
    }
    if (threadIdx.x == 0) {
        float sum = 0.f;
        for (int k = 0; k < K; ++k) sum += wts[t * K + k];
        for (int k = 0; k < K; ++k) {
            float w = wts[t * K + k];
            if (p.norm_topk) w /= sum;
            wts[t * K + k] = w * p.routed_scale;
        }
    }
    if (probs)
        for (int e = int(threadIdx.x); e < E; e += int(blockDim.x)) probs[int64_t(t) * E + e] = pr[e];
}

inline void launch_moe_route(cudaStream_t stream, const float* logits, int T, const RouteParams& p, const float* selection_bias, int* sel,
                             float* wts, float* probs) {
    LAUNCH_SYNC(moe_route_kernel, unsigned(T), kRouteThreads, stream)(logits, p, selection_bias, sel, wts, probs);
    check(cudaGetLastError(), "moe_route_kernel");
}

// out[t][d] = Σ_k w[t][k] · yk[t·K + k][d] (w = 1 when the weight scaled the input), the experts
// added in ascending order from zero as the CPU backend adds them.
[[maybe_unused]] __global__ void moe_combine_kernel(const float* yk, const int* sel, const float* wts, bool weighted, int T, int K, int D, float* out) {
    GRID_DEPENDENCY();
    const int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x;
    if (i >= int64_t(T) * D) return;
    const int t = int(i / D), d = int(i % D);
    const int* s = sel + t * K;
    float acc = 0.f;
    int prev = -1;
    for (int n = 0; n < K; ++n) {
        int kk = -1;
        for (int k = 0; k < K; ++k)
            if (s[k] > prev && (kk < 0 || s[k] < s[kk])) kk = k;
        prev = s[kk];
        acc += (weighted ? wts[t * K + kk] : 1.f) * yk[(int64_t(t) * K + kk) * D + d];
    }
    out[i] = acc;
}

}  // namespace
}  // namespace archlens::ARCHLENS_CUDA_NS
