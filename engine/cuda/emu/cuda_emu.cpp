// The CUDA/cuBLAS emulator's runtime: memory registry, launches (sequential threads, or fibers for
// kernels with barriers), stream capture and graph replay, GEMM. See cuda_emu.h.
// Fibers switch with _setjmp/_longjmp between their own stacks (a fiber is started once with
// setcontext): glibc's fortified longjmp refuses to jump to another stack, and swapcontext would
// make two signal-mask system calls per switch.
#undef _FORTIFY_SOURCE
#include "engine/cuda/emu/cuda_emu.h"

#include <setjmp.h>
#include <ucontext.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <exception>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

thread_local uint3 threadIdx, blockIdx;
thread_local dim3 blockDim, gridDim;

namespace archlens::emu {
namespace {

thread_local cudaError_t g_last = cudaSuccess;
cudaError_t fail(cudaError_t e) {
    g_last = e;
    return e;
}

// ---- memory ----
struct Alloc {
    size_t bytes;
    bool pinned;
};
std::map<const char*, Alloc>& allocs() {
    static std::map<const char*, Alloc> m;
    return m;
}
size_t g_in_use = 0;
constexpr size_t kDeviceBytes = size_t(8) << 30;  // what the emulated device reports

// Is [p, p + n) inside one live device allocation?
bool device_range(const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    auto& m = allocs();
    auto it = m.upper_bound(c);
    if (it == m.begin()) return false;
    --it;
    return !it->second.pinned && c >= it->first && c + n <= it->first + it->second.bytes;
}

bool pinned_range(const void* p, size_t n) {
    const char* c = static_cast<const char*>(p);
    auto& m = allocs();
    auto it = m.upper_bound(c);
    if (it == m.begin()) return false;
    --it;
    return it->second.pinned && c >= it->first && c + n <= it->first + it->second.bytes;
}

// ---- streams and capture ----
struct Capture {
    bool on = false, invalid = false;
    std::vector<std::function<void()>> ops;
};
}  // namespace
}  // namespace archlens::emu

struct CUstream_st {
    archlens::emu::Capture cap;
};
struct CUgraph_st {
    std::vector<std::function<void()>> ops;
};
struct CUgraphExec_st {
    std::vector<std::function<void()>> ops;
};
struct CUevent_st {
    bool recorded = false;
    std::chrono::steady_clock::time_point at;
};
struct cublasContext {
    cudaStream_t stream = nullptr;
};

