// Gemma 3n = Gemma 3's layer (pre+post norms, QK-norm, 5 local : 1 global) except:
//   - AltUp: the residual is n streams; each layer predicts all streams from a router over
//     stream 0, runs the block on the active stream, then corrects every stream with the result;
//   - LAuReL: a low-rank residual beside attention, averaged in with 1/√2;
//   - per-layer embeddings (PLE): a per-token, per-layer vector (a table row read from the map as
//     the token arrives, plus a projection of the main embedding) gated into streams 1..n-1;
//   - Gaussian top-k activation sparsity on the FFN gate, weightless V norm, attention scale 1,
//     KV sharing for the last layers; plain x̂·w norms.
// ref: HF transformers modeling_gemma3n (Gemma3nTextModel, Gemma3nTextDecoderLayer,
// Gemma3nTextAltUp, Gemma3nTextLaurelBlock) and the fixtures README, implementer note 8.
#include <cmath>
#include <cstring>

#include "engine/cpu/ops.h"
#include "engine/session.h"

namespace archlens {

using cpu::matmul;

namespace {

float rms(const float* x, int64_t n) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(x[i]) * x[i];
    return float(std::sqrt(ss / double(n)));
}

// Scales v to the RMS of ref; HF clamps v's mean square at 1e-5.
void match_magnitude(float* v, int64_t n, float target) {
    double ss = 0;
    for (int64_t i = 0; i < n; ++i) ss += double(v[i]) * v[i];
    const float mag = float(std::sqrt(std::max(ss / double(n), 1e-5)));
    for (int64_t i = 0; i < n; ++i) v[i] = v[i] * target / mag;
}

}  // namespace

