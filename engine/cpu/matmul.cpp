// Matrix products: y = x·Wᵀ for every weight type, reading weights in place from the memory map.
// Activations are first converted to the weight type's dot-product type (as ggml-cpu does), so
// quantized products match llama.cpp's integer arithmetic — once per call, in the layout the
// selected kernels read (quant::quantize_acts), and once for several weights of one input
// (matmul_many: q/k/v, gate/up, one dispatch for all their rows).
//
// Work split (ref: ggml-cpu ggml_compute_forward_mul_mat, which also quantizes src1 once and
// hands out row chunks from an atomic counter):
//   - the weight rows are cut into chunks (~8 per thread) that the threads take dynamically, so
//     each weight byte is streamed from memory once per call, by one thread, and a thread that
//     the (shared) machine deschedules does not hold up the others;
//   - decode (T = 1): a chunk runs through quant::gemm_tile_acts with one activation row: several
//     weight rows per pass share each activation load and keep independent FMA chains busy;
//   - prefill: tokens in blocks of kTokenBlock (their activations stay in L2; chunks are ordered
//     block-major so both threads share one block), and within a block the kernels' micro-tiles
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

namespace {

// Activations converted once to the weight type's dot-product type (as ggml-cpu does; in the layout
// the kernels read, see quant::quantize_acts), rows split over the threads. The buffer belongs to
// the calling thread, only grows, and starts on a cache line.
const uint8_t* convert_acts(ThreadPool& pool, DType wt, int64_t n_in, const float* x, int64_t T, uint64_t a_row) {
    if (quant::vec_dot_type(wt) == DType::F32) return reinterpret_cast<const uint8_t*>(x);
    thread_local std::vector<uint8_t> act;
    const size_t need = size_t(a_row * uint64_t(T)) + 64;
    if (act.size() < need) act.resize(need);
    uint8_t* dst = act.data() + (64 - reinterpret_cast<uintptr_t>(act.data()) % 64) % 64;
    auto quantize = [&](int i, int parts) {
        const int64_t t0 = T * i / parts, t1 = T * (i + 1) / parts;
        for (int64_t t = t0; t < t1; ++t) quant::quantize_acts(wt, x + t * n_in, dst + uint64_t(t) * a_row, n_in);
    };
    const int nt = pool.size();
    const int qparts = int(std::min<int64_t>(nt, T));
    if (qparts > 1 && T * n_in >= 16384)
        pool.for_chunks(qparts, [&](int64_t i) { quantize(int(i), qparts); });
    else
        quantize(0, 1);
    return dst;
}

// One weight's share of a dispatch: row chunks of about kChunksPerThread per thread, at least
// kRowAlign rows, aligned.
struct Part {
    const Linear* w;
    float* y;
    uint64_t w_row;
    int64_t rows, n_chunks;
};

Part part_of(const Linear& w, float* y, int nt) {
    Part p{&w, y, w.row_stride ? w.row_stride : *dtype_row_bytes(w.type, uint64_t(w.n_in)), 0, 0};
    int64_t rows = (w.n_out + nt * kChunksPerThread - 1) / (nt * kChunksPerThread);
    p.rows = std::max<int64_t>(kRowAlign, (rows + kRowAlign - 1) / kRowAlign * kRowAlign);
    p.n_chunks = (w.n_out + p.rows - 1) / p.rows;
    return p;
}

// All parts' row chunks against all token blocks, block-major (both threads share one token block
// in L2), each (row, token) result exactly quant::vec_dot's.
void run_parts(ThreadPool& pool, const Part* parts, int n_parts, const uint8_t* a, uint64_t a_row, int64_t T) {
    int64_t per_block = 0;
    for (int i = 0; i < n_parts; ++i) per_block += parts[i].n_chunks;
    const int64_t n_tok_blocks = (T + kTokenBlock - 1) / kTokenBlock;
    pool.for_chunks(per_block * n_tok_blocks, [&](int64_t c) {
        int64_t r = c % per_block;
        int i = 0;
        while (r >= parts[i].n_chunks) r -= parts[i++].n_chunks;
        const Part& p = parts[i];
        const Linear& w = *p.w;
        const int64_t r0 = r * p.rows, r1 = std::min(w.n_out, r0 + p.rows);
        const int64_t t0 = c / per_block * kTokenBlock, nb = std::min(kTokenBlock, T - t0);
        quant::gemm_tile_acts(w.type, w.n_in, w.data + uint64_t(r0) * p.w_row, size_t(p.w_row), int(r1 - r0),
                              a + uint64_t(t0) * a_row, size_t(a_row), int(nb), p.y + t0 * w.n_out + r0, size_t(w.n_out));
    });
}

void add_bias(const Linear& w, int64_t T, float* y) {
    if (!w.bias.empty())
        for (int64_t t = 0; t < T; ++t)
            for (int64_t o = 0; o < w.n_out; ++o) y[t * w.n_out + o] += w.bias[size_t(o)];
}

}  // namespace

void matmul(ThreadPool& pool, const Linear& w, const float* x, int64_t T, float* y) {
    if (!w.present()) throw Error("internal: matmul with a missing weight");
    if (w.transposed) {
        matmul_transposed(pool, w, x, T, y);
    } else {
        const uint64_t a_row = quant::act_row_bytes(w.type, w.n_in);
        const uint8_t* a = convert_acts(pool, w.type, w.n_in, x, T, a_row);
        const Part p = part_of(w, y, pool.size());
        run_parts(pool, &p, 1, a, a_row, T);
    }
    add_bias(w, T, y);
}

void matmul_many(ThreadPool& pool, std::initializer_list<MatmulOut> outs, const float* x, int64_t T) {
    constexpr int kMax = 4;
    bool shared = outs.size() > 1 && outs.size() <= size_t(kMax);
    const Linear& w0 = *outs.begin()->w;
    for (const MatmulOut& o : outs)
        shared = shared && o.w->present() && !o.w->transposed && o.w->n_in == w0.n_in && quant::same_acts(o.w->type, w0.type);
    if (!shared) {
        for (const MatmulOut& o : outs) matmul(pool, *o.w, x, T, o.y);
        return;
    }
    const uint64_t a_row = quant::act_row_bytes(w0.type, w0.n_in);
    const uint8_t* a = convert_acts(pool, w0.type, w0.n_in, x, T, a_row);
    Part parts[kMax];
    int n = 0;
    for (const MatmulOut& o : outs) parts[n++] = part_of(*o.w, o.y, pool.size());
    run_parts(pool, parts, n, a, a_row, T);
    for (const MatmulOut& o : outs) add_bias(*o.w, T, o.y);
}

}  // namespace archlens::cpu