namespace archlens::emu {
namespace {

CUstream_st g_default_stream;
CUstream_st* stream_of(cudaStream_t s) { return s ? s : &g_default_stream; }

// Runs `op` now, or records it when `s` is capturing.
cudaError_t enqueue(cudaStream_t s, std::function<void()> op) {
    CUstream_st* st = stream_of(s);
    if (st->cap.on) {
        st->cap.ops.push_back(std::move(op));
        return cudaSuccess;
    }
    op();
    return cudaSuccess;
}

// A synchronous call while any stream captures: unsupported, and the capture is invalidated.
bool capture_forbids_sync() {
    if (g_default_stream.cap.on) {
        g_default_stream.cap.invalid = true;
        return true;
    }
    return false;
}
std::vector<CUstream_st*>& live_streams() {
    static std::vector<CUstream_st*> v;
    return v;
}
bool any_capture() {
    bool any = capture_forbids_sync();
    for (CUstream_st* s : live_streams())
        if (s->cap.on) {
            s->cap.invalid = true;
            any = true;
        }
    return any;
}

// ---- fibers ----
enum class State { Run, WaitBlock, WaitWarp, Done };
constexpr size_t kStack = size_t(256) << 10;

struct BlockRun {
    const std::function<void()>* body = nullptr;
    int n = 0, cur = 0;
    std::vector<State> st;
    std::vector<ucontext_t> ctx;  // how each fiber starts
    struct Jmp {
        jmp_buf b;
    };
    std::vector<Jmp> jb;          // where each suspended fiber resumes
    std::vector<char> started;
    jmp_buf sched;
    std::vector<uint64_t> xbuf;  // one value per thread for the shuffles
    std::vector<char> xvalid;
    std::vector<char> waited;  // each thread has passed GRID_DEPENDENCY()
    std::exception_ptr err;
};
thread_local BlockRun* g_block = nullptr;
thread_local bool g_in_kernel = false;
thread_local const char* g_kernel = "";
thread_local bool g_waited = false;  // the running thread (of a kernel without barriers) has passed GRID_DEPENDENCY()
thread_local std::vector<std::unique_ptr<char[]>> g_stacks;

// The order in which the emulator runs a grid's blocks and, between two barriers, a block's threads
// (ARCHLENS_EMU_SCHEDULE: "forward", the default; "reverse"; "shuffle", a fixed pseudo-random
// permutation per round, seeded by ARCHLENS_EMU_SEED). On the device neither order is defined, so a
// kernel whose answer changes with the schedule has a race: a thread reading shared or global memory
// another thread of the block writes without a barrier between them, or a block that depends on
// another block having run first. test_cuda_emu_shuffled runs the kernel tests shuffled.
enum class Order { Forward, Reverse, Shuffle };
struct Schedule {
    Order order = Order::Forward;
    uint64_t state = 0x9e3779b97f4a7c15ull;
};
Schedule& schedule() {
    static Schedule s = [] {
        Schedule r;
        const char* v = std::getenv("ARCHLENS_EMU_SCHEDULE");
        const std::string o = v ? v : "forward";
        if (o == "reverse") r.order = Order::Reverse;
        else if (o == "shuffle") r.order = Order::Shuffle;
        else if (o != "forward" && !o.empty())
            throw std::invalid_argument("ARCHLENS_EMU_SCHEDULE must be forward, reverse or shuffle, not '" + o + "'");
        if (const char* seed = std::getenv("ARCHLENS_EMU_SEED")) r.state ^= std::strtoull(seed, nullptr, 10) * 0xbf58476d1ce4e5b9ull;
        return r;
    }();
    return s;
}
// Fills `idx` with 0 .. n-1 in the schedule's order.
void schedule_order(std::vector<int>& idx, int n) {
    idx.resize(size_t(n));
    for (int i = 0; i < n; ++i) idx[size_t(i)] = i;
    Schedule& s = schedule();
    if (s.order == Order::Reverse) std::reverse(idx.begin(), idx.end());
    if (s.order == Order::Shuffle)
        for (int i = n - 1; i > 0; --i) {  // Fisher-Yates with splitmix64
            uint64_t z = (s.state += 0x9e3779b97f4a7c15ull);
            z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
            z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
            z ^= z >> 31;
            std::swap(idx[size_t(i)], idx[size_t(z % uint64_t(i + 1))]);
        }
}

void set_thread(int tid) {
    threadIdx.x = unsigned(tid) % blockDim.x;
    threadIdx.y = unsigned(tid) / blockDim.x % blockDim.y;
    threadIdx.z = unsigned(tid) / (blockDim.x * blockDim.y);
}

[[noreturn]] void no_dependency_wait(const char* where) {
    throw std::logic_error(std::string("CUDA emulator: kernel ") + g_kernel + where +
                           " before GRID_DEPENDENCY() (every kernel starts with it: a programmatic launch may start a kernel"
                           " before the one it depends on has finished)");
}

void fiber_entry() {
    BlockRun* b = g_block;
    try {
        (*b->body)();
        if (!b->waited[size_t(b->cur)]) no_dependency_wait(" has a thread that returned");
    } catch (...) {
        if (!b->err) b->err = std::current_exception();
    }
    b->st[size_t(b->cur)] = State::Done;
    _longjmp(b->sched, 1);  // never returns: the stack is simply reused
}

void yield(State s) {
    BlockRun* b = g_block;
    b->st[size_t(b->cur)] = s;
    if (!_setjmp(b->jb[size_t(b->cur)].b)) _longjmp(b->sched, 1);
}

// Runs fiber i until it yields or ends. Its own frame holds the jump target, so that no caller's
// locals live across the jump.
[[gnu::noinline]] void resume(BlockRun& b, int i) {
    if (!_setjmp(b.sched)) {
        if (!b.started[size_t(i)]) {
            b.started[size_t(i)] = 1;
            setcontext(&b.ctx[size_t(i)]);
        }
        _longjmp(b.jb[size_t(i)].b, 1);
    }
}

void run_block_fibers(BlockRun& b) {
    while (g_stacks.size() < size_t(b.n)) g_stacks.push_back(std::make_unique<char[]>(kStack));
    for (int i = 0; i < b.n; ++i) {
        ucontext_t& c = b.ctx[size_t(i)];
        getcontext(&c);
        c.uc_stack.ss_sp = g_stacks[size_t(i)].get();
        c.uc_stack.ss_size = kStack;
        c.uc_link = nullptr;
        makecontext(&c, fiber_entry, 0);
        b.st[size_t(i)] = State::Run;
        b.started[size_t(i)] = 0;
    }
    const int warps = (b.n + 31) / 32;
    std::vector<int> order;
    for (;;) {
        bool ran = false;
        schedule_order(order, b.n);
        for (int i : order) {
            if (b.st[size_t(i)] != State::Run) continue;
            b.cur = i;
            set_thread(i);
            resume(b, i);
            ran = true;
            if (b.err) break;
        }
        if (b.err) break;
        if (ran) continue;
        bool released = false;
        for (int w = 0; w < warps; ++w) {  // a warp whose live lanes all wait at a shuffle
            int waiting = 0, live = 0;
            for (int i = w * 32; i < std::min(b.n, w * 32 + 32); ++i) {
                if (b.st[size_t(i)] == State::Done) continue;
                ++live;
                waiting += b.st[size_t(i)] == State::WaitWarp;
            }
            if (live > 0 && waiting == live) {
                // the full-mask shuffles: every one of the warp's 32 lanes must take part; a lane that
                // has returned (or a warp cut short by the block size) is undefined behaviour on the device
                if (live < 32)
                    throw std::logic_error(std::string("CUDA emulator: kernel ") + g_kernel + " shuffles in a warp with " +
                                           std::to_string(32 - live) + " lanes exited or missing (full-mask shuffles need all 32)");
                for (int i = w * 32; i < std::min(b.n, w * 32 + 32); ++i)
                    if (b.st[size_t(i)] == State::WaitWarp) b.st[size_t(i)] = State::Run;
                released = true;
            }
        }
        if (released) continue;
        int live = 0, at_barrier = 0;
        for (State s : b.st) {
            live += s != State::Done;
            at_barrier += s == State::WaitBlock;
        }
        if (live == 0) break;
        if (at_barrier == live) {
            for (State& s : b.st)
                if (s == State::WaitBlock) s = State::Run;
            continue;
        }
        b.err = std::make_exception_ptr(std::logic_error(std::string("CUDA emulator: kernel ") + g_kernel +
                                                         " deadlocks (threads of one warp wait at different barriers)"));
        break;
    }
    if (b.err) std::rethrow_exception(b.err);  // abandoned fibers hold no resources but their stacks
}

void run_kernel(const char* name, dim3 grid, dim3 block, bool barriers, const std::function<void()>& body) {
    const int n = int(block.x * block.y * block.z);
    gridDim = grid;
    blockDim = block;
    g_kernel = name;
    g_in_kernel = true;
    struct Reset {
        ~Reset() {
            g_in_kernel = false;
            g_block = nullptr;
        }
    } reset;
    BlockRun b;
    if (barriers) {
        b.body = &body;
        b.n = n;
        b.st.assign(size_t(n), State::Run);
        b.ctx.resize(size_t(n));
        b.jb.resize(size_t(n));
        b.started.assign(size_t(n), 0);
        b.xbuf.assign(size_t(n), 0);
        b.xvalid.assign(size_t(n), 0);
        b.waited.assign(size_t(n), 0);
    }
    const uint64_t blocks = uint64_t(grid.x) * grid.y * grid.z;
    std::vector<int> threads, block_order;  // no block order: forward
    if (schedule().order != Order::Forward && blocks <= uint64_t(1) << 24) schedule_order(block_order, int(blocks));
    for (uint64_t k = 0; k < blocks; ++k) {
        const uint64_t id = block_order.empty() ? k : uint64_t(block_order[size_t(k)]);
        blockIdx = {unsigned(id % grid.x), unsigned(id / grid.x % grid.y), unsigned(id / (uint64_t(grid.x) * grid.y))};
        if (barriers) {
            std::fill(b.waited.begin(), b.waited.end(), 0);
            g_block = &b;
            run_block_fibers(b);
            g_block = nullptr;
        } else {
            schedule_order(threads, n);
            for (int t : threads) {
                set_thread(t);
                g_waited = false;
                body();
                if (!g_waited) no_dependency_wait(" has a thread that returned");
            }
        }
    }
}

}  // namespace

[[noreturn]] void misuse(const std::string& what) { throw std::logic_error("CUDA emulator: " + what); }

void sync_block() {
    if (!g_in_kernel) misuse("__syncthreads outside a kernel");
    if (!g_block) misuse(std::string("kernel ") + g_kernel + " calls __syncthreads but was launched with LAUNCH (use LAUNCH_SYNC)");
    if (!g_block->waited[size_t(g_block->cur)]) no_dependency_wait(" waits at a barrier");
    yield(State::WaitBlock);
}

void grid_dependency() {
    if (!g_in_kernel) misuse("GRID_DEPENDENCY() outside a kernel");
    if (g_block) g_block->waited[size_t(g_block->cur)] = 1;
    else g_waited = true;
}

uint64_t warp_exchange(uint64_t v, int src_lane, bool valid) {
    if (!g_block) misuse(std::string("kernel ") + g_kernel + " shuffles but was launched with LAUNCH (use LAUNCH_SYNC)");
    BlockRun& b = *g_block;
    if (!b.waited[size_t(b.cur)]) no_dependency_wait(" shuffles");
    const int tid = b.cur, base = tid - tid % 32, src = base + src_lane;
    b.xbuf[size_t(tid)] = v;
    b.xvalid[size_t(tid)] = 1;
    yield(State::WaitWarp);  // every lane has written
    uint64_t r = v;
    if (valid) {
        if (src >= b.n || !b.xvalid[size_t(src)]) misuse(std::string("kernel ") + g_kernel + " shuffles from a lane that is not there");
        r = b.xbuf[size_t(src)];
    }
    yield(State::WaitWarp);  // every lane has read
    b.xvalid[size_t(tid)] = 0;
    return r;
}

}  // namespace archlens::emu

