// The backend a CLI command runs on: --backend cpu (the default) | cuda | auto.
//   cuda: the CUDA backend or an error saying why not (no CUDA in this build, no device, a model
//         feature or weight type it does not run yet, not enough device memory);
//   auto: CUDA when it can take the model, else the CPU, with the reason on stderr.
// The default stays the CPU: the CUDA backend has not yet been run on a GPU (no device was lent
// while it was written; its tests skip here), so it is chosen only on request.
#pragma once
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "app/cli/command.h"
#include "engine/model/model.h"
#include "engine/session.h"

namespace archlens::cuda {
class CudaSession;
}

namespace archlens::cli {

class Runner {
public:
    Runner(const Args& a, const Model& m, const SessionOptions& o);
    ~Runner();
    std::vector<float> forward(std::span<const int> tokens, bool all_logits = false);
    void reset();
    bool on_gpu() const { return gpu_ != nullptr; }
    std::string backend_name() const;
    Session* cpu() { return cpu_.get(); }  // nullptr on the GPU
    uint64_t kv_bytes() const;
    ProbeConfig& probe_config();
    ProbeData& probes();

private:
    std::unique_ptr<Session> cpu_;
    std::unique_ptr<cuda::CudaSession> gpu_;
};

}  // namespace archlens::cli
