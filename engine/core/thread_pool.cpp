#include "engine/core/thread_pool.h"

#include <algorithm>
#include <chrono>
#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

namespace archlens {

namespace {

inline void cpu_relax() {
#if defined(__x86_64__) || defined(__i386__)
    _mm_pause();
#endif
}

// How long an idle worker keeps spinning before it sleeps: long enough to bridge the gaps
// between the products of one decode step (and sampling), short enough not to hold a core once
// a session is idle.
constexpr auto kSpinFor = std::chrono::microseconds(2000);

thread_local bool t_in_job = false;

}  // namespace

int default_thread_count() {
    unsigned n = std::thread::hardware_concurrency();
    return n == 0 ? 1 : int(n);
}

bool ThreadPool::nested() { return t_in_job; }

ThreadPool::ThreadPool(int n_threads) : n_threads_(std::max(1, n_threads)) {
    for (int i = 1; i < n_threads_; ++i) threads_.emplace_back([this, i] { worker(i); });
}

ThreadPool::~ThreadPool() {
    {
        std::lock_guard<std::mutex> lock(mu_);
        stop_.store(true);
    }
    cv_.notify_all();
    for (auto& t : threads_) t.join();
}

// Completion protocol: the caller runs the job until no chunk is left, closes it (open_ = false),
// then waits until no worker is inside. A worker registers (active_++) before it looks at open_,
// so once the caller has seen active_ == 0 after closing, no worker can still reach the job's
// context (which lives on the caller's stack). Each chunk counter hands out every chunk once, so
// a job is done when the caller's own loop has ended and the workers have left.
void ThreadPool::dispatch(JobFn fn, void* ctx) {
    job_fn_ = fn;
    job_ctx_ = ctx;
    open_.store(true, std::memory_order_seq_cst);
    generation_.fetch_add(1, std::memory_order_seq_cst);
    if (sleepers_.load(std::memory_order_seq_cst) > 0) {
        std::lock_guard<std::mutex> lock(mu_);  // a sleeper is inside wait() once we hold this
        cv_.notify_all();
    }
    t_in_job = true;
    fn(ctx);
    t_in_job = false;
    open_.store(false, std::memory_order_seq_cst);
    unsigned spins = 0;
    while (active_.load(std::memory_order_seq_cst) != 0) {  // workers finishing their last chunk
        cpu_relax();
        if (++spins % 64 == 0) std::this_thread::yield();
    }
}

void ThreadPool::parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                              int64_t min_chunk) {
    if (n <= 0) return;
    const int64_t max_parts = n_threads_ == 1 ? 1 : int64_t(n_threads_) * kChunksPerThread;
    const int64_t parts = std::min<int64_t>(max_parts, std::max<int64_t>(1, n / std::max<int64_t>(1, min_chunk)));
    if (parts <= 1 || t_in_job) {
        fn(0, n, 0);
        return;
    }
    for_chunks(parts, [&](int64_t i) {
        const int64_t begin = n * i / parts, end = n * (i + 1) / parts;
        if (begin < end) fn(begin, end, int(i));
    });
}

void ThreadPool::worker(int) {
    t_in_job = true;  // nested parallel_for from a job runs serially
    uint64_t seen = 0;
    for (;;) {
        uint64_t g = generation_.load(std::memory_order_acquire);
        if (g == seen) {
            auto start = std::chrono::steady_clock::now();
            unsigned spins = 0;
            while ((g = generation_.load(std::memory_order_acquire)) == seen) {
                if (stop_.load(std::memory_order_relaxed)) return;
                cpu_relax();
                // On a shared machine a spinning worker may hold the CPU the caller (the only
                // one who can publish the next job) waits for: give it up now and then. A yield
                // with nothing else runnable returns at once, so the wake-up latency stays low.
                if (++spins % 64 == 0) std::this_thread::yield();
                if (spins % 256 == 0 && std::chrono::steady_clock::now() - start > kSpinFor) {
                    std::unique_lock<std::mutex> lock(mu_);
                    sleepers_.fetch_add(1, std::memory_order_seq_cst);
                    cv_.wait(lock, [&] { return stop_.load() || generation_.load(std::memory_order_seq_cst) != seen; });
                    sleepers_.fetch_sub(1, std::memory_order_relaxed);
                    if (stop_.load()) return;
                    start = std::chrono::steady_clock::now();
                }
            }
        }
        seen = g;
        active_.fetch_add(1, std::memory_order_seq_cst);
        if (open_.load(std::memory_order_seq_cst)) job_fn_(job_ctx_);
        active_.fetch_sub(1, std::memory_order_seq_cst);
    }
}

}  // namespace archlens