// A warp matrix call: 32-byte aligned tile, a stride of whole 16 bytes, and every lane of the warp
// calling with the same pointer and stride (lane 0's, exchanged).
void nvcuda::wmma::detail::collective(const char* what, const void* p, unsigned ldm, size_t elem_bytes) {
    using archlens::emu::misuse;
    if (p && reinterpret_cast<uintptr_t>(p) % 32 != 0) misuse(std::string(what) + " on a pointer that is not 32-byte aligned");
    if (p && (size_t(ldm) * elem_bytes) % 16 != 0) misuse(std::string(what) + " with a stride that is not a multiple of 16 bytes");
    const uint64_t key = uint64_t(reinterpret_cast<uintptr_t>(p)) ^ (uint64_t(ldm) << 48);
    if (archlens::emu::warp_exchange(key, 0, true) != key)
        misuse(std::string(what) + ": the lanes of a warp disagree on the tile's pointer or stride");
}

namespace archlens::emu {

namespace {
constexpr size_t kDefaultShared = size_t(48) << 10, kMaxShared = size_t(227) << 10;  // H100's opt-in limit per block
std::map<const void*, size_t> g_max_shared;  // cudaFuncAttributeMaxDynamicSharedMemorySize per kernel
std::mutex g_attr_mutex;
thread_local std::vector<unsigned char> g_dyn_shared;
thread_local size_t g_dyn_bytes = 0;
}  // namespace

cudaError_t func_set_attribute(const void* kernel, cudaFuncAttribute attr, int value) {
    if (attr != cudaFuncAttributeMaxDynamicSharedMemorySize || value < 0 || size_t(value) > kMaxShared) return fail(cudaErrorInvalidValue);
    std::lock_guard<std::mutex> lock(g_attr_mutex);
    g_max_shared[kernel] = size_t(value);
    return cudaSuccess;
}

unsigned char* dynamic_shared() {
    if (!g_in_kernel) misuse("dynamic shared memory outside a kernel");
    if (g_dyn_bytes == 0) misuse(std::string("kernel ") + g_kernel + " uses dynamic shared memory but was launched without any");
    const uintptr_t p = reinterpret_cast<uintptr_t>(g_dyn_shared.data());
    return reinterpret_cast<unsigned char*>((p + 127) & ~uintptr_t(127));  // aligned as the device's
}

std::atomic<uint64_t> g_kernels_run{0};
std::atomic<uint64_t> g_programmatic{0};  // programmatic dependent launches made
uint64_t kernels_run() { return g_kernels_run.load(std::memory_order_relaxed); }
uint64_t programmatic_launches() { return g_programmatic.load(std::memory_order_relaxed); }

void launch(const char* name, const void* kernel, dim3 grid, dim3 block, size_t shared, cudaStream_t s, bool barriers,
            bool programmatic, std::function<void()> body) {
    if (programmatic) {
        g_programmatic.fetch_add(1, std::memory_order_relaxed);
        // ARCHLENS_EMU_PDL=nocapture: a driver that refuses programmatic launches in stream capture
        const char* pdl = std::getenv("ARCHLENS_EMU_PDL");
        if (pdl && std::string(pdl) == "nocapture" && stream_of(s)->cap.on) {
            stream_of(s)->cap.invalid = true;
            fail(cudaErrorStreamCaptureUnsupported);
            return;
        }
    }
    const uint64_t threads = uint64_t(block.x) * block.y * block.z;
    if (grid.x == 0 || grid.y == 0 || grid.z == 0 || threads == 0 || threads > 1024 || block.z > 64 || grid.y > 65535 ||
        grid.z > 65535 || grid.x > 0x7fffffffu) {
        fail(cudaErrorInvalidConfiguration);
        return;
    }
    if (shared > kDefaultShared) {
        std::lock_guard<std::mutex> lock(g_attr_mutex);
        const auto it = g_max_shared.find(kernel);
        if (it == g_max_shared.end() || shared > it->second) {
            fail(cudaErrorInvalidValue);  // more than 48 KiB needs cudaFuncSetAttribute first
            return;
        }
    }
    enqueue(s, [name, grid, block, shared, barriers, body = std::move(body)] {
        g_kernels_run.fetch_add(1, std::memory_order_relaxed);
        // every block starts with garbage in its shared memory, as on the device
        g_dyn_shared.assign(shared + 128, 0xa5);
        g_dyn_bytes = shared;
        run_kernel(name, grid, block, barriers, body);
        g_dyn_bytes = 0;
    });
}

}  // namespace archlens::emu