void Session::gemma3n_layers(std::span<const int> tokens, std::vector<float>& x) {
    const ModelSpec& s = model_.spec();
    const ModelWeights& w = model_.weights();
    const int64_t T = int64_t(tokens.size()), D = s.dim, P = s.ple_dim, N = s.altup_inputs;
    // Per-layer tables hold L blocks of P: every layer of the file. A MatFormer slice runs some of
    // them; ple_layers maps a running layer to its block.
    const int64_t L = w.ple_model_proj.n_out / P;
    auto ple_block = [&](int il) { return w.ple_layers.empty() ? int64_t(il) : int64_t(w.ple_layers[size_t(il)]); };
    const int act = s.altup_active;
    const float eps = s.norm_eps;
    auto rms_norm_rows = [&](const std::vector<float>& wt, float* v, int64_t rows, int64_t n) {
        for (int64_t r = 0; r < rows; ++r) cpu::rms_norm(v + r * n, wt.empty() ? nullptr : wt.data(), n, eps, v + r * n);
    };

    // Per-layer inputs [T][L][P]: (RMSNorm(proj(x0)·D^-½) + table[id]·√P) · 2^-½
    std::vector<float> pli(size_t(T * L * P));
    matmul(*pool_, w.ple_model_proj, x.data(), T, pli.data());
    {
        const float proj_scale = 1.f / std::sqrt(float(D)), row_scale = std::sqrt(float(P)), mix = float(M_SQRT1_2);
        std::vector<float> row(static_cast<size_t>(L * P));
        for (int64_t t = 0; t < T; ++t) {
            float* pt = pli.data() + t * L * P;
            for (int64_t i = 0; i < L * P; ++i) pt[i] *= proj_scale;
            rms_norm_rows(w.ple_proj_norm, pt, L, P);
            const int id = tokens[size_t(t)];
            if (id < s.ple_vocab)
                cpu::read_row(w.ple_table, id, row.data());  // streamed from the memory map
            else
                std::fill(row.begin(), row.end(), 0.f);
            for (int64_t i = 0; i < L * P; ++i) pt[i] = (pt[i] + row[size_t(i)] * row_scale) * mix;
        }
    }

    // AltUp streams [N][T][D]: stream 0 = x0, stream k = altup_proj[k-1](x0) at x0's RMS.
    std::vector<std::vector<float>> st(size_t(N), std::vector<float>(size_t(T * D)));
    st[0] = x;
    for (int64_t k = 1; k < N; ++k) {
        matmul(*pool_, w.altup_proj[size_t(k - 1)], x.data(), T, st[size_t(k)].data());
        for (int64_t t = 0; t < T; ++t) match_magnitude(st[size_t(k)].data() + t * D, D, rms(x.data() + t * D, D));
    }

    std::vector<float> a(size_t(T * D)), hn(size_t(T * D)), attn(size_t(T * D)), lau(size_t(T * D)), f(size_t(T * D));
    std::vector<float> tmp(size_t(T * D)), mods(size_t(T * N)), coefs(size_t(T * N * N));
    auto router = [&](const LayerWeights& lw, const float* src, float* out /* [T][N] */) {
        for (int64_t t = 0; t < T; ++t) {
            cpu::rms_norm(src + t * D, lw.altup_router_norm.data(), D, eps, tmp.data() + t * D);
            for (int64_t i = 0; i < D; ++i) tmp[size_t(t * D + i)] /= float(D);
        }
        matmul(*pool_, lw.altup_router, tmp.data(), T, out);
        for (int64_t i = 0; i < T * N; ++i) out[i] = std::tanh(out[i]);
    };

    for (int il = 0; il < s.n_layers; ++il) {
        const LayerSpec& ls = s.layers[size_t(il)];
        const LayerWeights& lw = w.layers[size_t(il)];
        // predict: pred_i = stream_i + Σ_j c[i·N+j]·stream_j, c from the router over the active stream
        router(lw, st[size_t(act)].data(), mods.data());
        matmul(*pool_, lw.altup_predict, mods.data(), T, coefs.data());
        std::vector<std::vector<float>> pred = st;
        for (int64_t t = 0; t < T; ++t)
            for (int64_t i = 0; i < N; ++i) {
                float* out = pred[size_t(i)].data() + t * D;
                for (int64_t j = 0; j < N; ++j) {
                    const float c = coefs[size_t((t * N + i) * N + j)];
                    const float* sj = st[size_t(j)].data() + t * D;
                    for (int64_t e = 0; e < D; ++e) out[e] += c * sj[e];
                }
            }
        a = pred[size_t(act)];
        // the block on the active stream
        norm(lw.attn_norm, {}, a.data(), T, hn.data());
        {  // LAuReL: h + RMSNorm(right(left(h)))
            std::vector<float> lo(size_t(T * s.laurel_rank));
            matmul(*pool_, lw.laurel_l, hn.data(), T, lo.data());
            matmul(*pool_, lw.laurel_r, lo.data(), T, lau.data());
            rms_norm_rows(lw.laurel_post_norm, lau.data(), T, D);
            for (int64_t i = 0; i < T * D; ++i) lau[size_t(i)] += hn[size_t(i)];
        }
        attention_standard(il, hn.data(), T, attn.data());
        norm(lw.post_attn_norm, {}, attn.data(), T, attn.data());
        std::vector<float> sres(size_t(T * D));
        for (int64_t i = 0; i < T * D; ++i) sres[size_t(i)] = (a[size_t(i)] + attn[size_t(i)] + lau[size_t(i)]) * float(M_SQRT1_2);
        norm(lw.ffn_norm, {}, sres.data(), T, hn.data());
        ffn_dense(lw.gate, lw.up, lw.down, ls.ffn, hn.data(), T, f.data(), ls.sparsity_std_mult);
        norm(lw.post_ffn_norm, {}, f.data(), T, f.data());
        for (int64_t i = 0; i < T * D; ++i) sres[size_t(i)] += f[size_t(i)];

        // correct: corr_i = pred_i + (correct_coefs·router(t) + 1)_i · (t − pred_active)
        router(lw, sres.data(), mods.data());
        std::vector<float> d(size_t(T * N));
        matmul(*pool_, lw.altup_correct, mods.data(), T, d.data());
        for (int64_t t = 0; t < T; ++t)
            for (int64_t i = 0; i < N; ++i) {
                const float di = d[size_t(t * N + i)] + 1.f;
                float* out = st[size_t(i)].data() + t * D;
                const float* pi = pred[size_t(i)].data() + t * D;
                const float* pa = pred[size_t(act)].data() + t * D;
                const float* tt = sres.data() + t * D;
                for (int64_t e = 0; e < D; ++e) out[e] = pi[e] + di * (tt[e] - pa[e]);
            }

        // per-layer input: g = gelu(gate(corr_active ⊙ scale)) ⊙ pli[l]; streams 1.. += RMSNorm(proj(g))
        for (int64_t t = 0; t < T; ++t)
            for (int64_t e = 0; e < D; ++e) tmp[size_t(t * D + e)] = st[size_t(act)][size_t(t * D + e)] * lw.altup_correct_scale[size_t(e)];
        std::vector<float> g(size_t(T * P));
        matmul(*pool_, lw.ple_gate, tmp.data(), T, g.data());
        for (int64_t t = 0; t < T; ++t)
            for (int64_t e = 0; e < P; ++e) {
                float& gv = g[size_t(t * P + e)];
                gv = cpu::activation(Activation::GELUTanh, gv) * pli[size_t((t * L + ple_block(il)) * P + e)];
            }
        matmul(*pool_, lw.ple_proj, g.data(), T, tmp.data());
        rms_norm_rows(lw.ple_post_norm, tmp.data(), T, D);
        for (int64_t k = 1; k < N; ++k)
            for (int64_t i = 0; i < T * D; ++i) st[size_t(k)][size_t(i)] += tmp[size_t(i)];
        if (probe_cfg_.logit_lens) record_logit_lens(il, st[size_t(act)].data() + (T - 1) * D);  // the active stream
    }

    // Output: streams 1.. unembedded to stream 0's RMS, then the mean of all streams.
    for (int64_t t = 0; t < T; ++t) {
        const float target = rms(st[0].data() + t * D, D);
        float* out = x.data() + t * D;
        std::memcpy(out, st[0].data() + t * D, size_t(D) * 4);
        for (int64_t k = 1; k < N; ++k) {
            matmul(*pool_, w.altup_unembd[size_t(k - 1)], st[size_t(k)].data() + t * D, 1, tmp.data());
            match_magnitude(tmp.data(), D, target);
            for (int64_t e = 0; e < D; ++e) out[e] += tmp[size_t(e)];
        }
        for (int64_t e = 0; e < D; ++e) out[e] /= float(N);
    }
}

}  // namespace archlens
