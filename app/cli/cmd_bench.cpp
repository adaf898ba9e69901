// bench: prefill and decode speed, peak RSS and the memory bandwidth decode achieves.
#include <sys/resource.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/cli/backend.h"
#include "app/cli/command.h"
#include "engine/core/error.h"
#include "engine/model/model.h"
#include "engine/quant/quant.h"
#include "engine/sampler.h"
#include "engine/session.h"

namespace archlens::cli {
namespace {

uint64_t peak_rss_bytes() {
    struct rusage ru{};
    getrusage(RUSAGE_SELF, &ru);
    return uint64_t(ru.ru_maxrss) * 1024;
}

// Weight bytes one decode step reads: every matrix once, one embedding row, and for MoE layers
// only the top_k experts' share of the expert tensors.
uint64_t weight_bytes_per_token(const Model& m) {
    const ModelSpec& s = m.spec();
    uint64_t total = 0;
    for (auto& t : m.tensors()) {
        if (t.name == "token_embd" && !s.tied_embeddings) {
            total += t.nbytes / uint64_t(std::max(1, s.vocab));
            continue;
        }
        if (t.name.find("_exps") != std::string::npos || t.name.find("ffn_exps[") != std::string::npos) {
            int layer = std::atoi(t.name.c_str() + 4);
            const FfnSpec& f = s.layers[size_t(layer)].ffn;
            // stacked tensors hold all experts; per-expert tensors are counted individually
            const bool stacked = t.name.find('[') == std::string::npos;
            total += stacked ? t.nbytes * uint64_t(f.top_k) / uint64_t(f.n_experts) : t.nbytes * uint64_t(f.top_k) / uint64_t(f.n_experts);
            continue;
        }
        total += t.nbytes;
    }
    return total;
}

int cmd_bench(const std::vector<std::string>& argv) {
    Args a(argv, {"json", "capture-routing", "gpu-profile"});
    if (a.positional().size() != 1) throw Error("usage: archlens-cli bench MODEL [--prompt 512] [--gen 128] [--threads N] [--kv-type f32|f16] [--json]");
    const int64_t n_prompt = a.get_int("prompt", 512), n_gen = a.get_int("gen", 128);
    const int reps = int(a.get_int("reps", 1));
    auto m = Model::load(a.positional()[0]);
    SessionOptions o;
    o.n_threads = int(a.get_int("threads", 0));
    const std::string kvt = a.get_or("kv-type", "f32");
    if (kvt != "f32" && kvt != "f16") throw Error("--kv-type must be f32 or f16, not '" + kvt + "'");
    o.kv_f16 = kvt == "f16";
    o.n_ctx = n_prompt + n_gen + 1;
    Runner s(a, *m, o);
    // the CUDA backend's switches, to measure one choice against another (no effect on the CPU)
    GpuTuning tune = gpu_tuning_from_env();  // the defaults, less what ARCHLENS_CUDA_OFF turns off
    auto on_off = [&](const char* name, bool dflt) {
        const std::string v = a.get_or(name, dflt ? "on" : "off");
        if (v != "on" && v != "off") throw Error(std::string("--") + name + " must be on or off, not '" + v + "'");
        return v == "on";
    };
    tune.graphs = on_off("gpu-graphs", tune.graphs);
    tune.fusion = on_off("gpu-fusion", tune.fusion);
    tune.heads_fusion = on_off("gpu-heads-fusion", tune.heads_fusion);
    tune.pdl = on_off("gpu-pdl", tune.pdl);
    tune.prompt_tiles = on_off("gpu-tiles", tune.prompt_tiles);
    tune.tc_attention = on_off("gpu-tc-attention", tune.tc_attention);
    tune.gemm_attention = on_off("gpu-gemm-attention", tune.gemm_attention);
    tune.tf32_attention = on_off("gpu-tf32-attention", tune.tf32_attention);
    const std::string qg = a.get_or("gpu-quant-gemm", "tf32");
    if (qg == "f32") tune.quant_gemm = QuantGemm::F32;
    else if (qg == "tf32") tune.quant_gemm = QuantGemm::TF32;
    else if (qg == "bf16") tune.quant_gemm = QuantGemm::BF16;
    else throw Error("--gpu-quant-gemm must be f32, tf32 or bf16, not '" + qg + "'");
    tune.grouped_moe = on_off("gpu-grouped-moe", tune.grouped_moe);
    tune.attn_splits = int(a.get_int("gpu-splits", 0));
    tune.split_min_keys = int(a.get_int("gpu-split-keys", GpuTuning{}.split_min_keys));
    s.tune_gpu(tune);
    // --gpu-profile: per-kernel GPU time of the last repetition (decode steps then run eagerly)
    const bool profile = a.has("gpu-profile");
    if (profile && !s.on_gpu()) throw Error("--gpu-profile times the CUDA backend's kernels; this run is on the CPU");
    s.set_gpu_profiling(profile);
    std::vector<KernelTime> prof_prefill, prof_decode;
    if (a.has("capture-routing")) s.probe_config().routing = true;
    if (auto h = a.get("capture-attention")) {
        s.probe_config().attention = true;
        if (*h != "all") s.probe_config().attn_heads = {std::atoi(h->c_str())};
    }
    std::vector<int> prompt(static_cast<size_t>(n_prompt));
    for (int64_t i = 0; i < n_prompt; ++i) prompt[size_t(i)] = int((i * 7919 + 13) % m->spec().vocab);
    double best_pp = 0, best_tg = 0;
    std::vector<double> pps, tgs;
    for (int r = 0; r < reps; ++r) {
        s.reset();
        s.take_gpu_profile();  // only the last repetition's
        auto t0 = std::chrono::steady_clock::now();
        auto logits = s.forward(prompt);
        double pp = double(n_prompt) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        prof_prefill = s.take_gpu_profile();
        int next = argmax(logits);
        auto t1 = std::chrono::steady_clock::now();
        for (int64_t i = 0; i < n_gen; ++i) {
            logits = s.forward(std::span<const int>(&next, 1));
            next = argmax(logits);
            s.probes().clear_records();
        }
        double tg = double(n_gen) / std::chrono::duration<double>(std::chrono::steady_clock::now() - t1).count();
        prof_decode = s.take_gpu_profile();
        pps.push_back(pp);
        tgs.push_back(tg);
    }
    std::sort(pps.begin(), pps.end());
    std::sort(tgs.begin(), tgs.end());
    best_pp = pps[pps.size() / 2];
    best_tg = tgs[tgs.size() / 2];
    const uint64_t wpt = weight_bytes_per_token(*m);
    nlohmann::json j = {{"model", a.positional()[0]},
                        {"threads", o.n_threads > 0 ? o.n_threads : default_thread_count()},
                        {"simd", quant::simd_name()},
                        {"n_prompt", n_prompt},
                        {"n_gen", n_gen},
                        {"reps", reps},
                        {"prefill_tokens_per_s", best_pp},
                        {"decode_tokens_per_s", best_tg},
                        {"peak_rss_bytes", peak_rss_bytes()},
                        {"weight_bytes_per_token", wpt},
                        {"effective_gb_per_s", double(wpt) * best_tg / 1e9},
                        {"kv_bytes", s.kv_bytes()}, {"kv_type", s.kv_f16() ? "f16" : "f32"},
                        {"backend", s.backend_name()},
                        {"decode_mode", s.on_gpu() ? s.decode_mode() : std::string("cpu")},
                        {"file_bytes", m->file_bytes()}};
    if (s.on_gpu())
        j["gpu_tuning"] = {{"graphs", tune.graphs}, {"fusion", tune.fusion}, {"heads_fusion", tune.heads_fusion}, {"pdl", tune.pdl}, {"prompt_tiles", tune.prompt_tiles}, {"tc_attention", tune.tc_attention}, {"gemm_attention", tune.gemm_attention}, {"tf32_attention", tune.tf32_attention}, {"quant_gemm", qg}, {"grouped_moe", tune.grouped_moe},
                           {"attn_splits", tune.attn_splits}, {"split_min_keys", tune.split_min_keys}};
    auto phase = [](const std::vector<KernelTime>& k, int64_t tokens) {
        double total = 0;
        nlohmann::json list = nlohmann::json::array();
        for (auto& t : k) {
            total += t.ms;
            list.push_back({{"kernel", t.kernel}, {"calls", t.calls}, {"ms", t.ms}});
        }
        return nlohmann::json{{"tokens", tokens}, {"gpu_ms", total}, {"kernels", list}};
    };
    if (profile) j["gpu_profile"] = {{"prefill", phase(prof_prefill, n_prompt)}, {"decode", phase(prof_decode, n_gen)}};
    if (a.has("json")) {
        std::printf("%s\n", j.dump().c_str());
    } else {
        std::printf("%s\n  prefill %lld tokens: %.1f tokens/s\n  decode  %lld tokens: %.1f tokens/s (%.2f GB/s of weights, %s per token)\n"
                    "  peak RSS %s, KV %s, SIMD %s, backend %s\n",
                    a.positional()[0].c_str(), (long long)n_prompt, best_pp, (long long)n_gen, best_tg, double(wpt) * best_tg / 1e9,
                    human_bytes(wpt).c_str(), human_bytes(peak_rss_bytes()).c_str(), human_bytes(s.kv_bytes()).c_str(), quant::simd_name(), s.backend_name().c_str());
        for (auto& [name, k] : {std::pair{"prefill", &prof_prefill}, std::pair{"decode", &prof_decode}}) {
            if (!profile) break;
            double total = 0;
            for (auto& t : *k) total += t.ms;
            std::printf("  GPU time, %s (last repetition): %.3f ms in kernels and cuBLAS\n", name, total);
            for (size_t i = 0; i < k->size() && i < 12; ++i)
                std::printf("    %6.1f%% %10.3f ms %7lld calls  %s\n", total > 0 ? 100.0 * (*k)[i].ms / total : 0.0, (*k)[i].ms,
                            (long long)(*k)[i].calls, (*k)[i].kernel.c_str());
        }
    }
    return 0;
}

Register r_bench({"bench", "bench MODEL [--prompt 512] [--gen 128] [--threads N] [--reps R] [--kv-type f32|f16] [--backend cpu|cuda|auto] [--capture-routing] [--capture-attention H|all] [--gpu-graphs|--gpu-fusion|--gpu-heads-fusion|--gpu-pdl|--gpu-tiles|--gpu-tc-attention|--gpu-gemm-attention|--gpu-tf32-attention|--gpu-grouped-moe on|off] [--gpu-quant-gemm f32|tf32|bf16] [--gpu-splits N] [--gpu-split-keys K] [--gpu-profile] [--json]", cmd_bench});

}  // namespace
}  // namespace archlens::cli