using namespace archlens::emu;

const char* cudaGetErrorString(cudaError_t e) {
    switch (e) {
        case cudaSuccess: return "no error";
        case cudaErrorInvalidValue: return "invalid argument";
        case cudaErrorMemoryAllocation: return "out of memory";
        case cudaErrorInvalidConfiguration: return "invalid configuration argument";
        case cudaErrorInsufficientDriver: return "CUDA driver version is insufficient for CUDA runtime version";
        case cudaErrorInvalidDevicePointer: return "invalid device pointer";
        case cudaErrorInvalidMemcpyDirection: return "invalid copy direction for memcpy";
        case cudaErrorNoDevice: return "no CUDA-capable device is detected";
        case cudaErrorInvalidResourceHandle: return "invalid resource handle";
        case cudaErrorIllegalState: return "the operation would make the legacy stream depend on a capturing blocking stream";
        case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
        case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
        case cudaErrorLaunchFailure: return "unspecified launch failure";
    }
    return "unknown error";
}
cudaError_t cudaGetLastError() {
    const cudaError_t e = g_last;
    g_last = cudaSuccess;
    return e;
}
cudaError_t cudaPeekAtLastError() { return g_last; }

namespace {
std::string emu_driver() {
    const char* v = std::getenv("ARCHLENS_EMU_DRIVER");
    return v ? v : "";
}
}  // namespace
cudaError_t cudaGetDeviceCount(int* n) {
    if (emu_driver() == "none" || emu_driver() == "old") return fail(cudaErrorInsufficientDriver);  // *n untouched, as there
    *n = 1;
    return cudaSuccess;
}
cudaError_t cudaDriverGetVersion(int* v) {
    *v = emu_driver() == "none" ? 0 : emu_driver() == "old" ? 12000 : 13000;
    return cudaSuccess;
}
cudaError_t cudaRuntimeGetVersion(int* v) {
    *v = 13000;
    return cudaSuccess;
}
cudaError_t cudaGetDeviceProperties(cudaDeviceProp* p, int device) {
    if (device != 0) return fail(cudaErrorInvalidValue);
    std::memset(p, 0, sizeof(*p));
    std::strcpy(p->name, "ArchLens CUDA emulator");
    p->major = 9;
    p->minor = 0;
    p->totalGlobalMem = kDeviceBytes;
    p->multiProcessorCount = 1;
    return cudaSuccess;
}
cudaError_t cudaSetDevice(int device) { return device == 0 ? cudaSuccess : fail(cudaErrorInvalidValue); }
cudaError_t cudaMemGetInfo(size_t* free_bytes, size_t* total_bytes) {
    *total_bytes = kDeviceBytes;
    *free_bytes = kDeviceBytes - std::min(kDeviceBytes, g_in_use);
    return cudaSuccess;
}
cudaError_t cudaDeviceSynchronize() { return any_capture() ? fail(cudaErrorStreamCaptureUnsupported) : cudaSuccess; }

