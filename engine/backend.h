// One inference session on the backend the user asked for: the CPU (Session), the CUDA backend
// (cuda::CudaSession), or the automatic choice — the GPU when this build has the CUDA backend, a
// device is present, the model is one it runs and it fits in the device's free memory; else the
// CPU, with the reason in note(). Used by archlens-cli (--backend) and the app (its worker).
#pragma once
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "engine/gpu_types.h"
#include "engine/model/model.h"
#include "engine/probes.h"
#include "engine/session.h"

namespace archlens {

namespace cuda {
class CudaSession;
}

enum class BackendChoice { Cpu, Cuda, Auto };

// "cpu" | "cuda" | "auto"; anything else throws, naming the accepted values.
BackendChoice parse_backend(const std::string& s);

// The GPU as the CUDA backend sees it (archlens-cli devices): whether this build has the backend,
// whether a device is present (else why not, in plain words), its name, compute capability and memory.
struct GpuStatus {
    bool built = false, available = false;
    std::string reason, name;
    int cc_major = 0, cc_minor = 0;
    uint64_t total_bytes = 0, free_bytes = 0;
};
GpuStatus gpu_status();
// "" when the CUDA backend can run here; else why not (the app greys out its GPU choice with this).
std::string gpu_unavailable_reason();

// Device memory the session holds on the GPU.
struct DeviceMemory {
    std::string device;
    uint64_t weights = 0, kv = 0, buffers = 0;  // uploaded weights, the KV cache, scratch and staging
    uint64_t free_after = 0, total = 0;        // the device's free and total memory once loaded
};

class BackendSession {
public:
    // Cuda: the CUDA backend or an Error saying why not. Auto: never fails over the GPU.
    BackendSession(const Model& m, const SessionOptions& o, BackendChoice choice);
    ~BackendSession();
    BackendSession(const BackendSession&) = delete;
    BackendSession& operator=(const BackendSession&) = delete;

    std::vector<float> forward(std::span<const int> tokens, bool all_logits = false);
    void reset();
    int64_t position() const;
    int64_t n_ctx() const;
    bool on_gpu() const { return gpu_ != nullptr; }
    std::string backend_name() const;  // "cpu" or "cuda (<device>)"
    const std::string& note() const { return note_; }  // why Auto stayed on the CPU (empty on the GPU)
    Session* cpu() { return cpu_.get(); }  // nullptr on the GPU
    uint64_t kv_bytes() const;                     // the KV cache as held now
    bool kv_f16() const;                           // the cache holds f16 (--kv-type f16)
    std::vector<uint64_t> kv_bytes_per_layer() const;  // what each layer's cache holds for the positions so far
    DeviceMemory device_memory() const;            // zeros on the CPU
    std::string decode_mode() const;               // the GPU's "graph" or why eager; empty on the CPU
    void tune_gpu(const GpuTuning& t);             // no effect on the CPU
    // Per-kernel GPU time (CudaSession::set_profiling); no effect on the CPU, whose profile is empty.
    void set_gpu_profiling(bool on);
    std::vector<KernelTime> take_gpu_profile();
    ProbeConfig& probe_config();
    ProbeData& probes();

private:
    std::unique_ptr<Session> cpu_;
    std::unique_ptr<cuda::CudaSession> gpu_;
    std::string note_;
};

}  // namespace archlens
