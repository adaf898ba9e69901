// Quantized types: hand-built blocks against values worked out from the format definitions,
// quantize→dequantize error bounds, every SIMD tier against the scalar reference, and the
// llama.cpp-made fixture files (Q8_0, Q4_K_M) against their F32 original.
#include <QtTest>
#include <cmath>
#include <cstring>
#include <fstream>
#include <functional>
#include <map>
#include <random>
#include <string>
#include <vector>

#include "engine/core/error.h"
#include "engine/quant/blocks.h"
#include "engine/quant/kernels.h"
#include "engine/quant/quant.h"
#include "engine/quant/quant_ref.h"
#include "tests/common/fixtures.h"

using namespace archlens;
using namespace archlens::quant;

namespace {

constexpr uint16_t kHalf = 0x3800;     // fp16 0.5
constexpr uint16_t kQuarter = 0x3400;  // fp16 0.25
constexpr uint16_t kOne = 0x3C00;      // fp16 1.0
constexpr uint16_t kMinusOne = 0xBC00; // fp16 -1.0

std::vector<float> dequant(DType t, const void* blocks, int n) {
    std::vector<float> y(static_cast<size_t>(n), -12345.f);
    dequantize_row(t, blocks, y.data(), n);
    return y;
}

void expect_values(const std::vector<float>& got, const std::vector<float>& want, const char* what) {
    QCOMPARE(got.size(), want.size());
    for (size_t i = 0; i < got.size(); ++i) {
        if (got[i] != want[i])
            QFAIL(qPrintable(QStringLiteral("%1: element %2 = %3, expected %4")
                                 .arg(what).arg(i).arg(got[i]).arg(want[i])));
    }
}

std::vector<float> random_row(std::mt19937& rng, int n, float scale = 1.f) {
    std::normal_distribution<float> nd(0.f, scale);
    std::vector<float> v(static_cast<size_t>(n));
    for (auto& x : v) x = nd(rng);
    return v;
}

std::vector<uint8_t> quantized(DType t, const std::vector<float>& x) {
    std::vector<uint8_t> q(*dtype_row_bytes(t, x.size()));
    quantize_row(t, x.data(), q.data(), int64_t(x.size()));
    return q;
}

const DType kWeightTypes[] = {DType::Q4_0, DType::Q4_1, DType::Q5_0, DType::Q5_1, DType::Q8_0,
                              DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K,
                              DType::F32,  DType::F16,  DType::BF16};

// ---- minimal GGUF v3 reader (only what the fixture check needs) ----------------------------
struct GgufTensor {
    uint32_t type = 0;
    std::vector<uint64_t> dims;
    uint64_t offset = 0;
};
struct Gguf {
    std::vector<uint8_t> bytes;
    std::map<std::string, GgufTensor> tensors;
    uint64_t data_start = 0;
    const uint8_t* data(const GgufTensor& t) const { return bytes.data() + data_start + t.offset; }
};

bool read_gguf(const QString& path, Gguf& g) {
    std::ifstream f(path.toStdString(), std::ios::binary);
    if (!f) return false;
    g.bytes.assign(std::istreambuf_iterator<char>(f), {});
    size_t pos = 0;
    auto need = [&](size_t n) {
        if (pos + n > g.bytes.size()) throw std::runtime_error("truncated gguf");
    };
    auto u32 = [&] { need(4); uint32_t v; std::memcpy(&v, &g.bytes[pos], 4); pos += 4; return v; };
    auto u64 = [&] { need(8); uint64_t v; std::memcpy(&v, &g.bytes[pos], 8); pos += 8; return v; };
    auto str = [&] { uint64_t n = u64(); need(n); std::string s(reinterpret_cast<char*>(&g.bytes[pos]), n); pos += n; return s; };
    if (u32() != 0x46554747) return false;  // "GGUF"
    if (u32() != 3) return false;
    const uint64_t n_tensors = u64(), n_kv = u64();
    uint64_t alignment = 32;
    const size_t scalar_size[] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};
    std::function<void(uint32_t)> skip = [&](uint32_t type) {
        if (type == 8) { str(); return; }
        if (type == 9) {
            const uint32_t et = u32();
            const uint64_t n = u64();
            for (uint64_t i = 0; i < n; ++i) skip(et);
            return;
        }
        need(scalar_size[type]);
        pos += scalar_size[type];
    };
    for (uint64_t i = 0; i < n_kv; ++i) {
        const std::string key = str();
        const uint32_t type = u32();
        if (key == "general.alignment" && type == 4) alignment = u32();
        else skip(type);
    }
    for (uint64_t i = 0; i < n_tensors; ++i) {
        const std::string name = str();
        GgufTensor t;
        const uint32_t nd = u32();
        for (uint32_t d = 0; d < nd; ++d) t.dims.push_back(u64());
        t.type = u32();
        t.offset = u64();
        g.tensors[name] = t;
    }
    g.data_start = (pos + alignment - 1) / alignment * alignment;
    return true;
}

}  // namespace

