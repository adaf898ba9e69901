// info, logits, generate, attention, routing: the engine's contract for tests and scripts.
#include <algorithm>
#include <cstdio>
#include <fstream>
#include <nlohmann/json.hpp>

#include "app/cli/backend.h"
#include "app/cli/command.h"
#include "engine/core/error.h"
#include "engine/model/model.h"
#include "engine/model/spec_summary.h"
#include "engine/sampler.h"
#include "engine/tokenizer/load.h"
#include "engine/session.h"

using archlens::Error;
using json = nlohmann::json;

namespace archlens::cli {
namespace {

const char* scope_name(const AttentionSpec& a) {
    switch (a.scope) {
        case AttnScope::Global: return "global";
        case AttnScope::Sliding: return "sliding";
        case AttnScope::Chunked: return "chunked";
    }
    return "?";
}

std::string attn_kind(const AttentionSpec& a) {
    if (a.kind == AttnKind::MLA) return "MLA";
    if (a.n_kv_heads == a.n_heads) return "MHA";
    if (a.n_kv_heads == 1) return "MQA";
    return "GQA";
}

// MODEL plus --slice NAME / --slicing-config FILE.csv (Gemma 3n MatFormer slices).
std::unique_ptr<Model> load_model(const Args& a) {
    LoadOptions o;
    o.slice = a.get_or("slice", "");
    o.slicing_config = a.get_or("slicing-config", "");
    return Model::load(a.positional()[0], o);
}

json slices_json(const Model& m) {
    json arr = json::array();
    for (auto& sl : m.slices()) {
        json e = {{"name", sl.name}, {"source", sl.source}, {"layers", sl.ffn_dims.size()}, {"layers_skipped", sl.layers_skipped},
                  {"ffn_dims", sl.ffn_dims}};
        if (sl.published_effective_b > 0) e["published_effective_params_b"] = sl.published_effective_b;
        try {
            auto plan = plan_matformer_slice(m.full_spec(), sl, m.path());
            auto pc = count_params(plan.spec);
            e["params_total"] = pc.total;
            e["params_effective"] = pc.active;
        } catch (const Error& err) {
            e["error"] = err.what();  // listed, but it does not fit this model
        }
        arr.push_back(e);
    }
    return arr;
}

json info_json(const std::string& path, const ModelSpec& s, const Model* m) {
    json j;
    j["path"] = path;
    j["family"] = family_name(s.family);
    j["model_type"] = s.model_type;
    j["architecture"] = s.model_type;
    j["vocab"] = s.vocab;
    j["dim"] = s.dim;
    j["n_layers"] = s.n_layers;
    j["context_length"] = s.max_positions;
    j["norm"] = s.norm == NormKind::RMSNorm ? "RMSNorm" : "LayerNorm";
    j["tied_embeddings"] = s.tied_embeddings;
    j["learned_positions"] = s.learned_positions;
    j["final_softcap"] = s.final_softcap;
    auto pc = count_params(s);
    j["params_total"] = pc.total;
    j["params_active"] = pc.active;
    j["params"] = {{"embedding", pc.embedding}, {"lm_head", pc.lm_head},   {"attention", pc.attention},
                   {"ffn_dense", pc.ffn_dense}, {"experts", pc.experts},   {"shared_experts", pc.shared_experts},
                   {"router", pc.router},       {"norms", pc.norms},     {"per_layer_embedding", pc.per_layer_embedding},
                   {"altup_laurel_ple", pc.altup_laurel}};
    if (s.ple_dim > 0) {
        // Gemma 3n: the per-layer embedding table streams from the file (read row by row as tokens
        // arrive); everything else stays in the memory that runs the layers. "Effective" = without it.
        j["params_effective"] = pc.active;  // Google's definition: without the PLE and token tables
        j["per_layer_embeddings"] = {{"dim_per_layer", s.ple_dim}, {"vocab", s.ple_vocab}, {"params", pc.per_layer_embedding},
                                     {"memory", "streamed from the memory map"}};
        j["altup_inputs"] = s.altup_inputs;
        j["laurel_rank"] = s.laurel_rank;
    }
    uint64_t kv_values = 0;
    json kinds = json::object();
    json layers = json::array();
    int moe_layers = 0;
    for (int i = 0; i < s.n_layers; ++i) {
        const auto& l = s.layers[size_t(i)];
        const auto& a = l.attn;
        uint64_t v = l.kv_source >= 0 ? 0 : kv_values_per_token(a);  // shared-KV layers store nothing
        kv_values += v;
        std::string kind = a.kind == AttnKind::MLA ? "mla" : scope_name(a);
        kinds[kind] = kinds.value(kind, uint64_t(0)) + v * 2;
        json L = {{"layer", i},
                  {"attention", attn_kind(a)},
                  {"scope", scope_name(a)},
                  {"window", a.window},
                  {"n_heads", a.n_heads},
                  {"n_kv_heads", a.n_kv_heads},
                  {"head_dim", a.head_dim},
                  {"v_head_dim", a.v_head_dim},
                  {"rope", a.rope.enabled},
                  {"rope_theta", a.rope.enabled ? a.rope.theta : 0.f},
                  {"qk_norm", a.qk_norm == QkNorm::None ? "none" : a.qk_norm == QkNorm::PerHead ? "per_head" : a.qk_norm == QkNorm::Full ? "full" : "l2"},
                  {"norms", {{"attn_pre", l.attn_pre_norm}, {"attn_post", l.attn_post_norm}, {"ffn_pre", l.ffn_pre_norm}, {"ffn_post", l.ffn_post_norm}}},
                  {"ffn", l.ffn.moe ? "moe" : "dense"},
                  {"activation", activation_name(l.ffn.act)},
                  {"kv_values_per_token", v},
                  {"kv_source", l.kv_source},
                  {"sparsity_std_mult", l.sparsity_std_mult}};
        if (a.kind == AttnKind::MLA)
            L["mla"] = {{"q_lora_rank", a.q_lora_rank}, {"kv_lora_rank", a.kv_lora_rank}, {"qk_nope_head_dim", a.qk_nope_head_dim},
                        {"qk_rope_head_dim", a.qk_rope_head_dim}};
        if (l.ffn.moe) {
            ++moe_layers;
            L["moe"] = {{"n_experts", l.ffn.n_experts}, {"top_k", l.ffn.top_k}, {"expert_ffn_dim", l.ffn.expert_ffn_dim},
                        {"n_shared", l.ffn.n_shared}, {"scoring", l.ffn.scoring == Scoring::Softmax ? "softmax" : "sigmoid"},
                        {"n_group", l.ffn.n_group}, {"topk_group", l.ffn.topk_group}, {"norm_topk", l.ffn.norm_topk},
                        {"routed_scale", l.ffn.routed_scale}};
        } else {
            L["ffn_dim"] = l.ffn.ffn_dim;
        }
        layers.push_back(L);
    }
    j["layers"] = layers;
    j["moe_layers"] = moe_layers;
    j["kv_type"] = "bf16";
    j["kv_bytes_per_token"] = kv_values * 2;
    j["kv_bytes_per_token_by_kind"] = kinds;
    if (m) {
        j["format"] = m->format() == ModelFormat::GGUF ? "gguf" : m->format() == ModelFormat::Safetensors ? "safetensors" : "config";
        j["file_bytes"] = m->file_bytes();
        j["weight_bytes"] = m->weight_bytes();
        j["weight_types"] = m->weight_types();
        if (s.family == Family::Gemma3n) {
            j["matformer"] = {{"slices", slices_json(*m)}, {"running", m->slice_name()}};
            if (!m->kept_layers().empty()) j["matformer"]["kept_layers"] = m->kept_layers();
            if (!m->slicing_error().empty()) j["matformer"]["config_error"] = m->slicing_error();
        }
    }
    return j;
}

int cmd_info(const std::vector<std::string>& argv) {
    Args a(argv, {"json"});
    if (a.positional().size() != 1) throw Error("usage: archlens-cli info MODEL [--slice NAME] [--slicing-config FILE.csv] [--json]");
    const std::string path = a.positional()[0];
    std::unique_ptr<Model> m = load_model(a);
    json j = info_json(path, m->spec(), m.get());
    if (a.has("json")) {
        std::printf("%s\n", j.dump(1).c_str());
        return 0;
    }
    std::printf("%s\n  architecture   %s (%s)\n", path.c_str(), j["model_type"].get<std::string>().c_str(), j.value("format", "").c_str());
    std::printf("  vocab %d, dim %d, layers %d, context %d\n", m->spec().vocab, m->spec().dim, m->spec().n_layers, m->spec().max_positions);
    std::printf("  parameters     %s total, %s active per token\n", std::to_string(j["params_total"].get<uint64_t>()).c_str(),
                std::to_string(j["params_active"].get<uint64_t>()).c_str());
    if (j.contains("params_effective"))
        std::printf("  per-layer emb. %s params streamed from the file; %s effective (resident)\n",
                    std::to_string(j["per_layer_embeddings"]["params"].get<uint64_t>()).c_str(),
                    std::to_string(j["params_effective"].get<uint64_t>()).c_str());
    if (j.contains("matformer")) {
        const json& mf = j["matformer"];
        if (!m->slice_name().empty())
            std::printf("  MatFormer      running slice '%s': %d of %d layers\n", m->slice_name().c_str(), m->spec().n_layers, m->full_spec().n_layers);
        if (mf["slices"].empty())
            std::printf("  MatFormer      no slicing configuration found (a google/gemma3n-slicing-configs CSV next to the model adds slices)\n");
        for (auto& sl : mf["slices"]) {
            if (sl.contains("error")) {
                std::printf("  slice          %-34s does not fit: %s\n", sl["name"].get<std::string>().c_str(), sl["error"].get<std::string>().c_str());
                continue;
            }
            std::string pub = sl.contains("published_effective_params_b")
                                  ? " (published " + std::to_string(sl["published_effective_params_b"].get<double>()).substr(0, 4) + "B)"
                                  : "";
            std::printf("  slice          %-34s %2d layers, %s effective%s\n", sl["name"].get<std::string>().c_str(), sl["layers"].get<int>(),
                        human_count2(sl["params_effective"].get<uint64_t>()).c_str(), pub.c_str());
        }
        if (mf.contains("config_error")) std::printf("  slicing config unreadable: %s\n", mf["config_error"].get<std::string>().c_str());
    }
    std::printf("  KV cache       %llu bytes per token (bf16)\n", (unsigned long long)j["kv_bytes_per_token"].get<uint64_t>());
    std::printf("  file           %s (%s of weights)\n", human_bytes(m->file_bytes()).c_str(), human_bytes(m->weight_bytes()).c_str());
    std::printf("  weight types  ");
    for (auto& [t, n] : m->weight_types()) std::printf(" %s×%llu", t.c_str(), (unsigned long long)n);
    std::printf("\n\n  layer  attention            scope      heads  kv  head_dim  rope      ffn\n");
    for (auto& L : j["layers"]) {
        std::string ffn = L["ffn"] == "moe" ? "MoE " + std::to_string(L["moe"]["n_experts"].get<int>()) + " top-" +
                                                  std::to_string(L["moe"]["top_k"].get<int>()) +
                                                  (L["moe"]["n_shared"].get<int>() ? " +shared" : "")
                                            : "dense " + std::to_string(L["ffn_dim"].get<int>());
        std::printf("  %5d  %-20s %-10s %5d %3d %9d  %-8s  %s\n", L["layer"].get<int>(), L["attention"].get<std::string>().c_str(),
                    (L["scope"].get<std::string>() + (L["window"].get<int>() ? "(" + std::to_string(L["window"].get<int>()) + ")" : "")).c_str(),
                    L["n_heads"].get<int>(), L["n_kv_heads"].get<int>(), L["head_dim"].get<int>(), L["rope"].get<bool>() ? "RoPE" : "NoPE",
                    ffn.c_str());
    }
    return 0;
}

void write_f32(const std::string& path, const std::vector<float>& v) {
    std::ofstream out(path, std::ios::binary);
    if (!out) throw Error(path + ": cannot open for writing");
    out.write(reinterpret_cast<const char*>(v.data()), std::streamsize(v.size() * 4));
    if (!out) throw Error(path + ": write failed");
}

std::vector<int> tokens_arg(const Args& a) {
    std::vector<int> ids = parse_id_list(a.require("tokens"));
    if (ids.empty()) throw Error("--tokens: no token ids given");
    return ids;
}

bool kv_f16_arg(const Args& a) {
    const std::string t = a.get_or("kv-type", "f32");
    if (t != "f32" && t != "f16") throw Error("--kv-type must be f32 or f16, not '" + t + "'");
    return t == "f16";
}

SessionOptions session_opts(const Args& a, int64_t needed) {
    SessionOptions o;
    o.kv_f16 = kv_f16_arg(a);
    o.n_threads = int(a.get_int("threads", 0));
    o.n_ctx = a.get_int("ctx", 0);
    if (o.n_ctx == 0) o.n_ctx = needed;
    return o;
}

int cmd_logits(const std::vector<std::string>& argv) {
    Args a(argv, {});
    if (a.positional().size() != 1) throw Error("usage: archlens-cli logits MODEL --tokens 1,2,3 --out FILE");
    auto m = load_model(a);
    auto ids = tokens_arg(a);
    Runner s(a, *m, session_opts(a, int64_t(ids.size())));
    std::vector<float> logits = s.forward(ids, true);
    write_f32(a.require("out"), logits);
    return 0;
}

int cmd_generate(const std::vector<std::string>& argv) {
    Args a(argv, {"ids"});
    if (a.positional().size() != 1)
        throw Error("usage: archlens-cli generate MODEL (--tokens 1,2,3 | --prompt TEXT) -n 16 [--temp T --seed S] [--ids]");
    auto m = load_model(a);
    // Text in and out need the model's tokenizer (GGUF metadata or the HF folder's tokenizer.json).
    std::unique_ptr<Tokenizer> tok;
    auto tokenizer = [&]() -> Tokenizer& {
        if (!tok) tok = load_tokenizer(m->format() == ModelFormat::GGUF ? m->path() : m->tokenizer_dir());
        return *tok;
    };
    std::vector<int> ids;
    if (auto p = a.get("prompt"))
        ids = tokenizer().encode(*p, true);
    else
        ids = tokens_arg(a);
    if (ids.empty()) throw Error("the prompt encodes to no tokens");
    long long n = a.has("n") ? a.get_int("n", 16) : 16;
    SamplerParams sp;
    sp.temperature = float(a.get_double("temp", 0));
    sp.seed = uint64_t(a.get_int("seed", 0));
    sp.top_k = int(a.get_int("top-k", 0));
    sp.top_p = float(a.get_double("top-p", 1));
    sp.min_p = float(a.get_double("min-p", 0));
    sp.repetition_penalty = float(a.get_double("repeat-penalty", 1));
    Runner s(a, *m, session_opts(a, int64_t(ids.size()) + n));
    Sampler sampler(sp);
    std::vector<int> history = ids, out;
    std::vector<float> logits = s.forward(ids);
    for (long long i = 0; i < n; ++i) {
        int next = sampler.sample(logits, history);
        out.push_back(next);
        history.push_back(next);
        if (i + 1 < n) logits = s.forward(std::span<const int>(&next, 1));
    }
    if (a.has("ids")) {
        std::string line;
        for (size_t i = 0; i < out.size(); ++i) line += (i ? " " : "") + std::to_string(out[i]);
        std::printf("%s\n", line.c_str());
    } else {
        std::printf("%s\n", tokenizer().decode(out).c_str());
    }
    return 0;
}

int cmd_attention(const std::vector<std::string>& argv) {
    Args a(argv, {});
    if (a.positional().size() != 1) throw Error("usage: archlens-cli attention MODEL --tokens 1,2,3 --layer L [--head H] --out FILE");
    auto m = load_model(a);
    auto ids = tokens_arg(a);
    const ModelSpec& spec = m->spec();
    int layer = int(a.get_int("layer", -1));
    if (layer < 0 || layer >= spec.n_layers)
        throw Error("--layer must be between 0 and " + std::to_string(spec.n_layers - 1));
    int H = spec.layers[size_t(layer)].attn.n_heads;
    int head = int(a.get_int("head", -1));
    if (a.has("head") && (head < 0 || head >= H)) throw Error("--head must be between 0 and " + std::to_string(H - 1));
    Runner s(a, *m, session_opts(a, int64_t(ids.size())));
    s.probe_config().attention = true;
    s.probe_config().attn_layers = {layer};
    if (head >= 0) s.probe_config().attn_heads = {head};
    s.forward(ids, false);
    const int64_t T = int64_t(ids.size());
    const int nh = head >= 0 ? 1 : H;
    std::vector<float> out(size_t(nh * T * T), 0.f);
    for (auto& r : s.probes().attention) {
        int hi = head >= 0 ? 0 : r.head;
        for (size_t k = 0; k < r.probs.size(); ++k) out[size_t((hi * T + r.query_pos) * T + r.key_begin + int64_t(k))] = r.probs[k];
    }
    write_f32(a.require("out"), out);
    return 0;
}

int cmd_routing(const std::vector<std::string>& argv) {
    Args a(argv, {"json"});
    if (a.positional().size() != 1) throw Error("usage: archlens-cli routing MODEL --tokens 1,2,3 --json");
    auto m = load_model(a);
    if (!m->spec().has_moe()) throw Error(a.positional()[0] + ": the model has no MoE layers");
    auto ids = tokens_arg(a);
    Runner s(a, *m, session_opts(a, int64_t(ids.size())));
    s.probe_config().routing = true;
    s.forward(ids, false);
    json layers = json::array();
    for (int il = 0; il < m->spec().n_layers; ++il) {
        if (!m->spec().layers[size_t(il)].ffn.moe) continue;
        json toks = json::array();
        for (auto& r : s.probes().routing)
            if (r.layer == il) {
                // Contract: experts in descending final weight (the engine records selection order,
                // which the selection bias can make different).
                std::vector<size_t> order(r.experts.size());
                for (size_t k = 0; k < order.size(); ++k) order[k] = k;
                std::stable_sort(order.begin(), order.end(), [&](size_t x, size_t y) { return r.weights[x] > r.weights[y]; });
                std::vector<int> ex;
                std::vector<float> wt;
                for (size_t k : order) {
                    ex.push_back(r.experts[k]);
                    wt.push_back(r.weights[k]);
                }
                toks.push_back({{"experts", ex}, {"weights", wt}, {"router_probs", r.router_probs}});
            }
        layers.push_back({{"layer", il}, {"tokens", toks}});
    }
    std::printf("%s\n", json{{"layers", layers}}.dump().c_str());
    return 0;
}

// Every model-running command also takes --slice NAME [--slicing-config FILE.csv] (Gemma 3n MatFormer)
// and --kv-type f32|f16 (the KV cache's storage; f32 by default, as the conformance fixtures use).
Register r_info({"info", "info MODEL [--slice NAME] [--slicing-config FILE.csv] [--json]", cmd_info});
Register r_logits({"logits", "logits MODEL --tokens 1,2,3 --out FILE [--backend cpu|cuda|auto]", cmd_logits});
Register r_generate({"generate", "generate MODEL (--tokens 1,2,3 | --prompt TEXT) -n 16 [--temp T --seed S --top-k K --top-p P --min-p P --repeat-penalty R] [--ids] [--backend cpu|cuda|auto]", cmd_generate});
Register r_attention({"attention", "attention MODEL --tokens 1,2,3 --layer L [--head H] --out FILE [--backend cpu|cuda|auto]", cmd_attention});
Register r_routing({"routing", "routing MODEL --tokens 1,2,3 --json [--backend cpu|cuda|auto]", cmd_routing});

}  // namespace
}  // namespace archlens::cli
