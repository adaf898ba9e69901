// A host emulation of the part of CUDA and cuBLAS that the CUDA backend uses, so that the backend's
// own source (engine/cuda/*.cu, unchanged) can be compiled by the C++ compiler and run on a machine
// without a GPU: the test suite holds the emulated backend to the CPU backend and the llama.cpp
// fixtures, which checks every kernel's indexing, every launch shape, every buffer size and the
// forward pass's logic long before a GPU is lent. What it cannot check: speed, real memory
// limits, the hardware's memory model (blocks run one after another here, and a block's threads
// interleave only at __syncthreads and warp shuffles).
//
// Semantics kept from CUDA:
// - kernels run grid × block threads; threads of a block are fibers (ucontext) that switch only at
//   __syncthreads() and the warp shuffles, so shared memory (`__shared__` → `static`, one block at
//   a time) and the barriers behave as on the device; a barrier or shuffle in a kernel launched as
//   barrier-free (LAUNCH instead of LAUNCH_SYNC) is an error, not a silent wrong answer; a
//   full-mask shuffle in a warp where a lane has returned is an error (undefined on the device);
// - the order of blocks, and of a block's threads between barriers, can be reversed or shuffled
//   (ARCHLENS_EMU_SCHEDULE, see cuda_emu.cpp), so a race gives a different answer;
// - cudaMalloc's 256-byte alignment, and the kernels' 16-byte loads are checked (DEVICE_ALIGNED);
// - launch-shape limits (empty grids, more than 1024 threads, grid.y/z above 65535) are the same
//   launch errors, reported by cudaGetLastError;
// - device memory is host memory, but every cudaMemcpy checks that its device side lies in a live
//   allocation, so a swapped direction or an overrun copy is an error;
// - stream capture records launches, async copies and cuBLAS calls with their arguments as they
//   were at capture (as CUDA graphs do) and a graph launch replays them; a synchronous copy or a
//   stream synchronisation during capture invalidates the capture, as on the device;
// - events record the host clock, so elapsed times are the emulated kernels' run times; recording
//   one on a capturing stream is refused (the device would record a graph node, whose times would
//   be the replays', not the capture's: the backend never does it).
// - every thread of every kernel must pass GRID_DEPENDENCY() (cuda_api.h) before any barrier,
//   shuffle or return: with programmatic dependent launches the device may start a kernel before
//   its predecessor has finished, and only that call waits for it;
// Everything runs synchronously on the calling thread.
#pragma once
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <functional>
#include <stdexcept>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>

#include "engine/core/dtype.h"

// ---- language --------------------------------------------------------------------------------
#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __align__(n) __attribute__((aligned(n)))
#ifndef __restrict__
#define __restrict__
#endif

