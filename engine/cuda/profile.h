// Per-kernel GPU time for `archlens-cli bench --gpu-profile` (CudaSession::set_profiling): while a
// session profiles, every kernel launch (the LAUNCH macros of cuda_api.h) and every cuBLAS product
// (ProfileScope) sits between two CUDA events on its stream, and the session folds the elapsed
// times into per-kernel totals after each forward pass (which waits for the stream anyway). A
// graph's kernels cannot be timed one by one, so profiled decode steps run eagerly. Off (the
// default), a launch costs one test of a thread-local pointer. Included by cuda_api.h.
#pragma once
#include <algorithm>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "engine/gpu_types.h"

namespace archlens::ARCHLENS_CUDA_NS {

class KernelProfiler {
public:
    KernelProfiler() = default;
    KernelProfiler(const KernelProfiler&) = delete;
    KernelProfiler& operator=(const KernelProfiler&) = delete;
    ~KernelProfiler() {
        for (auto& r : open_) release(r);
        for (cudaEvent_t e : pool_) cudaEventDestroy(e);
    }

    // A record opened by begin is closed by end with the index begin returned (scopes may nest).
    size_t begin(const char* name, cudaStream_t s) {
        open_.push_back({name, take_event(), nullptr});
        cudaEventRecord(open_.back().a, s);
        return open_.size() - 1;
    }
    void end(size_t i, cudaStream_t s) {
        open_[i].b = take_event();
        cudaEventRecord(open_[i].b, s);
    }
    // Waits for the recorded events and adds their times to the totals (call once the stream is
    // idle, e.g. after the forward pass's synchronisation). Returns false if the device refused.
    bool fold() {
        bool ok = true;
        for (auto& r : open_) {
            float ms = 0.f;
            if (r.b && cudaEventSynchronize(r.b) == cudaSuccess && cudaEventElapsedTime(&ms, r.a, r.b) == cudaSuccess) {
                auto& t = totals_[r.name];
                ++t.first;
                t.second += double(ms);
            } else {
                ok = false;
            }
            release(r);
        }
        open_.clear();
        return ok;
    }
    // The totals since the last take, longest first.
    std::vector<KernelTime> take() {
        fold();
        std::vector<KernelTime> out;
        for (auto& [name, t] : totals_) out.push_back({name, t.first, t.second});
        totals_.clear();
        std::sort(out.begin(), out.end(), [](const KernelTime& a, const KernelTime& b) { return a.ms > b.ms || (a.ms == b.ms && a.kernel < b.kernel); });
        return out;
    }

private:
    struct Rec {
        const char* name;
        cudaEvent_t a, b;
    };
    cudaEvent_t take_event() {
        if (!pool_.empty()) {
            cudaEvent_t e = pool_.back();
            pool_.pop_back();
            return e;
        }
        cudaEvent_t e = nullptr;
        cudaEventCreate(&e);
        return e;
    }
    void release(const Rec& r) {
        if (r.a) pool_.push_back(r.a);
        if (r.b) pool_.push_back(r.b);
    }
    std::vector<Rec> open_;
    std::vector<cudaEvent_t> pool_;
    std::map<std::string, std::pair<int64_t, double>> totals_;
};

// The profiler of the forward pass running on this thread, or nullptr.
inline thread_local KernelProfiler* t_profiler = nullptr;

// Sets this thread's profiler for a scope (nullptr: none), restoring the previous one.
class ProfilerActivation {
public:
    explicit ProfilerActivation(KernelProfiler* p) : prev_(t_profiler) { t_profiler = p; }
    ~ProfilerActivation() { t_profiler = prev_; }
    ProfilerActivation(const ProfilerActivation&) = delete;
    ProfilerActivation& operator=(const ProfilerActivation&) = delete;

private:
    KernelProfiler* prev_;
};

// Times what runs on `s` during its lifetime (a cuBLAS call) under `name`.
class ProfileScope {
public:
    ProfileScope(const char* name, cudaStream_t s) : p_(t_profiler), s_(s) {
        if (p_) i_ = p_->begin(name, s_);
    }
    ~ProfileScope() {
        if (p_) p_->end(i_, s_);
    }
    ProfileScope(const ProfileScope&) = delete;
    ProfileScope& operator=(const ProfileScope&) = delete;

private:
    KernelProfiler* p_;
    cudaStream_t s_;
    size_t i_ = 0;
};

// A kernel launch (the LAUNCH macros): `launch(args...)` between the profiler's events.
template <class F>
class Profiled {
public:
    Profiled(const char* name, cudaStream_t s, F launch) : name_(name), s_(s), launch_(std::move(launch)) {}
    template <class... A>
    void operator()(A&&... a) {
        ProfileScope scope(name_, s_);
        launch_(std::forward<A>(a)...);
    }

private:
    const char* name_;
    cudaStream_t s_;
    F launch_;
};

}  // namespace archlens::ARCHLENS_CUDA_NS
