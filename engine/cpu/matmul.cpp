// Matrix products: y = x·Wᵀ for every weight type, reading weights in place from the memory map.
// Activations are first converted to the weight type's dot-product type (as ggml-cpu does), so
// quantized products match llama.cpp's integer arithmetic.
//
// Work split (ref: ggml-cpu ggml_compute_forward_mul_mat, which also quantizes src1 once and
// hands out row chunks from an atomic counter):
//   - the weight rows are cut into chunks (~8 per thread) that the threads take dynamically, so
//     each weight byte is streamed from memory once per call, by one thread, and a thread that
//     the (shared) machine deschedules does not hold up the others;
//   - decode (T = 1): a chunk runs through quant::gemm_tile with one activation row: several
//     weight rows per pass share each activation load and keep independent FMA chains busy;
//   - prefill: tokens in blocks of kTokenBlock (their activations stay in L2; chunks are ordered
//     block-major so both threads share one block), and within a block gemm_tile's micro-tiles
//     of weight rows × activation rows.
// Each (row, token) result is exactly quant::vec_dot's, whatever the tiling or thread count.
#include <algorithm>
#include <cstring>
#include <vector>

#include "engine/core/error.h"
#include "engine/cpu/ops.h"
#include "engine/quant/quant.h"

namespace archlens::cpu {

namespace {

constexpr int64_t kTokenBlock = 64;  // activation rows per block in prefill
constexpr int64_t kRowAlign = 16;    // chunks start at multiples of this many rows
constexpr int64_t kChunksPerThread = 8;

void matmul_transposed(ThreadPool& pool, const Linear& w, const float* x, int64_t T, float* y) {
    // Storage [n_in][ld]: y[t][o] = Σ_i x[t][i] · W[i][o]. Threads split the output columns.
    const int64_t n_out = w.n_out, n_in = w.n_in;
    const size_t es = size_t(dtype_info(w.type).type_size);
    pool.parallel_for(n_out, [&](int64_t o0, int64_t o1, int) {
        const int64_t width = o1 - o0;
        std::vector<float> row(static_cast<size_t>(width));
        std::vector<float> acc(size_t(T * width), 0.f);
        for (int64_t i = 0; i < n_in; ++i) {
            quant::dequantize_row(w.type, w.data + size_t(i * w.ld + o0) * es, row.data(), width);
            for (int64_t t = 0; t < T; ++t) {
                const float xi = x[t * n_in + i];
                float* a = acc.data() + t * width;
                for (int64_t o = 0; o < width; ++o) a[o] += xi * row[size_t(o)];
            }
        }
        for (int64_t t = 0; t < T; ++t) std::memcpy(y + t * n_out + o0, acc.data() + t * width, size_t(width) * 4);
    }, 16);
}

}  // namespace

void matmul(ThreadPool& pool, const Linear& w, const float* x, int64_t T, float* y) {
    if (!w.present()) throw Error("internal: matmul with a missing weight");
    if (w.transposed) {
        matmul_transposed(pool, w, x, T, y);
    } else {
        const DType vt = quant::vec_dot_type(w.type);
        const int64_t n_out = w.n_out, n_in = w.n_in;
        const uint64_t w_row = w.row_stride ? w.row_stride : *dtype_row_bytes(w.type, uint64_t(n_in));
        const uint64_t a_row = quant::act_row_bytes(w.type, n_in);
        const int nt = pool.size();
        // Activations converted once to the weight's dot-product type (as ggml-cpu does; in the
        // layout the kernels read, see quant::quantize_acts), the rows split over the threads. The
        // buffer belongs to the calling thread, only grows, and starts on a cache line.
        thread_local std::vector<uint8_t> act;
        const uint8_t* a;
        if (vt == DType::F32) {
            a = reinterpret_cast<const uint8_t*>(x);
        } else {
            const size_t need = size_t(a_row * uint64_t(T)) + 64;
            if (act.size() < need) act.resize(need);
            uint8_t* dst = act.data() + (64 - reinterpret_cast<uintptr_t>(act.data()) % 64) % 64;
            auto quantize = [&](int i, int parts) {
                const int64_t t0 = T * i / parts, t1 = T * (i + 1) / parts;
                for (int64_t t = t0; t < t1; ++t) quant::quantize_acts(w.type, x + t * n_in, dst + uint64_t(t) * a_row, n_in);
            };
            const int qparts = int(std::min<int64_t>(nt, T));
            if (qparts > 1 && T * n_in >= 16384)
                pool.for_chunks(qparts, [&](int64_t i) { quantize(int(i), qparts); });
            else
                quantize(0, 1);
            a = dst;
        }
        // Row chunks: about kChunksPerThread per thread, at least kRowAlign rows, aligned.
        int64_t rows = (n_out + nt * kChunksPerThread - 1) / (nt * kChunksPerThread);
        rows = std::max<int64_t>(kRowAlign, (rows + kRowAlign - 1) / kRowAlign * kRowAlign);
        const int64_t n_row_chunks = (n_out + rows - 1) / rows;
        const int64_t n_tok_blocks = (T + kTokenBlock - 1) / kTokenBlock;
        pool.for_chunks(n_row_chunks * n_tok_blocks, [&](int64_t c) {
            const int64_t r0 = c % n_row_chunks * rows, r1 = std::min(n_out, r0 + rows);
            const int64_t t0 = c / n_row_chunks * kTokenBlock, nb = std::min(kTokenBlock, T - t0);
            quant::gemm_tile_acts(w.type, n_in, w.data + uint64_t(r0) * w_row, size_t(w_row), int(r1 - r0),
                             a + uint64_t(t0) * a_row, size_t(a_row), int(nb), y + t0 * n_out + r0, size_t(n_out));
        });
    }
    if (!w.bias.empty())
        for (int64_t t = 0; t < T; ++t)
            for (int64_t o = 0; o < w.n_out; ++o) y[t * w.n_out + o] += w.bias[size_t(o)];
}

}  // namespace archlens::cpu
