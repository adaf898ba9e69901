// devices: where models can run here — the CPU, and the GPU as the CUDA backend sees it (or why
// it cannot be used), as `--backend auto` would decide it.
#include <algorithm>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <thread>

#include "app/cli/command.h"
#include "engine/backend.h"

namespace archlens::cli {
namespace {

int cmd_devices(const std::vector<std::string>& argv) {
    Args a(argv, {"json"});
    const GpuStatus g = gpu_status();
    const unsigned threads = std::max(1u, std::thread::hardware_concurrency());
    if (a.has("json")) {
        nlohmann::json cuda = {{"built", g.built}, {"available", g.available}};
        if (g.available) {
            cuda["name"] = g.name;
            cuda["compute_capability"] = std::to_string(g.cc_major) + "." + std::to_string(g.cc_minor);
            cuda["total_bytes"] = g.total_bytes;
            cuda["free_bytes"] = g.free_bytes;
        } else {
            cuda["reason"] = g.reason;
        }
        const nlohmann::json j = {{"cpu", {{"threads", threads}}}, {"cuda", cuda}};
        std::printf("%s\n", j.dump(2).c_str());
        return 0;
    }
    std::printf("CPU   %u hardware threads (always available)\n", threads);
    if (g.available)
        std::printf("CUDA  %s, compute capability %d.%d, %.1f GiB free of %.1f GiB\n", g.name.c_str(), g.cc_major, g.cc_minor,
                    double(g.free_bytes) / double(1ull << 30), double(g.total_bytes) / double(1ull << 30));
    else
        std::printf("CUDA  unavailable: %s\n", g.reason.c_str());
    return 0;
}

Register r_devices({"devices", "devices [--json]", cmd_devices});

}  // namespace
}  // namespace archlens::cli
