// cpu::matmul, the product the forward pass calls, on Qwen3-0.6B shapes (hidden 1024, FFN 3072).
//   decode/TYPE/ROWSxCOLS/threads:N        one activation row (a decode step); bytes_per_second
//                                          counts weight bytes streamed. Iterations cycle through
//                                          copies of the matrix (> 96 MiB together, above L3), so
//                                          weights come from memory as in the forward pass.
//   prefill/TYPE/ROWSxCOLS/T:512/threads:N 512 activation rows; items_per_second counts
//                                          multiply-adds.
// Activation conversion (quantization to vec_dot_type) is included, as in the forward pass.
#include <benchmark/benchmark.h>

#include <cstdlib>
#include <memory>
#include <random>
#include <vector>

#include "engine/core/dtype.h"
#include "engine/core/thread_pool.h"
#include "engine/cpu/ops.h"
#include "engine/quant/quant.h"

using namespace archlens;

namespace {

// Several copies of one weight matrix, together larger than L3 (32 MiB), so that decode reads
// weights from memory as the forward pass does.
struct Weights {
    DType type;
    int64_t rows, cols;
    size_t row_bytes;
    std::vector<std::vector<uint8_t>> copies;
};

const Weights& weights(DType t, int64_t rows, int64_t cols) {
    static std::vector<std::unique_ptr<Weights>> cache;
    for (auto& w : cache)
        if (w->type == t && w->rows == rows && w->cols == cols) return *w;
    auto w = std::make_unique<Weights>();
    w->type = t;
    w->rows = rows;
    w->cols = cols;
    w->row_bytes = *dtype_row_bytes(t, uint64_t(cols));
    std::mt19937 rng(7);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> row(static_cast<size_t>(cols));
    std::vector<uint8_t> m(w->row_bytes * size_t(rows));
    for (int64_t r = 0; r < rows; ++r) {
        for (auto& v : row) v = nd(rng);
        quant::quantize_row_ref(t, row.data(), m.data() + size_t(r) * w->row_bytes, cols);
    }
    const size_t total = m.size();
    // ARCHLENS_BENCH_HOT=1: one copy (cache-resident weights; separates compute from memory)
    const bool hot = std::getenv("ARCHLENS_BENCH_HOT") != nullptr;
    const int n_copies = hot ? 1 : int(std::max<size_t>(1, (size_t(96) << 20) / total + 1));
    for (int i = 0; i < n_copies; ++i) w->copies.push_back(m);
    cache.push_back(std::move(w));
    return *cache.back();
}

Linear linear_of(const Weights& w, int copy) {
    Linear l;
    l.type = w.type;
    l.n_in = w.cols;
    l.n_out = w.rows;
    l.data = w.copies[size_t(copy) % w.copies.size()].data();
    return l;
}

ThreadPool& pool_of(int threads) {
    static std::vector<std::unique_ptr<ThreadPool>> pools(64);
    auto& p = pools[size_t(threads)];
    if (!p) p = std::make_unique<ThreadPool>(threads);
    return *p;
}

void run(benchmark::State& st, DType t, int64_t rows, int64_t cols, int64_t T, int threads) {
    const Weights& w = weights(t, rows, cols);
    ThreadPool& pool = pool_of(threads);
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> x(size_t(T * cols)), y(size_t(T * rows));
    for (auto& v : x) v = nd(rng);
    int copy = 0;
    for (auto _ : st) {
        cpu::matmul(pool, linear_of(w, copy++), x.data(), T, y.data());
        benchmark::DoNotOptimize(y.data());
    }
    if (T == 1)
        st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(w.row_bytes) * rows);
    else
        st.SetItemsProcessed(int64_t(st.iterations()) * rows * cols * T);
    st.SetLabel(quant::simd_name());
}

const DType kTypes[] = {DType::Q8_0, DType::Q4_K, DType::Q6_K, DType::BF16};

void register_all() {
    for (DType t : kTypes) {
        for (int threads : {1, 2}) {
            // FFN up/gate (3072×1024) and down (1024×3072) at decode
            for (auto [rows, cols] : {std::pair<int64_t, int64_t>{3072, 1024}, {1024, 3072}}) {
                benchmark::RegisterBenchmark(
                    ("decode/" + std::string(dtype_name(t)) + "/" + std::to_string(rows) + "x" + std::to_string(cols) + "/threads:" + std::to_string(threads)).c_str(),
                    [=](benchmark::State& st) { run(st, t, rows, cols, 1, threads); })
                    ->UseRealTime()
                    ->Unit(benchmark::kMicrosecond);
            }
            // prefill: 3072×1024 against 512 tokens
            benchmark::RegisterBenchmark(
                ("prefill/" + std::string(dtype_name(t)) + "/3072x1024/T:512/threads:" + std::to_string(threads)).c_str(),
                [=](benchmark::State& st) { run(st, t, 3072, 1024, 512, threads); })
                ->UseRealTime()
                ->Unit(benchmark::kMillisecond);
        }
    }
}

}  // namespace

int main(int argc, char** argv) {
    register_all();
    benchmark::Initialize(&argc, argv);
    benchmark::RunSpecifiedBenchmarks();
    benchmark::Shutdown();
    return 0;
}