struct dim3 {
    unsigned x = 1, y = 1, z = 1;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct uint3 {
    unsigned x = 0, y = 0, z = 0;
};
struct alignas(16) uint4 {
    unsigned x, y, z, w;
};
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
struct alignas(16) float4 {
    float x, y, z, w;
};

// The running thread's coordinates, set by the emulator before it runs or resumes a thread.
extern thread_local uint3 threadIdx, blockIdx;
extern thread_local dim3 blockDim, gridDim;

namespace archlens::emu {
void sync_block();                       // __syncthreads
void grid_dependency();                  // GRID_DEPENDENCY(): every thread of every kernel passes it first
uint64_t warp_exchange(uint64_t v, int src_lane, bool valid);  // the shuffles' exchange
[[noreturn]] void misuse(const std::string& what);
}  // namespace archlens::emu

inline void __syncthreads() { archlens::emu::sync_block(); }

namespace archlens::emu {
template <class T>
uint64_t to_bits(T v) {
    static_assert(sizeof(T) <= 8);
    uint64_t b = 0;
    std::memcpy(&b, &v, sizeof(T));
    return b;
}
template <class T>
T from_bits(uint64_t b) {
    T v;
    std::memcpy(&v, &b, sizeof(T));
    return v;
}
inline int lane_id() { return int(threadIdx.x & 31u); }
inline void check_aligned(const void* p, size_t n) {
    if (reinterpret_cast<uintptr_t>(p) % n != 0) misuse("a " + std::to_string(n) + "-byte load from a misaligned address");
}
}  // namespace archlens::emu

// Shuffles within the warp; a source lane outside the segment gives the caller's own value (as on
// the device for __shfl_down/up), every lane of the warp must take part (the full-mask form).
template <class T>
T __shfl_down_sync(unsigned, T v, unsigned delta, int width = 32) {
    using namespace archlens::emu;
    const int lane = lane_id(), seg = lane - lane % width, src = lane + int(delta);
    const bool ok = src < seg + width;
    return from_bits<T>(warp_exchange(to_bits(v), ok ? src : lane, ok));
}
template <class T>
T __shfl_up_sync(unsigned, T v, unsigned delta, int width = 32) {
    using namespace archlens::emu;
    const int lane = lane_id(), seg = lane - lane % width, src = lane - int(delta);
    const bool ok = src >= seg;
    return from_bits<T>(warp_exchange(to_bits(v), ok ? src : lane, ok));
}
template <class T>
T __shfl_xor_sync(unsigned, T v, int mask, int width = 32) {
    using namespace archlens::emu;
    const int lane = lane_id(), seg = lane - lane % width, src = lane ^ mask;
    const bool ok = src >= seg && src < seg + width;
    return from_bits<T>(warp_exchange(to_bits(v), ok ? src : lane, ok));
}
template <class T>
T __shfl_sync(unsigned, T v, int src_lane, int width = 32) {
    using namespace archlens::emu;
    const int lane = lane_id(), seg = lane - lane % width;
    return from_bits<T>(warp_exchange(to_bits(v), seg + (src_lane % width), true));
}

// __syncwarp: every lane of the warp arrives before any goes on (a full-mask shuffle's exchange).
inline void __syncwarp(unsigned = 0xffffffffu) { archlens::emu::warp_exchange(0, archlens::emu::lane_id(), false); }

// ---- warp matrix products (nvcuda::wmma) -------------------------------------------------------
// The fragments' element layout is unspecified on the device, so a kernel may only load, store,
// fill and multiply them, or apply one function to every element (or combine the elements at the
// same index of fragments of one type: those share their layout). Here every lane's fragment holds
// the whole tile (num_elements = rows × cols, in a scrambled order) and every lane computes the whole product; a store
// writes only the lane's share of the elements (index % 32 == lane), so a lane that reads what
// others stored without __syncwarp (or __syncthreads) reads stale values. Every call is
// warp-collective: all 32 lanes must make it with the same pointer and stride (checked), the
// pointer 32-byte aligned and the stride a multiple of 16 bytes, as the device requires. The
// product reads only the TF32 bits of its f32 inputs (the low 13 mantissa bits are ignored, as
// the tensor cores do) and sums in f32.
namespace nvcuda::wmma {
struct row_major {};
struct col_major {};
struct matrix_a {};
struct matrix_b {};
struct accumulator {};
namespace precision {
struct tf32 {};
}  // namespace precision
enum layout_t { mem_row_major, mem_col_major };

template <class Use, int M, int N, int K>
struct frag_shape;
template <int M, int N, int K>
struct frag_shape<matrix_a, M, N, K> {
    static constexpr int rows = M, cols = K;
};
template <int M, int N, int K>
struct frag_shape<matrix_b, M, N, K> {
    static constexpr int rows = K, cols = N;
};
template <int M, int N, int K>
struct frag_shape<accumulator, M, N, K> {
    static constexpr int rows = M, cols = N;
};

template <class Use, int M, int N, int K, class T, class Layout = void>
struct fragment {
    using shape = frag_shape<Use, M, N, K>;
    static constexpr int rows = shape::rows, cols = shape::cols, num_elements = rows * cols;
    static_assert((num_elements & (num_elements - 1)) == 0, "an odd multiplier permutes the elements");
    // element (i, j) of the tile, whatever the memory layout: scrambled, so that a kernel that
    // assumed a layout (row-major x[]) fails here as it would on the device
    static constexpr int at(int i, int j) { return ((i * cols + j) * 37) % num_elements; }
    float x[num_elements];
};

// cvt.rna.tf32.f32: 10 mantissa bits, rounded to nearest, ties away from zero
inline float __float_to_tf32(float v) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0x1000u) & 0xffffe000u;
    std::memcpy(&v, &u, 4);
    return v;
}

