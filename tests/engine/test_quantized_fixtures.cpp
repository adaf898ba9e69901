// Conformance of the quantized fixture variants (made by llama-quantize) against llama.cpp's own
// logits for them: argmax at every prompt position, logits within the README's tolerance, greedy
// continuation, and batched prefill vs token-by-token decode.
//
// The engine converts activations to the weight type's vec_dot_type before each product and sums
// in ggml-cpu's order, so the tight 1e-4 bound applies (measured: Q8_0 and Q4_K_M bit-identical
// or ~1e-6) except for BF16. There the products are bit-identical too (llama: positions 0-25,
// qwen3moe: 0-15 give diff 0), but bf16 activations round at 2^-9 relative: an f32 op outside the
// products (attention softmax/exp, whose order differs from ggml's) moves one value across a bf16
// rounding boundary, and the later positions then differ by ~1e-2 (measured max 9.5e-3 llama,
// 1.23e-2 qwen3moe; 1.50e-2 with SIMD attention dots, a different flip). The README's numpy check
// sees the same for llama BF16 (9.46e-3, above its own 9e-3 bound). So BF16 allows a few such
// flips (3e-2 max, 2e-3 mean; a wrong kernel moves the mean by far more) and keeps argmax and
// greedy exact.
// qwen3moe Q4_K_M keeps the README's looser bound (0.4 max, 0.05 mean) for its q5_0/q5_1
// fallbacks although it measures bit-identical here.
#include <QtTest>
#include <cmath>

#include "engine/model/model.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "tests/common/fixtures.h"

using namespace archlens;

namespace {

struct VariantCase {
    const char* model;    // fixture case
    const char* variant;  // key of reference.json "variants"
    double max_tol;       // bound on the max abs logit diff
    double mean_tol;      // bound on the mean abs logit diff
};

const VariantCase kCases[] = {
    {"llama", "Q8_0", 1e-4, 1e-4},   {"llama", "Q4_K_M", 1e-4, 1e-4},   {"llama", "BF16", 3e-2, 2e-3},
    {"qwen3moe", "Q8_0", 1e-4, 1e-4}, {"qwen3moe", "Q4_K_M", 0.4, 0.05}, {"qwen3moe", "BF16", 3e-2, 2e-3},
};

std::vector<int> json_ids(const QJsonValue& v) {
    std::vector<int> ids;
    for (auto x : v.toArray()) ids.push_back(x.toInt());
    return ids;
}

// Gap between the two largest logits (how close a position is to a tie).
float top2_gap(std::span<const float> l) {
    float a = -INFINITY, b = -INFINITY;
    for (float v : l) {
        if (v > a) {
            b = a;
            a = v;
        } else if (v > b) {
            b = v;
        }
    }
    return a - b;
}

}  // namespace

class TestQuantizedFixtures : public QObject {
    Q_OBJECT
private slots:
    void logits_data();
    void logits();
    void greedy_data() { logits_data(); }
    void greedy();
    void decode_matches_prefill_data() { logits_data(); }
    void decode_matches_prefill();
};

void TestQuantizedFixtures::logits_data() {
    QTest::addColumn<QString>("dir");
    QTest::addColumn<QString>("variant");
    QTest::addColumn<double>("max_tol");
    QTest::addColumn<double>("mean_tol");
    for (auto& c : kCases)
        QTest::newRow(qPrintable(QString("%1-%2").arg(c.model, c.variant)))
            << testutil::fixtures_dir() + "/" + c.model << QString(c.variant) << c.max_tol << c.mean_tol;
}

