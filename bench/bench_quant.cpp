// Dot-product throughput per weight type and instruction set, single thread.
//   matvec:  3072 rows × 1024 (a Qwen3-0.6B FFN up/gate matrix) against one activation row —
//            the decode shape; bytes_per_second counts weight bytes streamed.
//   rows8:   the same matrix against 8 activation rows through vec_dot_rows (prefill shape);
//            items_per_second counts multiply-adds.
#include <benchmark/benchmark.h>

#include <cstring>
#include <random>
#include <vector>

#include "engine/quant/kernels.h"
#include "engine/quant/quant.h"

using namespace archlens;
using namespace archlens::quant;

namespace {

constexpr int kCols = 1024;
constexpr int kRows = 3072;
constexpr int kActs = 8;

struct Matrix {
    DType type;
    size_t row_bytes;
    std::vector<uint8_t> w;
    size_t act_bytes;
    std::vector<uint8_t> acts;  // kActs rows of vec_dot_type
};

const Matrix& matrix(DType t) {
    static std::vector<Matrix*> cache(64, nullptr);
    Matrix*& m = cache[uint32_t(t)];
    if (m) return *m;
    m = new Matrix{t, *dtype_row_bytes(t, kCols), {}, *dtype_row_bytes(vec_dot_type(t), kCols), {}};
    std::mt19937 rng(42);
    std::normal_distribution<float> nd(0.f, 1.f);
    std::vector<float> row(kCols);
    m->w.resize(m->row_bytes * kRows);
    for (int r = 0; r < kRows; ++r) {
        for (float& x : row) x = nd(rng) * 0.03f;
        quantize_row(t, row.data(), m->w.data() + r * m->row_bytes, kCols);
    }
    m->acts.resize(m->act_bytes * kActs);
    for (int r = 0; r < kActs; ++r) {
        for (float& x : row) x = nd(rng);
        quantize_row(vec_dot_type(t), row.data(), m->acts.data() + r * m->act_bytes, kCols);
    }
    return *m;
}

void bm_matvec(benchmark::State& st, DType t, Isa isa) {
    if (!isa_available(isa)) {
        st.SkipWithError("instruction set not available");
        return;
    }
    const Matrix& m = matrix(t);
    std::vector<float> out(kRows);
    for (auto _ : st) {
        for (int r = 0; r < kRows; ++r)
            out[size_t(r)] = vec_dot_isa(isa, t, kCols, m.w.data() + r * m.row_bytes, m.acts.data());
        benchmark::DoNotOptimize(out.data());
    }
    st.SetBytesProcessed(int64_t(st.iterations()) * int64_t(m.w.size()));
    st.counters["ns_per_row"] = benchmark::Counter(double(st.iterations()) * kRows,
                                                   benchmark::Counter::kIsRate |
                                                       benchmark::Counter::kInvert);
}

void bm_rows8(benchmark::State& st, DType t, Isa isa) {
    if (!isa_available(isa)) {
        st.SkipWithError("instruction set not available");
        return;
    }
    const Matrix& m = matrix(t);
    std::vector<float> out(size_t(kRows) * kActs);
    for (auto _ : st) {
        for (int r = 0; r < kRows; ++r)
            vec_dot_rows_isa(isa, t, kCols, m.w.data() + r * m.row_bytes, m.acts.data(),
                             m.act_bytes, kActs, out.data() + r, kRows);
        benchmark::DoNotOptimize(out.data());
    }
    st.SetItemsProcessed(int64_t(st.iterations()) * kRows * kCols * kActs);
}

const DType kTypes[] = {DType::F32,  DType::F16,  DType::BF16, DType::Q8_0, DType::Q4_0,
                        DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q2_K, DType::Q3_K,
                        DType::Q4_K, DType::Q5_K, DType::Q6_K};

int register_all() {
    for (Isa isa : {Isa::Scalar, Isa::Avx2, Isa::Avx512}) {
        for (DType t : kTypes) {
            const std::string name = std::string(dtype_name(t)) + "/" + isa_name(isa);
            benchmark::RegisterBenchmark(("matvec/" + name).c_str(), bm_matvec, t, isa)
                ->Unit(benchmark::kMicrosecond);
            if (isa != Isa::Scalar)
                benchmark::RegisterBenchmark(("rows8/" + name).c_str(), bm_rows8, t, isa)
                    ->Unit(benchmark::kMicrosecond);
        }
    }
    return 0;
}
const int registered = register_all();

}  // namespace

BENCHMARK_MAIN();