namespace detail {
void collective(const char* what, const void* p, unsigned ldm, size_t elem_bytes);  // cuda_emu.cpp
inline float tf32_bits(float v) {
    uint32_t u;
    std::memcpy(&u, &v, 4);
    u &= 0xffffe000u;
    std::memcpy(&v, &u, 4);
    return v;
}
template <class F>
void load(F& f, const float* p, unsigned ldm, bool row_major) {
    collective("load_matrix_sync", p, ldm, sizeof(float));
    for (int i = 0; i < F::rows; ++i)
        for (int j = 0; j < F::cols; ++j) f.x[F::at(i, j)] = row_major ? p[size_t(i) * ldm + j] : p[i + size_t(j) * ldm];
}
}  // namespace detail

template <class Use, int M, int N, int K, class T, class L>
    requires(std::is_same_v<L, row_major> || std::is_same_v<L, col_major>)  // matrix_a and matrix_b
void load_matrix_sync(fragment<Use, M, N, K, T, L>& f, const float* p, unsigned ldm) {
    detail::load(f, p, ldm, std::is_same_v<L, row_major>);
}
template <int M, int N, int K>
void load_matrix_sync(fragment<accumulator, M, N, K, float>& f, const float* p, unsigned ldm, layout_t l) {
    detail::load(f, p, ldm, l == mem_row_major);
}
template <int M, int N, int K>
void store_matrix_sync(float* p, const fragment<accumulator, M, N, K, float>& f, unsigned ldm, layout_t l) {
    using F = fragment<accumulator, M, N, K, float>;
    detail::collective("store_matrix_sync", p, ldm, sizeof(float));
    const int lane = archlens::emu::lane_id();
    for (int e = lane; e < F::num_elements; e += 32) {
        const int i = e / F::cols, j = e % F::cols;
        (l == mem_row_major ? p[size_t(i) * ldm + j] : p[i + size_t(j) * ldm]) = f.x[F::at(i, j)];
    }
}
template <class Use, int M, int N, int K, class T, class L>
void fill_fragment(fragment<Use, M, N, K, T, L>& f, float v) {
    for (float& e : f.x) e = v;
}
template <int M, int N, int K, class T, class LA, class LB>
void mma_sync(fragment<accumulator, M, N, K, float>& d, const fragment<matrix_a, M, N, K, T, LA>& a,
              const fragment<matrix_b, M, N, K, T, LB>& b, const fragment<accumulator, M, N, K, float>& c) {
    detail::collective("mma_sync", nullptr, 0, 0);
    using FA = fragment<matrix_a, M, N, K, T, LA>;
    using FB = fragment<matrix_b, M, N, K, T, LB>;
    using FC = fragment<accumulator, M, N, K, float>;
    float r[M * N];
    for (int i = 0; i < M; ++i)
        for (int j = 0; j < N; ++j) {
            float s = c.x[FC::at(i, j)];
            for (int k = 0; k < K; ++k) s += detail::tf32_bits(a.x[FA::at(i, k)]) * detail::tf32_bits(b.x[FB::at(k, j)]);
            r[FC::at(i, j)] = s;
        }
    std::memcpy(d.x, r, sizeof r);
}
}  // namespace nvcuda::wmma

