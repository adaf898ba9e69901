#include "engine/model/spec_summary.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <set>

namespace archlens {

namespace {

std::string fmt(const char* f, double v) {
    char b[64];
    std::snprintf(b, sizeof b, f, v);
    return b;
}

// "1e+06" reads badly in a figure; RoPE bases are round numbers.
std::string theta_label(float t) {
    if (t >= 1e9f && std::fmod(t, 1e9f) == 0) return fmt("%.0fe9", t / 1e9);
    if (t >= 1e6f && std::fmod(t, 1e6f) == 0) return fmt("%.0fM", t / 1e6);
    if (t >= 1e3f && std::fmod(t, 1e3f) == 0) return fmt("%.0fk", t / 1e3);
    return fmt("%g", t);
}

// Run-length encoding of a label sequence.
std::vector<std::pair<std::string, int>> runs(const std::vector<std::string>& v, size_t begin, size_t end) {
    std::vector<std::pair<std::string, int>> r;
    for (size_t i = begin; i < end; ++i) {
        if (!r.empty() && r.back().first == v[i]) ++r.back().second;
        else r.push_back({v[i], 1});
    }
    return r;
}

std::string join_runs(const std::vector<std::pair<std::string, int>>& r) {
    std::string s;
    for (auto& [label, n] : r) s += (s.empty() ? "" : " + ") + std::to_string(n) + " × " + label;
    return s;
}

}  // namespace

std::string attention_kind_label(const AttentionSpec& a) {
    if (a.kind == AttnKind::MLA) return "MLA";
    if (a.n_kv_heads == a.n_heads) return "MHA";
    if (a.n_kv_heads == 1) return "MQA";
    return "GQA, group " + std::to_string(a.n_heads / a.n_kv_heads);
}

std::string attention_scope_label(const AttentionSpec& a, bool learned_positions) {
    std::string s;
    switch (a.scope) {
        case AttnScope::Sliding: s = "sliding-window (" + std::to_string(a.window) + ")"; break;
        case AttnScope::Chunked: s = "chunked (" + std::to_string(a.window) + ")"; break;
        case AttnScope::Global: s = "global"; break;
    }
    if (!a.rope.enabled && !learned_positions) s += ", NoPE";
    return s;
}

std::string ffn_kind_label(const FfnSpec& f) { return f.moe ? "MoE" : "dense"; }

std::string norm_placement_label(const LayerSpec& l) {
    bool pre = l.attn_pre_norm || l.ffn_pre_norm, post = l.attn_post_norm || l.ffn_post_norm;
    if (pre && post) return "pre+post (sandwich)";
    if (post) return "post-norm (inside residual)";
    return "pre-norm";
}

std::string describe_layer_pattern(const std::vector<std::string>& v) {
    const size_t n = v.size();
    if (n == 0 || std::all_of(v.begin(), v.end(), [&](auto& x) { return x == v[0]; })) return "";
    // Smallest period that repeats at least twice; a shorter final repetition is allowed
    // (Gemma 3 27B: 62 layers = 10 × 6 + 2).
    for (size_t p = 2; p * 2 <= n; ++p) {
        bool ok = true;
        for (size_t i = p; i < n && ok; ++i) ok = v[i] == v[i - p];
        if (!ok) continue;
        auto r = runs(v, 0, p);
        if (r.size() == 2 && r[0].second == 1 && r[1].second == 1) return "alternating " + r[0].first + " / " + r[1].first;
        return join_runs(r) + ", repeating";
    }
    auto r = runs(v, 0, n);
    if (r.size() <= 4) return join_runs(r);
    std::map<std::string, int> count;
    for (auto& x : v) ++count[x];
    std::string s;
    for (auto& [label, c] : count) s += (s.empty() ? "" : " + ") + std::to_string(c) + " × " + label;
    return s + ", irregular";
}

namespace {
std::string a_kv_shared_tag(const LayerSpec& l) {
    return std::string(l.kv_source >= 0 ? "|kvshared" : "") + (l.sparsity_std_mult > 0 ? "|sparse" : "");
}
}  // namespace

std::string layer_signature(const LayerSpec& l) {
    const auto& a = l.attn;
    const auto& f = l.ffn;
    std::string s = attention_kind_label(a) + "|" + attention_scope_label(a) + "|" + std::to_string(a.rope.enabled) + "|" + std::to_string(a.n_heads) + "/" +
                    std::to_string(a.n_kv_heads) + "/" + std::to_string(a.head_dim) + "|qk" + std::to_string(int(a.qk_norm)) +
                    "|" + std::to_string(l.attn_pre_norm) + std::to_string(l.attn_post_norm) + std::to_string(l.ffn_pre_norm) +
                    std::to_string(l.ffn_post_norm) + "|" + ffn_kind_label(f);
    // Gemma 3n: KV-sharing layers and sparse-FFN layers are drawn differently.
    s += a_kv_shared_tag(l);
    if (f.moe) s += std::to_string(f.n_experts) + "/" + std::to_string(f.top_k) + "/" + std::to_string(f.n_shared) + "/" + std::to_string(f.expert_ffn_dim);
    else s += std::to_string(f.ffn_dim);
    return s;
}

std::vector<LayerGroup> group_layers(const ModelSpec& s) {
    std::vector<LayerGroup> groups;
    for (int i = 0; i < int(s.layers.size()); ++i) {
        std::string sig = layer_signature(s.layers[size_t(i)]);
        auto it = std::find_if(groups.begin(), groups.end(), [&](auto& g) { return g.signature == sig; });
        if (it == groups.end()) groups.push_back({sig, {i}});
        else it->layers.push_back(i);
    }
    return groups;
}

std::string human_count2(uint64_t n) {
    if (n < 1000000000ull) return human_count(n);
    char buf[32];
    std::snprintf(buf, sizeof buf, "%.2fB", double(n) / 1e9);
    return buf;
}

std::string human_count(uint64_t n) {
    if (n >= 1000000000000ull) return fmt("%.3gT", double(n) / 1e12);
    if (n >= 1000000000ull) return fmt("%.1fB", double(n) / 1e9);
    if (n >= 1000000ull) return fmt("%.1fM", double(n) / 1e6);
    if (n >= 1000ull) return fmt("%.1fK", double(n) / 1e3);
    return std::to_string(n);
}

std::string human_bytes(double b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        ++u;
    }
    return u == 0 ? fmt("%.0f B", b) : fmt("%.1f ", b) + units[u];
}