cudaError_t cudaMalloc(void** p, size_t bytes) {
    *p = nullptr;
    if (any_capture()) return fail(cudaErrorStreamCaptureUnsupported);  // may synchronise: unsafe in capture
    if (bytes == 0) return cudaSuccess;
    if (g_in_use + bytes > kDeviceBytes) return fail(cudaErrorMemoryAllocation);
    void* m = std::aligned_alloc(256, (bytes + 255) / 256 * 256);  // cudaMalloc's alignment guarantee
    if (!m) return fail(cudaErrorMemoryAllocation);
    std::memset(m, 0xA5, bytes);  // device memory is not zeroed: make reads of unwritten memory visible
    allocs()[static_cast<const char*>(m)] = {bytes, false};
    g_in_use += bytes;
    *p = m;
    return cudaSuccess;
}
cudaError_t cudaFree(void* p) {
    if (!p) return cudaSuccess;
    if (any_capture()) return fail(cudaErrorStreamCaptureUnsupported);
    auto it = allocs().find(static_cast<const char*>(p));
    if (it == allocs().end() || it->second.pinned) return fail(cudaErrorInvalidDevicePointer);
    g_in_use -= it->second.bytes;
    allocs().erase(it);
    std::free(p);
    return cudaSuccess;
}
cudaError_t cudaMallocHost(void** p, size_t bytes) {
    void* m = std::malloc(std::max<size_t>(bytes, 1));
    if (!m) return fail(cudaErrorMemoryAllocation);
    allocs()[static_cast<const char*>(m)] = {bytes, true};
    *p = m;
    return cudaSuccess;
}
cudaError_t cudaFreeHost(void* p) {
    auto it = allocs().find(static_cast<const char*>(p));
    if (it == allocs().end() || !it->second.pinned) return fail(cudaErrorInvalidValue);
    allocs().erase(it);
    std::free(p);
    return cudaSuccess;
}

cudaError_t cudaStreamCreate(cudaStream_t* s) { return cudaStreamCreateWithFlags(s, 0); }
cudaError_t cudaStreamCreateWithFlags(cudaStream_t* s, unsigned) {
    *s = new CUstream_st;
    live_streams().push_back(*s);
    return cudaSuccess;
}
cudaError_t cudaStreamDestroy(cudaStream_t s) {
    auto& v = live_streams();
    v.erase(std::remove(v.begin(), v.end(), s), v.end());
    delete s;
    return cudaSuccess;
}
cudaError_t cudaStreamSynchronize(cudaStream_t s) {
    if (stream_of(s)->cap.on) {
        stream_of(s)->cap.invalid = true;
        return fail(cudaErrorStreamCaptureUnsupported);
    }
    return cudaSuccess;
}

