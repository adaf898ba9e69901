// What the CUDA backend's sources include instead of the CUDA headers: the real runtime, cuBLAS and
// half types under nvcc, or their host emulation (engine/cuda/emu) when the same sources are
// compiled as C++ for the tests (ARCHLENS_CUDA_EMU). Kernel launches are written
//   LAUNCH(kernel, grid, block, stream)(args...)        for kernels without barriers,
//   LAUNCH_SYNC(kernel, grid, block, stream)(args...)   for kernels that call __syncthreads or shuffle,
// which is `kernel<<<grid, block, 0, stream>>>(args...)` under nvcc; LAUNCH_SYNC_SHARED adds bytes
// of dynamic shared memory, which the kernel takes with DYNAMIC_SHARED(T, name) (T* name). Each
// launch goes through Profiled (engine/cuda/profile.h): timed between events while a profiler is
// active on the thread, else launched as written.
#pragma once
#include "engine/cuda/cuda_ns.h"

#ifdef ARCHLENS_CUDA_EMU
#include "engine/cuda/emu/cuda_emu.h"
#define ARCHLENS_LAUNCH_(k, g, b, shared, s, barriers) \
    ::archlens::ARCHLENS_CUDA_NS::Profiled(#k, (s), ::archlens::emu::Launch(#k, k, dim3(g), dim3(b), (shared), (s), (barriers)))
#define LAUNCH(k, g, b, s) ARCHLENS_LAUNCH_(k, g, b, 0, s, false)
#define LAUNCH_SYNC(k, g, b, s) ARCHLENS_LAUNCH_(k, g, b, 0, s, true)
#define LAUNCH_SYNC_SHARED(k, g, b, shared, s) ARCHLENS_LAUNCH_(k, g, b, shared, s, true)
#define DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(::archlens::emu::dynamic_shared())
// A vector load's address must be a multiple of its width on the device (else the kernel faults
// with a misaligned address, which ends the CUDA context); x86 would read it silently.
#define DEVICE_ALIGNED(p, n) ::archlens::emu::check_aligned(p, n)
#else
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>
#define ARCHLENS_LAUNCH_(k, g, b, shared, s) \
    ::archlens::ARCHLENS_CUDA_NS::Profiled(#k, (s), [&](auto&&... args_) { k<<<(g), (b), (shared), (s)>>>(args_...); })
#define LAUNCH(k, g, b, s) ARCHLENS_LAUNCH_(k, g, b, 0, s)
#define LAUNCH_SYNC(k, g, b, s) ARCHLENS_LAUNCH_(k, g, b, 0, s)
#define LAUNCH_SYNC_SHARED(k, g, b, shared, s) ARCHLENS_LAUNCH_(k, g, b, shared, s)
#define DYNAMIC_SHARED(T, name)                                 \
    extern __shared__ __align__(128) unsigned char dyn_smem_[]; \
    T* name = reinterpret_cast<T*>(dyn_smem_)
#define DEVICE_ALIGNED(p, n) ((void)0)
#endif

#include "engine/cuda/profile.h"
