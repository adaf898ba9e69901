// The dense decoder forward pass on the GPU. Mirrors Session (engine/cpu/session.cpp) step for
// step: the same spec fields, the same norm placement, RoPE tables computed by the same host code
// (cpu::rope_cos_sin), the same activation types in the matrix products.

#include "engine/cuda/cuda_api.h"
#include <algorithm>
#include <initializer_list>
#include <cmath>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/cuda/check.cuh"
#include "engine/cpu/ops.h"
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/cuda_session.h"
#include "engine/cuda/dequant.cuh"
#include "engine/cuda/kernels.cuh"
#include "engine/cuda/matvec.cuh"
#include "engine/cuda/moe.cuh"
#include "engine/cuda/moe_gemm.cuh"

namespace archlens::ARCHLENS_CUDA_NS {

namespace {

// ---- device memory -----------------------------------------------------------------------------

struct DevLinear {
    const void* w = nullptr;
    cudaDataType type = CUDA_R_32F;
    bool quantized = false;  // dequantized in slabs of rows (qtype, row_bytes) before the product
    DType qtype = DType::F32;
    size_t row_bytes = 0;
    int n_out = 0, n_in = 0;
    bool transposed = false;
    int64_t ld = 0;  // elements between stored rows
    const float* bias = nullptr;
    bool present() const { return w != nullptr; }
};

// A feed-forward block's weights: gate_up holds [gate ; up] as one matrix where the two can share
// a product (then gate and up are not uploaded on their own).
struct DevExpert {
    DevLinear gate, up, down, gate_up;
};

struct DevLayer {
    DevLinear q, k, v, qkv, o;  // qkv: GPT-2's, or q|k|v fused at upload
    DevExpert ffn;              // the dense feed-forward block
    DevLinear q_a, q_b, kv_a;  // MLA
    const float *q_a_norm = nullptr, *kv_a_norm = nullptr;
    std::vector<DevLinear> k_absorb, v_expand;
    // the heads' k_absorb / v_expand weights indexed by head, for heads_matvec_kernel (a decode
    // step's per-head products in one launch each); null when the heads differ in type or shape
    const uint8_t* const* k_absorb_tab = nullptr;
    const uint8_t* const* v_expand_tab = nullptr;
    DevLinear router;  // MoE
    std::vector<DevExpert> experts;
    DevExpert shared;
    // MoE decided on the device (moe_dev; else the host routes and the layer synchronises): the
    // routing kernel's selection bias, the experts' [gate ; up] and down weights indexed by
    // expert for moe_matvec_kernel, their common type and shape, and this layer's routing slot.
    bool moe_dev = false;
    const float* sel_bias = nullptr;
    const uint8_t* const* exp_gate_up = nullptr;
    const uint8_t* const* exp_down = nullptr;
    DevLinear gate_up_shape, down_shape;  // no weights: qtype, row_bytes, n_out, n_in
    int route_slot = -1;
    const float *attn_norm = nullptr, *attn_norm_b = nullptr, *post_attn_norm = nullptr;
    const float *ffn_norm = nullptr, *ffn_norm_b = nullptr, *post_ffn_norm = nullptr;
    const float *q_norm = nullptr, *k_norm = nullptr;
    void *kc = nullptr, *vc = nullptr;  // none for a layer reading an earlier layer's (kv_source)
    bool kv_f16 = false;                 // __half elements (else float)
    int64_t cap = 0;                     // positions the cache holds: the context, or a window's ring
    // Gemma 3n: AltUp's router and coefficients, LAuReL, the per-layer input gate and projection
    DevLinear altup_router, altup_predict, altup_correct, laurel_l, laurel_r, ple_gate, ple_proj;
    const float *altup_router_norm = nullptr, *altup_correct_scale = nullptr, *laurel_post_norm = nullptr, *ple_post_norm = nullptr;
};

bool float_type(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }
cudaDataType cuda_type(DType t) { return t == DType::BF16 ? CUDA_R_16BF : t == DType::F16 ? CUDA_R_16F : CUDA_R_32F; }

}  // namespace

std::string unsupported_reason(const Model& model) {
    const ModelSpec& s = model.spec();
    if (model.format() == ModelFormat::ConfigOnly) return "the model was opened without weights";
    auto linear = [](const Linear& l) -> std::string {
        if (!l.present()) return {};
        if (block_elems(l.type) == 0)
            return std::string("weight type ") + dtype_name(l.type) + " (" + l.name + ") is not read on the GPU yet";
        if (l.n_in % block_elems(l.type) != 0) return "a row of " + l.name + " is not whole blocks";
        if (l.transposed && !float_type(l.type)) return "a transposed quantized tensor (" + l.name + ")";
        if (!l.transposed && l.row_stride && l.row_stride < *dtype_row_bytes(l.type, uint64_t(l.n_in)))
            return "overlapping weight rows (" + l.name + ")";
        return {};
    };
    const ModelWeights& w = model.weights();
    for (int il = 0; il < s.n_layers; ++il) {
        const LayerSpec& ls = s.layers[size_t(il)];
        const std::string at = " (layer " + std::to_string(il) + ")";
        if (ls.kv_source >= il) return "a layer reading the KV cache of a later layer" + at;
        if (ls.attn.head_dim > kAttnMaxDim || ls.attn.v_head_dim > kAttnMaxDim ||
            (ls.attn.kind == AttnKind::MLA && ls.attn.kv_lora_rank + ls.attn.qk_rope_head_dim > kAttnMaxDim))
            return "head dimension above " + std::to_string(kAttnMaxDim) + at;
        if (ls.attn.n_kv_heads <= 0 || ls.attn.n_heads % ls.attn.n_kv_heads != 0) return "query heads not a multiple of KV heads" + at;
        const LayerWeights& lw = w.layers[size_t(il)];
        for (const Linear* l : {&lw.q, &lw.k, &lw.v, &lw.qkv, &lw.o, &lw.gate, &lw.up, &lw.down, &lw.router, &lw.shared.gate,
                                &lw.shared.up, &lw.shared.down, &lw.q_a, &lw.q_b, &lw.kv_a})
            if (auto r = linear(*l); !r.empty()) return r;
        for (const auto* v : {&lw.k_absorb, &lw.v_expand})
            for (const Linear& l : *v)
                if (auto r = linear(l); !r.empty()) return r;
        for (const Expert& e : lw.experts)
            for (const Linear* l : {&e.gate, &e.up, &e.down})
                if (auto r = linear(*l); !r.empty()) return r;
        for (const Linear* l : {&lw.altup_router, &lw.altup_predict, &lw.altup_correct, &lw.laurel_l, &lw.laurel_r, &lw.ple_gate, &lw.ple_proj})
            if (auto r = linear(*l); !r.empty()) return r;
    }
    if (auto r = linear(w.ple_model_proj); !r.empty()) return r;
    for (const auto* v : {&w.altup_proj, &w.altup_unembd})
        for (const Linear& l : *v)
            if (auto r = linear(l); !r.empty()) return r;
    if (auto r = linear(w.lm_head); !r.empty()) return r;
    return {};
}

struct CudaSession::Impl {
    const Model& model;
    int64_t n_ctx = 0, pos = 0;
    std::vector<void*> allocations;
    uint64_t weight_bytes = 0, kv_bytes = 0;
    std::vector<uint64_t> kv_row_bytes;  // each layer's cache bytes per position
    std::string device;
    cublasHandle_t blas = nullptr;
    cudaStream_t stream = nullptr;  // the legacy default stream
    std::vector<DevLayer> layers;
    DevLinear lm_head;
    const float *out_norm = nullptr, *out_norm_b = nullptr;
    // scratch, sized for the largest batch so far
    int64_t cap_T = 0;
    float *x = nullptr, *h = nullptr, *y = nullptr, *q = nullptr, *k = nullptr, *v = nullptr, *qkv = nullptr, *att = nullptr;
    int* head_tickets = nullptr;  // [heads of q, k, v] blocks arrived, reset by each head's last (norm_qkv_heads_kernel)
    float *g = nullptr, *u = nullptr;
    float* logits = nullptr;  // rows of the vocabulary: one, or a whole batch when all are asked for
    int64_t logits_rows = 0;

    void ensure_logits(int64_t rows) {
        if (rows <= logits_rows) return;
        if (logits) cudaFree(logits);
        logits = nullptr;
        logits_rows = 0;
        check(cudaMalloc(&logits, size_t(rows) * size_t(model.spec().vocab) * sizeof(float)), "cudaMalloc (logits)");
        logits_rows = rows;
        drop_graph();
    }
    // Device → pageable host on the session's stream, waiting for it (MoE's host routing only).
    void to_host(void* dst, const void* src, size_t bytes, const char* what) {
        check(cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDeviceToHost, stream), what);
        check(cudaStreamSynchronize(stream), what);
    }
    void* conv = nullptr;  // activations converted to a weight's type
    ProbeConfig probe_cfg;
    ProbeData probes;
    float *router_logits = nullptr, *moe_in = nullptr, *moe_out = nullptr, *moe_scale = nullptr;
    float *mla_qa = nullptr, *mla_kva = nullptr, *mla_tin = nullptr, *mla_tout = nullptr, *mla_q = nullptr, *mla_olat = nullptr;
    int* moe_rows = nullptr;
    float* attn_stats = nullptr;  // [T][H][2] max and sum of each softmax
    int64_t slab = 0;      // f32 elements of the dequantization scratch (0: no quantized weights)
    float* wdeq = nullptr;
    std::vector<void*> scratch;

    explicit Impl(const Model& m) : model(m) {}

    ~Impl() {
        if (stream) cudaStreamSynchronize(stream);
        if (probe_stream) cudaStreamSynchronize(probe_stream);
        drop_graph();
        if (logits) cudaFree(logits);
        if (probe_dev) cudaFree(probe_dev);
        for (float* p : {probe_host, h_x, h_logits, lens_host, h_ple, h_route})
            if (p) cudaFreeHost(p);
        if (h_pos) cudaFreeHost(h_pos);
        if (h_tok) cudaFreeHost(h_tok);
        if (route_sel_host) cudaFreeHost(route_sel_host);
        for (float* p : {route_w_host, route_p_host})
            if (p) cudaFreeHost(p);
        for (void* p : scratch) cudaFree(p);
        for (void* p : split_allocs) cudaFree(p);
        for (void* p : score_allocs) cudaFree(p);
        for (void* p : allocations) cudaFree(p);
        if (blas) cublasDestroy(blas);
        if (probe_stream) {
            for (cudaEvent_t e : probe_ready) cudaEventDestroy(e);
            for (cudaEvent_t e : probe_copied) cudaEventDestroy(e);
            cudaStreamDestroy(probe_stream);
        }
        if (stream) cudaStreamDestroy(stream);
    }

    uint64_t alloc_bytes = 0, scratch_bytes = 0;  // device memory held for good / by the scratch
    void* dev_alloc(size_t bytes, std::vector<void*>& owner) {
        void* p = nullptr;
        check(cudaMalloc(&p, std::max<size_t>(bytes, 16)), "cudaMalloc");
        owner.push_back(p);
        (&owner == &scratch ? scratch_bytes : alloc_bytes) += std::max<size_t>(bytes, 16);
        return p;
    }

    const void* upload(const void* host, size_t bytes) {
        void* p = dev_alloc(bytes, allocations);
        check(cudaMemcpy(p, host, bytes, cudaMemcpyHostToDevice), "cudaMemcpy (weights)");
        weight_bytes += bytes;
        return p;
    }

    const float* upload_vec(const std::vector<float>& v) {
        return v.empty() ? nullptr : static_cast<const float*>(upload(v.data(), v.size() * sizeof(float)));
    }

    // One weight as stored: plain rows through upload_concat (a single part), a transposed float
    // table [n_in][ld] as it is (cuBLAS reads it without a transpose).
    DevLinear upload_linear(const Linear& l) {
        if (!l.present()) return {};
        if (!l.transposed) return upload_concat({&l});
        DevLinear d;
        d.n_out = int(l.n_out);
        d.n_in = int(l.n_in);
        d.transposed = true;
        d.ld = l.ld;
        d.type = cuda_type(l.type);
        d.w = upload(l.data, size_t(l.n_in) * size_t(l.ld) * size_t(dtype_info(l.type).type_size));
        d.bias = upload_vec(l.bias);
        return d;
    }

    // Several weights of one input (q|k|v, gate|up) as one matrix, rows in order, so that one
    // product (one launch, one activation conversion) computes them all; not present when they
    // cannot share one (missing, transposed, or differing type or width).
    DevLinear upload_concat(std::initializer_list<const Linear*> parts) {
        DevLinear d;
        const Linear& f = **parts.begin();
        int64_t rows = 0;
        bool bias = false;
        for (const Linear* l : parts) {
            if (!l->present() || l->transposed || l->type != f.type || l->n_in != f.n_in) return d;
            rows += l->n_out;
            bias = bias || !l->bias.empty();
        }
        const size_t rb = size_t(*dtype_row_bytes(f.type, uint64_t(f.n_in)));
        auto* dst = static_cast<uint8_t*>(dev_alloc(rb * size_t(rows), allocations));
        size_t off = 0;
        for (const Linear* l : parts) {  // strided rows (a MatFormer slice's column prefix) packed on the way
            if (!l->row_stride || l->row_stride == rb)
                check(cudaMemcpy(dst + off, l->data, rb * size_t(l->n_out), cudaMemcpyHostToDevice), "cudaMemcpy (weights)");
            else
                check(cudaMemcpy2D(dst + off, rb, l->data, size_t(l->row_stride), rb, size_t(l->n_out), cudaMemcpyHostToDevice),
                      "cudaMemcpy2D (weights)");
            off += rb * size_t(l->n_out);
        }
        weight_bytes += off;
        d.w = dst;
        d.n_out = int(rows);
        d.n_in = int(f.n_in);
        d.ld = f.n_in;
        d.qtype = f.type;
        d.row_bytes = rb;
        if (float_type(f.type)) {
            d.type = cuda_type(f.type);
        } else {
            d.quantized = true;
            d.type = CUDA_R_32F;
            slab = std::max(slab, std::min<int64_t>(rows, std::max<int64_t>(1, kDequantSlab / f.n_in)) * f.n_in);
        }
        if (bias) {
            std::vector<float> b;
            for (const Linear* l : parts) {
                if (l->bias.empty()) b.insert(b.end(), size_t(l->n_out), 0.f);
                else b.insert(b.end(), l->bias.begin(), l->bias.end());
            }
            d.bias = upload_vec(b);
        }
        return d;
    }

    DevExpert upload_ffn(const Linear& gate, const Linear& up, const Linear& down) {
        DevExpert e;
        if (gate.present()) e.gate_up = upload_concat({&gate, &up});
        if (!e.gate_up.present()) {
            e.gate = upload_linear(gate);
            e.up = upload_linear(up);
        }
        e.down = upload_linear(down);
        return e;
    }

