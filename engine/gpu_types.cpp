#include "engine/gpu_types.h"

#include <cstdlib>

#include "engine/core/error.h"

namespace archlens {

GpuTuning gpu_tuning_from_env() {
    GpuTuning t;
    const char* env = std::getenv("ARCHLENS_CUDA_OFF");
    if (!env) return t;
    const std::string list = env;
    size_t at = 0;
    while (at <= list.size()) {
        size_t comma = list.find(',', at);
        if (comma == std::string::npos) comma = list.size();
        std::string name = list.substr(at, comma - at);
        while (!name.empty() && name.front() == ' ') name.erase(name.begin());
        while (!name.empty() && name.back() == ' ') name.pop_back();
        at = comma + 1;
        if (name.empty()) continue;
        if (name == "graphs") t.graphs = false;
        else if (name == "fusion") t.fusion = false;
        else if (name == "heads-fusion") t.heads_fusion = false;
        else if (name == "pdl") t.pdl = false;
        else if (name == "tiles") t.prompt_tiles = false;
        else if (name == "tc-attention") t.tc_attention = false;
        else if (name == "gemm-attention") t.gemm_attention = false;
        else if (name == "tf32-attention") t.tf32_attention = false;
        else if (name == "grouped-moe") t.grouped_moe = false;
        else
            throw Error("ARCHLENS_CUDA_OFF: unknown switch '" + name +
                        "' (it takes a comma-separated list of graphs, fusion, heads-fusion, pdl, tiles, tc-attention, gemm-attention, tf32-attention, grouped-moe)");
    }
    return t;
}

}  // namespace archlens
