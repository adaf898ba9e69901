// CUDA and cuBLAS status codes as archlens::Error, naming the call and the reason (nothing aborts).
// Internal to engine/cuda.
#pragma once
#include "engine/cuda/cuda_api.h"

#include <string>

#include "engine/core/error.h"

namespace archlens::ARCHLENS_CUDA_NS {

inline void check(cudaError_t e, const char* call) {
    if (e != cudaSuccess) throw Error(std::string("CUDA: ") + call + " failed: " + cudaGetErrorString(e));
}

inline void check(cublasStatus_t s, const char* call) {
    if (s != CUBLAS_STATUS_SUCCESS) throw Error(std::string("cuBLAS: ") + call + " failed with status " + std::to_string(int(s)));
}

}  // namespace archlens::ARCHLENS_CUDA_NS