    void ensure_scratch(int64_t T) {
        if (T <= cap_T) return;
        for (void* p : scratch) cudaFree(p);
        scratch.clear();
        scratch_bytes = 0;
        const ModelSpec& s = model.spec();
        int64_t qd = 0, kd = 0, vdd = 0, attd = 0, ffn = 0, experts = 0, widest = s.dim;
        bool mla = false;
        int64_t mla_lora = 0, mla_key = 0, mla_tmp = 0, mla_heads_key = 0, mla_heads_lat = 0;
        for (const LayerSpec& ls : s.layers) {
            const AttentionSpec& a = ls.attn;
            qd = std::max<int64_t>(qd, int64_t(a.n_heads) * a.head_dim);
            kd = std::max<int64_t>(kd, int64_t(a.n_kv_heads) * a.head_dim);
            vdd = std::max<int64_t>(vdd, int64_t(a.n_kv_heads) * a.v_head_dim);
            attd = std::max<int64_t>(attd, int64_t(a.n_heads) * a.v_head_dim);
            ffn = std::max<int64_t>({ffn, ls.ffn.ffn_dim, ls.ffn.expert_ffn_dim, ls.ffn.shared_ffn_dim});
            experts = std::max<int64_t>(experts, ls.ffn.n_experts);
            if (a.kind == AttnKind::MLA) {
                mla = true;
                mla_lora = std::max<int64_t>(mla_lora, a.q_lora_rank);
                mla_key = std::max<int64_t>(mla_key, int64_t(a.kv_lora_rank) + a.qk_rope_head_dim);
                mla_tmp = std::max<int64_t>({mla_tmp, a.qk_nope_head_dim, a.kv_lora_rank, a.v_head_dim});
                mla_heads_key = std::max<int64_t>(mla_heads_key, int64_t(a.n_heads) * (a.kv_lora_rank + a.qk_rope_head_dim));
                mla_heads_lat = std::max<int64_t>(mla_heads_lat, int64_t(a.n_heads) * a.kv_lora_rank);
            }
        }
        widest = std::max<int64_t>({widest, qd, attd, ffn, mla_lora, mla_tmp, s.laurel_rank, s.ple_dim});
        auto f = [&](int64_t n) { return static_cast<float*>(dev_alloc(size_t(n) * sizeof(float), scratch)); };
        x = f(T * s.dim);
        h = f(T * s.dim);
        y = f(T * s.dim);
        q = f(T * qd);
        k = f(T * kd);
        v = f(T * vdd);
        qkv = f(T * (qd + kd + vdd));
        att = f(T * attd);
        g = f(T * 2 * ffn);  // a fused [gate ; up] product
        u = f(T * ffn);
        int64_t hmax = 1;
        for (const LayerSpec& ls : s.layers) hmax = std::max<int64_t>(hmax, ls.attn.n_heads);
        attn_stats = f(T * hmax * 2);
        int64_t heads_all = 1;  // norm_qkv_heads_kernel's tickets: one a head of q, k and v
        for (const LayerSpec& ls : s.layers) heads_all = std::max<int64_t>(heads_all, ls.attn.n_heads + 2 * int64_t(ls.attn.n_kv_heads));
        head_tickets = static_cast<int*>(dev_alloc(size_t(heads_all) * sizeof(int), scratch));
        check(cudaMemset(head_tickets, 0, size_t(heads_all) * sizeof(int)), "cudaMemset (head tickets)");
        if (mla) {  // MLA: q_a, kv_a rows, per-head in/out, the latent-space queries and outputs
            mla_qa = f(T * std::max<int64_t>(1, mla_lora));
            mla_kva = f(T * mla_key);
            mla_tin = f(T * mla_tmp);
            mla_tout = f(T * mla_tmp);
            mla_q = f(T * mla_heads_key);
            mla_olat = f(T * mla_heads_lat);
        }
        if (experts > 0) {  // MoE: router logits, the routed tokens' rows in and out, their indices
            router_logits = f(T * experts);
            moe_in = f(T * s.dim);
            moe_out = f(T * s.dim);
            moe_rows = static_cast<int*>(dev_alloc(size_t(T) * sizeof(int), scratch));
            moe_scale = f(T);
            int64_t kmax = 1;
            for (const LayerSpec& ls : s.layers) kmax = std::max<int64_t>(kmax, ls.ffn.top_k);
            big_sel = static_cast<int*>(dev_alloc(size_t(T * kmax) * sizeof(int), scratch));
            big_w = f(T * kmax);
            big_p = f(T * experts);
            int64_t gF = 0;  // the grouped path's chunk: its pairs' order, tiles, [act(gate)·up] and down rows
            for (const DevLayer& L : layers)
                if (L.moe_dev) gF = std::max<int64_t>(gF, L.gate_up_shape.n_out / 2);
            if (gF > 0) {
                const int64_t P = std::min<int64_t>(T * kmax, std::max<int64_t>(kGroupPairs, kmax));
                auto ints = [&](int64_t n) { return static_cast<int*>(dev_alloc(size_t(n) * sizeof(int), scratch)); };
                grp.order = ints(P);
                grp.tiles = ints(3 * group_tile_bound(P, experts));
                grp.n_tiles = ints(1);
                grp_h = f(P * gF);
                grp_y = f(P * s.dim);
            }
        }
        if (s.family == Family::Gemma3n) {  // AltUp's streams and predictions, LAuReL, per-layer inputs
            const int64_t N = s.altup_inputs, P = s.ple_dim, LP = ple_model_proj.n_out;
            g3.st = f(N * T * s.dim);
            g3.pred = f(N * T * s.dim);
            g3.lau = f(T * s.dim);
            g3.att = f(T * s.dim);
            g3.res = f(T * s.dim);
            g3.ff = f(T * s.dim);
            g3.tmp = f(T * s.dim);
            g3.lo = f(T * std::max(1, s.laurel_rank));
            g3.mods = f(T * N);
            g3.coefs = f(T * N * N);
            g3.corr = f(T * N);
            g3.gate = f(T * P);
            g3.pli = f(T * LP);
            g3.rows = f(T * LP);
        }
        d_tok = static_cast<int*>(dev_alloc(size_t(T) * sizeof(int), scratch));
        conv = dev_alloc(size_t(T * widest) * sizeof(float), scratch);
        cap_T = T;
        drop_graph();
    }

