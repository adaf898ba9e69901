// The forward pass, driven by the ModelSpec. One code path for every family: per-layer spec rows
// choose norm placement, attention kind and scope, RoPE or NoPE, dense FFN or MoE.
#include "engine/session.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>

#if defined(__GLIBC__)
#include <malloc.h>
#endif

#include "engine/core/error.h"
#include "engine/cpu/ops.h"

namespace archlens {

using cpu::matmul;

bool ProbeConfig::wants_attention(int layer, int head) const {
    if (!attention) return false;
    if (!attn_layers.empty() && std::find(attn_layers.begin(), attn_layers.end(), layer) == attn_layers.end()) return false;
    if (!attn_heads.empty() && std::find(attn_heads.begin(), attn_heads.end(), head) == attn_heads.end()) return false;
    return true;
}

namespace {
// A forward pass allocates its per-layer scratch (queries, FFN activations: a few MiB each at
// prefill) and frees it a moment later. glibc serves blocks that large with mmap and returns them
// with munmap, so every layer paid for fresh zeroed pages (page faults were ~4% of a 512-token
// prefill). Serving them from the heap, and not trimming it, keeps those pages. 32 MiB is glibc's
// largest allowed threshold; the KV cache and the model's own mappings stay outside the heap.
void keep_scratch_pages() {
#if defined(__GLIBC__)
    static const bool once = [] {
        mallopt(M_MMAP_THRESHOLD, 32 << 20);
        mallopt(M_TRIM_THRESHOLD, 256 << 20);
        return true;
    }();
    (void)once;
#endif
}
}  // namespace

Session::Session(const Model& model, SessionOptions opts) : model_(model) {
    keep_scratch_pages();
    if (model.format() == ModelFormat::ConfigOnly)
        fail(model.path(), "opened in architecture-only mode (no weights); it cannot run");
    const ModelSpec& s = model.spec();
    n_ctx_ = opts.n_ctx > 0 ? opts.n_ctx : std::max(s.max_positions, 1);
    kv_f16_ = opts.kv_f16;
    if (s.learned_positions) n_ctx_ = std::min<int64_t>(n_ctx_, s.max_positions);
    pool_ = std::make_unique<ThreadPool>(opts.n_threads > 0 ? opts.n_threads : default_thread_count());
    for (auto& l : s.layers) {
        LayerKv kv;
        kv.kind = l.attn.kind;
        kv.f16 = opts.kv_f16 && l.attn.kind == AttnKind::Standard;
        kv.scope = l.attn.scope;
        if (l.attn.kind == AttnKind::MLA) {
            kv.row_k = l.attn.kv_lora_rank;
            kv.row_v = l.attn.qk_rope_head_dim;
        } else {
            kv.row_k = int64_t(l.attn.n_kv_heads) * l.attn.head_dim;
            kv.row_v = int64_t(l.attn.n_kv_heads) * l.attn.v_head_dim;
            kv.heads = l.attn.n_kv_heads;
        }
        kv.ring = l.attn.scope != AttnScope::Global && l.attn.window > 0;
        kv.limit = kv.ring ? std::min<int64_t>(l.attn.window, n_ctx_) : n_ctx_;
        if (l.kv_source >= 0) kv.limit = 0;  // reads an earlier layer's cache
        kv_.push_back(std::move(kv));
    }
    batch_k_.resize(s.layers.size());
    batch_v_.resize(s.layers.size());
    is_kv_source_.assign(s.layers.size(), false);
    for (auto& l : s.layers)
        if (l.kv_source >= 0) is_kv_source_[size_t(l.kv_source)] = true;
    probes_.expert_load.assign(size_t(s.n_layers), {});
    for (int i = 0; i < s.n_layers; ++i)
        if (s.layers[size_t(i)].ffn.moe) probes_.expert_load[size_t(i)].assign(size_t(s.layers[size_t(i)].ffn.n_experts), 0);
}

Session::~Session() = default;

void Session::reset() {
    pos_ = 0;
    for (auto& kv : kv_) {
        kv.cap = 0;
        std::vector<float>().swap(kv.k);
        std::vector<float>().swap(kv.v);
        std::vector<uint16_t>().swap(kv.k16);
        std::vector<uint16_t>().swap(kv.v16);
    }
    probes_.clear_records();
    for (auto& l : probes_.expert_load) std::fill(l.begin(), l.end(), 0);
}

uint64_t Session::kv_bytes() const {
    uint64_t b = 0;
    for (auto& kv : kv_) b += kv.bytes();
    return b;
}

void Session::ensure_kv(int64_t positions) {
    for (auto& kv : kv_) {
        const int64_t target = std::min(positions, kv.limit);
        if (target <= kv.cap) continue;
        // Grow geometrically in 256-position steps; rings stop at their window (see LayerKv).
        int64_t cap = std::max<int64_t>(target, kv.cap * 2);
        cap = (cap + 255) / 256 * 256;
        cap = std::min(cap, kv.limit);
        // Head-major: each head's block moves to its place for the new capacity (the positions
        // held so far keep their slots: a ring only grows before it first wraps).
        auto regrow = [&](auto& buf, int64_t row) {
            const int64_t per = row / kv.heads;
            std::remove_reference_t<decltype(buf)> next(size_t(cap * row));
            for (int64_t h = 0; h < kv.heads && kv.cap > 0; ++h)
                std::copy_n(buf.begin() + h * kv.cap * per, kv.cap * per, next.begin() + h * cap * per);
            buf.swap(next);
        };
        if (kv.f16) {
            regrow(kv.k16, kv.row_k);
            regrow(kv.v16, kv.row_v);
        } else {
            regrow(kv.k, kv.row_k);
            regrow(kv.v, kv.row_v);
        }
        kv.cap = cap;
    }
}

void Session::norm(const std::vector<float>& w, const std::vector<float>& b, const float* x, int64_t T, float* y) const {
    const ModelSpec& s = model_.spec();
    pool_->parallel_for(T, [&](int64_t t0, int64_t t1, int) {
        for (int64_t t = t0; t < t1; ++t) {
            if (s.norm == NormKind::LayerNorm)
                cpu::layer_norm(x + t * s.dim, w.data(), b.empty() ? nullptr : b.data(), s.dim, s.norm_eps, y + t * s.dim);
            else
                cpu::rms_norm(x + t * s.dim, w.data(), s.dim, s.norm_eps, y + t * s.dim);
        }
    }, 16);
}

const float* Session::freq_factors(const AttentionSpec& a) const {
    const auto& f = model_.weights().rope_freq_factors;
    return (!f.empty() && a.rope.scaling == RopeScaling::Llama3 && int64_t(f.size()) * 2 == a.rope.n_rot) ? f.data() : nullptr;
}

std::vector<float> Session::forward(std::span<const int> tokens, bool all_logits) {
    const ModelSpec& s = model_.spec();
    const ModelWeights& w = model_.weights();
    const int64_t T = int64_t(tokens.size()), D = s.dim;
    if (T == 0) throw Error("forward: no tokens");
    if (pos_ + T > n_ctx_)
        throw Error("context full: " + std::to_string(pos_ + T) + " tokens exceed the context of " + std::to_string(n_ctx_));
    for (int id : tokens)
        if (id < 0 || id >= s.vocab)
            throw Error("token id " + std::to_string(id) + " is outside the vocabulary (0.." + std::to_string(s.vocab - 1) + ")");
    ensure_kv(pos_ + T);

    std::vector<float> x(size_t(T * D)), h(size_t(T * D)), y(size_t(T * D));
    for (int64_t t = 0; t < T; ++t) {
        cpu::read_row(w.tok_embd, tokens[size_t(t)], x.data() + t * D);
        if (s.embed_scale != 1.f)
            for (int64_t i = 0; i < D; ++i) x[size_t(t * D + i)] *= s.embed_scale;
        if (s.learned_positions) {
            std::vector<float> pe(static_cast<size_t>(D));
            cpu::read_row(w.pos_embd, pos_ + t, pe.data());
            for (int64_t i = 0; i < D; ++i) x[size_t(t * D + i)] += pe[size_t(i)];
        }
    }

    if (s.family == Family::Gemma3n) gemma3n_layers(tokens, x);
    for (int il = 0; il < s.n_layers && s.family != Family::Gemma3n; ++il) {
        const LayerSpec& ls = s.layers[size_t(il)];
        const LayerWeights& lw = w.layers[size_t(il)];
        // attention sub-block
        const float* in = x.data();
        if (ls.attn_pre_norm) {
            norm(lw.attn_norm, lw.attn_norm_b, x.data(), T, h.data());
            in = h.data();
        }
        if (ls.attn.kind == AttnKind::MLA)
            attention_mla(il, in, T, y.data());
        else
            attention_standard(il, in, T, y.data());
        if (ls.attn_post_norm) norm(lw.post_attn_norm, {}, y.data(), T, y.data());
        for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
        // feed-forward sub-block
        in = x.data();
        if (ls.ffn_pre_norm) {
            norm(lw.ffn_norm, lw.ffn_norm_b, x.data(), T, h.data());
            in = h.data();
        }
        if (ls.ffn.moe)
            ffn_moe(il, in, T, y.data());
        else
            ffn_dense(lw.gate, lw.up, lw.down, ls.ffn, in, T, y.data(), ls.sparsity_std_mult);
        if (ls.ffn_post_norm) norm(lw.post_ffn_norm, {}, y.data(), T, y.data());
        for (size_t i = 0; i < x.size(); ++i) x[i] += y[i];
        if (probe_cfg_.logit_lens) record_logit_lens(il, x.data() + (T - 1) * D);
    }
    pos_ += T;

    const int64_t first = all_logits ? 0 : T - 1, n_rows = T - first;
    std::vector<float> logits = head(x.data() + first * D, n_rows);

    if (probe_cfg_.top_k > 0) {
        const float* last = logits.data() + (n_rows - 1) * s.vocab;
        std::vector<float> p(last, last + s.vocab);
        cpu::softmax(p.data(), s.vocab);
        std::vector<int> idx(size_t(s.vocab));
        std::iota(idx.begin(), idx.end(), 0);
        int k = std::min(probe_cfg_.top_k, s.vocab);
        std::partial_sort(idx.begin(), idx.begin() + k, idx.end(), [&](int a, int b) { return p[size_t(a)] > p[size_t(b)] || (p[size_t(a)] == p[size_t(b)] && a < b); });
        probes_.top_k.clear();
        for (int i = 0; i < k; ++i) probes_.top_k.push_back({idx[size_t(i)], p[size_t(idx[size_t(i)])]});
    }
    return logits;
}

std::vector<float> Session::head(const float* x, int64_t rows) {
    const ModelSpec& s = model_.spec();
    const ModelWeights& w = model_.weights();
    std::vector<float> h(size_t(rows * s.dim));
    norm(w.out_norm, w.out_norm_b, x, rows, h.data());
    std::vector<float> logits(size_t(rows * s.vocab));
    matmul(*pool_, w.lm_head, h.data(), rows, logits.data());
    if (s.final_softcap > 0)
        for (auto& v : logits) v = s.final_softcap * std::tanh(v / s.final_softcap);
    return logits;
}

void Session::record_logit_lens(int layer, const float* residual_row) {
    if (layer == 0) probes_.logit_lens.clear();
    std::vector<float> l = head(residual_row, 1);
    cpu::softmax(l.data(), int64_t(l.size()));
    const int best = int(std::max_element(l.begin(), l.end()) - l.begin());
    probes_.logit_lens.push_back({layer, best, l[size_t(best)]});
}

void Session::push_attention_rows(int il, const AttentionSpec& a, int64_t pos0, int64_t T, int64_t H,
                                  std::vector<std::vector<float>>& captured) {
    for (int64_t i = 0; i < T * H; ++i) {
        if (!probe_cfg_.wants_attention(il, int(i % H))) continue;
        AttentionRow r;
        r.layer = il;
        r.head = int(i % H);
        r.query_pos = pos0 + i / H;
        r.key_begin = a.key_begin(r.query_pos);
        r.probs = std::move(captured[size_t(i)]);
        probes_.attention.push_back(std::move(r));
    }
}

// Writes T positions from pos0 on; rings keep only their last `cap` positions.
void Session::store_batch(LayerKv& kv, int64_t pos0, int64_t T, const float* k, const float* v) {
    const int64_t hk = kv.row_k / kv.heads, hv = kv.row_v / kv.heads;
    for (int64_t t = std::max<int64_t>(0, T - kv.cap); t < T; ++t) {
        const int64_t s = kv.slot(pos0 + t);
        for (int64_t h = 0; h < kv.heads; ++h) {
            const float* ks = k + t * kv.row_k + h * hk;
            const float* vs = v + t * kv.row_v + h * hv;
            if (kv.f16) {  // k and v are the batch's rows already rounded to f16 values: exact
                uint16_t* kd = kv.k16.data() + kv.at(s, h, hk);
                uint16_t* vd = kv.v16.data() + kv.at(s, h, hv);
                for (int64_t i = 0; i < hk; ++i) kd[i] = f32_to_fp16(ks[i]);
                for (int64_t i = 0; i < hv; ++i) vd[i] = f32_to_fp16(vs[i]);
            } else {
                std::memcpy(kv.k.data() + kv.at(s, h, hk), ks, size_t(hk) * 4);
                std::memcpy(kv.v.data() + kv.at(s, h, hv), vs, size_t(hv) * 4);
            }
        }
    }
}

// ---- attention -----------------------------------------------------------------------------

void Session::attention_standard(int il, const float* h, int64_t T, float* out) {
    const ModelSpec& s = model_.spec();
    const AttentionSpec& a = s.layers[size_t(il)].attn;
    const LayerWeights& lw = model_.weights().layers[size_t(il)];
    const int src = s.layers[size_t(il)].kv_source;  // Gemma 3n KV sharing
    LayerKv& kv = kv_[size_t(src >= 0 ? src : il)];
    const int64_t H = a.n_heads, KV = a.n_kv_heads, hd = a.head_dim, vd = a.v_head_dim;
    const int64_t qd = H * hd, kd = KV * hd, vdd = KV * vd;
    std::vector<float> q(size_t(T * qd)), k, v;
    if (src >= 0) {
        matmul(*pool_, lw.q, h, T, q.data());
    } else if (lw.qkv.present()) {
        k.resize(size_t(T * kd));
        v.resize(size_t(T * vdd));
        std::vector<float> qkv(size_t(T * (qd + kd + vdd)));
        matmul(*pool_, lw.qkv, h, T, qkv.data());
        for (int64_t t = 0; t < T; ++t) {
            const float* r = qkv.data() + t * (qd + kd + vdd);
            std::memcpy(q.data() + t * qd, r, size_t(qd) * 4);
            std::memcpy(k.data() + t * kd, r + qd, size_t(kd) * 4);
            std::memcpy(v.data() + t * vdd, r + qd + kd, size_t(vdd) * 4);
        }
    } else {
        k.resize(size_t(T * kd));
        v.resize(size_t(T * vdd));
        cpu::matmul_many(*pool_, {{&lw.q, q.data()}, {&lw.k, k.data()}, {&lw.v, v.data()}}, h, T);
    }
    const float eps = s.norm_eps;
    const int64_t Tk = int64_t(k.size()) / std::max<int64_t>(kd, 1);  // 0 for a KV-sharing layer
    if (a.v_norm)  // ref: HF Gemma3nTextAttention v_norm (no weight)
        for (int64_t i = 0; i < Tk * KV; ++i) cpu::rms_norm(v.data() + i * vd, nullptr, vd, eps, v.data() + i * vd);
    if (a.qk_norm == QkNorm::Full) {
        for (int64_t t = 0; t < T; ++t) {
            cpu::rms_norm(q.data() + t * qd, lw.q_norm.data(), qd, eps, q.data() + t * qd);
            cpu::rms_norm(k.data() + t * kd, lw.k_norm.data(), kd, eps, k.data() + t * kd);
        }
    } else if (a.qk_norm == QkNorm::PerHead) {
        pool_->parallel_for(T, [&](int64_t t0, int64_t t1, int) {
            for (int64_t i = t0 * H; i < t1 * H; ++i) cpu::rms_norm(q.data() + i * hd, lw.q_norm.data(), hd, eps, q.data() + i * hd);
            for (int64_t i = t0 * KV; i < std::min(t1, Tk) * KV; ++i) cpu::rms_norm(k.data() + i * hd, lw.k_norm.data(), hd, eps, k.data() + i * hd);
        }, 8);
    }
    if (a.rope.enabled) {
        const RopeStyle style = model_.rope_style(a);
        pool_->parallel_for(T, [&](int64_t t0, int64_t t1, int) {
            std::vector<float> cs(size_t(a.rope.n_rot));
            for (int64_t t = t0; t < t1; ++t) {
                cpu::rope_cos_sin(a.rope, pos_ + t, cs.data(), freq_factors(a));
                for (int64_t hh = 0; hh < H; ++hh) cpu::rope_apply(q.data() + t * qd + hh * hd, a.rope.n_rot, style, cs.data());
                if (t < Tk)
                    for (int64_t hh = 0; hh < KV; ++hh) cpu::rope_apply(k.data() + t * kd + hh * hd, a.rope.n_rot, style, cs.data());
            }
        }, 8);
    }
    if (a.qk_norm == QkNorm::L2) {  // ref: HF Llama4TextL2Norm, after RoPE, weightless
        for (int64_t i = 0; i < T * H; ++i) cpu::rms_norm(q.data() + i * hd, nullptr, hd, eps, q.data() + i * hd);
        for (int64_t i = 0; i < Tk * KV; ++i) cpu::rms_norm(k.data() + i * hd, nullptr, hd, eps, k.data() + i * hd);
    }
    if (a.temperature_tuning) {  // ref: HF Llama4TextAttention attn_temperature_tuning (NoPE layers)
        for (int64_t t = 0; t < T; ++t) {
            const double p = double(pos_ + t);
            const float sc = float(std::log(std::floor((p + 1.0) / a.temp_floor_scale) + 1.0) * a.temp_attn_scale + 1.0);
            for (int64_t i = 0; i < qd; ++i) q[size_t(t * qd + i)] *= sc;
        }
    }

    // Keys before this batch come from the cache, the batch's own from k/v; then the batch is stored.
    const int64_t pos0 = pos_;
    const bool f16 = kv.f16;
    // The f16 cache: the batch's own keys/values take the values they are stored with (rounded in
    // place) and are read as f16 like the cached ones, so that every key has one type.
    std::vector<float>& bk = src >= 0 ? batch_k_[size_t(src)] : k;
    std::vector<float>& bv = src >= 0 ? batch_v_[size_t(src)] : v;
    std::vector<uint16_t> bk16, bv16;
    if (f16) {
        bk16.resize(bk.size());
        bv16.resize(bv.size());
        cpu::to_f16(bk.data(), int64_t(bk.size()), bk16.data());  // exact again for a sharing layer
        cpu::to_f16(bv.data(), int64_t(bv.size()), bv16.data());
    }
    // The batch's rows come as [t][all heads]; attention reads them head by head, so they are
    // first copied head-major ([head][t][dim], like the cache): each head's keys and values are
    // then contiguous (the hardware prefetcher follows them; a row per 4 KiB page does not).
    const int64_t Tb = int64_t(bk.size()) / std::max<int64_t>(kd, 1);
    auto head_major = [&](const auto& rows, int64_t per, auto& outv) {
        outv.resize(rows.size());
        for (int64_t t = 0; t < Tb; ++t)
            for (int64_t hh = 0; hh < KV; ++hh)
                std::memcpy(outv.data() + (hh * Tb + t) * per, rows.data() + (t * KV + hh) * per, size_t(per) * sizeof(rows[0]));
    };
    std::vector<float> bkh, bvh;
    std::vector<uint16_t> bkh16, bvh16;
    if (f16) {
        head_major(bk16, hd, bkh16);
        head_major(bv16, vd, bvh16);
    } else {
        head_major(bk, hd, bkh);
        head_major(bv, vd, bvh);
    }
    // Head h's rows at positions lo..p: the batch's from the head-major copy, older ones from the
    // head-major cache (f32 or f16: the same code over either element type).
    // `from` is how many leading entries `out` already holds for this head and lo (consecutive
    // queries of a head share all but their last key).
    auto gather = [&](auto& out, const auto* batch, const auto* cache, int64_t per, int64_t lo, int64_t p, int64_t h, int64_t from) {
        out.resize(size_t(p - lo + 1));
        for (int64_t j = lo + from; j <= p; ++j)
            out[size_t(j - lo)] = j >= pos0 ? batch + (h * Tb + (j - pos0)) * per : cache + kv.at(kv.slot(j), h, per);
    };
    std::vector<float> att(size_t(T * H * vd));
    const int64_t group = H / KV;
    const bool capture = probe_cfg_.attention;
    std::vector<std::vector<float>> captured(capture ? size_t(T * H) : 0);
    // One item per (KV head, block of kTokens query tokens), head by head: consecutive items read
    // the same head's keys and values, which stay in L2 while they fit (token-major order streamed
    // every head's from L3 for every token), and all the block's query heads share every key and
    // value load (a long prompt's head outgrows L2: then each load from L3 serves kTokens times
    // the queries). Keys are scored several at a time and the outputs stay in registers;
    // cpu::dot_keys and cpu::weighted_sum give exactly the per-key dot_f32 / axpy_f32 results,
    // and each later token's extra keys continue its sums, so every row equals the
    // one-token-at-a-time computation.
    constexpr int64_t kTokens = 4;
    const int64_t TP = (T + kTokens - 1) / kTokens;
    pool_->parallel_for(TP * KV, [&](int64_t i0, int64_t i1, int) {
        std::vector<float> sc;
        std::vector<const float*> kp, vp;
        std::vector<const uint16_t*> kp16, vp16;
        std::vector<const float*> qs(static_cast<size_t>(kTokens * group));
        std::vector<float*> os(static_cast<size_t>(kTokens * group));
        // Scores of row r (query head kvh·group + r % group of token t0 + r / group) over nr keys.
        auto finish_row = [&](float* sg, int64_t nr, int64_t t, int64_t hh) {
            for (int64_t j = 0; j < nr; ++j) {
                float d = sg[j] * a.scale;
                if (a.softcap > 0) d = a.softcap * std::tanh(d / a.softcap);
                sg[j] = d;
            }
            cpu::softmax_fast(sg, nr);
            if (capture && probe_cfg_.wants_attention(il, int(hh))) captured[size_t(t * H + hh)].assign(sg, sg + nr);
        };
        // nt consecutive tokens from t0 sharing their first key, n = the last token's keys (token
        // tt of the block has n - (nt - 1 - tt)).
        auto attend = [&](int64_t t0, int64_t nt, int64_t kvh, int64_t n, const auto& keys, const auto& values) {
            const int64_t nq = nt * group;
            for (int64_t r = 0; r < nq; ++r) {
                const int64_t t = t0 + r / group, hh = kvh * group + r % group;
                qs[size_t(r)] = q.data() + t * qd + hh * hd;
                os[size_t(r)] = att.data() + t * H * vd + hh * vd;
            }
            sc.resize(size_t(nq * n));
            cpu::dot_keys(qs.data(), int(nq), keys.data(), int(n), hd, sc.data(), n);
            for (int64_t r = 0; r < nq; ++r)
                finish_row(sc.data() + r * n, n - (nt - 1 - r / group), t0 + r / group, kvh * group + r % group);
            const int64_t common = n - nt + 1;  // keys every token of the block sees
            cpu::weighted_sum(sc.data(), n, int(nq), values.data(), int(common), vd, os.data());
            for (int64_t tt = 1; tt < nt; ++tt)  // then each later token's own last keys
                cpu::weighted_sum(sc.data() + tt * group * n + common, n, int(group), values.data() + common, int(tt), vd,
                                  os.data() + tt * group, true);
        };
        auto run = [&](auto& kps, auto& vps, const auto* bk_h, const auto* bv_h, const auto* kc, const auto* vc) {
            int64_t prev_kvh = -1, prev_lo = -1, prev_n = 0;
            auto keys_for = [&](int64_t kvh, int64_t lo, int64_t p) {
                const int64_t n = p - lo + 1;
                const int64_t from = (kvh == prev_kvh && lo == prev_lo && n > prev_n) ? prev_n : 0;
                prev_kvh = kvh, prev_lo = lo, prev_n = n;
                gather(kps, bk_h, kc, hd, lo, p, kvh, from);
                gather(vps, bv_h, vc, vd, lo, p, kvh, from);
                return n;
            };
            for (int64_t i = i0; i < i1; ++i) {
                const int64_t kvh = i / TP, t0 = i % TP * kTokens, p0 = pos0 + t0;
                const int64_t nt = std::min(kTokens, T - t0), lo0 = a.key_begin(p0);
                bool shared = true;  // one first key for the whole block (else: token by token)
                for (int64_t tt = 1; tt < nt; ++tt) shared = shared && a.key_begin(p0 + tt) == lo0;
                if (shared) {
                    attend(t0, nt, kvh, keys_for(kvh, lo0, p0 + nt - 1), kps, vps);
                } else {
                    for (int64_t tt = 0; tt < nt; ++tt)
                        attend(t0 + tt, 1, kvh, keys_for(kvh, a.key_begin(p0 + tt), p0 + tt), kps, vps);
                }
            }
        };
        if (f16)
            run(kp16, vp16, bkh16.data(), bvh16.data(), kv.k16.data(), kv.v16.data());
        else
            run(kp, vp, bkh.data(), bvh.data(), kv.k.data(), kv.v.data());
    });
    if (capture) push_attention_rows(il, a, pos0, T, H, captured);
    // Store the batch (for rings only the last `cap` positions survive).
    store_batch(kv, pos0, Tk, k.data(), v.data());
    if (is_kv_source_[size_t(il)]) {
        batch_k_[size_t(il)] = std::move(k);
        batch_v_[size_t(il)] = std::move(v);
    }
    matmul(*pool_, lw.o, att.data(), T, out);
}

// ref: DeepSeek-V3 MLA. The cache holds the normalised latent c (kv_lora) and the shared RoPE key;
// kv_b_proj is absorbed: q_nope is mapped into latent space per head, and the attention output in
// latent space is expanded to v_head_dim per head.
void Session::attention_mla(int il, const float* h, int64_t T, float* out) {
    const ModelSpec& s = model_.spec();
    const AttentionSpec& a = s.layers[size_t(il)].attn;
    const LayerWeights& lw = model_.weights().layers[size_t(il)];
    LayerKv& kv = kv_[size_t(il)];
    const int64_t H = a.n_heads, NP = a.qk_nope_head_dim, RP = a.qk_rope_head_dim, R = a.kv_lora_rank, V = a.v_head_dim;
    const int64_t qk = NP + RP;
    std::vector<float> q(size_t(T * H * qk));
    if (lw.q_a.present()) {
        std::vector<float> qa(size_t(T * a.q_lora_rank));
        matmul(*pool_, lw.q_a, h, T, qa.data());
        for (int64_t t = 0; t < T; ++t)
            cpu::rms_norm(qa.data() + t * a.q_lora_rank, lw.q_a_norm.data(), a.q_lora_rank, s.norm_eps, qa.data() + t * a.q_lora_rank);
        matmul(*pool_, lw.q_b, qa.data(), T, q.data());
    } else {
        matmul(*pool_, lw.q, h, T, q.data());
    }
    std::vector<float> kva(size_t(T * (R + RP)));
    matmul(*pool_, lw.kv_a, h, T, kva.data());
    std::vector<float> lat(size_t(T * R)), kpe(size_t(T * RP));
    const RopeStyle style = model_.rope_style(a);
    std::vector<float> cs(static_cast<size_t>(RP));
    for (int64_t t = 0; t < T; ++t) {
        cpu::rms_norm(kva.data() + t * (R + RP), lw.kv_a_norm.data(), R, s.norm_eps, lat.data() + t * R);
        std::memcpy(kpe.data() + t * RP, kva.data() + t * (R + RP) + R, size_t(RP) * 4);
        cpu::rope_cos_sin(a.rope, pos_ + t, cs.data(), freq_factors(a));
        cpu::rope_apply(kpe.data() + t * RP, int(RP), style, cs.data());
        for (int64_t hh = 0; hh < H; ++hh) cpu::rope_apply(q.data() + (t * H + hh) * qk + NP, int(RP), style, cs.data());
    }
    // q_abs[t][h] = k_absorb[h] · q_nope[t][h]
    std::vector<float> q_abs(size_t(T * H * R));
    {
        std::vector<float> qn(size_t(T * NP)), qa(size_t(T * R));
        for (int64_t hh = 0; hh < H; ++hh) {
            for (int64_t t = 0; t < T; ++t) std::memcpy(qn.data() + t * NP, q.data() + (t * H + hh) * qk, size_t(NP) * 4);
            matmul(*pool_, lw.k_absorb[size_t(hh)], qn.data(), T, qa.data());
            for (int64_t t = 0; t < T; ++t) std::memcpy(q_abs.data() + (t * H + hh) * R, qa.data() + t * R, size_t(R) * 4);
        }
    }
    const int64_t pos0 = pos_;
    auto lat_ptr = [&](int64_t p) -> const float* { return p >= pos0 ? lat.data() + (p - pos0) * R : kv.k.data() + kv.slot(p) * R; };
    auto pe_ptr = [&](int64_t p) -> const float* { return p >= pos0 ? kpe.data() + (p - pos0) * RP : kv.v.data() + kv.slot(p) * RP; };
    std::vector<float> o_lat(size_t(T * H * R));
    const bool capture = probe_cfg_.attention;
    std::vector<std::vector<float>> captured(capture ? size_t(T * H) : 0);
    pool_->parallel_for(T * H, [&](int64_t i0, int64_t i1, int) {
        std::vector<float> sc;
        for (int64_t i = i0; i < i1; ++i) {
            const int64_t t = i / H, hh = i % H, p = pos0 + t;
            const int64_t lo = a.key_begin(p);
            const float* qa = q_abs.data() + i * R;
            const float* qp = q.data() + i * qk + NP;
            sc.resize(size_t(p - lo + 1));
            for (int64_t j = lo; j <= p; ++j) {
                const float* c = lat_ptr(j);
                const float* kp = pe_ptr(j);
                const float d = cpu::dot_f32(qa, c, R) + cpu::dot_f32(qp, kp, RP);
                sc[size_t(j - lo)] = d * a.scale;
            }
            cpu::softmax(sc.data(), int64_t(sc.size()));
            float* o = o_lat.data() + i * R;
            std::fill(o, o + R, 0.f);
            for (int64_t j = lo; j <= p; ++j) {
                const float* c = lat_ptr(j);
                const float pj = sc[size_t(j - lo)];
                cpu::axpy_f32(pj, c, o, R);
            }
            if (capture && probe_cfg_.wants_attention(il, int(hh))) captured[size_t(i)] = sc;
        }
    });
    if (capture) push_attention_rows(il, a, pos0, T, H, captured);
    store_batch(kv, pos0, T, lat.data(), kpe.data());
    std::vector<float> att(size_t(T * H * V));
    {
        std::vector<float> ol(size_t(T * R)), ov(size_t(T * V));
        for (int64_t hh = 0; hh < H; ++hh) {
            for (int64_t t = 0; t < T; ++t) std::memcpy(ol.data() + t * R, o_lat.data() + (t * H + hh) * R, size_t(R) * 4);
            matmul(*pool_, lw.v_expand[size_t(hh)], ol.data(), T, ov.data());
            for (int64_t t = 0; t < T; ++t) std::memcpy(att.data() + (t * H + hh) * V, ov.data() + t * V, size_t(V) * 4);
        }
    }
    matmul(*pool_, lw.o, att.data(), T, out);
}

// ---- feed-forward --------------------------------------------------------------------------

void Session::ffn_dense(const Linear& gate, const Linear& up, const Linear& down, const FfnSpec& f, const float* h, int64_t T,
                        float* out, float sparsity_std_mult) {
    const int64_t F = up.n_out;
    std::vector<float> u(size_t(T * F));
    if (!gate.present()) matmul(*pool_, up, h, T, u.data());
    if (gate.present()) {
        std::vector<float> g(size_t(T * F));
        cpu::matmul_many(*pool_, {{&gate, g.data()}, {&up, u.data()}}, h, T);
        if (sparsity_std_mult > 0)
            for (int64_t t = 0; t < T; ++t) cpu::gaussian_topk(g.data() + t * F, F, sparsity_std_mult);
        pool_->parallel_for(int64_t(u.size()), [&](int64_t i0, int64_t i1, int) {
            for (int64_t i = i0; i < i1; ++i) u[size_t(i)] *= cpu::activation(f.act, g[size_t(i)]);
        }, 8192);
    } else {
        pool_->parallel_for(int64_t(u.size()), [&](int64_t i0, int64_t i1, int) {
            for (int64_t i = i0; i < i1; ++i) u[size_t(i)] = cpu::activation(f.act, u[size_t(i)]);
        }, 8192);
    }
    matmul(*pool_, down, u.data(), T, out);
}

void Session::ffn_moe(int il, const float* h, int64_t T, float* out) {
    const ModelSpec& s = model_.spec();
    const FfnSpec& f = s.layers[size_t(il)].ffn;
    const LayerWeights& lw = model_.weights().layers[size_t(il)];
    const int64_t D = s.dim, E = f.n_experts, K = f.top_k;
    std::vector<float> logits(size_t(T * E));
    matmul(*pool_, lw.router, h, T, logits.data());

    std::vector<int> sel(size_t(T * K));
    std::vector<float> wts(size_t(T * K));
    cpu::moe_route_tokens(f, logits.data(), lw.selection_bias.data(), T, il, s.n_layers, pos_, probe_cfg_, probes_, sel.data(),
                          wts.data());

    std::fill(out, out + T * D, 0.f);
    // Tokens grouped by expert: each expert runs once on exactly the tokens routed to it.
    std::vector<std::vector<std::pair<int64_t, float>>> by_expert(static_cast<size_t>(E));
    for (int64_t t = 0; t < T; ++t)
        for (int64_t k = 0; k < K; ++k) by_expert[size_t(sel[size_t(t * K + k)])].push_back({t, wts[size_t(t * K + k)]});
    std::vector<float> xin, xout;
    for (int64_t e = 0; e < E; ++e) {
        auto& toks = by_expert[size_t(e)];
        if (toks.empty()) continue;
        const int64_t n = int64_t(toks.size());
        xin.resize(size_t(n * D));
        xout.resize(size_t(n * D));
        for (int64_t i = 0; i < n; ++i) {
            const float* src = h + toks[size_t(i)].first * D;
            float* dst = xin.data() + i * D;
            // ref: HF Llama4TextMoe: the router score scales the expert input
            const float sc = f.weight_on_input ? toks[size_t(i)].second : 1.f;
            for (int64_t d = 0; d < D; ++d) dst[d] = src[d] * sc;
        }
        const Expert& ex = lw.experts[size_t(e)];
        ffn_dense(ex.gate, ex.up, ex.down, f, xin.data(), n, xout.data());
        for (int64_t i = 0; i < n; ++i) {
            const float sc = f.weight_on_input ? 1.f : toks[size_t(i)].second;
            float* dst = out + toks[size_t(i)].first * D;
            const float* src = xout.data() + i * D;
            for (int64_t d = 0; d < D; ++d) dst[d] += sc * src[d];
        }
    }
    if (f.n_shared > 0) {
        std::vector<float> sh(size_t(T * D));
        ffn_dense(lw.shared.gate, lw.shared.up, lw.shared.down, f, h, T, sh.data());
        for (int64_t i = 0; i < T * D; ++i) out[i] += sh[size_t(i)];
    }
}

}  // namespace archlens
