
#include "engine/cuda/cuda_api.h"
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/cuda/check.cuh"
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/matvec.cuh"
#include "engine/cuda/moe.cuh"
#include "engine/cuda/reduce_rows.cuh"

namespace archlens::ARCHLENS_CUDA_NS {

namespace {

// Device buffer owned for the duration of one call.
struct Buf {
    float* p = nullptr;
    explicit Buf(size_t n) { check(cudaMalloc(&p, n * sizeof(float)), "cudaMalloc"); }
    ~Buf() { cudaFree(p); }
    void up(const float* h, size_t n) { check(cudaMemcpy(p, h, n * sizeof(float), cudaMemcpyHostToDevice), "cudaMemcpy H2D"); }
    void down(float* h, size_t n) { check(cudaMemcpy(h, p, n * sizeof(float), cudaMemcpyDeviceToHost), "cudaMemcpy D2H"); }
};

// One block per row; warp-shuffle reductions.
__global__ void rms_norm_kernel(const float* x, const float* w, int n, float eps, float* y) {
    const float* xr = x + size_t(blockIdx.x) * n;
    float* yr = y + size_t(blockIdx.x) * n;
    float ss = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) ss += xr[i] * xr[i];
    __shared__ float part[32];
    for (int o = 16; o > 0; o >>= 1) ss += __shfl_down_sync(0xffffffff, ss, o);
    if ((threadIdx.x & 31) == 0) part[threadIdx.x >> 5] = ss;
    __syncthreads();
    if (threadIdx.x < 32) {
        ss = threadIdx.x < (blockDim.x + 31) / 32 ? part[threadIdx.x] : 0.f;
        for (int o = 16; o > 0; o >>= 1) ss += __shfl_down_sync(0xffffffff, ss, o);
        if (threadIdx.x == 0) part[0] = ss;
    }
    __syncthreads();
    const float scale = rsqrtf(part[0] / float(n) + eps);
    for (int i = threadIdx.x; i < n; i += blockDim.x) yr[i] = xr[i] * scale * (w ? w[i] : 1.f);
}

__global__ void softmax_kernel(float* x, int n) {
    float* r = x + size_t(blockIdx.x) * n;
    __shared__ float red[32];
    float m = -INFINITY;
    for (int i = threadIdx.x; i < n; i += blockDim.x) m = fmaxf(m, r[i]);
    for (int o = 16; o > 0; o >>= 1) m = fmaxf(m, __shfl_down_sync(0xffffffff, m, o));
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = m;
    __syncthreads();
    if (threadIdx.x == 0) {
        float mm = red[0];
        for (int i = 1; i < int(blockDim.x + 31) / 32; ++i) mm = fmaxf(mm, red[i]);
        red[0] = mm;
    }
    __syncthreads();
    m = red[0];
    __syncthreads();
    float s = 0.f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) {
        r[i] = __expf(r[i] - m);
        s += r[i];
    }
    for (int o = 16; o > 0; o >>= 1) s += __shfl_down_sync(0xffffffff, s, o);
    if ((threadIdx.x & 31) == 0) red[threadIdx.x >> 5] = s;
    __syncthreads();
    if (threadIdx.x == 0) {
        float ss = 0.f;
        for (int i = 0; i < int(blockDim.x + 31) / 32; ++i) ss += red[i];
        red[0] = ss;
    }
    __syncthreads();
    const float inv = 1.f / red[0];
    for (int i = threadIdx.x; i < n; i += blockDim.x) r[i] *= inv;
}

}  // namespace

DeviceInfo probe_device() {
    DeviceInfo d;
    int count = 0;
    // Without a GPU the runtime answers cudaErrorInsufficientDriver / NoDevice and leaves count alone.
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        d.reason = std::string("no usable CUDA device: ") + cudaGetErrorString(e);
        cudaGetLastError();
        return d;
    }
    if (count == 0) {
        d.reason = "no CUDA device present";
        return d;
    }
    cudaDeviceProp p{};
    if (cudaGetDeviceProperties(&p, 0) != cudaSuccess) {
        d.reason = "cudaGetDeviceProperties failed";
        return d;
    }
    d.available = true;
    d.name = p.name;
    d.cc_major = p.major;
    d.cc_minor = p.minor;
    cudaMemGetInfo(&d.free_bytes, &d.total_bytes);
    return d;
}

void rms_norm(const float* x, const float* w, int rows, int n, float eps, float* y) {
    Buf dx(size_t(rows) * n), dy(size_t(rows) * n), dw(static_cast<size_t>(n));
    dx.up(x, size_t(rows) * n);
    if (w) dw.up(w, size_t(n));
    LAUNCH_SYNC(rms_norm_kernel, rows, 256, nullptr)(dx.p, w ? dw.p : nullptr, n, eps, dy.p);
    check(cudaGetLastError(), "rms_norm_kernel launch");
    dy.down(y, size_t(rows) * n);
}