    // y[T][n_out] = x[T][n_in] · Wᵀ (+ bias), x and y f32 on the device.
    void linear(const DevLinear& w, const float* xin, int64_t T, float* yout) {
        const float one = 1.f, zero = 0.f;
        if (T <= kMatvecMaxT && !w.transposed) return matvec(w, xin, T, yout);
        if (w.quantized) {
            // slabs of whole rows: dequantize, then Yᵀ[r0 .. r0+nr) = slabᵀ-view · Xᵀ (ldc n_out)
            const bool bf16 = quant_gemm == QuantGemm::BF16;
            const int64_t rows = std::max<int64_t>(1, (bf16 ? 2 * slab : slab) / w.n_in);  // the scratch holds twice as many BF16
            const cudaDataType in = bf16 ? CUDA_R_16BF : CUDA_R_32F;
            const void* b = activations_as(in, xin, T * w.n_in);  // once for every slab
            for (int64_t r0 = 0; r0 < w.n_out; r0 += rows) {
                const int64_t nr = std::min<int64_t>(rows, w.n_out - r0);
                const uint8_t* src = static_cast<const uint8_t*>(w.w) + size_t(r0) * w.row_bytes;
                if (bf16)
                    LAUNCH(dequant_rows_kernel<__nv_bfloat16>, blocks_for(nr * w.n_in, 256), 256, stream)(
                        w.qtype, src, w.row_bytes, nr, w.n_in, reinterpret_cast<__nv_bfloat16*>(wdeq));
                else
                    LAUNCH(dequant_rows_kernel<float>, blocks_for(nr * w.n_in, 256), 256, stream)(w.qtype, src, w.row_bytes, nr, w.n_in, wdeq);
                check_launch("dequant_rows_kernel");
                ProfileScope timed(bf16 ? "cublasGemmEx (bf16 slab)" : "cublasGemmEx (f32 slab)", stream);
                check(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(nr), int(T), w.n_in, &one, wdeq, in, w.n_in, b, in,
                                   w.n_in, &zero, yout + r0, CUDA_R_32F, w.n_out,
                                   quant_gemm == QuantGemm::TF32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F,
                                   CUBLAS_GEMM_DEFAULT),
                      "cublasGemmEx (dequantized slab)");
            }
        } else {
            gemm_float(w, xin, T, yout);
        }
        add_bias(w, T, yout);
    }

    void add_bias(const DevLinear& w, int64_t T, float* yout) {
        if (!w.bias) return;
        LAUNCH(add_bias_kernel, blocks_for(T * w.n_out, 256), 256, stream)(yout, w.bias, T, w.n_out);
        check_launch("add_bias_kernel");
    }

    // Whether linear(w, ·, T) multiplies BF16/F16 activations through cuBLAS (gemm_float): then a
    // kernel that makes its input can write them in that type into conv itself.
    bool takes_16bit_input(const DevLinear& w, int64_t T) const {
        return T > kMatvecMaxT && !w.quantized && (w.type == CUDA_R_16BF || w.type == CUDA_R_16F);
    }

    // u[t][c] = act(gu[t][c]) · gu[t][F + c] for T rows, as f32 or as BF16/F16 product input.
    template <typename OT>
    void act_mul_split(const float* gu, int64_t T, int F, int act, OT* out) {
        const dim3 grid{unsigned(blocks_for((F + 3) / 4, 256)), unsigned(std::min<int64_t>(T, 65535)), 1u};
        LAUNCH(act_mul_split_kernel<OT>, grid, 256, stream)(gu, T, F, act, out);
        check_launch("act_mul_split_kernel");
    }

    // A few tokens (a decode step, an expert's handful of rows): matvec_kernel, bias included.
    void matvec(const DevLinear& w, const float* xin, int64_t T, float* yout, bool accumulate = false) {
        launch_matvec(stream, w.qtype, static_cast<const uint8_t*>(w.w), w.row_bytes, w.n_out, w.n_in, xin, int(T), yout, w.n_out,
                      w.bias, accumulate);
    }

    // Whether a prompt's product with w rounds its f32 activations (to BF16/F16, or TF32 for
    // quantized slabs) — then TF32 attention products round nothing the layer keeps exact.
    bool rounds_activations(const DevLinear& w) const {
        return w.present() && (w.quantized ? quant_gemm != QuantGemm::F32 : w.type != CUDA_R_32F);
    }

    // n f32 activations as a product's input of type t: converted into conv for BF16/F16, else as is.
    const void* activations_as(cudaDataType t, const float* xin, int64_t n) {
        const bool vec = reinterpret_cast<uintptr_t>(xin) % 16 == 0;  // conv: an allocation's start
        if (t == CUDA_R_16BF) {
            LAUNCH(to_bf16_kernel, blocks_for((n + 7) / 8, 256), 256, stream)(xin, static_cast<__nv_bfloat16*>(conv), n, vec);
            check_launch("to_bf16_kernel");
            return conv;
        }
        if (t == CUDA_R_16F) {
            LAUNCH(to_f16_kernel, blocks_for((n + 7) / 8, 256), 256, stream)(xin, static_cast<__half*>(conv), n, vec);
            check_launch("to_f16_kernel");
            return conv;
        }
        return xin;
    }

    // y = x · Wᵀ for F32/F16/BF16 weights: the activations converted to the weight's type first
    // (or given already converted: x16, for BF16/F16 weights).
    void gemm_float(const DevLinear& w, const float* xin, int64_t T, float* yout, const void* x16 = nullptr) {
        const float one = 1.f, zero = 0.f;
        const void* b = x16 ? x16 : activations_as(w.type, xin, T * w.n_in);
        // Column-major view: Yᵀ (n_out × T) = op(A) · Xᵀ. Plain W [n_out][n_in] row-major is
        // A = Wᵀ (n_in × n_out): op T. Transposed storage [n_in][ld] is A (ld × n_in), rows 0..n_out: op N.
        ProfileScope timed(w.type == CUDA_R_16BF ? "cublasGemmEx (bf16)" : w.type == CUDA_R_16F ? "cublasGemmEx (f16)" : "cublasGemmEx (f32)", stream);
        check(cublasGemmEx(blas, w.transposed ? CUBLAS_OP_N : CUBLAS_OP_T, CUBLAS_OP_N, w.n_out, int(T), w.n_in, &one, w.w,
                           w.type, int(w.ld), b, w.type, w.n_in, &zero, yout, CUDA_R_32F, w.n_out, CUBLAS_COMPUTE_32F,
                           CUBLAS_GEMM_DEFAULT),
              "cublasGemmEx");
    }

    // GGUF rope_freqs (Llama 3 scaling), as Session::freq_factors
    const float* freq_factors(const AttentionSpec& a) const {
        const auto& f = model.weights().rope_freq_factors;
        return (!f.empty() && a.rope.scaling == RopeScaling::Llama3 && int64_t(f.size()) * 2 == a.rope.n_rot) ? f.data() : nullptr;
    }
    // cos/sin of every position of the context for one RoPE variant, made on the host by the CPU
    // backend's own code and uploaded once (a model has one or two variants: Gemma 3's local and
    // global layers), so that no forward pass waits on a table upload.
    struct RopeTable {
        RopeSpec spec;
        const float* ff;
        const float* dev;
    };
    std::vector<RopeTable> rope_tables;
    const float* rope_table(const RopeSpec& r, const float* ff) {
        for (const auto& t : rope_tables)
            if (t.spec == r && t.ff == ff) return t.dev;
        std::vector<float> tab(size_t(n_ctx) * size_t(r.n_rot));
        for (int64_t p = 0; p < n_ctx; ++p) cpu::rope_cos_sin(r, p, tab.data() + p * r.n_rot, ff);
        const float* d = static_cast<const float*>(upload(tab.data(), tab.size() * sizeof(float)));
        weight_bytes -= tab.size() * sizeof(float);  // a table, not weights
        rope_tables.push_back({r, ff, d});
        return d;
    }

    void norm(const float* w, const float* b, const float* xin, int64_t rows, int n, float* yout) {
        const ModelSpec& s = model.spec();
        if (s.norm == NormKind::LayerNorm)
            LAUNCH_SYNC(layer_norm_kernel, unsigned(rows), 256, stream)(xin, w, b, n, s.norm_eps, yout);
        else
            LAUNCH_SYNC(rms_norm_kernel, unsigned(rows), 256, stream)(xin, w, n, s.norm_eps, yout);
        check_launch("norm kernel");
    }

    // a += b, then out = RMSNorm(a)·w, rows of the model's width
    void add_norm(float* a, const float* b, const float* w, int64_t rows, float* out) {
        const ModelSpec& s = model.spec();
        LAUNCH_SYNC(add_rms_norm_kernel, unsigned(rows), 256, stream)(a, b, w, s.dim, s.norm_eps, out);
        check_launch("add_rms_norm_kernel");
    }

    void add(float* a, const float* b, int64_t n) {
        LAUNCH(add_kernel, blocks_for(n, 256), 256, stream)(a, b, n);
        check_launch("add_kernel");
    }

    // The steps qkv_heads_kernel fuses, one kernel each (OLMo 2's QK-norm over all heads, KV-sharing
    // layers, or fusion turned off): q, k, v split, normed, rotated, and k, v stored.
    void attention_heads_unfused(int il, const float* hin, int64_t T) {
        const ModelSpec& s = model.spec();
        const AttentionSpec& a = s.layers[size_t(il)].attn;
        const DevLayer& L = layers[size_t(il)];
        const int H = a.n_heads, KV = a.n_kv_heads, hd = a.head_dim, vd = a.v_head_dim;
        const int qd = H * hd, kd = KV * hd, vdd = KV * vd;
        const bool own = s.layers[size_t(il)].kv_source < 0;
        if (!own) {
            linear(L.q, hin, T, q);
        } else if (L.qkv.present()) {
            linear(L.qkv, hin, T, qkv);
            const int64_t n = T * (qd + kd + vdd);
            LAUNCH(split_qkv_kernel, blocks_for(n, 256), 256, stream)(qkv, T, qd, kd, vdd, q, k, v);
            check_launch("split_qkv_kernel");
        } else {
            linear(L.q, hin, T, q);
            linear(L.k, hin, T, k);
            linear(L.v, hin, T, v);
        }
        const float eps = s.norm_eps;
        if (own && a.v_norm) {  // ref: HF Gemma3nTextAttention v_norm (no weight)
            LAUNCH_SYNC(rms_norm_kernel, unsigned(T * KV), 128, stream)(v, nullptr, vd, eps, v);
            check_launch("rms_norm_kernel (v)");
        }
        if (a.qk_norm == QkNorm::Full) {
            LAUNCH_SYNC(rms_norm_kernel, unsigned(T), 256, stream)(q, L.q_norm, qd, eps, q);
            if (own) LAUNCH_SYNC(rms_norm_kernel, unsigned(T), 256, stream)(k, L.k_norm, kd, eps, k);
            check_launch("rms_norm_kernel (qk)");
        } else if (a.qk_norm == QkNorm::PerHead) {
            LAUNCH_SYNC(rms_norm_kernel, unsigned(T * H), 128, stream)(q, L.q_norm, hd, eps, q);
            if (own) LAUNCH_SYNC(rms_norm_kernel, unsigned(T * KV), 128, stream)(k, L.k_norm, hd, eps, k);
            check_launch("rms_norm_kernel (qk per head)");
        }
        if (a.rope.enabled && a.rope.n_rot > 0) {
            const float* tab = rope_table(a.rope, freq_factors(a));
            const int neox = model.rope_style(a) == RopeStyle::Neox ? 1 : 0;
            const unsigned threads = unsigned(std::max(32, a.rope.n_rot / 2));
            LAUNCH(rope_kernel, dim3(unsigned(T), unsigned(H)), threads, stream)(q, qd, hd, tab, a.rope.n_rot, neox, d_pos);
            if (own) LAUNCH(rope_kernel, dim3(unsigned(T), unsigned(KV)), threads, stream)(k, kd, hd, tab, a.rope.n_rot, neox, d_pos);
            check_launch("rope_kernel");
        }
        if (a.qk_norm == QkNorm::L2) {  // after RoPE, weightless (Llama 4)
            LAUNCH_SYNC(rms_norm_kernel, unsigned(T * H), 128, stream)(q, nullptr, hd, eps, q);
            if (own) LAUNCH_SYNC(rms_norm_kernel, unsigned(T * KV), 128, stream)(k, nullptr, hd, eps, k);
            check_launch("rms_norm_kernel (l2)");
        }
        if (a.temperature_tuning) {
            LAUNCH(temperature_kernel, blocks_for(T * qd, 256), 256, stream)(q, T, qd, d_pos, a.temp_floor_scale, a.temp_attn_scale);
            check_launch("temperature_kernel");
        }
        // the batch into the cache before attention reads it
        if (own) {
            store_kv(L, L.kc, k, T, KV, hd);
            store_kv(L, L.vc, v, T, KV, vd);
            check_launch("store_kv_kernel");
        }
    }

    // pro_w: hin is the residual row of one token, normalised by the q|k|v product's prologue with
    // this weight (decode_fast); accumulate: out += the output projection (the residual add).
    void attention(int il, const float* hin, int64_t T, float* out, const float* pro_w = nullptr, bool accumulate = false) {
        const ModelSpec& s = model.spec();
        const AttentionSpec& a = s.layers[size_t(il)].attn;
        const DevLayer& L = layers[size_t(il)];
        const int H = a.n_heads, KV = a.n_kv_heads, hd = a.head_dim, vd = a.v_head_dim;
        const int qd = H * hd, kd = KV * hd, vdd = KV * vd;
        const int src = s.layers[size_t(il)].kv_source;  // Gemma 3n: reads an earlier layer's cache
        const DevLayer& C = src >= 0 ? layers[size_t(src)] : L;
        const bool own = src < 0;  // computes and stores its own keys and values
        if (own && fused && a.qk_norm != QkNorm::Full) {  // one kernel from the projections to the cache
            HeadOps o;
            o.eps = s.norm_eps;
            o.qk_norm = a.qk_norm == QkNorm::PerHead;
            o.q_norm = L.q_norm;
            o.k_norm = L.k_norm;
            o.v_norm = a.v_norm;
            o.l2 = a.qk_norm == QkNorm::L2;
            if (a.rope.enabled && a.rope.n_rot > 0) {
                o.rope = rope_table(a.rope, freq_factors(a));
                o.n_rot = a.rope.n_rot;
                o.neox = model.rope_style(a) == RopeStyle::Neox ? 1 : 0;
            }
            o.temperature = a.temperature_tuning;
            o.floor_scale = a.temp_floor_scale;
            o.attn_scale = a.temp_attn_scale;
            const float *qs = q, *ks = k, *vs = v;
            int q_row = qd, k_row = kd, v_row = vdd;
            if (pro_w && heads_fused && norm_qkv_heads_fits(hd, vd, L.qkv.n_in)) {  // decode_fast: norm, product and heads in one launch
                const auto* w = static_cast<const uint8_t*>(L.qkv.w);
                if (L.kv_f16)
                    launch_norm_qkv_heads(stream, L.qkv.qtype, w, L.qkv.row_bytes, L.qkv.n_in, hin, pro_w, s.norm_eps, L.qkv.bias, qkv, H, KV, hd,
                                          vd, o, q, static_cast<__half*>(L.kc), static_cast<__half*>(L.vc), L.cap, d_pos, head_tickets);
                else
                    launch_norm_qkv_heads(stream, L.qkv.qtype, w, L.qkv.row_bytes, L.qkv.n_in, hin, pro_w, s.norm_eps, L.qkv.bias, qkv, H, KV, hd,
                                          vd, o, q, static_cast<float*>(L.kc), static_cast<float*>(L.vc), L.cap, d_pos, head_tickets);
            } else {
                if (pro_w) {  // decode_fast: the attention norm inside the product
                    launch_norm_matvec(stream, L.qkv.qtype, static_cast<const uint8_t*>(L.qkv.w), L.qkv.row_bytes, L.qkv.n_out, L.qkv.n_in, hin,
                                       pro_w, s.norm_eps, qkv, L.qkv.bias);
                    qs = qkv, ks = qkv + qd, vs = qkv + qd + kd;
                    q_row = k_row = v_row = qd + kd + vdd;
                } else if (L.qkv.present()) {
                    linear(L.qkv, hin, T, qkv);
                    qs = qkv, ks = qkv + qd, vs = qkv + qd + kd;
                    q_row = k_row = v_row = qd + kd + vdd;
                } else {
                    linear(L.q, hin, T, q);
                    linear(L.k, hin, T, k);
                    linear(L.v, hin, T, v);
                }
                const dim3 hg{unsigned(T), unsigned(H + 2 * KV), 1u};
                if (L.kv_f16)
                    LAUNCH_SYNC(qkv_heads_kernel<__half>, hg, kHeadThreads, stream)(qs, ks, vs, q_row, k_row, v_row, H, KV, hd, vd, o, q,
                                                                                  static_cast<__half*>(L.kc), static_cast<__half*>(L.vc), L.cap,
                                                                                  d_pos);
                else
                    LAUNCH_SYNC(qkv_heads_kernel<float>, hg, kHeadThreads, stream)(qs, ks, vs, q_row, k_row, v_row, H, KV, hd, vd, o, q,
                                                                                 static_cast<float*>(L.kc), static_cast<float*>(L.vc), L.cap, d_pos);
                check_launch("qkv_heads_kernel");
            }
        } else {
            attention_heads_unfused(il, hin, T);
        }
        const int scope = scope_code(a);
        run_attention(a, C, q, qd, KV, hd, vd, vd, T, this->att, il);
        capture_attention(il, a, T, scope, q, qd, hd, KV, C);
        if (accumulate) matvec(L.o, this->att, T, out, true);
        else linear(L.o, this->att, T, out);
    }

    static int scope_code(const AttentionSpec& a) { return a.scope == AttnScope::Sliding ? 1 : a.scope == AttnScope::Chunked ? 2 : 0; }

    // Split-key attention (flash-decoding): when a few queries would leave most of the device's
    // multiprocessors idle, each (query, head) walks its keys as several blocks of at least
    // split_min_keys keys, merged by the last to finish (attention_kernel). The split count is
    // fixed per batch size, the keys' share of each split follows the position, so a decode graph
    // replays it at every length.
    static constexpr int kMaxSplits = 32;
    bool tiles = true;  // prompts (more than kMatvecMaxT queries) through attention_tile_kernel
    int sm_count = 1, split_force = 0, split_min_keys = 64;
    float* attn_part = nullptr;   // [T][H][splits][vd + 2] partial rows
    int* attn_tickets = nullptr;  // [T][H] arrivals, reset by the merging block
    std::vector<void*> split_allocs;

    int64_t key_span(const AttentionSpec& a) const {  // the most keys one query attends to
        return a.kind != AttnKind::MLA && a.window > 0 && a.scope != AttnScope::Global ? std::min<int64_t>(a.window, n_ctx) : n_ctx;
    }
    int attn_splits(const AttentionSpec& a, int64_t T) const {
        if (T > kMatvecMaxT) return 1;
        if (split_force > 0) return split_force;
        const int64_t th = T * a.n_heads;
        const int64_t by_keys = (key_span(a) + split_min_keys - 1) / split_min_keys;
        const int64_t by_sms = (2 * int64_t(sm_count) + th - 1) / th;  // about two blocks a multiprocessor
        return int(std::clamp<int64_t>(std::min(by_keys, by_sms), 1, kMaxSplits));
    }
    // The partial rows and tickets for every layer's split count at every decode batch size.
    void alloc_splits() {
        for (void* p : split_allocs) cudaFree(p);
        split_allocs.clear();
        attn_part = nullptr;
        attn_tickets = nullptr;
        int64_t floats = 0, tickets = 0;
        for (const LayerSpec& ls : model.spec().layers) {
            const AttentionSpec& a = ls.attn;
            const int64_t vd = a.kind == AttnKind::MLA ? a.kv_lora_rank : a.v_head_dim;
            for (int64_t T = 1; T <= kMatvecMaxT; ++T)
                if (const int sp = attn_splits(a, T); sp > 1) {
                    floats = std::max(floats, T * a.n_heads * sp * (vd + 2));
                    tickets = std::max(tickets, T * a.n_heads);
                }
        }
        if (floats == 0) return;
        attn_part = static_cast<float*>(dev_alloc(size_t(floats) * sizeof(float), split_allocs));
        attn_tickets = static_cast<int*>(dev_alloc(size_t(tickets) * sizeof(int), split_allocs));
        check(cudaMemset(attn_tickets, 0, size_t(tickets) * sizeof(int)), "cudaMemset (attention tickets)");
    }

    // A prompt's attention on tensor cores (attention_mma_kernel: 3xTF32, as accurate as f32; heads
    // up to 128 wide, compute capability 8.0+), unless tiles or tensor-core attention are turned off.
    bool mma_attention(int64_t T, int hd, int vd) const {
        return tiles && tc_attention && cc_major >= 8 && T > kMatvecMaxT && mma_attention_fits(hd, vd);
    }

    // softmax(q·k)·v of T queries (rows q_row apart, H = a.n_heads heads over KV heads of C's
    // cache: keys of hd, values of vd read v_stride apart) into outp [T][H][vd], the softmax's max
    // and sum into attn_stats.
    // il: the layer, whose captured heads the attention can write itself (fused_probe_layer: the
    // one head of a decode step's attention_kernel, every head of gemm_attention's prompts); -1 for
    // none.
    int fused_probe_layer = -1;
    void run_attention(const AttentionSpec& a, const DevLayer& C, const float* qb, int q_row, int KV, int hd, int vd, int v_stride,
                       int64_t T, float* outp, int il = -1) {
        fused_probe_layer = -1;
        const int scope = scope_code(a);
        if (gemm_attn && T > kMatvecMaxT && !C.kv_f16) {  // a prompt with an f32 cache: cuBLAS products
            gemm_attention(a, C, qb, q_row, KV, hd, vd, v_stride, T, outp, il);
            return;
        }
        if (mma_attention(T, hd, vd)) {  // a prompt on tensor cores
            const dim3 tg{unsigned((T + kMmaQ - 1) / kMmaQ), unsigned(a.n_heads), 1u};
            if (C.kv_f16)
                LAUNCH_SYNC_SHARED(attention_mma_kernel<__half>, tg, kMmaThreads, kMmaSmemBytes, stream)(
                    qb, q_row, static_cast<const __half*>(C.kc), static_cast<const __half*>(C.vc), v_stride, C.cap, a.n_heads, KV, hd, vd,
                    int(T), d_pos, scope, a.window, a.scale, a.softcap, outp, attn_stats);
            else
                LAUNCH_SYNC_SHARED(attention_mma_kernel<float>, tg, kMmaThreads, kMmaSmemBytes, stream)(
                    qb, q_row, static_cast<const float*>(C.kc), static_cast<const float*>(C.vc ? C.vc : C.kc), v_stride, C.cap, a.n_heads,
                    KV, hd, vd, int(T), d_pos, scope, a.window, a.scale, a.softcap, outp, attn_stats);
            check_launch("attention_mma_kernel");
            return;
        }
        if (tiles && T > kMatvecMaxT && hd <= kTileMaxDim && vd <= kTileMaxDim) {  // a prompt: queries in tiles
            const dim3 tg{unsigned((T + kTileQ - 1) / kTileQ), unsigned(a.n_heads), 1u};
            if (C.kv_f16)
                LAUNCH_SYNC(attention_tile_kernel<__half>, tg, kAttnThreads, stream)(
                    qb, q_row, static_cast<const __half*>(C.kc), static_cast<const __half*>(C.vc), v_stride, C.cap, a.n_heads, KV, hd, vd,
                    int(T), d_pos, scope, a.window, a.scale, a.softcap, outp, attn_stats);
            else
                LAUNCH_SYNC(attention_tile_kernel<float>, tg, kAttnThreads, stream)(
                    qb, q_row, static_cast<const float*>(C.kc), static_cast<const float*>(C.vc ? C.vc : C.kc), v_stride, C.cap, a.n_heads,
                    KV, hd, vd, int(T), d_pos, scope, a.window, a.scale, a.softcap, outp, attn_stats);
            check_launch("attention_tile_kernel");
            return;
        }
        const int sp = attn_splits(a, T);
        const dim3 grid{unsigned(T), unsigned(a.n_heads), unsigned(sp)};
        // one captured head of this layer: its probabilities written by attention_kernel itself
        // (capture_attention then launches nothing: a decode step's probe costs no kernel)
        int probe_head = -1;
        float* probe = nullptr;
        if (il >= 0) {
            size_t n = 0, y1 = 0;
            for (size_t y = 0; y < probe_slots.size(); ++y)
                if (probe_slots[y].layer == il) ++n, y1 = y;
            if (n == 1) {
                probe_head = probe_slots[y1].head;
                probe = probe_dev + int64_t(y1) * slot_stride(T);
                fused_probe_layer = il;
            }
        }
        if (C.kv_f16)
            LAUNCH_SYNC(attention_kernel<__half>, grid, kAttnThreads, stream)(
                qb, q_row, static_cast<const __half*>(C.kc), static_cast<const __half*>(C.vc), v_stride, C.cap, a.n_heads, KV, hd, vd,
                d_pos, scope, a.window, a.scale, a.softcap, outp, attn_stats, attn_part, attn_tickets, split_min_keys, probe_head, probe,
                pos + T);
        else  // MLA: values are the first vd floats of each key row (vc = kc)
            LAUNCH_SYNC(attention_kernel<float>, grid, kAttnThreads, stream)(
                qb, q_row, static_cast<const float*>(C.kc), static_cast<const float*>(C.vc ? C.vc : C.kc), v_stride, C.cap, a.n_heads, KV,
                hd, vd, d_pos, scope, a.window, a.scale, a.softcap, outp, attn_stats, attn_part, attn_tickets, split_min_keys, probe_head,
                probe, pos + T);
        check_launch("attention_kernel");
    }

    // A prompt's attention as cuBLAS f32 products (an f32 cache): the queries in chunks of tq, each
    // chunk's scores S = q·kᵀ against the keys klo..khi that any of its queries sees, one
    // strided-batched product per query head of a KV group (batched over the KV heads: the
    // group's heads share their keys), then attn_softmax_rows_kernel makes each row its query's
    // probabilities in place (masks, scale, softcap; the max and sum into attn_stats for the
    // probes), then out = P·v the same way. A ring cache can hold a chunk's keys as two runs of
    // slots (the second from slot 0): two products each. The scores take at most
    // kGemmScoreFloats floats (chunks of fewer queries for longer contexts).
    static constexpr int64_t kGemmScoreFloats = int64_t(32) << 20;
    float* gemm_scores = nullptr;
    int64_t gemm_scores_floats = 0;
    std::vector<void*> score_allocs;
    void gemm_attention(const AttentionSpec& a, const DevLayer& C, const float* qb, int q_row, int KV, int hd, int vd, int v_stride,
                        int64_t T, float* outp, int il) {
        const int H = a.n_heads, R = H / KV, scope = scope_code(a);
        // TF32 where the layer's own products round their activations as far (its o projection
        // stands for them: one weight type a layer in every supported file)
        const bool tf32 = tf32_attn && il >= 0 && rounds_activations(layers[size_t(il)].o);
        const cublasComputeType_t compute = tf32 ? CUBLAS_COMPUTE_32F_FAST_TF32 : CUBLAS_COMPUTE_32F;
        // the layer's captured heads are copied from the probabilities themselves (capture_attention
        // then launches nothing for it)
        const auto [cap0, cap1] = il >= 0 ? layer_slots(il) : std::pair<size_t, size_t>{0, 0};
        if (cap0 < cap1) fused_probe_layer = il;
        const float* kc = static_cast<const float*>(C.kc);
        const float* vc = static_cast<const float*>(C.vc ? C.vc : C.kc);
        const int64_t nk_max = std::min<int64_t>(pos + T, C.cap);
        const int64_t tq_max = std::min<int64_t>(T, std::max<int64_t>(16, kGemmScoreFloats / (int64_t(H) * nk_max)));
        if (int64_t need = int64_t(H) * tq_max * nk_max; need > gemm_scores_floats) {
            for (void* p : score_allocs) cudaFree(p);
            score_allocs.clear();
            gemm_scores = static_cast<float*>(dev_alloc(size_t(need) * sizeof(float), score_allocs));
            gemm_scores_floats = need;
        }
        const float one = 1.f, zero = 0.f;
        for (int64_t t0 = 0; t0 < T; t0 += tq_max) {
            const int64_t tq = std::min(tq_max, T - t0);
            const int64_t klo = a.key_begin(pos + t0), nk = pos + t0 + tq - klo;  // keys klo .. the chunk's last query
            const int64_t s0 = klo % C.cap, n1 = std::min(nk, C.cap - s0);  // slots s0.. then 0..
            const long long group_s = (long long)R * tq * nk;  // one KV group's score rows
            // f(r, run, slot, n, col) for query head r of each group and each run of n slots from
            // `slot`, its keys at score columns col..
            auto each_run = [&](auto&& f) {
                for (int r = 0; r < R; ++r)
                    for (int run = 0; run < (n1 < nk ? 2 : 1); ++run) f(r, run, run ? 0 : s0, run ? nk - n1 : n1, run ? n1 : 0);
            };
            {
                ProfileScope timed(tf32 ? "cublasGemmStridedBatchedEx (attention scores, tf32)" : "cublasGemmStridedBatchedEx (attention scores)", stream);
                each_run([&](int r, int, int64_t slot, int64_t n, int64_t col) {
                    check(cublasGemmStridedBatchedEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(n), int(tq), hd, &one, kc + slot * hd, CUDA_R_32F, hd,
                                                     (long long)C.cap * hd, qb + t0 * q_row + int64_t(r) * hd, CUDA_R_32F, q_row,
                                                     (long long)R * hd, &zero, gemm_scores + int64_t(r) * tq * nk + col, CUDA_R_32F,
                                                     int(nk), group_s, KV, compute, CUBLAS_GEMM_DEFAULT),
                          "cublasGemmStridedBatchedEx (attention scores)");
                });
            }
            LAUNCH_SYNC(attn_softmax_rows_kernel, dim3(unsigned(tq), unsigned(H), 1u), 256, stream)(
                gemm_scores, nk, int(tq), int(t0), H, klo, d_pos, scope, a.window, a.scale, a.softcap, attn_stats);
            check_launch("attn_softmax_rows_kernel");
            for (size_t y = cap0; y < cap1; ++y) {
                LAUNCH(probe_rows_from_scores_kernel, unsigned(tq), 256, stream)(
                    gemm_scores + int64_t(probe_slots[y].head) * tq * nk, nk, int(t0), klo, d_pos, scope, a.window, pos + T,
                    probe_dev + int64_t(y) * slot_stride(T));
                check_launch("probe_rows_from_scores_kernel");
            }
            ProfileScope timed(tf32 ? "cublasGemmStridedBatchedEx (attention p·v, tf32)" : "cublasGemmStridedBatchedEx (attention p·v)", stream);
            each_run([&](int r, int run, int64_t slot, int64_t n, int64_t col) {  // the second run adds to the first
                check(cublasGemmStridedBatchedEx(blas, CUBLAS_OP_N, CUBLAS_OP_N, vd, int(tq), int(n), &one, vc + slot * v_stride, CUDA_R_32F,
                                                 v_stride, (long long)C.cap * v_stride, gemm_scores + int64_t(r) * tq * nk + col,
                                                 CUDA_R_32F, int(nk), group_s, run ? &one : &zero, outp + t0 * H * vd + int64_t(r) * vd,
                                                 CUDA_R_32F, H * vd, (long long)R * vd, KV, compute, CUBLAS_GEMM_DEFAULT),
                      "cublasGemmStridedBatchedEx (attention p·v)");
            });
        }
    }

    void copy_rows(const float* src, int64_t ld_src, float* dst, int64_t ld_dst, int64_t rows, int64_t n) {
        LAUNCH(copy_rows_kernel, blocks_for(rows * n, 256), 256, stream)(src, ld_src, dst, ld_dst, rows, int(n));
        check_launch("copy_rows_kernel");
    }

    // Session::attention_mla on the device. The cache holds one row per position, [normalised
    // latent (kv_lora) ; RoPE'd shared key (rope)]; every head attends to it as one KV head with the
    // query [k_absorb·q_nope ; q_pe], and reads its values as the rows' first kv_lora floats; the
    // latent output goes through the head's v_expand.
    void attention_mla(int il, const float* hin, int64_t T, float* out) {
        const ModelSpec& s = model.spec();
        const AttentionSpec& a = s.layers[size_t(il)].attn;
        const DevLayer& L = layers[size_t(il)];
        const int64_t H = a.n_heads, NP = a.qk_nope_head_dim, RP = a.qk_rope_head_dim, R = a.kv_lora_rank, V = a.v_head_dim;
        const int64_t qk = NP + RP, key = R + RP;
        if (L.q_a.present()) {
            linear(L.q_a, hin, T, mla_qa);
            LAUNCH_SYNC(rms_norm_kernel, unsigned(T), 256, stream)(mla_qa, L.q_a_norm, a.q_lora_rank, s.norm_eps, mla_qa);
            check_launch("rms_norm_kernel (q_a)");
            linear(L.q_b, mla_qa, T, q);
        } else {
            linear(L.q, hin, T, q);
        }
        linear(L.kv_a, hin, T, mla_kva);  // [T][latent ; rope key]
        copy_rows(mla_kva, key, mla_tin, R, T, R);
        LAUNCH_SYNC(rms_norm_kernel, unsigned(T), 256, stream)(mla_tin, L.kv_a_norm, int(R), s.norm_eps, mla_tin);
        check_launch("rms_norm_kernel (kv_a)");
        copy_rows(mla_tin, R, mla_kva, key, T, R);
        const float* tab = rope_table(a.rope, freq_factors(a));
        const int neox = model.rope_style(a) == RopeStyle::Neox ? 1 : 0;
        const unsigned threads = unsigned(std::max<int64_t>(32, RP / 2));
        LAUNCH(rope_kernel, dim3(unsigned(T), 1u), threads, stream)(mla_kva + R, int(key), int(RP), tab, int(RP), neox, d_pos);
        LAUNCH(rope_kernel, dim3(unsigned(T), unsigned(H)), threads, stream)(q + NP, int(H * qk), int(qk), tab, int(RP), neox, d_pos);
        check_launch("rope_kernel (mla)");
        store_kv(L, L.kc, mla_kva, T, 1, int(key));
        check_launch("store_kv_kernel (mla)");
        // a decode step's per-head products: one launch over all heads, reading and writing the
        // heads' slices in place (fusion off, or a prompt: a product per head)
        const bool by_table = fused && T <= kMatvecMaxT && L.k_absorb_tab && L.v_expand_tab && L.k_absorb[0].n_out == R &&
                              L.k_absorb[0].n_in == NP && L.v_expand[0].n_out == V && L.v_expand[0].n_in == R;
        if (by_table) {  // the latent-space query of every head
            const DevLinear& w = L.k_absorb[0];
            launch_heads_matvec(stream, w.qtype, L.k_absorb_tab, w.row_bytes, w.n_out, w.n_in, int(H), q, H * qk, qk, int(T), mla_q,
                                H * key, key);
        } else {
            for (int64_t hh = 0; hh < H; ++hh) {  // the latent-space query of each head
                copy_rows(q + hh * qk, H * qk, mla_tin, NP, T, NP);
                linear(L.k_absorb[size_t(hh)], mla_tin, T, mla_tout);
                copy_rows(mla_tout, R, mla_q + hh * key, H * key, T, R);
            }
        }
        copy_rows(q + NP, qk, mla_q + R, key, T * H, RP);  // and its RoPE part, every (t, h) row
        const int scope = scope_code(a);
        run_attention(a, L, mla_q, int(H * key), 1, int(key), int(R), int(key), T, mla_olat, il);
        capture_attention(il, a, T, scope, mla_q, int(H * key), int(key), 1, L);
        if (by_table) {
            const DevLinear& w = L.v_expand[0];
            launch_heads_matvec(stream, w.qtype, L.v_expand_tab, w.row_bytes, w.n_out, w.n_in, int(H), mla_olat, H * R, R, int(T), this->att,
                                H * V, V);
        } else {
            for (int64_t hh = 0; hh < H; ++hh) {
                copy_rows(mla_olat + hh * R, H * R, mla_tin, R, T, R);
                linear(L.v_expand[size_t(hh)], mla_tin, T, mla_tout);
                copy_rows(mla_tout, V, this->att + hh * V, H * V, T, V);
            }
        }
        linear(L.o, this->att, T, out);
    }

    // The attention probe: one slot per captured (layer, head), in the order Session records them
    // (layer, then query position, then head). attention_probs_kernel writes each slot's rows
    // [T][pos + T] into probe_dev (slots slot_stride(T) apart: a whole context's row for a decode
    // step, whose layout must not depend on the position when it replays as a graph), copied
    // asynchronously to pinned memory (probe_host) — a prompt's layer by layer as the pass goes
    // on, a decode step's with its logits — and turned into AttentionRows (collect_attention).
    struct ProbeSlot {
        int layer, head;
    };
    std::vector<ProbeSlot> probe_slots;
    float *probe_dev = nullptr, *probe_host = nullptr;
    int64_t probe_floats = 0;
    float *lens_dev = nullptr, *lens_host = nullptr;  // the logit lens: [layer][id, prob]

    int64_t slot_stride(int64_t T) const { return T == 1 ? n_ctx : T * (pos + T); }

    // A prompt's probe rows go to the host layer by layer, on their own stream while the later
    // layers compute, and the host makes a layer's records as soon as its copy has landed: the
    // records of a long prompt (one head, 512 tokens, 28 layers: 15 MB in 14k rows) are built
    // while the GPU works instead of after it. A decode step's one row a slot goes with the logits.
    cudaStream_t probe_stream = nullptr;
    std::vector<cudaEvent_t> probe_ready, probe_copied;  // per layer: its rows written / on the host
    std::vector<char> probe_copy_issued;                 // per layer, this pass

    // The captured slots of layer il: [y0, y1) (probe_slots runs in layer order).
    std::pair<size_t, size_t> layer_slots(int il) const {
        size_t y0 = 0;
        while (y0 < probe_slots.size() && probe_slots[y0].layer != il) ++y0;
        size_t y1 = y0;
        while (y1 < probe_slots.size() && probe_slots[y1].layer == il) ++y1;
        return {y0, y1};
    }

    // Layer il's rows to probe_host once they are written (a prompt: T > 1). On the probe stream,
    // or on the main one (`side` false) where the layer's capture never ran.
    void copy_layer_probes(int il, int64_t T, bool side = true) {
        if (T == 1 || probe_copy_issued[size_t(il)]) return;
        const auto [y0, y1] = layer_slots(il);
        if (y0 == y1) return;
        if (side && !probe_stream) {
            check(cudaStreamCreateWithFlags(&probe_stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags (probe copies)");
            const size_t n = size_t(model.spec().n_layers);
            probe_ready.assign(n, nullptr);
            probe_copied.assign(n, nullptr);
            for (size_t i = 0; i < n; ++i) {
                check(cudaEventCreateWithFlags(&probe_ready[i], cudaEventDisableTiming), "cudaEventCreateWithFlags (probe rows)");
                check(cudaEventCreateWithFlags(&probe_copied[i], cudaEventDisableTiming), "cudaEventCreateWithFlags (probe rows)");
            }
        }
        cudaStream_t to = side ? probe_stream : stream;
        if (side) {
            check(cudaEventRecord(probe_ready[size_t(il)], stream), "cudaEventRecord (probe rows)");
            check(cudaStreamWaitEvent(probe_stream, probe_ready[size_t(il)], 0), "cudaStreamWaitEvent (probe rows)");
        }
        const size_t off = y0 * size_t(slot_stride(T));
        check(cudaMemcpyAsync(probe_host + off, probe_dev + off, (y1 - y0) * size_t(slot_stride(T)) * sizeof(float), cudaMemcpyDeviceToHost, to),
              "cudaMemcpyAsync (probe rows)");
        if (side) check(cudaEventRecord(probe_copied[size_t(il)], probe_stream), "cudaEventRecord (probe rows)");
        probe_copy_issued[size_t(il)] = side ? 1 : 2;  // 2: covered by the main stream's synchronisation
    }

    void plan_probes(int64_t T) {
        const ModelSpec& s = model.spec();
        probe_slots.clear();
        if (probe_cfg.attention)
            for (int il = 0; il < s.n_layers; ++il)
                for (int h = 0; h < s.layers[size_t(il)].attn.n_heads; ++h)
                    if (probe_cfg.wants_attention(il, h)) probe_slots.push_back({il, h});
        // a decode step (T = 1) may become a graph: room for a row of the whole context, so that
        // the buffer never moves while the graph replays
        probe_copy_issued.assign(size_t(s.n_layers), 0);
        const int64_t need = int64_t(probe_slots.size()) * slot_stride(T);
        if (need > probe_floats) {
            if (probe_dev) cudaFree(probe_dev);
            if (probe_host) cudaFreeHost(probe_host);
            probe_dev = probe_host = nullptr;
            probe_floats = 0;
            check(cudaMalloc(&probe_dev, size_t(need) * sizeof(float)), "cudaMalloc (attention probe)");
            check(cudaMallocHost(&probe_host, size_t(need) * sizeof(float)), "cudaMallocHost (attention probe)");
            probe_floats = need;
            drop_graph();
        }
    }

    // Launches the probability rows of this layer's captured heads (slot y: rows at
    // probe_dev + y·slot_stride(T), row length pos + T).
    void capture_attention(int il, const AttentionSpec& a, int64_t T, int scope, const float* qb, int q_row, int hd, int KV,
                           const DevLayer& C) {  // C: the layer whose cache holds the keys
        if (fused_probe_layer == il) {  // the attention wrote the layer's captured heads itself
            fused_probe_layer = -1;
            copy_layer_probes(il, T);
            return;
        }
        const int64_t row_len = pos + T;
        // blocks per row: about two a multiprocessor in all, at most one per 32 keys of the context
        // (a graph replays the grid at every length: the blocks past the keys return at once)
        const dim3 grid{unsigned(T), unsigned(std::clamp<int64_t>((2 * int64_t(sm_count) + T - 1) / T, 1, (n_ctx + 31) / 32)), 1u};
        for (size_t y = 0; y < probe_slots.size(); ++y) {
            if (probe_slots[y].layer != il) continue;
            float* out = probe_dev + int64_t(y) * slot_stride(T);
            if (C.kv_f16)
                LAUNCH_SYNC(attention_probs_kernel<__half>, grid, 256, stream)(qb, q_row, static_cast<const __half*>(C.kc), C.cap, a.n_heads, KV,
                                                                               hd, d_pos, scope, a.window, a.scale, a.softcap, attn_stats,
                                                                               probe_slots[y].head, row_len, out);
            else
                LAUNCH_SYNC(attention_probs_kernel<float>, grid, 256, stream)(qb, q_row, static_cast<const float*>(C.kc), C.cap, a.n_heads, KV,
                                                                              hd, d_pos, scope, a.window, a.scale, a.softcap, attn_stats,
                                                                              probe_slots[y].head, row_len, out);
            check_launch("attention_probs_kernel");
        }
        copy_layer_probes(il, T);
    }

    // src [T][heads][per] into L's cache (`cache`: its keys or values) at the batch's positions.
    void store_kv(const DevLayer& L, void* cache, const float* src, int64_t T, int heads, int per) {
        const unsigned grid = unsigned(blocks_for(T * heads * per, 256));
        if (L.kv_f16)
            LAUNCH(store_kv_kernel<__half>, grid, 256, stream)(src, static_cast<__half*>(cache), T, heads, per, L.cap, d_pos);
        else
            LAUNCH(store_kv_kernel<float>, grid, 256, stream)(src, static_cast<float*>(cache), T, heads, per, L.cap, d_pos);
        check_launch("store_kv_kernel");
    }

    void copy_probes_async(int64_t T) {
        const size_t slots = probe_slots.size();
        if (slots > 0 && T == 1)  // each slot's row of pos + 1 probabilities
            check(cudaMemcpy2DAsync(probe_host, size_t(n_ctx) * sizeof(float), probe_dev, size_t(n_ctx) * sizeof(float),
                                    size_t(pos + 1) * sizeof(float), slots, cudaMemcpyDeviceToHost, stream),
                  "cudaMemcpy2DAsync (probe rows)");
        else  // a prompt's layers went as they were done; any whose capture did not run, now
            for (const ProbeSlot& sl : probe_slots) copy_layer_probes(sl.layer, T, false);
        if (probe_cfg.logit_lens)
            check(cudaMemcpyAsync(lens_host, lens_dev, size_t(model.spec().n_layers) * 2 * sizeof(float), cudaMemcpyDeviceToHost, stream),
                  "cudaMemcpyAsync (logit lens)");
    }

    // The attention records, as Session makes them: a prompt's layer by layer as their copies
    // land (before the pass's synchronisation), a decode step's after it.
    void collect_attention(int64_t T) {
        const ModelSpec& s = model.spec();
        const int64_t row_len = pos + T;
        probes.attention.reserve(probes.attention.size() + probe_slots.size() * size_t(T));
        for (size_t y0 = 0; y0 < probe_slots.size();) {
            size_t y1 = y0;
            while (y1 < probe_slots.size() && probe_slots[y1].layer == probe_slots[y0].layer) ++y1;
            const int il = probe_slots[y0].layer;
            if (T > 1 && probe_copy_issued[size_t(il)] == 1)
                check(cudaEventSynchronize(probe_copied[size_t(il)]), "the attention probe's copy");
            else if (T > 1)  // copied on the main stream after the pass
                check(cudaStreamSynchronize(stream), "the forward pass");
            const AttentionSpec& a = s.layers[size_t(il)].attn;
            for (int64_t t = 0; t < T; ++t)
                for (size_t y = y0; y < y1; ++y) {
                    AttentionRow r;
                    r.layer = il;
                    r.head = probe_slots[y].head;
                    r.query_pos = pos + t;
                    const int64_t lo = a.key_begin(r.query_pos);
                    r.key_begin = lo;
                    const float* src = probe_host + int64_t(y) * slot_stride(T) + t * row_len;
                    r.probs.assign(src, src + (r.query_pos - lo + 1));
                    probes.attention.push_back(std::move(r));
                }
            y0 = y1;
        }
    }

    // After the synchronisation: the other probe records.
    void collect_probes() {
        const ModelSpec& s = model.spec();
        if (probe_cfg.logit_lens) {
            probes.logit_lens.clear();
            for (int il = 0; il < s.n_layers; ++il) probes.logit_lens.push_back({il, int(lens_host[2 * il]), lens_host[2 * il + 1]});
        }
    }

    // Final norm + LM head (+ softcap) of `rows` residual rows at xin, into logits (device).
    void head(const float* xin, int64_t rows) {
        const ModelSpec& s = model.spec();
        norm(out_norm, out_norm_b, xin, rows, s.dim, h);
        linear(lm_head, h, rows, logits);
        if (s.final_softcap > 0) {
            LAUNCH(softcap_kernel, blocks_for(rows * s.vocab, 256), 256, stream)(logits, s.final_softcap, rows * s.vocab);
            check_launch("softcap_kernel");
        }
    }

    // ---- the pass ----

    // Embeddings gathered on the device when the table is there anyway (tied to the LM head):
    // token ids go up instead of rows; else rows are read on the host (the table stays in host
    // memory, as llama.cpp keeps its input layer).
    bool embed_on_device = false;
    DevLinear pos_table;             // GPT-2's learned positions, with a device-gathered table
    int* d_tok = nullptr;            // the batch's ids (ensure_scratch)
    int* h_tok = nullptr;            // pinned staging
    int64_t h_tok_n = 0;
    int64_t* d_pos = nullptr;        // the batch's first position, on the device
    int64_t* h_pos = nullptr;        // and its pinned host staging
    float* h_x = nullptr;            // pinned: the batch's embeddings
    int64_t h_x_floats = 0;
    float* h_logits = nullptr;       // pinned: the logits that go back
    int64_t h_logits_floats = 0;
    void* workspace = nullptr;       // cuBLAS's, set explicitly so that it can be captured

    float* pinned(float*& p, int64_t& have, int64_t need, const char* what) {
        if (need <= have) return p;
        if (p) cudaFreeHost(p);
        p = nullptr;
        have = 0;
        check(cudaMallocHost(&p, size_t(need) * sizeof(float)), what);
        have = need;
        return p;
    }

    // Every layer, then the head on `rows` residual rows from `first`, enqueued on the stream.
    void run_layers(int64_t T, int64_t first, int64_t rows) {
        const ModelSpec& s = model.spec();
        const int64_t D = s.dim;
        if (embed_on_device) {
            const DevLinear& e = lm_head;
            LAUNCH(embed_rows_kernel, unsigned(T), 256, stream)(e.qtype, static_cast<const uint8_t*>(e.w), e.row_bytes, int(D), d_tok, d_pos,
                                                              s.embed_scale, false, x);
            if (s.learned_positions)
                LAUNCH(embed_rows_kernel, unsigned(T), 256, stream)(pos_table.qtype, static_cast<const uint8_t*>(pos_table.w), pos_table.row_bytes,
                                                                  int(D), nullptr, d_pos, 1.f, true, x);
            check_launch("embed_rows_kernel");
        }
        if (s.family == Family::Gemma3n) gemma3n_layers(T);
        // A residual add followed by an RMSNorm of the sum runs as one kernel (add_rms_norm) unless
        // fusion is off; h_ready: h already holds this layer's normed attention input.
        const bool fuse = fused && s.norm == NormKind::RMSNorm;
        bool h_ready = false;
        for (int il = 0; il < s.n_layers && s.family != Family::Gemma3n; ++il) {
            const LayerSpec& ls = s.layers[size_t(il)];
            const DevLayer& L = layers[size_t(il)];
            // a decode step's sublayers whose norm runs in the first product's prologue and whose
            // residual add in the last product's epilogue (x is then current after each)
            const bool fast_attn = attn_fast(il, T), fast_ffn = ffn_fast(il, T);
            const float* in = x;
            if (fast_attn) {
                attention(il, x, T, x, L.attn_norm, true);
            } else {
                if (ls.attn_pre_norm) {
                    if (!h_ready) norm(L.attn_norm, L.attn_norm_b, x, T, int(D), h);
                    in = h;
                }
                if (ls.attn.kind == AttnKind::MLA)
                    attention_mla(il, in, T, y);
                else
                    attention(il, in, T, y);
                if (ls.attn_post_norm) norm(L.post_attn_norm, nullptr, y, T, int(D), y);
            }
            in = x;
            if (fast_ffn) {
                if (!fast_attn) add(x, y, T * D);
                dense_ffn(L.ffn, ls.ffn.act, x, T, x, 0.f, L.ffn_norm, true);
            } else {
                if (fast_attn) {  // x is current: the norm alone
                    if (ls.ffn_pre_norm) {
                        norm(L.ffn_norm, L.ffn_norm_b, x, T, int(D), h);
                        in = h;
                    }
                } else if (ls.ffn_pre_norm && fuse) {
                    add_norm(x, y, L.ffn_norm, T, h);
                    in = h;
                } else {
                    add(x, y, T * D);
                    if (ls.ffn_pre_norm) {
                        norm(L.ffn_norm, L.ffn_norm_b, x, T, int(D), h);
                        in = h;
                    }
                }
                ffn(il, in, T, y);
                if (ls.ffn_post_norm) norm(L.post_ffn_norm, nullptr, y, T, int(D), y);
            }
            // the residual add, with the next layer's attention norm (the lens reuses h: not then;
            // nor when the next layer normalises in its product)
            const bool next_norm = il + 1 < s.n_layers && s.layers[size_t(il) + 1].attn_pre_norm && !attn_fast(il + 1, T);
            h_ready = fuse && next_norm && !probe_cfg.logit_lens && !fast_ffn;
            if (h_ready) add_norm(x, y, layers[size_t(il) + 1].attn_norm, T, h);
            else if (!fast_ffn) add(x, y, T * D);
            if (probe_cfg.logit_lens) lens(il, x + (T - 1) * D);  // this layer's residual at the last position
        }
        head(x + first * D, rows);
    }

    // decode_fast sublayers (one token, fusion on): RMSNorm before the sublayer and none after it, a
    // single first product (q|k|v fused at upload; the [gate ; up] of a dense gated FFN without
    // activation sparsity) and a plain mat-vec last (o, down) — the norm then runs in the first
    // product's prologue and the residual add in the last one's epilogue: the step's two
    // single-block add+norm kernels a layer are gone. Not with the logit lens (it reads h).
    bool fast_common(int il, int64_t T) const {
        const ModelSpec& s = model.spec();
        return il < s.n_layers && T == 1 && fused && s.norm == NormKind::RMSNorm && s.dim <= kNormMaxDim && !probe_cfg.logit_lens &&
               s.family != Family::Gemma3n;
    }
    bool attn_fast(int il, int64_t T) const {
        if (!fast_common(il, T)) return false;
        const LayerSpec& ls = model.spec().layers[size_t(il)];
        const DevLayer& L = layers[size_t(il)];
        return ls.attn_pre_norm && !ls.attn_post_norm && !L.attn_norm_b && ls.attn.kind != AttnKind::MLA && ls.kv_source < 0 &&
               ls.attn.qk_norm != QkNorm::Full && L.qkv.present() && !L.qkv.transposed && L.o.present() && !L.o.transposed;
    }
    bool ffn_fast(int il, int64_t T) const {
        if (!fast_common(il, T)) return false;
        const LayerSpec& ls = model.spec().layers[size_t(il)];
        const DevLayer& L = layers[size_t(il)];
        return ls.ffn_pre_norm && !ls.ffn_post_norm && !L.ffn_norm_b && !ls.ffn.moe && ls.sparsity_std_mult <= 0 &&
               L.ffn.gate_up.present() && !L.ffn.gate_up.transposed && L.ffn.down.present() && !L.ffn.down.transposed;
    }

    // ---- Gemma 3n: Session::gemma3n_layers on the device ----
    DevLinear ple_model_proj;
    const float* ple_proj_norm = nullptr;
    std::vector<DevLinear> altup_proj, altup_unembd;
    struct {
        float *st = nullptr, *pred = nullptr, *lau = nullptr, *att = nullptr, *res = nullptr, *ff = nullptr, *tmp = nullptr;
        float *lo = nullptr, *mods = nullptr, *coefs = nullptr, *corr = nullptr, *gate = nullptr, *pli = nullptr;
        float* rows = nullptr;  // the tokens' per-layer table rows, read on the host
    } g3;
    float* h_ple = nullptr;  // pinned staging of those rows
    int64_t h_ple_floats = 0;

    // tanh(W · (RMSNorm(src) / D)): the AltUp router's modalities [T][N]
    void altup_router(const DevLayer& L, const float* src, int64_t T) {
        const ModelSpec& s = model.spec();
        LAUNCH_SYNC(rms_norm_kernel, unsigned(T), 256, stream)(src, L.altup_router_norm, s.dim, s.norm_eps, g3.tmp);
        LAUNCH(div_kernel, blocks_for(T * s.dim, 256), 256, stream)(g3.tmp, float(s.dim), T * s.dim);
        check_launch("altup router norm");
        linear(L.altup_router, g3.tmp, T, g3.mods);
        LAUNCH(tanh_kernel, blocks_for(T * s.altup_inputs, 256), 256, stream)(g3.mods, T * s.altup_inputs);
        check_launch("tanh_kernel");
    }

    void rms_rows(const float* w, float* v, int64_t rows, int n) {
        LAUNCH_SYNC(rms_norm_kernel, unsigned(rows), n >= 256 ? 256 : 128, stream)(v, w, n, model.spec().norm_eps, v);
        check_launch("rms_norm_kernel");
    }

    // Every Gemma 3n layer on x (the scaled embeddings), leaving the streams' mean in x; g3.rows
    // holds the tokens' per-layer table rows. Mirrors engine/cpu/gemma3n.cpp step for step.
    void gemma3n_layers(int64_t T) {
        const ModelSpec& s = model.spec();
        const int64_t D = s.dim, P = s.ple_dim, N = s.altup_inputs, LP = ple_model_proj.n_out, L = LP / P, TD = T * D;
        const int act = s.altup_active;
        const auto& ple_layers = model.weights().ple_layers;
        // per-layer inputs [T][L][P]: (RMSNorm(proj(x0)·D^-½) + table[id]·√P) · 2^-½
        linear(ple_model_proj, x, T, g3.pli);
        LAUNCH(scale_kernel, blocks_for(T * LP, 256), 256, stream)(g3.pli, 1.f / std::sqrt(float(D)), T * LP);
        check_launch("scale_kernel");
        rms_rows(ple_proj_norm, g3.pli, T * L, int(P));
        LAUNCH(ple_mix_kernel, blocks_for(T * LP, 256), 256, stream)(g3.pli, g3.rows, std::sqrt(float(P)), float(M_SQRT1_2), T * LP);
        check_launch("ple_mix_kernel");
        // streams [N][T][D]: x0, then altup_proj[k-1](x0) at x0's RMS
        check(cudaMemcpyAsync(g3.st, x, size_t(TD) * sizeof(float), cudaMemcpyDeviceToDevice, stream), "cudaMemcpyAsync (stream 0)");
        for (int64_t k = 1; k < N; ++k) {
            linear(altup_proj[size_t(k - 1)], x, T, g3.st + k * TD);
            LAUNCH_SYNC(match_rms_kernel, unsigned(T), 256, stream)(g3.st + k * TD, x, int(D));
            check_launch("match_rms_kernel");
        }
        const unsigned nb = unsigned(blocks_for(N * TD, 256));
        for (int il = 0; il < s.n_layers; ++il) {
            const LayerSpec& ls = s.layers[size_t(il)];
            const DevLayer& Ly = layers[size_t(il)];
            altup_router(Ly, g3.st + act * TD, T);  // predict
            linear(Ly.altup_predict, g3.mods, T, g3.coefs);
            LAUNCH(altup_predict_kernel, nb, 256, stream)(g3.st, g3.coefs, int(T), int(N), int(D), g3.pred);
            check_launch("altup_predict_kernel");
            const float* a = g3.pred + act * TD;  // the block on the active stream
            norm(Ly.attn_norm, nullptr, a, T, int(D), h);
            linear(Ly.laurel_l, h, T, g3.lo);  // LAuReL: h + RMSNorm(right(left(h)))
            linear(Ly.laurel_r, g3.lo, T, g3.lau);
            rms_rows(Ly.laurel_post_norm, g3.lau, T, int(D));
            add(g3.lau, h, TD);
            attention(il, h, T, g3.att);
            norm(Ly.post_attn_norm, nullptr, g3.att, T, int(D), g3.att);
            LAUNCH(sum3_scale_kernel, blocks_for(TD, 256), 256, stream)(a, g3.att, g3.lau, float(M_SQRT1_2), g3.res, TD);
            check_launch("sum3_scale_kernel");
            norm(Ly.ffn_norm, nullptr, g3.res, T, int(D), h);
            dense_ffn(Ly.ffn, ls.ffn.act, h, T, g3.ff, ls.sparsity_std_mult);
            norm(Ly.post_ffn_norm, nullptr, g3.ff, T, int(D), g3.ff);
            add(g3.res, g3.ff, TD);
            altup_router(Ly, g3.res, T);  // correct
            linear(Ly.altup_correct, g3.mods, T, g3.corr);
            LAUNCH(altup_correct_kernel, nb, 256, stream)(g3.st, g3.pred, g3.res, g3.corr, act, int(T), int(N), int(D));
            check_launch("altup_correct_kernel");
            // per-layer input: gelu(gate(active ⊙ scale)) ⊙ pli[l]; streams 1.. += RMSNorm(proj(·))
            LAUNCH(mul_cols_kernel, blocks_for(TD, 256), 256, stream)(g3.st + act * TD, Ly.altup_correct_scale, T, int(D), g3.tmp);
            check_launch("mul_cols_kernel");
            linear(Ly.ple_gate, g3.tmp, T, g3.gate);
            const int blk = ple_layers.empty() ? il : ple_layers[size_t(il)];
            LAUNCH(ple_gate_kernel, blocks_for(T * P, 256), 256, stream)(g3.gate, g3.pli, int(T), int(P), int(L), blk);
            check_launch("ple_gate_kernel");
            linear(Ly.ple_proj, g3.gate, T, g3.tmp);
            rms_rows(Ly.ple_post_norm, g3.tmp, T, int(D));
            for (int64_t k = 1; k < N; ++k) add(g3.st + k * TD, g3.tmp, TD);
            if (probe_cfg.logit_lens) lens(il, g3.st + act * TD + (T - 1) * D);
        }
        // output: streams 1.. unembedded to stream 0's RMS, then the mean of all streams
        check(cudaMemcpyAsync(x, g3.st, size_t(TD) * sizeof(float), cudaMemcpyDeviceToDevice, stream), "cudaMemcpyAsync (stream 0)");
        for (int64_t k = 1; k < N; ++k) {
            linear(altup_unembd[size_t(k - 1)], g3.st + k * TD, T, g3.tmp);
            LAUNCH_SYNC(match_rms_kernel, unsigned(T), 256, stream)(g3.tmp, g3.st, int(D));
            check_launch("match_rms_kernel");
            add(x, g3.tmp, TD);
        }
        LAUNCH(div_kernel, blocks_for(TD, 256), 256, stream)(x, float(N), TD);
        check_launch("div_kernel");
    }

    // The logit lens of one residual row (layer il): through the head, its top id and probability.
    void lens(int il, const float* row) {
        head(row, 1);
        LAUNCH_SYNC(lens_kernel, 1, kLensThreads, stream)(logits, model.spec().vocab, lens_dev + 2 * il);
        check_launch("lens_kernel");
    }

    // ---- the decode step as a CUDA graph ----
    // A single-token step without host routing is captured once and replayed: positions come from
    // device memory, every buffer it touches is allocated before the capture, and it is captured
    // again when a buffer moves or the probes change. A capture the device refuses turns graphs
    // off for the session (graph_note says why) and the step runs eagerly: never an error.
    bool has_rings = false;  // some layer's cache is a window's ring: batches of <= ring_batch tokens
    int64_t ring_batch = kRingBatch;
    bool kv_f16 = false;  // the f16 cache was asked for (standard attention layers hold f16)
    bool use_graphs = true;
    bool fused = true;  // the fused kernels (set_fusion(false): one kernel per step)
    bool heads_fused = true;  // with fused: norm, q|k|v product and heads in one decode launch (set_heads_fusion)
    QuantGemm quant_gemm = QuantGemm::TF32;  // a prompt's products with quantized weights (set_quant_gemm)
    bool tc_attention = true;  // prompt attention on tensor cores where it fits (set_tensor_core_attention)
    bool gemm_attn = true;     // prompt attention with f32 caches as cuBLAS products (set_gemm_attention)
    bool tf32_attn = true;     // those products on TF32 where the layer's products round activations (set_tf32_attention)
    bool programmatic = false;  // programmatic dependent launches where the device has them (set_programmatic_launches; GpuTuning)
    int cc_major = 0;
    bool grouped = true;  // a prompt's device-routed MoE layers through the grouped kernels (else per expert)
    int group_pairs = kGroupPairs;  // pairs a chunk of the grouped path (the scratch holds kGroupPairs)
    std::string graph_note = "no decode step yet";
    std::string pdl_note;  // why programmatic launches were turned off by a refused capture ("" when not)
    // Decode graphs by the probes they were captured with (probe_key): the chat turns the logit
    // lens on for some tokens only (app/gui/lens_budget.h), and a view may switch between heads, so
    // a few are kept rather than captured again at every change; the oldest goes past kGraphCache.
    // Anything that moves a buffer or changes a launch drops them all (drop_graph).
    struct CachedGraph {
        std::vector<int> key;
        cudaGraphExec_t exec = nullptr;
    };
    static constexpr size_t kGraphCache = 4;
    std::vector<CachedGraph> graphs;  // most recently used last
    int64_t graph_captures = 0;
    int64_t graph_launches = 0;
    bool profiling = false;  // set_profiling: every launch between events, decode steps eager
    KernelProfiler profiler;

    void drop_graph() {
        for (CachedGraph& g : graphs) cudaGraphExecDestroy(g.exec);
        graphs.clear();
    }

    std::vector<int> probe_key() const {
        std::vector<int> k{probe_cfg.logit_lens ? 1 : 0};
        for (const auto& p : probe_slots) k.insert(k.end(), {p.layer, p.head});
        return k;
    }

    // Runs one decode step through the graph; false when it must run eagerly. A capture the device
    // refuses with programmatic launches is tried once more without them (they stay off for the
    // session, and decode_mode() says why); one refused without them turns graphs off.
    bool run_graph() {
        if (!use_graphs) return false;
        const std::vector<int> key = probe_key();
        auto hit = std::find_if(graphs.begin(), graphs.end(), [&](const CachedGraph& g) { return g.key == key; });
        if (hit != graphs.end()) {
            std::rotate(hit, hit + 1, graphs.end());  // most recently used last
        } else {
            if (graphs.size() >= kGraphCache) {
                cudaGraphExecDestroy(graphs.front().exec);
                graphs.erase(graphs.begin());
            }
            cudaGraphExec_t graph = nullptr;
            std::string why;
            if (!capture_graph(graph, why)) {
                if (!t_programmatic) {
                    use_graphs = false;
                    graph_note = "eager: " + why;
                    return false;
                }
                // the graphs kept were captured with programmatic launches: none may replay now
                drop_graph();
                programmatic = false;
                pdl_note = why;
                ProgrammaticLaunches serial(false);
                if (!capture_graph(graph, why)) {
                    use_graphs = false;
                    graph_note = "eager: " + why;
                    return false;
                }
            }
            ++graph_captures;
            graphs.push_back({key, graph});
        }
        check(cudaGraphLaunch(graphs.back().exec, stream), "cudaGraphLaunch");
        ++graph_launches;
        graph_note = pdl_note.empty() ? "graph" : "graph (programmatic launches off: " + pdl_note + ")";
        return true;
    }
    // Captures and instantiates the decode step; false (and why) when the device refuses it.
    bool capture_graph(cudaGraphExec_t& graph, std::string& why) {
        check(cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal), "cudaStreamBeginCapture");
        cudaGraph_t g = nullptr;
        try {
            run_layers(1, 0, 1);
        } catch (const Error& e) {
            cudaStreamEndCapture(stream, &g);
            if (g) cudaGraphDestroy(g);
            cudaGetLastError();
            why = std::string("the decode step could not be captured (") + e.what() + ")";
            return false;
        }
        cudaError_t err = cudaStreamEndCapture(stream, &g);
        if (err == cudaSuccess) err = cudaGraphInstantiate(&graph, g, 0);
        if (g) cudaGraphDestroy(g);
        if (err != cudaSuccess) {
            cudaGetLastError();
            graph = nullptr;
            why = std::string("the decode graph failed (") + cudaGetErrorString(err) + ")";
            return false;
        }
        return true;
    }

    // sparsity: Gemma 3n's Gaussian top-k on the gate (its std multiple; 0 = dense)
    // pro_w, accumulate: as attention()'s (decode_fast)
    void dense_ffn(const DevExpert& e, Activation a, const float* hin, int64_t T, float* out, float sparsity = 0.f,
                   const float* pro_w = nullptr, bool accumulate = false) {
        const int act = act_code(a);
        if (pro_w) {  // the FFN norm and the activation inside the [gate ; up] product, the residual add in down's
            const int F = e.gate_up.n_out / 2;
            launch_norm_gated_matvec(stream, e.gate_up.qtype, static_cast<const uint8_t*>(e.gate_up.w), e.gate_up.row_bytes, F,
                                     e.gate_up.n_in, hin, pro_w, model.spec().norm_eps, act, e.gate_up.bias, u);
            matvec(e.down, u, T, out, accumulate);
            return;
        }
        if (e.gate_up.present()) {
            const int F = e.gate_up.n_out / 2;
            if (fused && T <= kMatvecMaxT && sparsity <= 0 && !e.gate_up.transposed) {  // the activation inside the product
                launch_gated_matvec(stream, e.gate_up.qtype, static_cast<const uint8_t*>(e.gate_up.w), e.gate_up.row_bytes, F, e.gate_up.n_in,
                                    hin, int(T), act, e.gate_up.bias, u);
                linear(e.down, u, T, out);
                return;
            }
            linear(e.gate_up, hin, T, g);
            if (sparsity > 0) LAUNCH_SYNC(gaussian_topk_kernel, unsigned(T), 256, stream)(g, 2 * F, F, sparsity);
            if (fused && takes_16bit_input(e.down, T)) {  // the activation written as down's BF16/F16 input
                if (e.down.type == CUDA_R_16BF) act_mul_split(g, T, F, act, static_cast<__nv_bfloat16*>(conv));
                else act_mul_split(g, T, F, act, static_cast<__half*>(conv));
                gemm_float(e.down, nullptr, T, out, conv);
                add_bias(e.down, T, out);
                return;
            }
            act_mul_split(g, T, F, act, u);
            linear(e.down, u, T, out);
            return;
        }
        const DevLinear &gate = e.gate, &up = e.up, &down = e.down;
        const int64_t n = T * up.n_out;
        linear(up, hin, T, u);
        if (gate.present()) {
            linear(gate, hin, T, g);
            if (sparsity > 0) LAUNCH_SYNC(gaussian_topk_kernel, unsigned(T), 256, stream)(g, up.n_out, up.n_out, sparsity);
            LAUNCH(act_mul_kernel, blocks_for(n, 256), 256, stream)(u, g, act, n);
        } else {
            LAUNCH(act_kernel, blocks_for(n, 256), 256, stream)(u, act, n);
        }
        check_launch("activation kernel");
        linear(down, u, T, out);
    }

    void ffn(int il, const float* hin, int64_t T, float* out) {
        const FfnSpec& f = model.spec().layers[size_t(il)].ffn;
        const DevLayer& L = layers[size_t(il)];
        if (f.moe) return moe(il, hin, T, out);
        dense_ffn(L.ffn, f.act, hin, T, out, model.spec().layers[size_t(il)].sparsity_std_mult);
    }

    // Session::ffn_moe on the device. A few tokens (a decode step, T <= kMatvecMaxT) in a layer
    // whose routing the device can decide never leave it: moe_route_kernel picks each token's
    // experts into the layer's routing slot, moe_matvec_kernel runs each (token, expert) pair's
    // [gate ; up] and down products reading the expert from that choice, moe_combine_kernel adds
    // them up weighted, so the step can be a CUDA graph; the routing probe is read from the slot
    // after the pass. More tokens (a prompt): the routing (on the device, or cpu::moe_route where
    // the kernel cannot) comes back to the host, which records the probe and runs each expert
    // once on exactly its tokens' rows with cuBLAS (gathered, scaled on input for Llama 4), its
    // output added back weighted. The shared expert runs on every row.
    void moe(int il, const float* hin, int64_t T, float* out) {
        const ModelSpec& s = model.spec();
        const FfnSpec& f = s.layers[size_t(il)].ffn;
        const DevLayer& L = layers[size_t(il)];
        const LayerWeights& lw = model.weights().layers[size_t(il)];
        const int64_t D = s.dim, E = f.n_experts, K = f.top_k;
        linear(L.router, hin, T, router_logits);
        if (L.moe_dev && T <= kMatvecMaxT) {
            int* sel = route_sel + int64_t(L.route_slot) * kMatvecMaxT * route_K;
            float* wts = route_w + int64_t(L.route_slot) * kMatvecMaxT * route_K;
            float* probs = route_p + int64_t(L.route_slot) * kMatvecMaxT * route_E;
            launch_moe_route(stream, router_logits, int(T), route_params(f), L.sel_bias, sel, wts, probs);
            const int pairs = int(T * K), F2 = L.gate_up_shape.n_out, F = F2 / 2;
            const int act = act_code(f.act);
            // ref: HF Llama4TextMoe: the router score scales the expert input
            if (fused) {  // the activation inside the product
                LAUNCH_SYNC(moe_gated_matvec_kernel, dim3(unsigned(blocks_for(F, kMatvecWarps)), unsigned(pairs)), 32 * kMatvecWarps, stream)(
                    L.gate_up_shape.qtype, L.exp_gate_up, sel, L.gate_up_shape.row_bytes, F, int(D), hin, int(K),
                    f.weight_on_input ? wts : nullptr, act, moe_u);
                check_launch("moe_gated_matvec_kernel");
            } else {
                LAUNCH_SYNC(moe_matvec_kernel, dim3(unsigned(blocks_for(F2, kMatvecWarps)), unsigned(pairs)), 32 * kMatvecWarps, stream)(
                    L.gate_up_shape.qtype, L.exp_gate_up, sel, L.gate_up_shape.row_bytes, F2, int(D), hin, int(K),
                    f.weight_on_input ? wts : nullptr, moe_g);
                check_launch("moe_matvec_kernel (gate, up)");
                act_mul_split(moe_g, pairs, F, act, moe_u);
            }
            LAUNCH_SYNC(moe_matvec_kernel, dim3(unsigned(blocks_for(D, kMatvecWarps)), unsigned(pairs)), 32 * kMatvecWarps, stream)(
                L.down_shape.qtype, L.exp_down, sel, L.down_shape.row_bytes, int(D), F, moe_u, 1, nullptr, moe_y);
            check_launch("moe_matvec_kernel (down)");
            LAUNCH(moe_combine_kernel, blocks_for(T * D, 256), 256, stream)(moe_y, sel, wts, !f.weight_on_input, int(T), int(K), int(D), out);
            check_launch("moe_combine_kernel");
        } else if (L.moe_dev && grouped && E <= kGroupMaxExperts) {
            // a prompt on the device: routed, sorted and multiplied there in chunks of pairs; the
            // routing goes to pinned memory for the probes, read after the pass (no wait here)
            launch_moe_route(stream, router_logits, int(T), route_params(f), L.sel_bias, big_sel, big_w, big_p);
            copy_prompt_routing_async(il, T, K, E);
            const int F2 = L.gate_up_shape.n_out, F = F2 / 2;
            const int act = act_code(f.act);
            const int64_t chunk = std::max<int64_t>(1, group_pairs / K);
            for (int64_t t0 = 0; t0 < T; t0 += chunk) {
                const int64_t n = std::min(chunk, T - t0);
                const int P = int(n * K);
                const int* sel = big_sel + t0 * K;
                const float* wts = big_w + t0 * K;
                launch_moe_group(stream, sel, P, int(E), grp);
                // ref: HF Llama4TextMoe: the router score scales the expert input
                launch_moe_group_gemm<true>(stream, L.gate_up_shape.qtype, L.exp_gate_up, L.gate_up_shape.row_bytes, F, int(D), P, int(E), grp,
                                            hin + t0 * D, int(K), f.weight_on_input ? wts : nullptr, false, act, grp_h);
                launch_moe_group_gemm<false>(stream, L.down_shape.qtype, L.exp_down, L.down_shape.row_bytes, int(D), F, P, int(E), grp, grp_h,
                                             0, nullptr, true, 0, grp_y);
                LAUNCH(moe_combine_kernel, blocks_for(n * D, 256), 256, stream)(grp_y, sel, wts, !f.weight_on_input, int(n), int(K), int(D),
                                                                              out + t0 * D);
                check_launch("moe_combine_kernel");
            }
        } else {
            std::vector<int> sel(size_t(T * K));
            std::vector<float> wts(size_t(T * K)), probs(size_t(T * E));
            if (route_unsupported(f).empty()) {
                launch_moe_route(stream, router_logits, int(T), route_params(f), L.sel_bias, big_sel, big_w, big_p);
                check(cudaMemcpyAsync(sel.data(), big_sel, sel.size() * sizeof(int), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync (routing)");
                check(cudaMemcpyAsync(wts.data(), big_w, wts.size() * sizeof(float), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync (routing)");
                to_host(probs.data(), big_p, probs.size() * sizeof(float), "router probabilities");
            } else {
                std::vector<float> logits(size_t(T * E));
                to_host(logits.data(), router_logits, logits.size() * sizeof(float), "router logits");
                for (int64_t t = 0; t < T; ++t)
                    cpu::moe_route(f, logits.data() + t * E, lw.selection_bias.data(), probs.data() + t * E, sel.data() + t * K,
                                   wts.data() + t * K);
            }
            cpu::moe_record(f, T, il, s.n_layers, pos, sel.data(), wts.data(), probs.data(), probe_cfg, probes);
            check(cudaMemsetAsync(out, 0, size_t(T * D) * sizeof(float), stream), "cudaMemsetAsync (moe out)");
            std::vector<std::vector<std::pair<int, float>>> by_expert(static_cast<size_t>(E));
            for (int64_t t = 0; t < T; ++t)
                for (int64_t k = 0; k < K; ++k) by_expert[size_t(sel[size_t(t * K + k)])].push_back({int(t), wts[size_t(t * K + k)]});
            std::vector<int> rows;
            std::vector<float> scales;
            for (int64_t e = 0; e < E; ++e) {
                const auto& toks = by_expert[size_t(e)];
                if (toks.empty()) continue;
                const int64_t n = int64_t(toks.size());
                rows.clear();
                scales.clear();
                for (const auto& [t, w] : toks) rows.push_back(t), scales.push_back(w);
                // pageable sources: the call returns once they are staged, so the vectors may be reused
                check(cudaMemcpyAsync(moe_rows, rows.data(), rows.size() * sizeof(int), cudaMemcpyHostToDevice, stream),
                      "cudaMemcpyAsync (moe rows)");
                check(cudaMemcpyAsync(moe_scale, scales.data(), scales.size() * sizeof(float), cudaMemcpyHostToDevice, stream),
                      "cudaMemcpyAsync (moe weights)");
                // ref: HF Llama4TextMoe: the router score scales the expert input
                LAUNCH(gather_rows_kernel, blocks_for(n * D, 256), 256, stream)(hin, moe_rows, f.weight_on_input ? moe_scale : nullptr, n,
                                                                              int(D), moe_in);
                check_launch("gather_rows_kernel");
                const DevExpert& ex = L.experts[size_t(e)];
                dense_ffn(ex, f.act, moe_in, n, moe_out);
                LAUNCH(scatter_add_rows_kernel, blocks_for(n * D, 256), 256, stream)(moe_out, moe_rows,
                                                                                   f.weight_on_input ? nullptr : moe_scale, n, int(D), out);
                check_launch("scatter_add_rows_kernel");
            }
        }
        if (f.n_shared > 0) {
            dense_ffn(L.shared, f.act, hin, T, moe_out);
            add(out, moe_out, T * D);
        }
    }

    // ---- MoE on the device: the layers' routing slots and the pairs' scratch ----
    // Fixed at load (they never move, so a captured decode step stays valid): per device-routed
    // layer, room for kMatvecMaxT tokens' selections, weights and router probabilities, and
    // pinned copies the probes are read from after the pass.
    int route_slots = 0, route_K = 0, route_E = 0;
    int* route_sel = nullptr;
    float *route_w = nullptr, *route_p = nullptr;
    int* route_sel_host = nullptr;
    float *route_w_host = nullptr, *route_p_host = nullptr;
    float *moe_g = nullptr, *moe_u = nullptr, *moe_y = nullptr;
    int *big_sel = nullptr;  // a prompt's routing (ensure_scratch)
    float *big_w = nullptr, *big_p = nullptr;
    std::string host_moe_note;  // why some layer routes on the host ("" when none does)
    GroupScratch grp;           // the grouped prompt path's scratch (ensure_scratch)
    float *grp_h = nullptr, *grp_y = nullptr;
    // A prompt's routing of the grouped layers, per routing slot: T·K ids, T·K weights and (with
    // the routing probe) T·E probabilities in one pinned buffer, read after the pass.
    float* h_route = nullptr;
    int64_t h_route_floats = 0;
    std::vector<int> prompt_routed;  // the layers whose routing is there, this pass

    int64_t prompt_route_floats(int64_t T) const { return T * (2 * route_K + (probe_cfg.routing ? route_E : 0)); }  // a slot's

    void copy_prompt_routing_async(int il, int64_t T, int64_t K, int64_t E) {
        const int64_t per = prompt_route_floats(T);
        if (prompt_routed.empty()) {  // the pass's first: room for every slot at this length
            pinned(h_route, h_route_floats, per * route_slots, "cudaMallocHost (prompt routing)");
        }
        float* o = h_route + per * layers[size_t(il)].route_slot;
        check(cudaMemcpyAsync(o, big_sel, size_t(T * K) * sizeof(int), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync (routing)");
        check(cudaMemcpyAsync(o + T * route_K, big_w, size_t(T * K) * sizeof(float), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync (routing)");
        if (probe_cfg.routing)
            check(cudaMemcpyAsync(o + 2 * T * route_K, big_p, size_t(T * E) * sizeof(float), cudaMemcpyDeviceToHost, stream),
                  "cudaMemcpyAsync (router probabilities)");
        prompt_routed.push_back(il);
    }

    // Whether layer il's MoE can run on the device, and its expert tables if so.
    std::string setup_moe_dev(int il) {
        const FfnSpec& f = model.spec().layers[size_t(il)].ffn;
        DevLayer& L = layers[size_t(il)];
        if (auto why = route_unsupported(f); !why.empty()) return why;
        if (!f.gated || L.experts.size() != size_t(f.n_experts)) return "ungated or missing experts";
        const DevExpert& e0 = L.experts[0];
        std::vector<const uint8_t*> gu, dn;
        for (const DevExpert& e : L.experts) {
            const DevLinear &a = e.gate_up, &b = e.down;
            if (!a.present() || !b.present() || a.bias || b.bias || a.transposed || b.transposed) return "experts with biases or unfused gate/up";
            if (a.qtype != e0.gate_up.qtype || a.row_bytes != e0.gate_up.row_bytes || a.n_out != e0.gate_up.n_out || a.n_in != e0.gate_up.n_in ||
                b.qtype != e0.down.qtype || b.row_bytes != e0.down.row_bytes || b.n_out != e0.down.n_out || b.n_in != e0.down.n_in)
                return "experts of differing types or shapes";
            gu.push_back(static_cast<const uint8_t*>(a.w));
            dn.push_back(static_cast<const uint8_t*>(b.w));
        }
        if (e0.gate_up.n_in != model.spec().dim || e0.down.n_out != model.spec().dim || e0.down.n_in * 2 != e0.gate_up.n_out)
            return "expert shapes that do not match the model";
        auto table = [&](const std::vector<const uint8_t*>& v) {
            void* p = dev_alloc(v.size() * sizeof(void*), allocations);
            check(cudaMemcpy(p, v.data(), v.size() * sizeof(void*), cudaMemcpyHostToDevice), "cudaMemcpy (expert table)");
            return static_cast<const uint8_t* const*>(p);
        };
        L.exp_gate_up = table(gu);
        L.exp_down = table(dn);
        L.gate_up_shape = e0.gate_up;
        L.down_shape = e0.down;
        L.gate_up_shape.w = L.down_shape.w = nullptr;
        L.moe_dev = true;
        L.route_slot = route_slots++;
        route_K = std::max(route_K, f.top_k);
        route_E = std::max(route_E, f.n_experts);
        return {};
    }

    // A device table of per-head weights (one type and shape, plain rows, no bias), else null.
    const uint8_t* const* head_table(const std::vector<DevLinear>& hs, int n_heads) {
        if (hs.empty() || int(hs.size()) != n_heads) return nullptr;
        std::vector<const uint8_t*> ptrs;
        for (const DevLinear& l : hs) {
            if (!l.present() || l.transposed || l.bias || l.qtype != hs[0].qtype || l.row_bytes != hs[0].row_bytes ||
                l.n_out != hs[0].n_out || l.n_in != hs[0].n_in)
                return nullptr;
            ptrs.push_back(static_cast<const uint8_t*>(l.w));
        }
        void* p = dev_alloc(ptrs.size() * sizeof(void*), allocations);
        check(cudaMemcpy(p, ptrs.data(), ptrs.size() * sizeof(void*), cudaMemcpyHostToDevice), "cudaMemcpy (head table)");
        return static_cast<const uint8_t* const*>(p);
    }

    void alloc_routing() {
        if (route_slots == 0) return;
        int64_t F2 = 0;
        for (const DevLayer& L : layers)
            if (L.moe_dev) F2 = std::max<int64_t>(F2, L.gate_up_shape.n_out);
        const int64_t sk = int64_t(route_slots) * kMatvecMaxT * route_K, se = int64_t(route_slots) * kMatvecMaxT * route_E;
        route_sel = static_cast<int*>(dev_alloc(size_t(sk) * sizeof(int), allocations));
        route_w = static_cast<float*>(dev_alloc(size_t(sk) * sizeof(float), allocations));
        route_p = static_cast<float*>(dev_alloc(size_t(se) * sizeof(float), allocations));
        check(cudaMallocHost(&route_sel_host, size_t(sk) * sizeof(int)), "cudaMallocHost (routing)");
        check(cudaMallocHost(&route_w_host, size_t(sk) * sizeof(float)), "cudaMallocHost (routing)");
        check(cudaMallocHost(&route_p_host, size_t(se) * sizeof(float)), "cudaMallocHost (routing)");
        const int64_t pairs = int64_t(kMatvecMaxT) * route_K;
        moe_g = static_cast<float*>(dev_alloc(size_t(pairs * F2) * sizeof(float), allocations));
        moe_u = static_cast<float*>(dev_alloc(size_t(pairs * F2 / 2) * sizeof(float), allocations));
        moe_y = static_cast<float*>(dev_alloc(size_t(pairs * model.spec().dim) * sizeof(float), allocations));
    }

    // After the pass of T <= kMatvecMaxT tokens: the device-routed layers' slots to pinned memory.
    void copy_routing_async(int64_t T) {
        if (route_slots == 0 || T > kMatvecMaxT) return;
        const int64_t sk = int64_t(route_slots) * kMatvecMaxT * route_K, se = int64_t(route_slots) * kMatvecMaxT * route_E;
        check(cudaMemcpyAsync(route_sel_host, route_sel, size_t(sk) * sizeof(int), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync (routing)");
        check(cudaMemcpyAsync(route_w_host, route_w, size_t(sk) * sizeof(float), cudaMemcpyDeviceToHost, stream), "cudaMemcpyAsync (routing)");
        if (probe_cfg.routing)
            check(cudaMemcpyAsync(route_p_host, route_p, size_t(se) * sizeof(float), cudaMemcpyDeviceToHost, stream),
                  "cudaMemcpyAsync (router probabilities)");
    }

    // ... and after the synchronisation, their probes, in layer order with any host-routed ones.
    void collect_routing(int64_t T, size_t first_record) {
        const ModelSpec& s = model.spec();
        if (!prompt_routed.empty()) {  // a prompt's grouped layers
            const int64_t per = prompt_route_floats(T);
            for (int il : prompt_routed) {
                const float* o = h_route + per * layers[size_t(il)].route_slot;
                cpu::moe_record(s.layers[size_t(il)].ffn, T, il, s.n_layers, pos, reinterpret_cast<const int*>(o), o + T * route_K,
                                probe_cfg.routing ? o + 2 * T * route_K : nullptr, probe_cfg, probes);
            }
            prompt_routed.clear();
        }
        if (route_slots == 0 || T > kMatvecMaxT) return sort_routing(first_record);
        for (int il = 0; il < s.n_layers; ++il) {
            const DevLayer& L = layers[size_t(il)];
            if (!L.moe_dev) continue;
            const int64_t o = int64_t(L.route_slot) * kMatvecMaxT;
            cpu::moe_record(s.layers[size_t(il)].ffn, T, il, s.n_layers, pos, route_sel_host + o * route_K, route_w_host + o * route_K,
                            route_p_host + o * route_E, probe_cfg, probes);
        }
        sort_routing(first_record);
    }
    void sort_routing(size_t first_record) {
        auto& r = probes.routing;
        std::stable_sort(r.begin() + std::ptrdiff_t(first_record), r.end(), [](const RoutingRecord& a, const RoutingRecord& b) { return a.layer < b.layer; });
    }
};

CudaSession::CudaSession(const Model& model, int64_t n_ctx, int64_t ring_batch, bool kv_f16) : impl_(std::make_unique<Impl>(model)) {
    if (std::string why = unsupported_reason(model); !why.empty())
        throw Error(model.path() + ": cannot run on the CUDA backend: " + why);
    Impl& m = *impl_;
    const ModelSpec& s = model.spec();
    {  // the switches ARCHLENS_CUDA_OFF turns off (engine/gpu_types.h)
        const GpuTuning t = gpu_tuning_from_env();
        m.use_graphs = t.graphs;
        if (!t.graphs) m.graph_note = "eager: graphs turned off";
        m.fused = t.fusion;
        m.heads_fused = t.heads_fusion;
        m.programmatic = t.pdl;
        m.tiles = t.prompt_tiles;
        m.tc_attention = t.tc_attention;
        m.gemm_attn = t.gemm_attention;
        m.tf32_attn = t.tf32_attention;
        m.grouped = t.grouped_moe;
    }
    if (const DeviceInfo d = probe_device(); !d.available) throw Error(model.path() + ": cannot run on the CUDA backend: " + d.reason);
    cudaDeviceProp prop{};
    check(cudaGetDeviceProperties(&prop, 0), "cudaGetDeviceProperties");
    m.device = prop.name;
    m.sm_count = std::max(1, prop.multiProcessorCount);
    m.cc_major = prop.major;
    if (m.cc_major >= 8) mma_attention_setup();
    m.n_ctx = n_ctx > 0 ? n_ctx : std::max(s.max_positions, 1);
    // Windowed layers keep a ring of the positions a query can still see: the window plus one
    // batch (forward() splits longer batches of such models into ring_batch-token pieces).
    if (ring_batch < 0) throw Error("CUDA backend: a negative ring batch");
    m.ring_batch = ring_batch > 0 ? ring_batch : kRingBatch;
    m.kv_f16 = kv_f16;
    auto ring_cap = [&](const AttentionSpec& a) -> int64_t {
        if (a.window <= 0 || a.scope == AttnScope::Global) return m.n_ctx;
        return std::min<int64_t>(m.n_ctx, int64_t(a.window) + m.ring_batch - 1);
    };
    // Fit check before anything is uploaded: weights + KV + a margin for scratch and cuBLAS.
    uint64_t kv = 0;
    for (const LayerSpec& ls : s.layers)
        kv += ls.kv_source >= 0 ? 0
              : ls.attn.kind == AttnKind::MLA
                  ? uint64_t(m.n_ctx) * uint64_t(ls.attn.kv_lora_rank + ls.attn.qk_rope_head_dim) * 4
                  : uint64_t(ring_cap(ls.attn)) * uint64_t(ls.attn.n_kv_heads) * uint64_t(ls.attn.head_dim + ls.attn.v_head_dim) *
                        (kv_f16 ? 2 : 4);
    size_t free_b = 0, total_b = 0;
    check(cudaMemGetInfo(&free_b, &total_b), "cudaMemGetInfo");
    // Gemma 3n's per-layer embedding table stays on the host (rows are read as tokens arrive)
    const Linear& ple = model.weights().ple_table;
    const uint64_t ple_bytes = ple.present() ? *dtype_row_bytes(ple.type, uint64_t(ple.n_in)) * uint64_t(ple.n_out) : 0;
    const uint64_t need = model.weight_bytes() - std::min(model.weight_bytes(), ple_bytes) + kv + (uint64_t(256) << 20);
    if (need > free_b)
        throw Error(model.path() + ": needs " + std::to_string(need >> 20) + " MiB of GPU memory (weights, KV cache of " +
                    std::to_string(m.n_ctx) + " positions, buffers); " + m.device + " has " + std::to_string(free_b >> 20) +
                    " MiB free");
    check(cudaStreamCreateWithFlags(&m.stream, cudaStreamNonBlocking), "cudaStreamCreateWithFlags");
    check(cublasCreate(&m.blas), "cublasCreate");
    check(cublasSetStream(m.blas, m.stream), "cublasSetStream");
    constexpr size_t kWorkspace = size_t(32) << 20;  // cuBLAS's recommendation for Hopper
    m.workspace = m.dev_alloc(kWorkspace, m.allocations);
    check(cublasSetWorkspace(m.blas, m.workspace, kWorkspace), "cublasSetWorkspace");
    m.d_pos = static_cast<int64_t*>(m.dev_alloc(sizeof(int64_t), m.allocations));
    check(cudaMallocHost(&m.h_pos, sizeof(int64_t)), "cudaMallocHost (position)");
    m.lens_dev = static_cast<float*>(m.dev_alloc(size_t(s.n_layers) * 2 * sizeof(float), m.allocations));
    check(cudaMallocHost(&m.lens_host, size_t(s.n_layers) * 2 * sizeof(float)), "cudaMallocHost (logit lens)");
    const ModelWeights& w = model.weights();
    m.layers.resize(size_t(s.n_layers));
    for (int il = 0; il < s.n_layers; ++il) {
        const LayerWeights& lw = w.layers[size_t(il)];
        const AttentionSpec& a = s.layers[size_t(il)].attn;
        DevLayer& L = m.layers[size_t(il)];
        const bool shares_kv = s.layers[size_t(il)].kv_source >= 0;  // its own queries only
        if (shares_kv) L.q = m.upload_linear(lw.q);
        else L.qkv = lw.qkv.present() ? m.upload_linear(lw.qkv) : m.upload_concat({&lw.q, &lw.k, &lw.v});
        if (!shares_kv && !L.qkv.present()) {
            L.q = m.upload_linear(lw.q);
            L.k = m.upload_linear(lw.k);
            L.v = m.upload_linear(lw.v);
        }
        L.o = m.upload_linear(lw.o);
        L.ffn = m.upload_ffn(lw.gate, lw.up, lw.down);
        L.router = m.upload_linear(lw.router);
        for (const Expert& e : lw.experts) L.experts.push_back(m.upload_ffn(e.gate, e.up, e.down));
        L.shared = m.upload_ffn(lw.shared.gate, lw.shared.up, lw.shared.down);
        if (s.layers[size_t(il)].ffn.selection_bias && lw.selection_bias.size() == size_t(s.layers[size_t(il)].ffn.n_experts))
            L.sel_bias = m.upload_vec(lw.selection_bias);
        L.attn_norm = m.upload_vec(lw.attn_norm);
        L.attn_norm_b = m.upload_vec(lw.attn_norm_b);
        L.post_attn_norm = m.upload_vec(lw.post_attn_norm);
        L.ffn_norm = m.upload_vec(lw.ffn_norm);
        L.ffn_norm_b = m.upload_vec(lw.ffn_norm_b);
        L.post_ffn_norm = m.upload_vec(lw.post_ffn_norm);
        L.q_norm = m.upload_vec(lw.q_norm);
        L.k_norm = m.upload_vec(lw.k_norm);
        const bool mla = a.kind == AttnKind::MLA;  // one row per position: [latent ; rope key]
        L.cap = mla ? m.n_ctx : ring_cap(a);
        L.kv_f16 = kv_f16 && !mla;  // as the CPU backend: MLA's latent cache stays f32
        m.has_rings = m.has_rings || L.cap < m.n_ctx;
        const size_t el = L.kv_f16 ? 2 : 4;
        const size_t kb = shares_kv ? 0
                          : mla     ? size_t(L.cap) * size_t(a.kv_lora_rank + a.qk_rope_head_dim) * el
                                    : size_t(L.cap) * size_t(a.n_kv_heads) * size_t(a.head_dim) * el;
        const size_t vb = mla || shares_kv ? 0 : size_t(L.cap) * size_t(a.n_kv_heads) * size_t(a.v_head_dim) * el;
        if (!shares_kv) {
            L.kc = m.dev_alloc(kb, m.allocations);
            L.vc = mla ? nullptr : m.dev_alloc(vb, m.allocations);
        }
        if (s.family == Family::Gemma3n) {
            L.altup_router = m.upload_linear(lw.altup_router);
            L.altup_predict = m.upload_linear(lw.altup_predict);
            L.altup_correct = m.upload_linear(lw.altup_correct);
            L.laurel_l = m.upload_linear(lw.laurel_l);
            L.laurel_r = m.upload_linear(lw.laurel_r);
            L.ple_gate = m.upload_linear(lw.ple_gate);
            L.ple_proj = m.upload_linear(lw.ple_proj);
            L.altup_router_norm = m.upload_vec(lw.altup_router_norm);
            L.altup_correct_scale = m.upload_vec(lw.altup_correct_scale);
            L.laurel_post_norm = m.upload_vec(lw.laurel_post_norm);
            L.ple_post_norm = m.upload_vec(lw.ple_post_norm);
        }
        if (mla) {
            L.q_a = m.upload_linear(lw.q_a);
            L.q_b = m.upload_linear(lw.q_b);
            L.kv_a = m.upload_linear(lw.kv_a);
            L.q_a_norm = m.upload_vec(lw.q_a_norm);
            L.kv_a_norm = m.upload_vec(lw.kv_a_norm);
            for (const Linear& l : lw.k_absorb) L.k_absorb.push_back(m.upload_linear(l));
            for (const Linear& l : lw.v_expand) L.v_expand.push_back(m.upload_linear(l));
            L.k_absorb_tab = m.head_table(L.k_absorb, a.n_heads);
            L.v_expand_tab = m.head_table(L.v_expand, a.n_heads);
        }
        m.kv_bytes += kb + vb;
        m.kv_row_bytes.push_back((kb + vb) / size_t(L.cap));
    }
    for (const LayerSpec& ls : s.layers) {  // every RoPE table now: none may be made during a capture
        if (ls.attn.rope.enabled && ls.attn.rope.n_rot > 0) m.rope_table(ls.attn.rope, m.freq_factors(ls.attn));
    }
    for (int il = 0; il < s.n_layers; ++il)
        if (s.layers[size_t(il)].ffn.moe && m.host_moe_note.empty())
            if (std::string why = m.setup_moe_dev(il); !why.empty())
                m.host_moe_note = "eager: layer " + std::to_string(il) + "'s MoE routing is decided on the host (" + why + ")";
    m.alloc_routing();
    if (s.family == Family::Gemma3n) {
        m.ple_model_proj = m.upload_linear(w.ple_model_proj);
        m.ple_proj_norm = m.upload_vec(w.ple_proj_norm);
        for (const Linear& l : w.altup_proj) m.altup_proj.push_back(m.upload_linear(l));
        for (const Linear& l : w.altup_unembd) m.altup_unembd.push_back(m.upload_linear(l));
    }
    m.lm_head = m.upload_linear(w.lm_head);
    // tied embeddings: the LM head's device copy is the table (the positions' table is small)
    m.embed_on_device = w.lm_head.data == w.tok_embd.data && !w.tok_embd.transposed && m.lm_head.present() &&
                        (!s.learned_positions || (w.pos_embd.present() && !w.pos_embd.transposed));
    if (m.embed_on_device && s.learned_positions) m.pos_table = m.upload_concat({&w.pos_embd});
    m.out_norm = m.upload_vec(w.out_norm);
    m.out_norm_b = m.upload_vec(w.out_norm_b);
    if (m.slab > 0) m.wdeq = static_cast<float*>(m.dev_alloc(size_t(m.slab) * sizeof(float), m.allocations));
    m.alloc_splits();
}

void dequantize_row_host(DType t, const void* src, float* dst, int64_t n, bool runs) {
    const int be = block_elems(t), bb = block_bytes(t);
    if (be == 0 || n % be != 0) throw Error(std::string("dequantize_row_host: cannot read ") + dtype_name(t) + " rows of " + std::to_string(n));
    if (runs && be < 32) throw Error(std::string("dequantize_row_host: ") + dtype_name(t) + " is not a block type");
    const auto* b = static_cast<const uint8_t*>(src);
    if (runs) {
        for (int64_t i = 0; i < n; i += 8) {
            float w[8];
            dequant_run8(t, b + size_t(i / be) * size_t(bb), int(i % be), w);
            std::copy(w, w + 8, dst + i);
        }
        return;
    }
    for (int64_t i = 0; i < n; ++i) dst[i] = dequant_element(t, b + size_t(i / be) * size_t(bb), int(i % be));
}

CudaSession::~CudaSession() = default;

void CudaSession::reset() { impl_->pos = 0; }
int64_t CudaSession::position() const { return impl_->pos; }
int64_t CudaSession::n_ctx() const { return impl_->n_ctx; }
uint64_t CudaSession::weight_bytes() const { return impl_->weight_bytes; }
uint64_t CudaSession::kv_bytes() const { return impl_->kv_bytes; }
std::string CudaSession::device_name() const { return impl_->device; }
std::string CudaSession::decode_mode() const { return impl_->graph_note; }
bool CudaSession::kv_f16() const { return impl_->kv_f16; }
std::vector<uint64_t> CudaSession::kv_bytes_per_layer() const {
    std::vector<uint64_t> v;
    for (size_t il = 0; il < impl_->kv_row_bytes.size(); ++il)  // a ring holds at most its size
        v.push_back(impl_->kv_row_bytes[il] * uint64_t(std::min(impl_->pos, impl_->layers[il].cap)));
    return v;
}
uint64_t CudaSession::buffer_bytes() const {
    const Impl& m = *impl_;
    const uint64_t logits = uint64_t(m.logits_rows) * uint64_t(m.model.spec().vocab) * sizeof(float);
    return m.alloc_bytes - std::min(m.alloc_bytes, m.weight_bytes + m.kv_bytes) + m.scratch_bytes + logits +
           uint64_t(m.probe_floats) * sizeof(float);
}
int64_t CudaSession::graph_launches() const { return impl_->graph_launches; }
int64_t CudaSession::graph_captures() const { return impl_->graph_captures; }
void CudaSession::set_quant_gemm(QuantGemm q) {
    impl_->quant_gemm = q;
    impl_->drop_graph();
}
void CudaSession::set_tensor_core_attention(bool on) { impl_->tc_attention = on; }
void CudaSession::set_gemm_attention(bool on) { impl_->gemm_attn = on; }
void CudaSession::set_tf32_attention(bool on) { impl_->tf32_attn = on; }
void CudaSession::set_attention_splits(int splits, int min_keys) {
    if (splits < 0 || splits > Impl::kMaxSplits || min_keys < 1)
        throw Error("set_attention_splits: splits 0.." + std::to_string(Impl::kMaxSplits) + " and min_keys >= 1");
    impl_->split_force = splits;
    impl_->split_min_keys = min_keys;
    impl_->drop_graph();
    impl_->alloc_splits();
}
void CudaSession::set_prompt_attention_tiles(bool on) {
    impl_->tiles = on;
    impl_->drop_graph();
}
void CudaSession::set_grouped_moe(bool on, int chunk_pairs) {
    if (chunk_pairs < 1 || chunk_pairs > kGroupPairs)
        throw Error("set_grouped_moe: chunk_pairs 1.." + std::to_string(kGroupPairs) + ", not " + std::to_string(chunk_pairs));
    impl_->grouped = on;
    impl_->group_pairs = chunk_pairs;
}
void CudaSession::set_programmatic_launches(bool on) {
    impl_->programmatic = on;
    impl_->pdl_note.clear();
    impl_->drop_graph();
}
bool CudaSession::programmatic_launches() const { return impl_->programmatic && impl_->cc_major >= 9; }
void CudaSession::set_fusion(bool on) {
    impl_->fused = on;
    impl_->drop_graph();
}
void CudaSession::set_heads_fusion(bool on) {
    impl_->heads_fused = on;
    impl_->drop_graph();
}
void CudaSession::set_profiling(bool on) {
    impl_->profiling = on;
    if (!on) impl_->profiler.take();
}
std::vector<KernelTime> CudaSession::take_profile() { return impl_->profiler.take(); }
void CudaSession::set_graphs(bool on) {
    impl_->use_graphs = on;
    if (!on) {
        impl_->drop_graph();
        impl_->graph_note = "eager: graphs turned off";
    }
}

std::vector<float> CudaSession::forward(std::span<const int> tokens, bool all_logits) {
    Impl& m = *impl_;
    const ModelSpec& s = m.model.spec();
    const ModelWeights& w = m.model.weights();
    const int64_t T = int64_t(tokens.size()), D = s.dim;
    if (T == 0) throw Error("forward: no tokens");
    if (m.pos + T > m.n_ctx)
        throw Error("context full: " + std::to_string(m.pos + T) + " tokens exceed the context of " + std::to_string(m.n_ctx));
    for (int id : tokens)
        if (id < 0 || id >= s.vocab)
            throw Error("token id " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(s.vocab - 1) + ")");
    if (m.has_rings && T > m.ring_batch) {  // a ring holds its window plus one batch: run in pieces
        std::vector<float> out;
        for (int64_t t0 = 0; t0 < T; t0 += m.ring_batch) {
            const int64_t n = std::min(m.ring_batch, T - t0);
            auto part = forward(tokens.subspan(size_t(t0), size_t(n)), all_logits);
            if (all_logits) out.insert(out.end(), part.begin(), part.end());
            else if (t0 + n == T) out = std::move(part);
        }
        return out;
    }
    m.ensure_scratch(T);
    m.ensure_logits(all_logits ? T : 1);
    m.plan_probes(T);
    ProfilerActivation profiled(m.profiling ? &m.profiler : nullptr);
    ProgrammaticLaunches programmatic(m.programmatic && m.cc_major >= 9);

    // Embeddings: the ids go up when the table is on the device (run_layers gathers them), else
    // rows read on the host (any stored type, as the CPU backend reads them) through pinned memory.
    float* x = nullptr;
    if (m.embed_on_device) {
        if (T > m.h_tok_n) {
            if (m.h_tok) cudaFreeHost(m.h_tok);
            m.h_tok = nullptr;
            m.h_tok_n = 0;
            check(cudaMallocHost(&m.h_tok, size_t(T) * sizeof(int)), "cudaMallocHost (token ids)");
            m.h_tok_n = T;
        }
        std::copy(tokens.begin(), tokens.end(), m.h_tok);
        check(cudaMemcpyAsync(m.d_tok, m.h_tok, size_t(T) * sizeof(int), cudaMemcpyHostToDevice, m.stream), "cudaMemcpyAsync (token ids)");
    } else {
        x = m.pinned(m.h_x, m.h_x_floats, T * D, "cudaMallocHost (embeddings)");
    }
    std::vector<float> pe;
    for (int64_t t = 0; x && t < T; ++t) {
        cpu::read_row(w.tok_embd, tokens[size_t(t)], x + t * D);
        if (s.embed_scale != 1.f)
            for (int64_t i = 0; i < D; ++i) x[t * D + i] *= s.embed_scale;
        if (s.learned_positions) {
            pe.resize(size_t(D));
            cpu::read_row(w.pos_embd, m.pos + t, pe.data());
            for (int64_t i = 0; i < D; ++i) x[t * D + i] += pe[size_t(i)];
        }
    }
    if (s.family == Family::Gemma3n) {  // the per-layer table rows, streamed from the memory map
        const int64_t LP = m.ple_model_proj.n_out;
        float* r = m.pinned(m.h_ple, m.h_ple_floats, T * LP, "cudaMallocHost (per-layer rows)");
        for (int64_t t = 0; t < T; ++t) {
            if (tokens[size_t(t)] < s.ple_vocab) cpu::read_row(w.ple_table, tokens[size_t(t)], r + t * LP);
            else std::fill(r + t * LP, r + (t + 1) * LP, 0.f);
        }
        check(cudaMemcpyAsync(m.g3.rows, r, size_t(T * LP) * sizeof(float), cudaMemcpyHostToDevice, m.stream), "cudaMemcpyAsync (per-layer rows)");
    }
    *m.h_pos = m.pos;
    check(cudaMemcpyAsync(m.d_pos, m.h_pos, sizeof(int64_t), cudaMemcpyHostToDevice, m.stream), "cudaMemcpyAsync (position)");
    if (x) check(cudaMemcpyAsync(m.x, x, size_t(T * D) * sizeof(float), cudaMemcpyHostToDevice, m.stream), "cudaMemcpyAsync (embeddings)");

    const int64_t first = all_logits ? 0 : T - 1, rows = T - first;
    const bool step = T == 1 && m.host_moe_note.empty();
    const size_t routing_before = m.probes.routing.size();
    m.prompt_routed.clear();
    if (!step || m.profiling || !m.run_graph()) {
        if (T == 1 && !step) m.graph_note = m.host_moe_note;
        else if (step && m.profiling) m.graph_note = "eager: profiling (a graph's kernels cannot be timed one by one)";
        m.run_layers(T, first, rows);
    }
    float* hl = m.pinned(m.h_logits, m.h_logits_floats, rows * s.vocab, "cudaMallocHost (logits)");
    check(cudaMemcpyAsync(hl, m.logits, size_t(rows * s.vocab) * sizeof(float), cudaMemcpyDeviceToHost, m.stream),
          "cudaMemcpyAsync (logits)");
    m.copy_probes_async(T);
    m.copy_routing_async(T);
    if (T > 1) m.collect_attention(T);  // while the GPU finishes the pass
    check(cudaStreamSynchronize(m.stream), "the forward pass");  // the pass's one wait
    if (m.profiling && !m.profiler.fold()) throw Error("CUDA: the profiler's events could not be read");
    if (T == 1) m.collect_attention(T);
    m.collect_probes();
    m.collect_routing(T, routing_before);
    m.pos += T;
    std::vector<float> out(hl, hl + rows * s.vocab);
    if (m.probe_cfg.top_k > 0) {  // as Session: softmax of the last row, ties to the lower id
        const float* last = out.data() + (rows - 1) * s.vocab;
        std::vector<float> p(last, last + s.vocab);
        cpu::softmax(p.data(), s.vocab);
        std::vector<int> idx(size_t(s.vocab));
        for (int i = 0; i < s.vocab; ++i) idx[size_t(i)] = i;
        const int k = std::min(m.probe_cfg.top_k, s.vocab);
        std::partial_sort(idx.begin(), idx.begin() + k, idx.end(),
                          [&](int a, int b) { return p[size_t(a)] > p[size_t(b)] || (p[size_t(a)] == p[size_t(b)] && a < b); });
        m.probes.top_k.clear();
        for (int i = 0; i < k; ++i) m.probes.top_k.push_back({idx[size_t(i)], p[size_t(idx[size_t(i)])]});
    }
    return out;
}

ProbeConfig& CudaSession::probe_config() { return impl_->probe_cfg; }
ProbeData& CudaSession::probes() { return impl_->probes; }

}  // namespace archlens::ARCHLENS_CUDA_NS
