// What the CUDA backend's sources include instead of the CUDA headers: the real runtime, cuBLAS and
// half types under nvcc, or their host emulation (engine/cuda/emu) when the same sources are
// compiled as C++ for the tests (ARCHLENS_CUDA_EMU). Kernel launches are written
//   LAUNCH(kernel, grid, block, stream)(args...)        for kernels without barriers,
//   LAUNCH_SYNC(kernel, grid, block, stream)(args...)   for kernels that call __syncthreads or shuffle,
// which is `kernel<<<grid, block, 0, stream>>>(args...)` under nvcc; LAUNCH_SYNC_SHARED adds bytes
// of dynamic shared memory, which the kernel takes with DYNAMIC_SHARED(T, name) (T* name). Each
// launch goes through Profiled (engine/cuda/profile.h): timed between events while a profiler is
// active on the thread, else launched as written.
//
// Programmatic dependent launch (Hopper, compute capability 9.0): while a ProgrammaticLaunches
// scope is on for the thread, kernels go out with cudaLaunchAttributeProgrammaticStreamSerialization,
// so that a kernel's blocks can be scheduled, and run up to their first instruction, while the
// kernel before it on the stream finishes — the gap between two small dependent kernels of a
// decode step (graphs keep these edges). Every kernel therefore begins with GRID_DEPENDENCY(): it
// waits until the kernels before it have finished and their writes are visible
// (griddepcontrol.wait, a no-op for an ordinary launch), then lets the next kernel's blocks be
// scheduled (griddepcontrol.launch_dependents). Nothing may precede it but reads of memory that no
// kernel writes (a product's weight rows, PREFETCH_L2): a thread that returned early would let its
// kernel finish before its predecessor, and the next kernel's wait would not cover that one. The
// emulator holds every kernel to it (no barrier, shuffle or return before it).
#pragma once
#include "engine/cuda/cuda_ns.h"

namespace archlens::ARCHLENS_CUDA_NS {
inline thread_local bool t_programmatic = false;  // this thread's launches are programmatic
class ProgrammaticLaunches {
public:
    explicit ProgrammaticLaunches(bool on) : prev_(t_programmatic) { t_programmatic = on; }
    ~ProgrammaticLaunches() { t_programmatic = prev_; }
    ProgrammaticLaunches(const ProgrammaticLaunches&) = delete;
    ProgrammaticLaunches& operator=(const ProgrammaticLaunches&) = delete;

private:
    bool prev_;
};
}  // namespace archlens::ARCHLENS_CUDA_NS

#ifdef ARCHLENS_CUDA_EMU
#include "engine/cuda/emu/cuda_emu.h"
#define ARCHLENS_LAUNCH_(k, g, b, shared, s, barriers)                                                                       \
    ::archlens::ARCHLENS_CUDA_NS::Profiled(#k, (s), ::archlens::emu::Launch(#k, k, dim3(g), dim3(b), (shared), (s), (barriers), \
                                                                            ::archlens::ARCHLENS_CUDA_NS::t_programmatic))
#define LAUNCH(k, g, b, s) ARCHLENS_LAUNCH_(k, g, b, 0, s, false)
#define LAUNCH_SYNC(k, g, b, s) ARCHLENS_LAUNCH_(k, g, b, 0, s, true)
#define LAUNCH_SYNC_SHARED(k, g, b, shared, s) ARCHLENS_LAUNCH_(k, g, b, shared, s, true)
#define DYNAMIC_SHARED(T, name) T* name = reinterpret_cast<T*>(::archlens::emu::dynamic_shared())
// A vector load's address must be a multiple of its width on the device (else the kernel faults
// with a misaligned address, which ends the CUDA context); x86 would read it silently.
#define DEVICE_ALIGNED(p, n) ::archlens::emu::check_aligned(p, n)
#define GRID_DEPENDENCY() ::archlens::emu::grid_dependency()
#define PREFETCH_L2(p) ((void)(p))
#define LAUNCH_BOUNDS(threads, blocks)
#else
#include <cublas_v2.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <utility>
namespace archlens::ARCHLENS_CUDA_NS {
// kernel<<<g, b, shared, s>>>(args...) as a programmatic dependent launch
template <class... P, class... A>
void launch_programmatic(void (*kernel)(P...), dim3 g, dim3 b, size_t shared, cudaStream_t s, A&&... args) {
    cudaLaunchAttribute attr[1] = {};
    attr[0].id = cudaLaunchAttributeProgrammaticStreamSerialization;
    attr[0].val.programmaticStreamSerializationAllowed = 1;
    cudaLaunchConfig_t cfg = {};
    cfg.gridDim = g;
    cfg.blockDim = b;
    cfg.dynamicSmemBytes = shared;
    cfg.stream = s;
    cfg.attrs = attr;
    cfg.numAttrs = 1;
    cudaLaunchKernelEx(&cfg, kernel, std::forward<A>(args)...);  // an error is the thread's last error, as a <<<>>> launch's
}
}  // namespace archlens::ARCHLENS_CUDA_NS
#define ARCHLENS_LAUNCH_(k, g, b, shared, s)                                                                       \
    ::archlens::ARCHLENS_CUDA_NS::Profiled(#k, (s), [&](auto&&... args_) {                                         \
        if (::archlens::ARCHLENS_CUDA_NS::t_programmatic)                                                          \
            ::archlens::ARCHLENS_CUDA_NS::launch_programmatic(k, dim3(g), dim3(b), (shared), (s), args_...);       \
        else                                                                                                       \
            k<<<(g), (b), (shared), (s)>>>(args_...);                                                              \
    })
#define LAUNCH(k, g, b, s) ARCHLENS_LAUNCH_(k, g, b, 0, s)
#define LAUNCH_SYNC(k, g, b, s) ARCHLENS_LAUNCH_(k, g, b, 0, s)
#define LAUNCH_SYNC_SHARED(k, g, b, shared, s) ARCHLENS_LAUNCH_(k, g, b, shared, s)
#define DYNAMIC_SHARED(T, name)                                 \
    extern __shared__ __align__(128) unsigned char dyn_smem_[]; \
    T* name = reinterpret_cast<T*>(dyn_smem_)
#define DEVICE_ALIGNED(p, n) ((void)0)
// asks for the 128-byte line holding p in L2 (no register written, no fault if unused)
#define PREFETCH_L2(p) asm volatile("prefetch.global.L2 [%0];" ::"l"(p))
// at most `threads` a block, at least `blocks` blocks resident a multiprocessor (caps registers)
#define LAUNCH_BOUNDS(threads, blocks) __launch_bounds__(threads, blocks)
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
#define GRID_DEPENDENCY()                                      \
    do {                                                       \
        asm volatile("griddepcontrol.wait;" ::: "memory");     \
        asm volatile("griddepcontrol.launch_dependents;" ::: "memory"); \
    } while (0)
#else
#define GRID_DEPENDENCY() ((void)0)
#endif
#endif

#include "engine/cuda/profile.h"