void matvec(DType t, const void* w, int n_out, int n_in, const float* x, int T, float* y) {
    const auto rb = dtype_row_bytes(t, uint64_t(n_in));
    if (!rb || block_elems(t) == 0) throw Error(std::string("matvec: cannot read ") + dtype_name(t) + " rows of " + std::to_string(n_in));
    void* dw = nullptr;
    check(cudaMalloc(&dw, size_t(*rb) * size_t(n_out)), "cudaMalloc");
    struct Free {
        void* p;
        ~Free() { cudaFree(p); }
    } free_w{dw};
    check(cudaMemcpy(dw, w, size_t(*rb) * size_t(n_out), cudaMemcpyHostToDevice), "cudaMemcpy H2D");
    Buf dx(size_t(T) * n_in), dy(size_t(T) * n_out);
    dx.up(x, size_t(T) * n_in);
    launch_matvec(nullptr, t, static_cast<const uint8_t*>(dw), size_t(*rb), n_out, n_in, dx.p, T, dy.p, n_out, nullptr);
    dy.down(y, size_t(T) * n_out);
}

void moe_route(const FfnSpec& f, const float* logits, int T, const float* selection_bias, float* probs, int* sel, float* wts) {
    if (auto why = route_unsupported(f); !why.empty()) throw Error("moe_route: " + why);
    const size_t E = size_t(f.n_experts), K = size_t(f.top_k);
    Buf dl(size_t(T) * E), dp(size_t(T) * E), dw(size_t(T) * K), ds(size_t(T) * K), db(E);  // ds holds ints
    dl.up(logits, size_t(T) * E);
    if (selection_bias) db.up(selection_bias, E);
    launch_moe_route(nullptr, dl.p, T, route_params(f), selection_bias ? db.p : nullptr, reinterpret_cast<int*>(ds.p), dw.p, dp.p);
    dp.down(probs, size_t(T) * E);
    dw.down(wts, size_t(T) * K);
    check(cudaMemcpy(sel, ds.p, size_t(T) * K * sizeof(int), cudaMemcpyDeviceToHost), "cudaMemcpy D2H");
}

void gaussian_topk(float* x, int rows, int n, float k) {
    Buf dx(size_t(rows) * n);
    dx.up(x, size_t(rows) * n);
    LAUNCH_SYNC(gaussian_topk_kernel, rows, 256, nullptr)(dx.p, n, n, k);
    check(cudaGetLastError(), "gaussian_topk_kernel launch");
    dx.down(x, size_t(rows) * n);
}

void match_rms(float* v, const float* ref, int rows, int n) {
    Buf dv(size_t(rows) * n), dr(size_t(rows) * n);
    dv.up(v, size_t(rows) * n);
    dr.up(ref, size_t(rows) * n);
    LAUNCH_SYNC(match_rms_kernel, rows, 256, nullptr)(dv.p, dr.p, n);
    check(cudaGetLastError(), "match_rms_kernel launch");
    dv.down(v, size_t(rows) * n);
}

void softmax_rows(float* x, int rows, int n) {
    Buf dx(size_t(rows) * n);
    dx.up(x, size_t(rows) * n);
    LAUNCH_SYNC(softmax_kernel, rows, 256, nullptr)(dx.p, n);
    check(cudaGetLastError(), "softmax_kernel launch");
    dx.down(x, size_t(rows) * n);
}

void matmul_f32(const float* w, int n_out, int n_in, const float* x, int T, float* y) {
    Buf dw(size_t(n_out) * n_in), dx(size_t(T) * n_in), dy(size_t(T) * n_out);
    dw.up(w, size_t(n_out) * n_in);
    dx.up(x, size_t(T) * n_in);
    cublasHandle_t h;
    check(cublasCreate(&h), "cublasCreate");
    const float one = 1.f, zero = 0.f;
    // Column-major view: Y^T[n_out][T] = W[n_out][n_in] · X^T[n_in][T]; W row-major is Wᵀ column-major.
    cublasStatus_t s = cublasSgemm(h, CUBLAS_OP_T, CUBLAS_OP_N, n_out, T, n_in, &one, dw.p, n_in, dx.p, n_in, &zero, dy.p, n_out);
    cublasDestroy(h);
    check(s, "cublasSgemm");
    dy.down(y, size_t(T) * n_out);
}

}  // namespace archlens::ARCHLENS_CUDA_NS