void TestQuantizedFixtures::logits() {
    QFETCH(QString, dir);
    QFETCH(QString, variant);
    QFETCH(double, max_tol);
    QFETCH(double, mean_tol);
    auto ref = testutil::read_json(dir + "/reference.json");
    auto v = ref["variants"].toObject()[variant].toObject();
    const QString gguf = dir + "/" + v["gguf"].toString("model-" + variant + ".gguf");
    REQUIRE_FIXTURE(gguf);
    auto ids = json_ids(ref["prompt_ids"]);
    const int V = ref["n_vocab"].toInt();
    auto expected = testutil::read_f32(dir + "/" + v["logits"].toString("logits-" + variant + ".f32"));
    QCOMPARE(expected.size(), ids.size() * size_t(V));

    auto model = Model::load(gguf.toStdString());
    Session s(*model);
    auto got = s.forward(ids, true);
    QCOMPARE(got.size(), expected.size());
    double max_diff = 0, sum_diff = 0;
    int argmax_ok = 0;
    const int T = int(ids.size());
    for (int t = 0; t < T; ++t) {
        std::span<const float> g(got.data() + size_t(t) * V, size_t(V)), e(expected.data() + size_t(t) * V, size_t(V));
        for (int i = 0; i < V; ++i) {
            const double d = std::fabs(double(g[size_t(i)]) - double(e[size_t(i)]));
            max_diff = std::max(max_diff, d);
            sum_diff += d;
        }
        argmax_ok += argmax(g) == argmax(e);
    }
    const double mean_diff = sum_diff / double(got.size());
    qInfo("%s %s: max abs logit diff %.3g, mean %.3g, argmax %d/%d", qPrintable(dir.section('/', -1)), qPrintable(variant),
          max_diff, mean_diff, argmax_ok, T);
    QVERIFY2(max_diff <= max_tol, qPrintable(QString("max diff %1 > %2").arg(max_diff).arg(max_tol)));
    QVERIFY2(mean_diff <= mean_tol, qPrintable(QString("mean diff %1 > %2").arg(mean_diff).arg(mean_tol)));
    QCOMPARE(argmax_ok, T);
}

// 16 greedy tokens after the prompt, decoded one at a time, against the variant's greedy_ids
// (llama.cpp's continuation for that very file). A continuation may only leave the reference at a
// near-tie of our own logits; then the rest is not comparable and the check stops there.
void TestQuantizedFixtures::greedy() {
    QFETCH(QString, dir);
    QFETCH(QString, variant);
    auto ref = testutil::read_json(dir + "/reference.json");
    auto v = ref["variants"].toObject()[variant].toObject();
    const QString gguf = dir + "/" + v["gguf"].toString("model-" + variant + ".gguf");
    REQUIRE_FIXTURE(gguf);
    auto ids = json_ids(ref["prompt_ids"]);
    auto want = json_ids(v["greedy_ids"]);
    QVERIFY(!want.empty());
    auto model = Model::load(gguf.toStdString());
    Session s(*model);
    auto logits = s.forward(ids);
    for (size_t i = 0; i < want.size(); ++i) {
        const int next = argmax(logits);
        if (next != want[i]) {
            const float gap = top2_gap(logits);
            qInfo("greedy leaves the reference at step %zu (got %d, want %d), top-2 gap %.3g", i, next, want[i], gap);
            QVERIFY2(gap < 1e-3f, qPrintable(QString("greedy step %1: got %2, want %3 (gap %4 is no near-tie)")
                                                 .arg(i).arg(next).arg(want[i]).arg(gap)));
            return;
        }
        logits = s.forward(std::span<const int>(&want[i], 1));
    }
}

// Token-by-token decode through the KV cache gives the same logits as the batched prompt: the
// matmul tiles (one activation row vs several) must not change the arithmetic.
void TestQuantizedFixtures::decode_matches_prefill() {
    QFETCH(QString, dir);
    QFETCH(QString, variant);
    auto ref = testutil::read_json(dir + "/reference.json");
    auto v = ref["variants"].toObject()[variant].toObject();
    const QString gguf = dir + "/" + v["gguf"].toString("model-" + variant + ".gguf");
    REQUIRE_FIXTURE(gguf);
    auto ids = json_ids(ref["prompt_ids"]);
    auto model = Model::load(gguf.toStdString());
    const int V = model->spec().vocab;
    Session full(*model);
    auto all = full.forward(ids, true);
    Session step(*model);
    double max_diff = 0;
    for (size_t t = 0; t < ids.size(); ++t) {
        auto l = step.forward(std::span<const int>(&ids[t], 1));
        for (int i = 0; i < V; ++i) max_diff = std::max(max_diff, double(std::fabs(l[size_t(i)] - all[t * size_t(V) + size_t(i)])));
    }
    qInfo("token-by-token vs batched: max diff %.3g", max_diff);
    QVERIFY2(max_diff < 1e-4, qPrintable(QString("token-by-token vs batched: %1").arg(max_diff)));
}

QTEST_APPLESS_MAIN(TestQuantizedFixtures)
#include "test_quantized_fixtures.moc"