namespace {
// Checks a copy's direction against the registry: the device side must be a live allocation.
cudaError_t check_copy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    const bool dd = device_range(dst, bytes), sd = device_range(src, bytes);
    switch (kind) {
        case cudaMemcpyHostToDevice: return dd && !sd ? cudaSuccess : cudaErrorInvalidValue;
        case cudaMemcpyDeviceToHost: return sd && !dd ? cudaSuccess : cudaErrorInvalidValue;
        case cudaMemcpyDeviceToDevice: return sd && dd ? cudaSuccess : cudaErrorInvalidValue;
        case cudaMemcpyHostToHost: return !sd && !dd ? cudaSuccess : cudaErrorInvalidValue;
        case cudaMemcpyDefault: return cudaSuccess;
    }
    return cudaErrorInvalidMemcpyDirection;
}
}  // namespace

cudaError_t cudaMemcpy(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    if (bytes == 0) return cudaSuccess;
    if (any_capture()) return fail(cudaErrorStreamCaptureUnsupported);
    if (cudaError_t e = check_copy(dst, src, bytes, kind); e != cudaSuccess) return fail(e);
    std::memmove(dst, src, bytes);
    return cudaSuccess;
}
// A copy recorded into a graph may not touch pageable host memory (the device could not reach it
// when the graph replays); pinned allocations are fine.
bool capture_refuses(cudaStream_t s, const void* dst, const void* src, size_t bytes, cudaMemcpyKind kind) {
    if (!stream_of(s)->cap.on) return false;
    const bool host_ok = (kind != cudaMemcpyHostToDevice || pinned_range(src, bytes)) &&
                         (kind != cudaMemcpyDeviceToHost || pinned_range(dst, bytes)) && kind != cudaMemcpyHostToHost;
    if (!host_ok) stream_of(s)->cap.invalid = true;
    return !host_ok;
}
cudaError_t cudaMemcpyAsync(void* dst, const void* src, size_t bytes, cudaMemcpyKind kind, cudaStream_t s) {
    if (bytes == 0) return cudaSuccess;
    if (cudaError_t e = check_copy(dst, src, bytes, kind); e != cudaSuccess) return fail(e);
    if (capture_refuses(s, dst, src, bytes, kind)) return fail(cudaErrorStreamCaptureUnsupported);
    return enqueue(s, [=] { std::memmove(dst, src, bytes); });
}
cudaError_t cudaMemcpy2DAsync(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height,
                              cudaMemcpyKind kind, cudaStream_t s) {
    if (width == 0 || height == 0) return cudaSuccess;
    if (width > dpitch || width > spitch) return fail(cudaErrorInvalidValue);
    const size_t dspan = dpitch * (height - 1) + width, sspan = spitch * (height - 1) + width;
    const bool dd = device_range(dst, dspan), sd = device_range(src, sspan);
    const bool ok = kind == cudaMemcpyDeviceToHost   ? sd && !dd
                    : kind == cudaMemcpyHostToDevice ? dd && !sd
                    : kind == cudaMemcpyDeviceToDevice ? dd && sd
                                                       : kind == cudaMemcpyDefault;
    if (!ok) return fail(cudaErrorInvalidValue);
    if (capture_refuses(s, dst, src, std::max(dspan, sspan), kind)) return fail(cudaErrorStreamCaptureUnsupported);
    return enqueue(s, [=] {
        for (size_t r = 0; r < height; ++r)
            std::memmove(static_cast<char*>(dst) + r * dpitch, static_cast<const char*>(src) + r * spitch, width);
    });
}
cudaError_t cudaMemcpy2D(void* dst, size_t dpitch, const void* src, size_t spitch, size_t width, size_t height, cudaMemcpyKind kind) {
    if (any_capture()) return fail(cudaErrorStreamCaptureUnsupported);  // synchronous, as cudaMemcpy
    if (cudaError_t e = cudaMemcpy2DAsync(dst, dpitch, src, spitch, width, height, kind, nullptr); e != cudaSuccess) return e;
    return cudaStreamSynchronize(nullptr);
}
cudaError_t cudaMemset(void* p, int value, size_t bytes) {
    if (bytes == 0) return cudaSuccess;
    if (any_capture()) return fail(cudaErrorStreamCaptureUnsupported);
    if (!device_range(p, bytes)) return fail(cudaErrorInvalidValue);
    std::memset(p, value, bytes);
    return cudaSuccess;
}
cudaError_t cudaMemsetAsync(void* p, int value, size_t bytes, cudaStream_t s) {
    if (bytes == 0) return cudaSuccess;
    if (!device_range(p, bytes)) return fail(cudaErrorInvalidValue);
    return enqueue(s, [=] { std::memset(p, value, bytes); });
}

