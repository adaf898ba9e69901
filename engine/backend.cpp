#include "engine/backend.h"

#include "engine/core/error.h"
#ifdef ARCHLENS_HAVE_CUDA
#include "engine/cuda/cuda_ops.h"
#include "engine/cuda/cuda_session.h"
#else
namespace archlens::cuda {
class CudaSession {};  // never made without CUDA; complete so that the unique_ptr can be destroyed
}  // namespace archlens::cuda
#endif

namespace archlens {

GpuStatus gpu_status() {
    GpuStatus g;
#ifdef ARCHLENS_HAVE_CUDA
    const auto dev = cuda::probe_device();
    g.built = true;
    g.available = dev.available;
    g.reason = dev.available ? std::string() : dev.reason;
    g.name = dev.name;
    g.cc_major = dev.cc_major;
    g.cc_minor = dev.cc_minor;
    g.total_bytes = dev.total_bytes;
    g.free_bytes = dev.free_bytes;
#else
    g.reason = "this build has no CUDA backend (nvcc was not found when it was configured)";
#endif
    return g;
}
std::string gpu_unavailable_reason() { return gpu_status().reason; }

BackendChoice parse_backend(const std::string& s) {
    if (s == "cpu") return BackendChoice::Cpu;
    if (s == "cuda") return BackendChoice::Cuda;
    if (s == "auto") return BackendChoice::Auto;
    throw Error("--backend must be cpu, cuda or auto, not '" + s + "'");
}

BackendSession::BackendSession(const Model& m, const SessionOptions& o, BackendChoice choice) {
    if (choice != BackendChoice::Cpu) {
#ifdef ARCHLENS_HAVE_CUDA
        std::string why = cuda::unsupported_reason(m);
        if (why.empty()) {
            const auto dev = cuda::probe_device();
            if (!dev.available) why = dev.reason;
        }
        if (why.empty()) {
            try {  // the session checks the fit in free memory before it uploads anything
                gpu_ = std::make_unique<cuda::CudaSession>(m, o.n_ctx, 0, o.kv_f16);
            } catch (const Error& e) {
                if (choice == BackendChoice::Cuda) throw;
                why = e.what();
            }
        }
        if (!gpu_) {
            if (choice == BackendChoice::Cuda) throw Error(m.path() + ": cannot run on the CUDA backend: " + why);
            note_ = why;
        }
#else
        if (choice == BackendChoice::Cuda) throw Error("this build has no CUDA backend (nvcc was not found when it was configured)");
        note_ = "this build has no CUDA backend";
#endif
    }
    if (!gpu_) cpu_ = std::make_unique<Session>(m, o);
}

BackendSession::~BackendSession() = default;

#ifdef ARCHLENS_HAVE_CUDA
#define ON_GPU(expr) \
    if (gpu_) return gpu_->expr
#else
#define ON_GPU(expr)
#endif

std::vector<float> BackendSession::forward(std::span<const int> tokens, bool all_logits) {
    ON_GPU(forward(tokens, all_logits));
    return cpu_->forward(tokens, all_logits);
}
void BackendSession::reset() {
    ON_GPU(reset());
    cpu_->reset();
}
int64_t BackendSession::position() const {
    ON_GPU(position());
    return cpu_->position();
}
int64_t BackendSession::n_ctx() const {
    ON_GPU(n_ctx());
    return cpu_->n_ctx();
}
bool BackendSession::kv_f16() const {
    ON_GPU(kv_f16());
    return cpu_->kv_f16();
}
std::string BackendSession::backend_name() const {
#ifdef ARCHLENS_HAVE_CUDA
    if (gpu_) return "cuda (" + gpu_->device_name() + ")";
#endif
    return "cpu";
}
uint64_t BackendSession::kv_bytes() const {
    ON_GPU(kv_bytes());
    return cpu_->kv_bytes();
}
std::vector<uint64_t> BackendSession::kv_bytes_per_layer() const {
    ON_GPU(kv_bytes_per_layer());
    std::vector<uint64_t> v;
    for (const LayerKv& kv : cpu_->kv()) v.push_back(kv.bytes());
    return v;
}
DeviceMemory BackendSession::device_memory() const {
    DeviceMemory d;
#ifdef ARCHLENS_HAVE_CUDA
    if (gpu_) {
        d.device = gpu_->device_name();
        d.weights = gpu_->weight_bytes();
        d.kv = gpu_->kv_bytes();
        d.buffers = gpu_->buffer_bytes();
        const auto dev = cuda::probe_device();
        d.free_after = dev.free_bytes;
        d.total = dev.total_bytes;
    }
#endif
    return d;
}
std::string BackendSession::decode_mode() const {
    ON_GPU(decode_mode());
    return {};
}
void BackendSession::tune_gpu(const GpuTuning& t) {
#ifdef ARCHLENS_HAVE_CUDA
    if (!gpu_) return;
    gpu_->set_graphs(t.graphs);
    gpu_->set_fusion(t.fusion);
    gpu_->set_heads_fusion(t.heads_fusion);
    gpu_->set_programmatic_launches(t.pdl);
    gpu_->set_prompt_attention_tiles(t.prompt_tiles);
    gpu_->set_tensor_core_attention(t.tc_attention);
    gpu_->set_gemm_attention(t.gemm_attention);
    gpu_->set_tf32_attention(t.tf32_attention);
    gpu_->set_quant_gemm(t.quant_gemm);
    gpu_->set_grouped_moe(t.grouped_moe);
    gpu_->set_attention_splits(t.attn_splits, t.split_min_keys);
#else
    (void)t;
#endif
}
void BackendSession::set_gpu_profiling(bool on) {
#ifdef ARCHLENS_HAVE_CUDA
    if (gpu_) gpu_->set_profiling(on);
#else
    (void)on;
#endif
}
std::vector<KernelTime> BackendSession::take_gpu_profile() {
    ON_GPU(take_profile());
    return {};
}
ProbeConfig& BackendSession::probe_config() {
    ON_GPU(probe_config());
    return cpu_->probe_config();
}
ProbeData& BackendSession::probes() {
    ON_GPU(probes());
    return cpu_->probes();
}

}  // namespace archlens
