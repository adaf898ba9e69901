// A small persistent pool for many short data-parallel jobs (a decode step runs ~200 matrix
// products of tens of microseconds each).
//
// Work is split into chunks that participants take from an atomic counter: the caller works too,
// and a worker that is descheduled (the machine is shared) leaves its chunks to the others
// instead of stalling the job. Workers spin on an atomic generation counter for a while after
// each job, then sleep on a condition variable. No allocation and no lock on the hot path.
#pragma once
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <thread>
#include <type_traits>
#include <vector>

namespace archlens {

class ThreadPool {
public:
    explicit ThreadPool(int n_threads);
    ~ThreadPool();
    int size() const { return n_threads_; }
    // Splits [0, n) into contiguous chunks of at least min_chunk (except when n < min_chunk),
    // up to kChunksPerThread per thread so that uneven work (causal attention rows) still
    // balances, and calls fn(begin, end, chunk_index) once per chunk, on any thread; returns when
    // all are done. chunk_index is unique per call but NOT a thread index (it may exceed size()).
    // Nested calls (from inside a job) run serially on the calling thread.
    void parallel_for(int64_t n, const std::function<void(int64_t, int64_t, int)>& fn,
                      int64_t min_chunk = 1);
    static constexpr int kChunksPerThread = 8;
    // fn(chunk) once for every chunk in [0, n_chunks), on the caller and the workers, taken in
    // increasing order; returns when all are done. The hot path of the matrix products.
    template <class F>
    void for_chunks(int64_t n_chunks, F&& fn) {
        if (n_chunks <= 0) return;
        if (n_chunks == 1 || n_threads_ == 1 || nested()) {
            for (int64_t c = 0; c < n_chunks; ++c) fn(c);
            return;
        }
        struct Ctx {
            std::remove_reference_t<F>* fn;
            std::atomic<int64_t> next{0};
            int64_t n;
        } ctx{&fn, {}, n_chunks};
        dispatch(
            [](void* p) {
                auto* c = static_cast<Ctx*>(p);
                for (int64_t i; (i = c->next.fetch_add(1, std::memory_order_relaxed)) < c->n;) (*c->fn)(i);
            },
            &ctx);
    }

private:
    using JobFn = void (*)(void*);
    static bool nested();
    void dispatch(JobFn fn, void* ctx);
    void worker(int index);
    int n_threads_;
    std::vector<std::thread> threads_;
    // the current job, published by the release of open_ and generation_
    JobFn job_fn_ = nullptr;
    void* job_ctx_ = nullptr;
    alignas(64) std::atomic<uint64_t> generation_{0};
    alignas(64) std::atomic<bool> open_{false};  // the job may still be joined
    alignas(64) std::atomic<int> active_{0};     // workers inside (or about to look at) the job
    std::atomic<int> sleepers_{0};
    std::atomic<bool> stop_{false};
    std::mutex mu_;
    std::condition_variable cv_;
};

int default_thread_count();

}  // namespace archlens