// ---- math intrinsics -------------------------------------------------------------------------
inline float __expf(float x) { return std::exp(x); }
inline float __logf(float x) { return std::log(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float rsqrtf(float x) { return 1.f / std::sqrt(x); }
inline float __saturatef(float x) { return x < 0.f ? 0.f : x > 1.f ? 1.f : x; }
inline float atomicAdd(float* p, float v) {  // blocks run one at a time: a plain read-modify-write
    const float old = *p;
    *p = old + v;
    return old;
}
inline int atomicAdd(int* p, int v) {
    const int old = *p;
    *p = old + v;
    return old;
}
inline void __threadfence() {}  // blocks run one after another: every write is already visible
template <class T>
T __ldcg(const T* p) {  // a load past L1: a plain load here
    return *p;
}

// ---- half and bfloat16 -----------------------------------------------------------------------
struct __half {
    uint16_t x;
};
struct __nv_bfloat16 {
    uint16_t x;
};
inline __half __float2half_rn(float f) { return {archlens::f32_to_fp16(f)}; }
inline float __half2float(__half h) { return archlens::fp16_to_f32(h.x); }
inline __half __ushort_as_half(unsigned short u) { return {uint16_t(u)}; }
inline unsigned short __half_as_ushort(__half h) { return h.x; }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return {archlens::f32_to_bf16(f)}; }
inline float __bfloat162float(__nv_bfloat16 h) { return archlens::bf16_to_f32(h.x); }

// ---- runtime API -----------------------------------------------------------------------------
enum cudaError_t {
    cudaSuccess = 0,
    cudaErrorInvalidValue = 1,
    cudaErrorMemoryAllocation = 2,
    cudaErrorInvalidConfiguration = 9,
    cudaErrorInsufficientDriver = 35,
    cudaErrorInvalidDevicePointer = 17,
    cudaErrorInvalidMemcpyDirection = 21,
    cudaErrorNoDevice = 100,
    cudaErrorInvalidResourceHandle = 400,
    cudaErrorIllegalState = 401,
    cudaErrorStreamCaptureUnsupported = 900,
    cudaErrorStreamCaptureInvalidated = 901,
    cudaErrorLaunchFailure = 719,
};
const char* cudaGetErrorString(cudaError_t e);
cudaError_t cudaGetLastError();
cudaError_t cudaPeekAtLastError();

enum cudaMemcpyKind { cudaMemcpyHostToHost, cudaMemcpyHostToDevice, cudaMemcpyDeviceToHost, cudaMemcpyDeviceToDevice, cudaMemcpyDefault };

struct cudaDeviceProp {
    char name[256];
    int major, minor;
    size_t totalGlobalMem;
    int multiProcessorCount;
};
// ARCHLENS_EMU_DRIVER=none | old makes the emulated machine one without an NVIDIA driver, or with
// one older than the runtime (CUDA 12.0 against 13.0): cudaGetDeviceCount then fails as there.
cudaError_t cudaGetDeviceCount(int* n);
cudaError_t cudaDriverGetVersion(int* v);   // 13000, 12000 (old) or 0 (none)
cudaError_t cudaRuntimeGetVersion(int* v);  // 13000
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device);
cudaError_t cudaSetDevice(int device);
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes);
cudaError_t cudaDeviceSynchronize();

cudaError_t cudaMalloc(void** p, size_t bytes);
template <class T>
cudaError_t cudaMalloc(T** p, size_t bytes) {
    return cudaMalloc(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFree(void* p);
cudaError_t cudaMallocHost(void** p, size_t bytes);
template <class T>
cudaError_t cudaMallocHost(T** p, size_t bytes) {
    return cudaMallocHost(reinterpret_cast<void**>(p), bytes);
}
cudaError_t cudaFreeHost(void* p);

struct CUstream_st;
using cudaStream_t = CUstream_st*;
enum { cudaStreamDefault = 0, cudaStreamNonBlocking = 1 };
cudaError_t cudaStreamCreate(cudaStream_t* s);
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned flags);
cudaError_t cudaStreamDestroy(cudaStream_t s);
cudaError_t cudaStreamSynchronize(cudaStream_t s);

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind);
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s = nullptr);
cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height, cudaMemcpyKind kind);
cudaError_t cudaMemset(void* p, int value, size_t bytes);
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s = nullptr);

struct CUevent_st;
using cudaEvent_t = CUevent_st*;
cudaError_t cudaEventCreate(cudaEvent_t* e);
enum { cudaEventDefault = 0, cudaEventDisableTiming = 2 };
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned flags);
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned flags = 0);
cudaError_t cudaEventDestroy(cudaEvent_t e);
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s = nullptr);
cudaError_t cudaEventSynchronize(cudaEvent_t e);
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b);

struct CUgraph_st;
struct CUgraphExec_st;
using cudaGraph_t = CUgraph_st*;
using cudaGraphExec_t = CUgraphExec_st*;
enum cudaStreamCaptureMode { cudaStreamCaptureModeGlobal = 0, cudaStreamCaptureModeThreadLocal = 1, cudaStreamCaptureModeRelaxed = 2 };
cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode mode);
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g);
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long flags = 0);
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s);
cudaError_t cudaGraphDestroy(cudaGraph_t g);
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e);

enum cudaFuncAttribute { cudaFuncAttributeMaxDynamicSharedMemorySize = 8 };
namespace archlens::emu {
cudaError_t func_set_attribute(const void* kernel, cudaFuncAttribute attr, int value);
}
template <class... P>
cudaError_t cudaFuncSetAttribute(void (*kernel)(P...), cudaFuncAttribute attr, int value) {
    return archlens::emu::func_set_attribute(reinterpret_cast<const void*>(kernel), attr, value);
}

