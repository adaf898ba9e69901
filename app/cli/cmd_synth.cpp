// synth: write a model with the real shapes of a configuration and seeded random weights.
// demo: list the built-in demo models, or write one and run a short greedy continuation.
#include <chrono>
#include <cstdio>
#include <filesystem>

#include "app/cli/command.h"
#include "engine/core/error.h"
#include "engine/demo.h"
#include "engine/model/model.h"
#include "engine/model/spec_parse.h"
#include "engine/model/hf_writer.h"
#include "engine/model/synth.h"
#include "engine/sampler.h"
#include "engine/session.h"

namespace archlens::cli {
namespace {

// --preset: "tiny" (the family's demo shape), or a config.json path with --config.
ModelSpec preset_spec(const Args& a) {
    if (auto cfg = a.get("config")) return spec_from_hf_config_file(*cfg);
    const std::string arch = a.require("arch");
    const std::string preset = a.get_or("preset", "tiny");
    if (preset == "tiny") {
        for (auto& d : demo::demo_models())
            if (d.name == arch) return Model::load_spec("demo:" + arch);
        std::string names;
        for (auto& d : demo::demo_models()) names += (names.empty() ? "" : ", ") + d.name;
        throw Error("--arch '" + arch + "' has no tiny preset; families: " + names);
    }
    // Any catalog entry ("catalog:NAME" resolves wherever a model path is accepted).
    return Model::load_spec("catalog:" + preset);
}

int cmd_synth(const std::vector<std::string>& argv) {
    Args a(argv, {});
    SynthOptions o;
    parse_synth_dtype(a.get_or("dtype", "f32"), o);
    o.seed = uint64_t(a.get_int("seed", 1));
    const std::string out = a.require("out");
    ModelSpec spec = preset_spec(a);
    o.name = "archlens-synth " + a.get_or("preset", "custom") + " " + a.get_or("dtype", "f32");
    auto t0 = std::chrono::steady_clock::now();
    write_synthetic_gguf(spec, o, out);
    if (auto hf = a.get("hf")) {
        // The same weights as an HF folder (quantized tensors dequantized to f32).
        write_hf_twin(*Model::load(out), *hf);
        std::printf("wrote the Hugging Face twin in %s\n", hf->c_str());
    }
    double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("wrote %s (%s, %s) in %.1f s\n", out.c_str(), family_name(spec.family),
                human_bytes(std::filesystem::file_size(out)).c_str(), s);
    return 0;
}

int cmd_demo(const std::vector<std::string>& argv) {
    Args a(argv, {"list"});
    if (a.has("list") || a.positional().empty()) {
        std::printf("Built-in demo models (random weights: they show the machinery, not meaning):\n");
        for (auto& d : demo::demo_models()) std::printf("  demo:%-14s %s — %s\n", d.name.c_str(), d.title.c_str(), d.description.c_str());
        if (a.has("list")) return 0;
    }
    const std::string name = a.positional().empty() ? "llama3" : a.positional()[0];
    std::string path = demo::ensure_demo_model(name, demo::default_demo_dir());
    auto m = Model::load(path);
    std::printf("\ndemo:%s -> %s\n", name.c_str(), path.c_str());
    Session s(*m);
    std::vector<int> prompt = {72, 101, 108, 108, 111};  // bytes of "Hello"
    auto logits = s.forward(prompt);
    std::printf("greedy continuation ids:");
    for (int i = 0; i < 16; ++i) {
        int next = argmax(logits);
        std::printf(" %d", next);
        logits = s.forward(std::span<const int>(&next, 1));
    }
    std::printf("\nKV cache allocated: %s for %lld positions\n", human_bytes(s.kv_bytes()).c_str(), (long long)s.position());
    return 0;
}

Register r_synth({"synth", "synth --arch FAMILY --preset tiny|CATALOG_NAME [--config config.json] --dtype f32|bf16|f16|q8_0|q4_k_m|... --out FILE.gguf [--hf DIR] [--seed S]", cmd_synth});
Register r_demo({"demo", "demo [NAME] [--list]", cmd_demo});

}  // namespace
}  // namespace archlens::cli
