// One kernel's GPU time in a profiled run (archlens-cli bench --gpu-profile; engine/cuda/profile.h).
#pragma once
#include <cstdint>
#include <string>

namespace archlens {

struct KernelTime {
    std::string kernel;  // the kernel as launched (template arguments included), or the cuBLAS call
    int64_t calls = 0;
    double ms = 0;  // summed over the calls, from CUDA events around each
};

}  // namespace archlens