// ---- cuBLAS ----------------------------------------------------------------------------------
enum cublasStatus_t {
    CUBLAS_STATUS_SUCCESS = 0,
    CUBLAS_STATUS_NOT_INITIALIZED = 1,
    CUBLAS_STATUS_INVALID_VALUE = 7,
    CUBLAS_STATUS_EXECUTION_FAILED = 13,
    CUBLAS_STATUS_NOT_SUPPORTED = 15,
};
enum cublasOperation_t { CUBLAS_OP_N = 0, CUBLAS_OP_T = 1 };
enum cudaDataType { CUDA_R_32F = 0, CUDA_R_16F = 2, CUDA_R_16BF = 14 };
enum cublasComputeType_t { CUBLAS_COMPUTE_32F = 68, CUBLAS_COMPUTE_32F_FAST_TF32 = 77 };
enum cublasGemmAlgo_t { CUBLAS_GEMM_DEFAULT = -1 };
struct cublasContext;
using cublasHandle_t = cublasContext*;
cublasStatus_t cublasCreate(cublasHandle_t* h);
cublasStatus_t cublasDestroy(cublasHandle_t h);
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s);
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void* workspace, size_t bytes);
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void* alpha,
                            const void* A, cudaDataType at, int lda, const void* B, cudaDataType bt, int ldb, const void* beta,
                            void* C, cudaDataType ct, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t algo);
// batch GEMMs, operand b of each at A + b·strideA, B + b·strideB, C + b·strideC elements
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                          const void* alpha, const void* A, cudaDataType at, int lda, long long strideA, const void* B,
                                          cudaDataType bt, int ldb, long long strideB, const void* beta, void* C, cudaDataType ct, int ldc,
                                          long long strideC, int batch, cublasComputeType_t compute, cublasGemmAlgo_t algo);
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* alpha,
                           const float* A, int lda, const float* B, int ldb, const float* beta, float* C, int ldc);

// ---- launches --------------------------------------------------------------------------------
namespace archlens::emu {

// Runs (or, on a capturing stream, records) grid × block threads of `body`; `barriers` says the
// kernel may call __syncthreads or a shuffle (its threads then run as fibers). `shared` bytes of
// dynamic shared memory (DYNAMIC_SHARED): above 48 KiB only up to what cudaFuncSetAttribute
// allowed `kernel`, and at most the device's 227 KiB, else the launch fails as on the device.
void launch(const char* name, const void* kernel, dim3 grid, dim3 block, size_t shared, cudaStream_t s, bool barriers,
            bool programmatic, std::function<void()> body);
unsigned char* dynamic_shared();  // the running block's dynamic shared memory
uint64_t kernels_run();           // kernels run so far (graph replays included), for the tests
// Launches made as programmatic dependent launches (the device's would overlap a kernel's start
// with its predecessor's end; here they run in order, as every launch): counted for the tests.
// ARCHLENS_EMU_PDL=nocapture makes a capturing stream refuse them (the capture is invalidated).
uint64_t programmatic_launches();

template <class... P>
class Launch {
public:
    Launch(const char* name, void (*k)(P...), dim3 g, dim3 b, size_t shared, cudaStream_t s, bool barriers, bool programmatic)
        : name_(name), k_(k), g_(g), b_(b), shared_(shared), s_(s), barriers_(barriers), programmatic_(programmatic) {}
    template <class... A>
    void operator()(A&&... a) const {
        static_assert(sizeof...(A) == sizeof...(P), "kernel argument count");
        auto k = k_;
        std::tuple<std::decay_t<P>...> args(static_cast<P>(std::forward<A>(a))...);  // by value, as a launch
        launch(name_, reinterpret_cast<const void*>(k_), g_, b_, shared_, s_, barriers_, programmatic_, [k, args] { std::apply(k, args); });
    }

private:
    const char* name_;
    void (*k_)(P...);
    dim3 g_, b_;
    size_t shared_;
    cudaStream_t s_;
    bool barriers_, programmatic_;
};
template <class... P>
Launch(const char*, void (*)(P...), dim3, dim3, size_t, cudaStream_t, bool, bool) -> Launch<P...>;

}  // namespace archlens::emu