cudaError_t cudaEventCreate(cudaEvent_t* e) {
    *e = new CUevent_st;
    return cudaSuccess;
}
cudaError_t cudaEventCreateWithFlags(cudaEvent_t* e, unsigned) { return cudaEventCreate(e); }
// Work runs as it is enqueued: what the event marks has run, and the wait only checks its use.
cudaError_t cudaStreamWaitEvent(cudaStream_t s, cudaEvent_t e, unsigned) {
    if (!e) return fail(cudaErrorInvalidValue);
    if (stream_of(s)->cap.on) return fail(cudaErrorStreamCaptureUnsupported);
    return cudaSuccess;
}
cudaError_t cudaEventDestroy(cudaEvent_t e) {
    delete e;
    return cudaSuccess;
}
cudaError_t cudaEventRecord(cudaEvent_t e, cudaStream_t s) {
    if (!e) return fail(cudaErrorInvalidValue);
    if (stream_of(s)->cap.on) return fail(cudaErrorStreamCaptureUnsupported);
    e->recorded = true;  // the stream's work before it has run: everything is synchronous
    e->at = std::chrono::steady_clock::now();
    return cudaSuccess;
}
cudaError_t cudaEventSynchronize(cudaEvent_t) { return any_capture() ? fail(cudaErrorStreamCaptureUnsupported) : cudaSuccess; }
cudaError_t cudaEventElapsedTime(float* ms, cudaEvent_t a, cudaEvent_t b) {
    if (!a || !b) return fail(cudaErrorInvalidValue);
    if (!a->recorded || !b->recorded) return fail(cudaErrorInvalidResourceHandle);
    *ms = std::chrono::duration<float, std::milli>(b->at - a->at).count();
    return cudaSuccess;
}

cudaError_t cudaStreamBeginCapture(cudaStream_t s, cudaStreamCaptureMode) {
    CUstream_st* st = stream_of(s);
    if (!s) return fail(cudaErrorStreamCaptureUnsupported);  // the legacy stream cannot be captured
    if (st->cap.on) return fail(cudaErrorIllegalState);
    st->cap = Capture{};
    st->cap.on = true;
    return cudaSuccess;
}
cudaError_t cudaStreamEndCapture(cudaStream_t s, cudaGraph_t* g) {
    CUstream_st* st = stream_of(s);
    *g = nullptr;
    if (!st->cap.on) return fail(cudaErrorIllegalState);
    st->cap.on = false;
    if (st->cap.invalid) {
        st->cap.ops.clear();
        return fail(cudaErrorStreamCaptureInvalidated);
    }
    *g = new CUgraph_st{std::move(st->cap.ops)};
    st->cap.ops.clear();
    return cudaSuccess;
}
cudaError_t cudaGraphInstantiate(cudaGraphExec_t* e, cudaGraph_t g, unsigned long long) {
    if (!g) return fail(cudaErrorInvalidValue);
    *e = new CUgraphExec_st{g->ops};
    return cudaSuccess;
}
cudaError_t cudaGraphLaunch(cudaGraphExec_t e, cudaStream_t s) {
    if (!e) return fail(cudaErrorInvalidValue);
    return enqueue(s, [e] {
        for (const auto& op : e->ops) op();
    });
}
cudaError_t cudaGraphDestroy(cudaGraph_t g) {
    delete g;
    return cudaSuccess;
}
cudaError_t cudaGraphExecDestroy(cudaGraphExec_t e) {
    delete e;
    return cudaSuccess;
}

// ---- cuBLAS ----
cublasStatus_t cublasCreate(cublasHandle_t* h) {
    *h = new cublasContext;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasDestroy(cublasHandle_t h) {
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t s) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    h->stream = s;
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSetWorkspace(cublasHandle_t h, void* workspace, size_t bytes) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bytes && !device_range(workspace, bytes)) return CUBLAS_STATUS_INVALID_VALUE;
    return CUBLAS_STATUS_SUCCESS;
}

namespace {
// An f32 value as a TF32 tensor-core input: 10 mantissa bits, rounded to nearest even.
float to_tf32(float x) {
    uint32_t u;
    std::memcpy(&u, &x, 4);
    if ((u & 0x7f800000u) != 0x7f800000u) u = (u + 0xfffu + ((u >> 13) & 1u)) & 0xffffe000u;
    std::memcpy(&x, &u, 4);
    return x;
}

float load(const void* p, cudaDataType t, size_t i) {
    switch (t) {
        case CUDA_R_32F: return static_cast<const float*>(p)[i];
        case CUDA_R_16F: return archlens::fp16_to_f32(static_cast<const uint16_t*>(p)[i]);
        case CUDA_R_16BF: return archlens::bf16_to_f32(static_cast<const uint16_t*>(p)[i]);
    }
    return 0.f;
}
size_t type_bytes(cudaDataType t) { return t == CUDA_R_32F ? 4 : 2; }
}  // namespace

