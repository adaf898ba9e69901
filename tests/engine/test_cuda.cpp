// CUDA operations against the CPU reference. Skips, visibly, where the build has no CUDA or the
// machine has no device.
#include <QtTest>
#include <cmath>
#include <random>

#include "engine/cpu/ops.h"
#ifdef ARCHLENS_HAVE_CUDA
#include "engine/cuda/cuda_ops.h"
#endif

class TestCuda : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() {
#ifndef ARCHLENS_HAVE_CUDA
        QSKIP("CUDA SKIPPED: this build has no CUDA backend (nvcc not found at configure time)");
#else
        auto d = archlens::cuda::probe_device();
        if (!d.available) QSKIP(qPrintable("CUDA SKIPPED: " + QString::fromStdString(d.reason)));
        qInfo("CUDA device: %s (sm_%d%d), %zu MiB free", d.name.c_str(), d.cc_major, d.cc_minor, d.free_bytes >> 20);
#endif
    }
#ifdef ARCHLENS_HAVE_CUDA
    void rms_norm_matches_cpu() {
        std::mt19937 g(1);
        std::normal_distribution<float> n;
        const int rows = 7, dim = 1000;
        std::vector<float> x(rows * dim), w(dim), a(rows * dim), b(rows * dim);
        for (auto& v : x) v = n(g);
        for (auto& v : w) v = 1 + 0.1f * n(g);
        archlens::cuda::rms_norm(x.data(), w.data(), rows, dim, 1e-6f, a.data());
        for (int r = 0; r < rows; ++r) archlens::cpu::rms_norm(x.data() + r * dim, w.data(), dim, 1e-6f, b.data() + r * dim);
        for (size_t i = 0; i < a.size(); ++i) QVERIFY(std::fabs(a[i] - b[i]) < 1e-5f);
    }
    void softmax_matches_cpu() {
        std::mt19937 g(2);
        std::normal_distribution<float> n;
        const int rows = 5, dim = 777;
        std::vector<float> a(rows * dim), b;
        for (auto& v : a) v = 3 * n(g);
        b = a;
        archlens::cuda::softmax_rows(a.data(), rows, dim);
        for (int r = 0; r < rows; ++r) archlens::cpu::softmax(b.data() + r * dim, dim);
        for (size_t i = 0; i < a.size(); ++i) QVERIFY(std::fabs(a[i] - b[i]) < 1e-6f);
    }
    void matmul_matches_cpu() {
        std::mt19937 g(3);
        std::normal_distribution<float> n;
        const int n_out = 300, n_in = 256, T = 9;
        std::vector<float> w(n_out * n_in), x(T * n_in), a(T * n_out), b(T * n_out);
        for (auto& v : w) v = n(g) / 16;
        for (auto& v : x) v = n(g);
        archlens::cuda::matmul_f32(w.data(), n_out, n_in, x.data(), T, a.data());
        for (int t = 0; t < T; ++t)
            for (int o = 0; o < n_out; ++o) {
                double s = 0;
                for (int i = 0; i < n_in; ++i) s += double(w[o * n_in + i]) * x[t * n_in + i];
                b[t * n_out + o] = float(s);
            }
        double num = 0, den = 0;  // NMSE, as llama.cpp's backend-ops tests
        for (size_t i = 0; i < a.size(); ++i) {
            num += (a[i] - b[i]) * (a[i] - b[i]);
            den += b[i] * b[i];
        }
        QVERIFY(num / den < 1e-7);
    }
#endif
};

QTEST_APPLESS_MAIN(TestCuda)
#include "test_cuda.moc"