class TestQuant : public QObject {
    Q_OBJECT

private slots:
    void vec_dot_types_are_ggmls() {
        QCOMPARE(vec_dot_type(DType::Q4_0), DType::Q8_0);
        QCOMPARE(vec_dot_type(DType::Q4_1), DType::Q8_1);
        QCOMPARE(vec_dot_type(DType::Q5_0), DType::Q8_0);
        QCOMPARE(vec_dot_type(DType::Q5_1), DType::Q8_1);
        QCOMPARE(vec_dot_type(DType::Q8_0), DType::Q8_0);
        for (DType t : {DType::Q2_K, DType::Q3_K, DType::Q4_K, DType::Q5_K, DType::Q6_K})
            QCOMPARE(vec_dot_type(t), DType::Q8_K);
        QCOMPARE(vec_dot_type(DType::BF16), DType::BF16);
        QCOMPARE(vec_dot_type(DType::F16), DType::F16);
        QCOMPARE(vec_dot_type(DType::F32), DType::F32);
        for (DType t : kWeightTypes) QVERIFY(supported(t));
        QVERIFY(supported(DType::Q8_K));
        qInfo("dot products run on: %s", simd_name());
    }

    // ---- dequantization of hand-built blocks --------------------------------------------

    void dequant_q4_0() {
        BlockQ4_0 b{kHalf, {}};
        for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | ((15 - j) << 4));
        std::vector<float> want(32);
        for (int j = 0; j < 16; ++j) {
            want[j] = (j - 8) * 0.5f;         // low nibble j
            want[j + 16] = (7 - j) * 0.5f;    // high nibble 15-j, minus 8
        }
        expect_values(dequant(DType::Q4_0, &b, 32), want, "q4_0");
    }

    void dequant_q4_1() {
        BlockQ4_1 b{kHalf, kMinusOne, {}};
        for (int j = 0; j < 16; ++j) b.qs[j] = uint8_t(j | ((15 - j) << 4));
        std::vector<float> want(32);
        for (int j = 0; j < 16; ++j) {
            want[j] = j * 0.5f - 1.f;
            want[j + 16] = (15 - j) * 0.5f - 1.f;
        }
        expect_values(dequant(DType::Q4_1, &b, 32), want, "q4_1");
    }

    void dequant_q5_0_and_q5_1() {
        // qh = 0xAAAA5555: elements 0..15 get bit 4 when even, elements 16..31 when odd
        const uint8_t qh[4] = {0x55, 0x55, 0xAA, 0xAA};
        BlockQ5_0 b0{kHalf, {}, {}};
        BlockQ5_1 b1{kHalf, kMinusOne, {}, {}};
        std::memcpy(b0.qh, qh, 4);
        std::memcpy(b1.qh, qh, 4);
        for (int j = 0; j < 16; ++j) b0.qs[j] = b1.qs[j] = uint8_t(j | ((15 - j) << 4));
        std::vector<float> want0(32), want1(32);
        for (int j = 0; j < 16; ++j) {
            const int lo = j + (j % 2 == 0 ? 16 : 0);         // element j
            const int hi = (15 - j) + (j % 2 == 1 ? 16 : 0);  // element j + 16
            want0[j] = (lo - 16) * 0.5f;
            want0[j + 16] = (hi - 16) * 0.5f;
            want1[j] = lo * 0.5f - 1.f;
            want1[j + 16] = hi * 0.5f - 1.f;
        }
        expect_values(dequant(DType::Q5_0, &b0, 32), want0, "q5_0");
        expect_values(dequant(DType::Q5_1, &b1, 32), want1, "q5_1");
    }

    void dequant_q8_0() {
        BlockQ8_0 b{kHalf, {}};
        for (int j = 0; j < 32; ++j) b.qs[j] = int8_t(j * 8 - 128);
        std::vector<float> want(32);
        for (int j = 0; j < 32; ++j) want[j] = (j * 8 - 128) * 0.5f;
        expect_values(dequant(DType::Q8_0, &b, 32), want, "q8_0");
    }

    void dequant_q2_k() {
        BlockQ2_K b{};
        b.d = kOne;
        b.dmin = kHalf;
        for (int g = 0; g < 16; ++g) b.scales[g] = uint8_t(((g & 7) + 1) | ((g & 3) << 4));
        // element 128h + 32s + l sits in bits 2s..2s+1 of qs[32h + l]; give it level (l+s+h)%4
        for (int h = 0; h < 2; ++h)
            for (int l = 0; l < 32; ++l) {
                int byte = 0;
                for (int s = 0; s < 4; ++s) byte |= ((l + s + h) % 4) << (2 * s);
                b.qs[32 * h + l] = uint8_t(byte);
            }
        std::vector<float> want(256);
        for (int e = 0; e < 256; ++e) {
            const int h = e / 128, s = (e % 128) / 32, l = e % 32, g = e / 16;
            const int level = (l + s + h) % 4;
            want[e] = 1.0f * ((g & 7) + 1) * level - 0.5f * (g & 3);
        }
        expect_values(dequant(DType::Q2_K, &b, 256), want, "q2_k");
    }

    void dequant_q3_k() {
        BlockQ3_K b{};
        b.d = kHalf;
        int six[16];
        for (int g = 0; g < 16; ++g) six[g] = 32 + (g - 8) * 2;  // effective scale (g-8)*2
        // 6-bit scale g: low nibble in byte g (g<8, low) / byte g-8 (high nibble);
        // top 2 bits in byte 8 + g%4 at bit 2*(g/4)
        for (int g = 0; g < 16; ++g) {
            if (g < 8) b.scales[g] |= uint8_t(six[g] & 0xF);
            else b.scales[g - 8] |= uint8_t((six[g] & 0xF) << 4);
            b.scales[8 + g % 4] |= uint8_t((six[g] >> 4) << (2 * (g / 4)));
        }
        for (int h = 0; h < 2; ++h)
            for (int l = 0; l < 32; ++l) {
                int byte = 0;
                for (int s = 0; s < 4; ++s) byte |= ((l + s + h) % 4) << (2 * s);
                b.qs[32 * h + l] = uint8_t(byte);
            }
        for (int l = 0; l < 32; ++l) b.hmask[l] = uint8_t(l * 37);
        std::vector<float> want(256);
        for (int e = 0; e < 256; ++e) {
            const int h = e / 128, s = (e % 128) / 32, l = e % 32, g = e / 16;
            const int low = (l + s + h) % 4;
            const bool high = (uint8_t(l * 37) >> (4 * h + s)) & 1;  // hmask bit 4h+s of byte l
            want[e] = 0.5f * float(six[g] - 32) * float(low - (high ? 0 : 4));
        }
        expect_values(dequant(DType::Q3_K, &b, 256), want, "q3_k");
    }

    void dequant_q4_k_and_q5_k() {
        int sc[8], mn[8];
        uint8_t packed[12] = {};
        for (int j = 0; j < 8; ++j) {
            sc[j] = 10 + 7 * j;  // up to 59: exercises the upper 2 bits
            mn[j] = 63 - 5 * j;
        }
        // j < 4: bytes j / j+4 hold 6-bit scale / min; j >= 4: low nibbles in byte j+4, top 2
        // bits in bits 6..7 of bytes j-4 (scale) and j (min)
        for (int j = 0; j < 8; ++j) {
            if (j < 4) {
                packed[j] |= uint8_t(sc[j]);
                packed[j + 4] |= uint8_t(mn[j]);
            } else {
                packed[j + 4] = uint8_t((sc[j] & 0xF) | ((mn[j] & 0xF) << 4));
                packed[j - 4] |= uint8_t((sc[j] >> 4) << 6);
                packed[j] |= uint8_t((mn[j] >> 4) << 6);
            }
        }
        BlockQ4_K b4{};
        BlockQ5_K b5{};
        b4.d = b5.d = kHalf;
        b4.dmin = b5.dmin = kQuarter;
        std::memcpy(b4.scales, packed, 12);
        std::memcpy(b5.scales, packed, 12);
        for (int k = 0; k < 128; ++k) b4.qs[k] = b5.qs[k] = uint8_t(k * 7);
        for (int l = 0; l < 32; ++l) b5.qh[l] = uint8_t(l * 53);
        std::vector<float> want4(256), want5(256);
        for (int e = 0; e < 256; ++e) {
            const int c = e / 64, l = e % 32;
            const bool high_nibble = (e % 64) >= 32;
            const uint8_t byte = uint8_t((32 * c + l) * 7);
            const int nib = high_nibble ? byte >> 4 : byte & 0xF;
            const int bit5 = (uint8_t(l * 53) >> (2 * c + (high_nibble ? 1 : 0))) & 1;
            const int g = e / 32;
            want4[e] = 0.5f * float(sc[g]) * float(nib) - 0.25f * float(mn[g]);
            want5[e] = 0.5f * float(sc[g]) * float(nib + 16 * bit5) - 0.25f * float(mn[g]);
        }
        expect_values(dequant(DType::Q4_K, &b4, 256), want4, "q4_k");
        expect_values(dequant(DType::Q5_K, &b5, 256), want5, "q5_k");
    }

    void dequant_q6_k() {
        BlockQ6_K b{};
        b.d = kHalf;
        for (int g = 0; g < 16; ++g) b.scales[g] = int8_t((g - 8) * 3);
        for (int k = 0; k < 128; ++k) b.ql[k] = uint8_t(k * 11);
        for (int k = 0; k < 64; ++k) b.qh[k] = uint8_t(k * 29 + 3);
        std::vector<float> want(256);
        for (int e = 0; e < 256; ++e) {
            // within a half of 128: quarter q (32 elements each) takes the low nibble of
            // ql[64h + 32(q%2) + l] for q < 2, the high nibble for q >= 2, and bits 2q..2q+1 of
            // qh[32h + l] as bits 4..5
            const int h = e / 128, q = (e % 128) / 32, l = e % 32;
            const uint8_t lb = b.ql[64 * h + 32 * (q % 2) + l];
            const int low = q < 2 ? (lb & 0xF) : (lb >> 4);
            const int high = (b.qh[32 * h + l] >> (2 * q)) & 3;
            const int g = e / 16;
            want[e] = 0.5f * float((g - 8) * 3) * float((low | (high << 4)) - 32);
        }
        expect_values(dequant(DType::Q6_K, &b, 256), want, "q6_k");
    }

    void dequant_q8_k() {
        BlockQ8_K b{};
        b.d = 0.25f;
        for (int j = 0; j < 256; ++j) b.qs[j] = int8_t(j - 128);
        std::vector<float> want(256);
        for (int j = 0; j < 256; ++j) want[j] = 0.25f * float(j - 128);
        expect_values(dequant(DType::Q8_K, &b, 256), want, "q8_k");
    }

    // ---- activation quantizers ----------------------------------------------------------

    void q8_0_activation_rounds_half_to_even() {
        // amax 127 → multiplier 127/127 = 1 exactly, so x.5 values are true ties
        float x[32] = {127.f, 2.5f, 3.5f, -2.5f, -3.5f, 0.5f, 1.5f, -126.6f};
        BlockQ8_0 b;
        quantize_row(DType::Q8_0, x, &b, 32);
        QCOMPARE(b.d, uint16_t(kOne));
        const int want[8] = {127, 2, 4, -2, -4, 0, 2, -127};
        for (int j = 0; j < 8; ++j) QCOMPARE(int(b.qs[j]), want[j]);
        for (int j = 8; j < 32; ++j) QCOMPARE(int(b.qs[j]), 0);
        // the weight (reference) quantizer rounds half away from zero instead
        BlockQ8_0 r;
        quantize_row_ref(DType::Q8_0, x, &r, 32);
        QCOMPARE(int(r.qs[1]), 3);
        QCOMPARE(int(r.qs[3]), -3);
    }

    void q8_1_activation_has_sum() {
        float x[32];
        for (int j = 0; j < 32; ++j) x[j] = float(j - 15);  // amax 16
        BlockQ8_1 b;
        quantize_row(DType::Q8_1, x, &b, 32);
        int sum = 0;
        for (int j = 0; j < 32; ++j) sum += b.qs[j];
        QCOMPARE(b.s, f32_to_fp16((16.f / 127.f) * float(sum)));
        QCOMPARE(int(b.qs[31]), 127);
    }

    void q8_k_uses_signed_max() {
        std::vector<float> x(256, 0.f);
        x[0] = -2.f;  // largest magnitude, negative: iscale = -127/-2 = 63.5
        x[1] = 1.f;   // 63.5 → 64 (half to even)
        x[2] = 0.5f;  // 31.75 → 32
        x[17] = -1.f; // group 1
        BlockQ8_K b;
        quantize_row(DType::Q8_K, x.data(), &b, 256);
        QCOMPARE(int(b.qs[0]), -127);
        QCOMPARE(int(b.qs[1]), 64);
        QCOMPARE(int(b.qs[2]), 32);
        QCOMPARE(int(b.qs[17]), -64);
        QCOMPARE(b.d, 1.f / 63.5f);
        QCOMPARE(int(b.bsums[0]), -127 + 64 + 32);
        QCOMPARE(int(b.bsums[1]), -64);
        for (int g = 2; g < 16; ++g) QCOMPARE(int(b.bsums[g]), 0);
    }

    // ---- quantize → dequantize error ------------------------------------------------------

    void round_trip_error_bounds() {
        std::mt19937 rng(1234);
        const int n = 4096;
        const auto x = random_row(rng, n);
        double ss = 0;
        for (float v : x) ss += double(v) * v;
        const double rms = std::sqrt(ss / n);
        // relative RMS error bounds (round-to-nearest quantizers on Gaussian data)
        const std::pair<DType, double> bounds[] = {
            {DType::Q4_0, 0.12}, {DType::Q4_1, 0.10}, {DType::Q5_0, 0.06}, {DType::Q5_1, 0.05},
            {DType::Q8_0, 0.006}, {DType::Q2_K, 0.40}, {DType::Q3_K, 0.22}, {DType::Q4_K, 0.10},
            {DType::Q5_K, 0.05}, {DType::Q6_K, 0.025}, {DType::Q8_K, 0.009}, {DType::F16, 5e-4},
            {DType::BF16, 4e-3}};
        for (auto [t, bound] : bounds) {
            const auto q = quantized(t, x);
            const auto y = dequant(t, q.data(), n);
            double es = 0;
            for (int i = 0; i < n; ++i) es += double(y[i] - x[i]) * (y[i] - x[i]);
            const double rel = std::sqrt(es / n) / rms;
            qInfo("%-5s relative RMS error %.5f (bound %.3f)", dtype_name(t), rel, bound);
            QVERIFY2(rel < bound, dtype_name(t));
        }
    }

    void quantized_dot_close_to_f32_dot() {
        std::mt19937 rng(99);
        const int n = 2048;
        const auto w = random_row(rng, n), a = random_row(rng, n);
        double exact = 0, mag = 0;
        for (int i = 0; i < n; ++i) exact += double(w[i]) * a[i], mag += std::fabs(double(w[i]) * a[i]);
        for (DType t : kWeightTypes) {
            const auto qw = quantized(t, w);
            const auto qa = quantized(vec_dot_type(t), a);
            const double got = vec_dot(t, n, qw.data(), qa.data());
            const double tol = (t == DType::Q2_K || t == DType::Q3_K) ? 0.1 : 0.05;
            QVERIFY2(std::fabs(got - exact) < tol * mag, dtype_name(t));
        }
    }

    // ---- SIMD tiers against the scalar reference ------------------------------------------

    void simd_matches_scalar_reference() {
        std::mt19937 rng(7);
        int tiers = 0;
        for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
            if (!isa_available(isa)) {
                qInfo("tier %s not available on this CPU", isa_name(isa));
                continue;
            }
            ++tiers;
            for (DType t : kWeightTypes) {
                const int bs = dtype_info(t).block_size;
                for (int n : {bs == 1 ? 1003 : bs * 3, 4096, 8192}) {
                    const DType at = vec_dot_type(t);
                    // rows with a wide spread of block scales
                    std::vector<float> w = random_row(rng, n), a = random_row(rng, n, 3.f);
                    for (int i = 0; i < n; ++i) w[i] *= float(1 + (i / 256) % 5);
                    const auto qw = quantized(t, w);
                    const int n_acts = 7;
                    const size_t astride = *dtype_row_bytes(at, n);
                    std::vector<uint8_t> acts(astride * n_acts);
                    std::vector<std::vector<float>> adeq;
                    for (int r = 0; r < n_acts; ++r) {
                        auto ar = random_row(rng, n, 0.5f + r);
                        quantize_row(at, ar.data(), acts.data() + r * astride, n);
                        adeq.push_back(dequant(at, acts.data() + r * astride, n));
                    }
                    const auto wdeq = dequant(t, qw.data(), n);
                    std::vector<float> rows_out(n_acts * 2, -1.f);
                    vec_dot_rows_isa(isa, t, n, qw.data(), acts.data(), astride, n_acts,
                                     rows_out.data(), 2);
                    for (int r = 0; r < n_acts; ++r) {
                        const void* ar = acts.data() + r * astride;
                        const float ref = ref::vec_dot(t, n, qw.data(), ar);
                        const float got = vec_dot_isa(isa, t, n, qw.data(), ar);
                        double mag = 0;
                        for (int i = 0; i < n; ++i) mag += std::fabs(double(wdeq[i]) * adeq[r][i]);
                        const double tol = 1e-6 * mag + 1e-30;
                        if (std::fabs(double(got) - ref) > tol)
                            QFAIL(qPrintable(QStringLiteral("%1 %2 n=%3 row %4: simd %5 vs ref %6 (tol %7)")
                                                 .arg(isa_name(isa), dtype_name(t)).arg(n).arg(r)
                                                 .arg(double(got), 0, 'g', 9).arg(double(ref), 0, 'g', 9).arg(tol)));
                        // batched rows give exactly the single-row result
                        QVERIFY2(rows_out[size_t(r) * 2] == got,
                                 qPrintable(QStringLiteral("%1 %2: vec_dot_rows differs from vec_dot")
                                                .arg(isa_name(isa), dtype_name(t))));
                    }
                }
            }
        }
        qInfo("%d SIMD tier(s) checked against the scalar reference", tiers);
    }

    // The matmul's own activation path (quantize_acts + gemm_tile_acts, which may use a layout
    // private to the tier) gives exactly vec_dot's results on standard vec_dot_type rows.
    void matmul_activation_path_equals_vec_dot() {
        std::mt19937 rng(11);
        int checked = 0;
        for (Isa isa : {Isa::Avx2, Isa::Avx512}) {
            if (!isa_available(isa)) continue;
            for (DType t : kWeightTypes)
            for (int na : {1, 9}) {  // decode and prefill tiles
                const int n = 768, nw = 5;
                const DType at = vec_dot_type(t);
                const size_t wrow = *dtype_row_bytes(t, n), srow = *dtype_row_bytes(at, n);
                const size_t arow = act_row_bytes_isa(isa, t, n);
                QVERIFY2(arow % 32 == 0 || arow == srow, dtype_name(t));
                std::vector<uint8_t> w(wrow * nw), std_acts(srow * na), buf(arow * na + 64);
                uint8_t* acts = buf.data() + (64 - reinterpret_cast<uintptr_t>(buf.data()) % 64) % 64;
                for (int r = 0; r < nw; ++r) {
                    auto v = random_row(rng, n);
                    quantize_row_ref(t, v.data(), w.data() + r * wrow, n);
                }
                for (int a = 0; a < na; ++a) {
                    auto v = random_row(rng, n, 1.f + a);
                    if (a == 3) std::fill(v.begin() + 256, v.begin() + 512, 0.f);  // an all-zero block
                    quantize_row(at, v.data(), std_acts.data() + a * srow, n);
                    quantize_acts_isa(isa, t, v.data(), acts + a * arow, n);
                }
                std::vector<float> got(size_t(na * nw), -1.f);
                gemm_tile_acts_isa(isa, t, n, w.data(), wrow, nw, acts, arow, na, got.data(), nw);
                for (int a = 0; a < na; ++a)
                    for (int r = 0; r < nw; ++r) {
                        const float want = vec_dot_isa(isa, t, n, w.data() + r * wrow, std_acts.data() + a * srow);
                        if (got[size_t(a * nw + r)] != want)
                            QFAIL(qPrintable(QStringLiteral("%1 %2 row %3 act %4: %5 vs vec_dot %6")
                                                 .arg(isa_name(isa), dtype_name(t)).arg(r).arg(a)
                                                 .arg(double(got[size_t(a * nw + r)]), 0, 'g', 9).arg(double(want), 0, 'g', 9)));
                    }
                ++checked;
            }
        }
        if (checked == 0) QSKIP("no SIMD tier on this CPU: the matmul uses the scalar reference");
    }

    void public_dot_uses_best_tier() {
        std::mt19937 rng(3);
        const int n = 1024;
        const auto w = quantized(DType::Q4_K, random_row(rng, n));
        const auto a = quantized(DType::Q8_K, random_row(rng, n));
        QCOMPARE(vec_dot(DType::Q4_K, n, w.data(), a.data()),
                 vec_dot_isa(best_isa(), DType::Q4_K, n, w.data(), a.data()));
        float out[3];
        const size_t stride = a.size();
        std::vector<uint8_t> acts(stride * 3);
        for (int r = 0; r < 3; ++r) std::memcpy(acts.data() + r * stride, a.data(), stride);
        vec_dot_rows(DType::Q4_K, n, w.data(), acts.data(), stride, 3, out, 1);
        for (float o : out) QCOMPARE(o, vec_dot(DType::Q4_K, n, w.data(), a.data()));
    }

    void bad_row_length_throws() {
        float x[40] = {};
        uint8_t buf[64];
        QVERIFY_THROWS_EXCEPTION(Error, quantize_row(DType::Q8_0, x, buf, 40));
        QVERIFY_THROWS_EXCEPTION(Error, vec_dot(DType::Q4_K, 40, buf, buf));
    }

    // ---- llama.cpp's own quantized files --------------------------------------------------

    void fixture_tensors_match_f32_original() {
        const QString dir = testutil::fixtures_dir() + "/llama";
        REQUIRE_FIXTURE(dir + "/model.gguf");
        Gguf f32;
        QVERIFY(read_gguf(dir + "/model.gguf", f32));
        for (const char* variant : {"model-Q8_0.gguf", "model-Q4_K_M.gguf"}) {
            REQUIRE_FIXTURE(dir + "/" + variant);
            Gguf q;
            QVERIFY(read_gguf(dir + "/" + variant, q));
            std::map<std::string, int> per_type;
            int64_t blocks = 0, same_blocks = 0;
            for (const auto& [name, t] : q.tensors) {
                const auto info = dtype_info(t.type);
                QVERIFY2(info.has_value(), name.c_str());
                if (!info->quantized) continue;
                const DType type = info->type;
                QVERIFY2(supported(type), name.c_str());
                const auto it = f32.tensors.find(name);
                QVERIFY2(it != f32.tensors.end() && it->second.type == 0, name.c_str());
                const int64_t cols = int64_t(t.dims[0]);
                int64_t rows = 1;
                for (size_t d = 1; d < t.dims.size(); ++d) rows *= int64_t(t.dims[d]);
                const size_t row_bytes = *dtype_row_bytes(type, uint64_t(cols));
                const float* ref = reinterpret_cast<const float*>(f32.data(it->second));
                std::vector<float> y(static_cast<size_t>(cols));
                std::vector<uint8_t> requant(row_bytes);
                double es = 0, ss = 0;
                for (int64_t r = 0; r < rows; ++r) {
                    const uint8_t* src = q.data(t) + size_t(r) * row_bytes;
                    dequantize_row(type, src, y.data(), cols);
                    for (int64_t c = 0; c < cols; ++c) {
                        const double e = double(y[size_t(c)]) - ref[r * cols + c];
                        es += e * e;
                        ss += double(ref[r * cols + c]) * ref[r * cols + c];
                    }
                    // our reference quantizer against llama-quantize's bytes, block by block
                    quantize_row_ref(type, ref + r * cols, requant.data(), cols);
                    const int bsz = info->type_size;
                    for (size_t b = 0; b < row_bytes; b += size_t(bsz)) {
                        ++blocks;
                        same_blocks += std::memcmp(requant.data() + b, src + b, size_t(bsz)) == 0;
                    }
                }
                const double rel = std::sqrt(es / ss);
                const double bound = type == DType::Q8_0 ? 0.006 : type == DType::Q6_K ? 0.03 : 0.12;
                QVERIFY2(rel < bound, qPrintable(QStringLiteral("%1 (%2): relative RMS error %3")
                                                     .arg(name.c_str(), dtype_name(type)).arg(rel)));
                ++per_type[dtype_name(type)];
            }
            QString summary;
            for (const auto& [k, v] : per_type) summary += QStringLiteral("%1×%2 ").arg(v).arg(k.c_str());
            const double same = double(same_blocks) / double(blocks);
            qInfo("%s: %s; requantized blocks identical to llama-quantize: %lld/%lld (%.4f%%)", variant,
                  qPrintable(summary), (long long)same_blocks, (long long)blocks, 100 * same);
            QVERIFY(!per_type.empty());
            QVERIFY2(same > 0.99, "reference quantizer drifted from ggml's");
        }
    }
};

QTEST_APPLESS_MAIN(TestQuant)
#include "test_quant.moc"