std::string with_commas(uint64_t n) {
    const std::string d = std::to_string(n);
    std::string s;
    s.reserve(d.size() + d.size() / 3);
    for (size_t i = 0; i < d.size(); ++i) {
        if (i > 0 && (d.size() - i) % 3 == 0) s += ',';
        s += d[i];
    }
    return s;
}

std::vector<SpecFact> spec_facts(const ModelSpec& s) {
    std::vector<SpecFact> out;
    auto add = [&](const char* key, const char* label, std::string value) { out.push_back({key, label, std::move(value)}); };
    // A per-layer property: one value when uniform, else its pattern.
    auto per_layer = [&](auto get) {
        std::vector<std::string> v;
        for (auto& l : s.layers) v.push_back(get(l));
        std::string p = describe_layer_pattern(v);
        return p.empty() ? (v.empty() ? std::string("-") : v[0]) : p;
    };
    const LayerSpec& l0 = s.layers.front();
    const LayerSpec* moe = nullptr;
    const LayerSpec* dense = nullptr;
    for (auto& l : s.layers) {
        if (l.ffn.moe && !moe) moe = &l;
        if (!l.ffn.moe && !dense) dense = &l;
    }
    auto pc = count_params(s);
    add("architecture", "Architecture", s.model_type);
    add("params_total", "Parameters (total)", human_count(pc.total));
    add("params_active", "Parameters (active per token)", human_count(pc.active));
    add("layers", "Layers", std::to_string(s.n_layers));
    add("dim", "Embedding dimension", with_commas(uint64_t(s.dim)));
    add("vocab", "Vocabulary", with_commas(uint64_t(s.vocab)));
    add("context", "Context length", with_commas(uint64_t(s.max_positions)));
    add("positions", "Positions", s.learned_positions ? "learned absolute"
                                  : per_layer([](const LayerSpec& l) { return std::string(l.attn.rope.enabled ? "RoPE" : "NoPE"); }));
    add("rope_theta", "RoPE base", per_layer([](const LayerSpec& l) { return l.attn.rope.enabled ? theta_label(l.attn.rope.theta) : std::string("-"); }));
    add("attention", "Attention", per_layer([](const LayerSpec& l) { return attention_kind_label(l.attn); }));
    add("attention_scope", "Attention span", per_layer([&](const LayerSpec& l) { return attention_scope_label(l.attn, s.learned_positions); }));
    add("heads", "Query heads", std::to_string(l0.attn.n_heads));
    add("kv_heads", "KV heads", l0.attn.kind == AttnKind::MLA ? "latent" : std::to_string(l0.attn.n_kv_heads));
    add("head_dim", "Head dimension", std::to_string(l0.attn.head_dim) + (l0.attn.v_head_dim != l0.attn.head_dim ? " (v " + std::to_string(l0.attn.v_head_dim) + ")" : ""));
    add("mla_ranks", "MLA ranks (q / kv)", l0.attn.kind == AttnKind::MLA ? std::to_string(l0.attn.q_lora_rank) + " / " + std::to_string(l0.attn.kv_lora_rank) : "-");
    add("qk_norm", "QK-norm", per_layer([](const LayerSpec& l) {
            switch (l.attn.qk_norm) {
                case QkNorm::None: return std::string("none");
                case QkNorm::PerHead: return std::string("per head");
                case QkNorm::Full: return std::string("full width");
                case QkNorm::L2: return std::string("L2 (no weight)");
            }
            return std::string("?");
        }));
    add("norm", "Norm", std::string(s.norm == NormKind::RMSNorm ? "RMSNorm" : "LayerNorm") + ", " + norm_placement_label(l0));
    add("ffn_layers", "Feed-forward layers", per_layer([](const LayerSpec& l) { return ffn_kind_label(l.ffn); }));
    add("activation", "Activation", std::string(activation_name(l0.ffn.act)) + (l0.ffn.gated ? " (gated)" : ""));
    add("ffn_dim", "FFN hidden (dense)", dense ? with_commas(uint64_t(dense->ffn.ffn_dim)) : "-");
    add("experts", "Experts (routed / active / shared)",
        moe ? std::to_string(moe->ffn.n_experts) + " / " + std::to_string(moe->ffn.top_k) + " / " + std::to_string(moe->ffn.n_shared) : "-");
    add("expert_dim", "Expert hidden", moe ? with_commas(uint64_t(moe->ffn.expert_ffn_dim)) : "-");
    add("tied", "Tied embeddings", s.tied_embeddings ? "yes" : "no");
    add("kv_per_token", "KV cache per token (bf16)", human_bytes(double(kv_bytes_at(s, 1, 2.0))));
    return out;
}

}  // namespace archlens
