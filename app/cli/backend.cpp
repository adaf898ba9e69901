#include "app/cli/backend.h"

#include <cstdio>

#include "engine/core/error.h"
#ifdef ARCHLENS_HAVE_CUDA
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/cuda_session.h"
#else
namespace archlens::cuda {
class CudaSession {};  // never made without CUDA; complete so that Runner's unique_ptr can be destroyed
}  // namespace archlens::cuda
#endif

namespace archlens::cli {

Runner::Runner(const Args& a, const Model& m, const SessionOptions& o) {
    const std::string b = a.get_or("backend", "cpu");
    if (b != "cpu" && b != "cuda" && b != "auto") throw Error("--backend must be cpu, cuda or auto, not '" + b + "'");
    if (b != "cpu") {
#ifdef ARCHLENS_HAVE_CUDA
        std::string why = cuda::unsupported_reason(m);
        if (why.empty()) {
            const auto dev = cuda::probe_device();
            if (!dev.available) why = dev.reason;
        }
        if (why.empty()) {
            try {
                gpu_ = std::make_unique<cuda::CudaSession>(m, o.n_ctx);
            } catch (const Error& e) {
                if (b == "cuda") throw;
                why = e.what();
            }
        }
        if (!gpu_) {
            if (b == "cuda") throw Error(m.path() + ": cannot run on the CUDA backend: " + why);
            std::fprintf(stderr, "archlens-cli: running on the CPU: %s\n", why.c_str());
        }
#else
        if (b == "cuda") throw Error("this build has no CUDA backend (nvcc was not found when it was configured)");
        std::fprintf(stderr, "archlens-cli: running on the CPU: this build has no CUDA backend\n");
#endif
    }
    if (!gpu_) cpu_ = std::make_unique<Session>(m, o);
}

Runner::~Runner() = default;

std::vector<float> Runner::forward(std::span<const int> tokens, bool all_logits) {
#ifdef ARCHLENS_HAVE_CUDA
    if (gpu_) return gpu_->forward(tokens, all_logits);
#endif
    return cpu_->forward(tokens, all_logits);
}

void Runner::reset() {
#ifdef ARCHLENS_HAVE_CUDA
    if (gpu_) return gpu_->reset();
#endif
    cpu_->reset();
}

std::string Runner::backend_name() const {
#ifdef ARCHLENS_HAVE_CUDA
    if (gpu_) return "cuda (" + gpu_->device_name() + ")";
#endif
    return "cpu";
}

uint64_t Runner::kv_bytes() const {
#ifdef ARCHLENS_HAVE_CUDA
    if (gpu_) return gpu_->kv_bytes();
#endif
    return cpu_->kv_bytes();
}

}  // namespace archlens::cli

namespace archlens::cli {

ProbeConfig& Runner::probe_config() {
#ifdef ARCHLENS_HAVE_CUDA
    if (gpu_) return gpu_->probe_config();
#endif
    return cpu_->probe_config();
}

ProbeData& Runner::probes() {
#ifdef ARCHLENS_HAVE_CUDA
    if (gpu_) return gpu_->probes();
#endif
    return cpu_->probes();
}

}  // namespace archlens::cli