// Column-major C (m × n, ldc) = α · op(A) (m × k) · op(B) (k × n) + β · C; f32 accumulation.
// The operands' extents are checked against the device allocations, as cuBLAS would fault.
cublasStatus_t cublasGemmEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const void* alpha,
                            const void* A, cudaDataType at, int lda, const void* B, cudaDataType bt, int ldb, const void* beta,
                            void* C, cudaDataType ct, int ldc, cublasComputeType_t compute, cublasGemmAlgo_t) {
    if (!h) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (m < 0 || n < 0 || k < 0) return CUBLAS_STATUS_INVALID_VALUE;
    const bool tf32 = compute == CUBLAS_COMPUTE_32F_FAST_TF32;  // f32 inputs rounded to TF32 (tensor cores)
    if (ct != CUDA_R_32F || (compute != CUBLAS_COMPUTE_32F && !tf32) || at != bt || (tf32 && at != CUDA_R_32F))
        return CUBLAS_STATUS_NOT_SUPPORTED;
    const int a_rows = ta == CUBLAS_OP_N ? m : k, a_cols = ta == CUBLAS_OP_N ? k : m;
    const int b_rows = tb == CUBLAS_OP_N ? k : n, b_cols = tb == CUBLAS_OP_N ? n : k;
    if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m)) return CUBLAS_STATUS_INVALID_VALUE;
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    auto extent = [](int ld, int rows, int cols, size_t eb) { return (size_t(ld) * size_t(cols - 1) + size_t(rows)) * eb; };
    if ((k > 0 && (!device_range(A, extent(lda, a_rows, a_cols, type_bytes(at))) ||
                   !device_range(B, extent(ldb, b_rows, b_cols, type_bytes(bt))))) ||
        !device_range(C, extent(ldc, m, n, 4)))
        return CUBLAS_STATUS_EXECUTION_FAILED;
    const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
    enqueue(h->stream, [=] {
        float* c = static_cast<float*>(C);
        std::vector<float> acol(size_t(std::max(k, 1)));
        for (int j = 0; j < n; ++j) {
            std::vector<float> bcol(size_t(std::max(k, 1)));
            for (int p = 0; p < k; ++p) bcol[size_t(p)] = load(B, bt, tb == CUBLAS_OP_N ? size_t(p) + size_t(j) * ldb : size_t(j) + size_t(p) * ldb);
            if (tf32)
                for (float& v : bcol) v = to_tf32(v);
            for (int i = 0; i < m; ++i) {
                float s = 0.f;
                if (tf32) {
                    for (int p = 0; p < k; ++p)
                        s += to_tf32(load(A, at, ta == CUBLAS_OP_N ? size_t(i) + size_t(p) * lda : size_t(p) + size_t(i) * lda)) * bcol[size_t(p)];
                } else if (ta == CUBLAS_OP_T && at == CUDA_R_32F) {
                    const float* a = static_cast<const float*>(A) + size_t(i) * lda;
                    for (int p = 0; p < k; ++p) s += a[p] * bcol[size_t(p)];
                } else {
                    for (int p = 0; p < k; ++p)
                        s += load(A, at, ta == CUBLAS_OP_N ? size_t(i) + size_t(p) * lda : size_t(p) + size_t(i) * lda) * bcol[size_t(p)];
                }
                float& out = c[size_t(i) + size_t(j) * ldc];
                out = al * s + (be != 0.f ? be * out : 0.f);
            }
        }
    });
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasGemmStridedBatchedEx(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k,
                                          const void* alpha, const void* A, cudaDataType at, int lda, long long strideA, const void* B,
                                          cudaDataType bt, int ldb, long long strideB, const void* beta, void* C, cudaDataType ct, int ldc,
                                          long long strideC, int batch, cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    if (batch < 0) return CUBLAS_STATUS_INVALID_VALUE;
    for (int b = 0; b < batch; ++b) {
        const auto at_b = [&](const void* p, cudaDataType t, long long stride) {
            return static_cast<const void*>(static_cast<const char*>(p) + size_t(b) * size_t(stride) * type_bytes(t));
        };
        const cublasStatus_t st = cublasGemmEx(h, ta, tb, m, n, k, alpha, at_b(A, at, strideA), at, lda, at_b(B, bt, strideB), bt, ldb, beta,
                                               const_cast<void*>(at_b(C, ct, strideC)), ct, ldc, compute, algo);
        if (st != CUBLAS_STATUS_SUCCESS) return st;
    }
    return CUBLAS_STATUS_SUCCESS;
}
cublasStatus_t cublasSgemm(cublasHandle_t h, cublasOperation_t ta, cublasOperation_t tb, int m, int n, int k, const float* alpha,
                           const float* A, int lda, const float* B, int ldb, const float* beta, float* C, int ldc) {
    return cublasGemmEx(h, ta, tb, m, n, k, alpha, A, CUDA_R_32F, lda, B, CUDA_R_32F, ldb, beta, C, CUDA_R_32F, ldc,
                        CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
}
