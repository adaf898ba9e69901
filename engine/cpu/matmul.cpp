// Matrix products: y = x·Wᵀ for every weight type, reading weights in place from the memory map.
// Activations are first converted to the weight type's dot-product type (as ggml-cpu does), so
// quantized products match llama.cpp's integer arithmetic.
#include <cstring>
#include <vector>

#include "engine/core/error.h"
#include "engine/cpu/ops.h"
#include "engine/quant/quant.h"

namespace archlens::cpu {

static void matmul_transposed(ThreadPool& pool, const Linear& w, const float* x, int64_t T, float* y) {
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

void matmul(ThreadPool& pool, const Linear& w, const float* x, int64_t T, float* y) {
    if (!w.present()) throw Error("internal: matmul with a missing weight");
    if (w.transposed) {
        matmul_transposed(pool, w, x, T, y);
    } else {
        const DType vt = quant::vec_dot_type(w.type);
        const uint64_t w_row = *dtype_row_bytes(w.type, uint64_t(w.n_in));
        const uint64_t a_row = *dtype_row_bytes(vt, uint64_t(w.n_in));
        // Activations converted once to the weight's dot-product type (as ggml-cpu does).
        thread_local std::vector<uint8_t> act;
        const uint8_t* a;
        if (vt == DType::F32) {
            a = reinterpret_cast<const uint8_t*>(x);
        } else {
            act.resize(size_t(a_row * uint64_t(T)));
            for (int64_t t = 0; t < T; ++t) quant::quantize_row(vt, x + t * w.n_in, act.data() + uint64_t(t) * a_row, w.n_in);
            a = act.data();
        }
        const int64_t n_out = w.n_out, n_in = w.n_in;
        pool.parallel_for(n_out, [&](int64_t r0, int64_t r1, int) {
            for (int64_t r = r0; r < r1; ++r) {
                const uint8_t* wr = w.data + uint64_t(r) * w_row;
                for (int64_t t = 0; t < T; ++t) y[t * n_out + r] = quant::vec_dot(w.type, n_in, wr, a + uint64_t(t) * a_row);
            }
        }, 4);
    }
    if (!w.bias.empty())
        for (int64_t t = 0; t < T; ++t)
            for (int64_t o = 0; o < w.n_out; ++o) y[t * w.n_out + o] += w.bias[size_t(o)];
}

}  // namespace archlens::cpu
