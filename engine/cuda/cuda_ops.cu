
#include "engine/cuda/cuda_api.h"
#include <algorithm>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/cuda/check.cuh"
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/kernels.cuh"
#include "engine/cuda/matvec.cuh"
#include "engine/cuda/moe.cuh"

namespace archlens::ARCHLENS_CUDA_NS {

namespace {

// Device buffer owned for the duration of one call.
template <typename T>
struct DevBuf {
    T* p = nullptr;
    explicit DevBuf(size_t n) { check(cudaMalloc(reinterpret_cast<void**>(&p), std::max<size_t>(n, 1) * sizeof(T)), "cudaMalloc"); }
    ~DevBuf() { cudaFree(p); }
    DevBuf(const DevBuf&) = delete;
    DevBuf& operator=(const DevBuf&) = delete;
    void up(const T* h, size_t n) { check(cudaMemcpy(p, h, n * sizeof(T), cudaMemcpyHostToDevice), "cudaMemcpy H2D"); }
    void down(T* h, size_t n) { check(cudaMemcpy(h, p, n * sizeof(T), cudaMemcpyDeviceToHost), "cudaMemcpy D2H"); }
};
using Buf = DevBuf<float>;

// `rows` stored rows of n elements of type t (any type dequant.cuh reads) copied to the device.
struct DevRows {
    size_t row_bytes;
    DevBuf<uint8_t> buf;
    DevRows(DType t, const void* host, int rows, int n, const char* op)
        : row_bytes(checked_row_bytes(t, n, op)), buf(row_bytes * size_t(rows)) {
        buf.up(static_cast<const uint8_t*>(host), row_bytes * size_t(rows));
    }
    static size_t checked_row_bytes(DType t, int n, const char* op) {
        const auto rb = dtype_row_bytes(t, uint64_t(n));
        if (!rb || block_elems(t) == 0) throw Error(std::string(op) + ": cannot read " + dtype_name(t) + " rows of " + std::to_string(n));
        return size_t(*rb);
    }
};

}  // namespace

DeviceInfo probe_device() {
    DeviceInfo d;
    int count = 0;
    // Without a GPU the runtime answers cudaErrorInsufficientDriver (no driver at all, or one older
    // than the runtime: the driver's version tells which) or NoDevice, and leaves count alone.
    cudaError_t e = cudaGetDeviceCount(&count);
    if (e != cudaSuccess) {
        int drv = 0, rt = 0;
        cudaDriverGetVersion(&drv);  // 0: no driver loaded
        cudaRuntimeGetVersion(&rt);
        auto ver = [](int v) { return std::to_string(v / 1000) + "." + std::to_string(v % 1000 / 10); };
        if (e == cudaErrorInsufficientDriver && drv == 0)
            d.reason = "no NVIDIA driver found (no GPU, or its driver is not installed)";
        else if (e == cudaErrorInsufficientDriver)
            d.reason = "the NVIDIA driver supports CUDA " + ver(drv) + ", older than this build's CUDA " + ver(rt) + " runtime: update the driver";
        else
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
    const DevRows dw(t, w, n_out, n_in, "matvec");
    Buf dx(size_t(T) * n_in), dy(size_t(T) * n_out);
    dx.up(x, size_t(T) * n_in);
    launch_matvec(nullptr, t, dw.buf.p, dw.row_bytes, n_out, n_in, dx.p, T, dy.p, n_out, nullptr);
    dy.down(y, size_t(T) * n_out);
}

void moe_route(const FfnSpec& f, const float* logits, int T, const float* selection_bias, float* probs, int* sel, float* wts) {
    if (auto why = route_unsupported(f); !why.empty()) throw Error("moe_route: " + why);
    const size_t E = size_t(f.n_experts), K = size_t(f.top_k);
    Buf dl(size_t(T) * E), dp(size_t(T) * E), dw(size_t(T) * K), db(E);
    DevBuf<int> ds(size_t(T) * K);
    dl.up(logits, size_t(T) * E);
    if (selection_bias) db.up(selection_bias, E);
    launch_moe_route(nullptr, dl.p, T, route_params(f), selection_bias ? db.p : nullptr, ds.p, dw.p, dp.p);
    dp.down(probs, size_t(T) * E);
    dw.down(wts, size_t(T) * K);
    ds.down(sel, size_t(T) * K);
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

void layer_norm(const float* x, const float* w, const float* b, int rows, int n, float eps, float* y) {
    Buf dx(size_t(rows) * n), dy(size_t(rows) * n), dw(static_cast<size_t>(n)), db(static_cast<size_t>(n));
    dx.up(x, size_t(rows) * n);
    if (w) dw.up(w, size_t(n));
    if (b) db.up(b, size_t(n));
    LAUNCH_SYNC(layer_norm_kernel, rows, 256, nullptr)(dx.p, w ? dw.p : nullptr, b ? db.p : nullptr, n, eps, dy.p);
    check(cudaGetLastError(), "layer_norm_kernel launch");
    dy.down(y, size_t(rows) * n);
}

void add_rms_norm(float* x, const float* y, const float* w, int rows, int n, float eps, float* out) {
    Buf dx(size_t(rows) * n), dy(size_t(rows) * n), dw(static_cast<size_t>(n)), dout(size_t(rows) * n);
    dx.up(x, size_t(rows) * n);
    dy.up(y, size_t(rows) * n);
    if (w) dw.up(w, size_t(n));
    LAUNCH_SYNC(add_rms_norm_kernel, rows, 256, nullptr)(dx.p, dy.p, w ? dw.p : nullptr, n, eps, dout.p);
    check(cudaGetLastError(), "add_rms_norm_kernel launch");
    dx.down(x, size_t(rows) * n);
    dout.down(out, size_t(rows) * n);
}

void rope(float* x, int T, int heads, int hd, const float* cos_sin, int n_rot, bool neox, int64_t pos0) {
    Buf dx(size_t(T) * heads * hd), dcs(size_t(pos0 + T) * n_rot);
    DevBuf<int64_t> dpos(1);
    dx.up(x, size_t(T) * heads * hd);
    dcs.up(cos_sin, size_t(pos0 + T) * n_rot);
    dpos.up(&pos0, 1);
    LAUNCH(rope_kernel, dim3(unsigned(T), unsigned(heads)), unsigned(std::max(32, n_rot / 2)), nullptr)(
        dx.p, heads * hd, hd, dcs.p, n_rot, neox ? 1 : 0, dpos.p);
    check(cudaGetLastError(), "rope_kernel launch");
    dx.down(x, size_t(T) * heads * hd);
}

void gated_activation(int act, const float* gate_up, int rows, int F, float* out) {
    Buf dg(size_t(rows) * 2 * F), du(size_t(rows) * F);
    dg.up(gate_up, size_t(rows) * 2 * F);
    const dim3 grid{unsigned(blocks_for((F + 3) / 4, 256)), unsigned(std::min(rows, 65535)), 1u};
    LAUNCH(act_mul_split_kernel<float>, grid, 256, nullptr)(dg.p, rows, F, act, du.p);
    check(cudaGetLastError(), "act_mul_split_kernel launch");
    du.down(out, size_t(rows) * F);
}

void attention(const AttentionCase& c, const float* q, const float* k, const float* v, float* out, float* probs) {
    const int T = c.T, H = c.H, KV = c.KV, hd = c.hd, vd = c.vd;
    const int64_t P = c.pos0 + T, cap = c.cap > 0 ? c.cap : P;  // positions, and the cache's size
    if (hd > kAttnMaxDim || vd > kAttnMaxDim || H % KV != 0) throw Error("attention: unsupported shape");
    Buf dq(size_t(T) * H * hd), dk(size_t(P) * KV * hd), dv(size_t(P) * KV * vd), dout(size_t(T) * H * vd), dstats(size_t(T) * H * 2),
        dprobs(size_t(T) * size_t(P));
    DevBuf<int64_t> dpos(1);
    // the cache: [KV][cap][dim] of f32 or f16 (Buf's floats hold either)
    Buf kc(size_t(cap) * KV * hd), vc(size_t(cap) * KV * vd);
    dq.up(q, size_t(T) * H * hd);
    dk.up(k, size_t(P) * KV * hd);
    dv.up(v, size_t(P) * KV * vd);
    // every position through the session's KV store: the context before pos0 store_batch positions
    // at a time, then the queries' own batch, as a forward pass stores it before attending
    auto store = [&](int64_t p0, int64_t n) {
        dpos.up(&p0, 1);
        const int64_t* pp = dpos.p;
        const unsigned gk = unsigned((n * KV * hd + 255) / 256), gv = unsigned((n * KV * vd + 255) / 256);
        if (c.f16) {
            LAUNCH(store_kv_kernel<__half>, gk, 256, nullptr)(dk.p + p0 * KV * hd, reinterpret_cast<__half*>(kc.p), n, KV, hd, cap, pp);
            LAUNCH(store_kv_kernel<__half>, gv, 256, nullptr)(dv.p + p0 * KV * vd, reinterpret_cast<__half*>(vc.p), n, KV, vd, cap, pp);
        } else {
            LAUNCH(store_kv_kernel<float>, gk, 256, nullptr)(dk.p + p0 * KV * hd, kc.p, n, KV, hd, cap, pp);
            LAUNCH(store_kv_kernel<float>, gv, 256, nullptr)(dv.p + p0 * KV * vd, vc.p, n, KV, vd, cap, pp);
        }
        check(cudaGetLastError(), "store_kv_kernel launch");
    };
    const int64_t step = std::max<int64_t>(1, c.store_batch);
    for (int64_t p0 = 0; p0 < c.pos0; p0 += step) store(p0, std::min(step, c.pos0 - p0));
    store(c.pos0, T);
    dpos.up(&c.pos0, 1);
    const int64_t* pp = dpos.p;
    if (c.splits < 1 || c.min_keys < 1) throw Error("attention: splits and min_keys must be positive");
    const dim3 grid{unsigned(T), unsigned(H), unsigned(c.splits)};
    Buf part(c.splits > 1 ? size_t(T) * H * size_t(c.splits) * size_t(vd + 2) : 1);
    DevBuf<int> tickets(size_t(T) * H);
    check(cudaMemset(tickets.p, 0, size_t(T) * H * sizeof(int)), "cudaMemset");
    if (c.tiled && (hd > kTileMaxDim || vd > kTileMaxDim)) throw Error("attention: the tiled kernel takes head dims up to 256");
    if (c.mma && !mma_attention_fits(hd, vd)) throw Error("attention: the tensor-core kernel takes hd % 8 == 0, vd % 16 == 0, up to 128");
    if (c.mma) mma_attention_setup();
    for (int run = 0; run < 2; ++run) {  // the second run finds the tickets reset by the first
        if (c.mma) {
            const dim3 tg{unsigned((T + kMmaQ - 1) / kMmaQ), unsigned(H), 1u};
            if (c.f16)
                LAUNCH_SYNC_SHARED(attention_mma_kernel<__half>, tg, kMmaThreads, kMmaSmemBytes, nullptr)(
                    dq.p, H * hd, reinterpret_cast<const __half*>(kc.p), reinterpret_cast<const __half*>(vc.p), vd, cap, H, KV, hd, vd, T, pp,
                    c.scope, c.window, c.scale, c.softcap, dout.p, dstats.p);
            else
                LAUNCH_SYNC_SHARED(attention_mma_kernel<float>, tg, kMmaThreads, kMmaSmemBytes, nullptr)(dq.p, H * hd, kc.p, vc.p, vd, cap, H, KV, hd, vd, T, pp,
                                                                                  c.scope, c.window, c.scale, c.softcap, dout.p, dstats.p);
        } else if (c.tiled) {
            const dim3 tg{unsigned((T + kTileQ - 1) / kTileQ), unsigned(H), 1u};
            if (c.f16)
                LAUNCH_SYNC(attention_tile_kernel<__half>, tg, kAttnThreads, nullptr)(
                    dq.p, H * hd, reinterpret_cast<const __half*>(kc.p), reinterpret_cast<const __half*>(vc.p), vd, cap, H, KV, hd, vd, T, pp,
                    c.scope, c.window, c.scale, c.softcap, dout.p, dstats.p);
            else
                LAUNCH_SYNC(attention_tile_kernel<float>, tg, kAttnThreads, nullptr)(dq.p, H * hd, kc.p, vc.p, vd, cap, H, KV, hd, vd, T, pp,
                                                                                    c.scope, c.window, c.scale, c.softcap, dout.p, dstats.p);
        } else if (c.f16)
            LAUNCH_SYNC(attention_kernel<__half>, grid, kAttnThreads, nullptr)(dq.p, H * hd, reinterpret_cast<const __half*>(kc.p),
                                                                           reinterpret_cast<const __half*>(vc.p), vd, cap, H, KV, hd, vd, pp,
                                                                           c.scope, c.window, c.scale, c.softcap, dout.p, dstats.p, part.p,
                                                                           tickets.p, c.min_keys, -1, nullptr, int64_t(0));
        else
            LAUNCH_SYNC(attention_kernel<float>, grid, kAttnThreads, nullptr)(dq.p, H * hd, kc.p, vc.p, vd, cap, H, KV, hd, vd, pp, c.scope,
                                                                          c.window, c.scale, c.softcap, dout.p, dstats.p, part.p, tickets.p,
                                                                          c.min_keys, -1, nullptr, int64_t(0));
        check(cudaGetLastError(), "attention_kernel launch");
        if (run == 0) check(cudaMemset(dout.p, 0, size_t(T) * H * vd * sizeof(float)), "cudaMemset");
    }
    dout.down(out, size_t(T) * H * vd);
    if (probs) {  // head c.probe_head's rows, [T][P] (keys before the window left as 0)
        check(cudaMemset(dprobs.p, 0, size_t(T) * size_t(P) * sizeof(float)), "cudaMemset");
        if (c.f16)
            LAUNCH_SYNC(attention_probs_kernel<__half>, dim3(unsigned(T), 3u), 256, nullptr)(dq.p, H * hd, reinterpret_cast<const __half*>(kc.p), cap, H,
                                                                                KV, hd, pp, c.scope, c.window, c.scale, c.softcap, dstats.p,
                                                                                c.probe_head, P, dprobs.p);
        else
            LAUNCH_SYNC(attention_probs_kernel<float>, dim3(unsigned(T), 3u), 256, nullptr)(dq.p, H * hd, kc.p, cap, H, KV, hd, pp, c.scope, c.window,
                                                                               c.scale, c.softcap, dstats.p, c.probe_head, P, dprobs.p);
        check(cudaGetLastError(), "attention_probs_kernel launch");
        dprobs.down(probs, size_t(T) * size_t(P));
    }
}

void embed_rows(DType t, const void* table, int n_rows, int D, const int* ids, int T, float scale, float* out) {
    for (int i = 0; i < T; ++i)
        if (ids[i] < 0 || ids[i] >= n_rows) throw Error("embed_rows: id " + std::to_string(ids[i]) + " outside the table");
    const DevRows dt(t, table, n_rows, D, "embed_rows");
    DevBuf<int> dids(static_cast<size_t>(T));
    Buf dout(size_t(T) * D);
    dids.up(ids, size_t(T));
    LAUNCH(embed_rows_kernel, unsigned(T), 256, nullptr)(t, dt.buf.p, dt.row_bytes, D, dids.p, nullptr, scale, false, dout.p);
    check(cudaGetLastError(), "embed_rows_kernel launch");
    dout.down(out, size_t(T) * D);
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
