// The CLI is a contract other checks call exactly: output files, JSON shapes, exit codes.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>

#include "tests/common/fixtures.h"

namespace {
QString ids_arg(const QJsonArray& a) {
    QStringList s;
    for (auto v : a) s << QString::number(v.toInt());
    return s.join(',');
}
}  // namespace

class TestCli : public QObject {
    Q_OBJECT
    QTemporaryDir tmp;
    QString dir(const char* c) { return testutil::fixtures_dir() + "/" + c; }
private slots:
    void logits_file_is_every_position() {
        REQUIRE_FIXTURE(dir("qwen3"));
        auto ref = testutil::read_json(dir("qwen3") + "/reference.json");
        const QString out = tmp.path() + "/l.f32";
        auto r = testutil::run_cli({"logits", dir("qwen3"), "--tokens", ids_arg(ref["prompt_ids"].toArray()), "--out", out});
        QCOMPARE(r.exit_code, 0);
        auto got = testutil::read_f32(out), want = testutil::read_f32(dir("qwen3") + "/logits.f32");
        QCOMPARE(got.size(), want.size());
        for (size_t i = 0; i < got.size(); ++i) QVERIFY(std::fabs(got[i] - want[i]) < 1e-4);
    }
    void generate_ids_is_the_greedy_continuation() {
        REQUIRE_FIXTURE(dir("deepseek2"));
        auto ref = testutil::read_json(dir("deepseek2") + "/reference.json");
        auto r = testutil::run_cli({"generate", dir("deepseek2") + "/model.gguf", "--tokens", ids_arg(ref["prompt_ids"].toArray()), "-n", "16",
                                    "--temp", "0", "--ids"});
        QCOMPARE(r.exit_code, 0);
        QCOMPARE(QString::fromUtf8(r.out).trimmed(), ids_arg(ref["greedy_ids"].toArray()).replace(',', ' '));
    }
    void generate_with_seed_is_deterministic() {
        auto a = testutil::run_cli({"generate", "demo:llama3", "--tokens", "1,2,3", "-n", "12", "--temp", "0.9", "--seed", "7", "--ids"});
        auto b = testutil::run_cli({"generate", "demo:llama3", "--tokens", "1,2,3", "-n", "12", "--temp", "0.9", "--seed", "7", "--ids"});
        QCOMPARE(a.exit_code, 0);
        QCOMPARE(a.out, b.out);
        QCOMPARE(QString::fromUtf8(a.out).trimmed().split(' ').size(), 12);
    }
    void attention_file_shape_and_mask() {
        REQUIRE_FIXTURE(dir("gemma3"));
        const QString out = tmp.path() + "/a.f32";
        auto r = testutil::run_cli({"attention", dir("gemma3") + "/model.gguf", "--tokens", "5,6,7,8,9,10,11,12,13,14,15,16", "--layer", "0", "--out", out});
        QCOMPARE(r.exit_code, 0);
        auto a = testutil::read_f32(out);
        const int H = 4, T = 12, W = 8;
        QCOMPARE(a.size(), size_t(H * T * T));
        for (int h = 0; h < H; ++h)
            for (int q = 0; q < T; ++q) {
                double sum = 0;
                for (int k = 0; k < T; ++k) {
                    const float p = a[size_t((h * T + q) * T + k)];
                    if (k > q || k <= q - W) QCOMPARE(p, 0.f);  // causal and outside the window
                    sum += p;
                }
                QVERIFY(std::fabs(sum - 1.0) < 1e-5);
            }
        auto one = testutil::run_cli({"attention", dir("gemma3") + "/model.gguf", "--tokens", "5,6,7", "--layer", "5", "--head", "2", "--out", out});
        QCOMPARE(one.exit_code, 0);
        QCOMPARE(testutil::read_f32(out).size(), size_t(1 * 3 * 3));
    }
    void info_json_fields() {
        REQUIRE_FIXTURE(dir("deepseek2"));
        auto r = testutil::run_cli({"info", dir("deepseek2") + "/model.gguf", "--json"});
        QCOMPARE(r.exit_code, 0);
        auto j = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(j["n_layers"].toInt(), 3);
        QVERIFY(j["params_total"].toDouble() > j["params_active"].toDouble());
        // MLA: (kv_lora_rank 32 + rope 8) values per layer, bf16
        QCOMPARE(j["kv_bytes_per_token"].toInt(), 3 * (32 + 8) * 2);
        QCOMPARE(j["layers"].toArray().size(), 3);
        QCOMPARE(j["layers"].toArray()[1].toObject()["ffn"].toString(), QString("moe"));
        QCOMPARE(j["layers"].toArray()[0].toObject()["attention"].toString(), QString("MLA"));
    }
    // bench --json: the fields the issue notes are read from, measured (not zero), on the CPU
    // without GPU fields; a GPU switch with a bad value, or a kernel profile of the CPU, is an error
    // naming it.
    void bench_json_fields() {
        auto r = testutil::run_cli({"bench", "demo:qwen3", "--prompt", "12", "--gen", "3", "--json"});
        QCOMPARE(r.exit_code, 0);
        auto j = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(j["n_prompt"].toInt(), 12);
        QCOMPARE(j["n_gen"].toInt(), 3);
        QVERIFY(j["prefill_tokens_per_s"].toDouble() > 0);
        QVERIFY(j["decode_tokens_per_s"].toDouble() > 0);
        QVERIFY(j["weight_bytes_per_token"].toDouble() > 0);
        QCOMPARE(j["backend"].toString(), QString("cpu"));
        QCOMPARE(j["decode_mode"].toString(), QString("cpu"));
        QVERIFY(!j.contains("gpu_tuning"));
        r = testutil::run_cli({"bench", "demo:qwen3", "--prompt", "4", "--gen", "1", "--gpu-fusion", "maybe"});
        QVERIFY(r.exit_code != 0);
        QVERIFY2(r.err.contains("--gpu-fusion") && r.err.contains("maybe"), r.err.constData());
        r = testutil::run_cli({"bench", "demo:qwen3", "--prompt", "4", "--gen", "1", "--gpu-pdl", "yes"});
        QVERIFY(r.exit_code != 0);
        QVERIFY2(r.err.contains("--gpu-pdl") && r.err.contains("yes"), r.err.constData());
        qputenv("ARCHLENS_CUDA_OFF", "pdl,warp");  // a misspelt switch is an error, wherever the model runs
        r = testutil::run_cli({"bench", "demo:qwen3", "--prompt", "4", "--gen", "1"});
        qunsetenv("ARCHLENS_CUDA_OFF");
        QVERIFY(r.exit_code != 0);
        QVERIFY2(r.err.contains("ARCHLENS_CUDA_OFF") && r.err.contains("'warp'"), r.err.constData());
        r = testutil::run_cli({"bench", "demo:qwen3", "--prompt", "4", "--gen", "1", "--gpu-quant-gemm", "fp8"});
        QVERIFY(r.exit_code != 0);
        QVERIFY2(r.err.contains("--gpu-quant-gemm") && r.err.contains("fp8"), r.err.constData());
        // the kernel profile is the CUDA backend's: asked of the CPU, an error rather than no data
        r = testutil::run_cli({"bench", "demo:qwen3", "--prompt", "4", "--gen", "1", "--backend", "cpu", "--gpu-profile"});
        QVERIFY(r.exit_code != 0);
        QVERIFY2(r.err.contains("--gpu-profile") && r.err.contains("CPU"), r.err.constData());
    }

    // devices: the CPU, and the GPU as the CUDA backend sees it — or, in plain words, why not.
    void devices_json_and_text() {
        auto r = testutil::run_cli({"devices", "--json"});
        QCOMPARE(r.exit_code, 0);
        const QJsonObject j = QJsonDocument::fromJson(r.out).object();
        QVERIFY(j["cpu"].toObject()["threads"].toInt() >= 1);
        const QJsonObject c = j["cuda"].toObject();
        QVERIFY(c.contains("built") && c.contains("available"));
#ifdef ARCHLENS_HAVE_CUDA
        QVERIFY(c["built"].toBool());
#else
        QVERIFY(!c["built"].toBool());
        QVERIFY(!c["available"].toBool());
#endif
        if (c["available"].toBool()) {
            QVERIFY(!c["name"].toString().isEmpty());
            QVERIFY(c["total_bytes"].toDouble() > 0 && c["free_bytes"].toDouble() <= c["total_bytes"].toDouble());
            QVERIFY(c["compute_capability"].toString().contains('.'));
        } else {
            QVERIFY2(c["reason"].toString().size() > 10, r.out.constData());
        }
        r = testutil::run_cli({"devices"});
        QCOMPARE(r.exit_code, 0);
        QVERIFY2(r.out.startsWith("CPU ") && r.out.contains("\nCUDA "), r.out.constData());
        if (!c["available"].toBool()) QVERIFY(r.out.contains(c["reason"].toString().toUtf8()));
    }
    void routing_json_shape() {
        REQUIRE_FIXTURE(dir("kimi-k2"));
        auto r = testutil::run_cli({"routing", dir("kimi-k2"), "--tokens", "1,2,3,4", "--json"});
        QCOMPARE(r.exit_code, 0);
        auto layers = QJsonDocument::fromJson(r.out).object()["layers"].toArray();
        QCOMPARE(layers.size(), 2);
        for (auto L : layers) {
            auto toks = L.toObject()["tokens"].toArray();
            QCOMPARE(toks.size(), 4);
            for (auto t : toks) {
                auto w = t.toObject()["weights"].toArray();
                QCOMPARE(t.toObject()["experts"].toArray().size(), 4);
                for (int k = 1; k < w.size(); ++k) QVERIFY(w[k - 1].toDouble() >= w[k].toDouble());
            }
        }
    }
    void errors_are_one_line_naming_the_file() {
        auto r = testutil::run_cli({"info", tmp.path() + "/missing.gguf"});
        QVERIFY(r.exit_code != 0);
        const QString err = QString::fromUtf8(r.err).trimmed();
        QVERIFY2(!err.contains('\n') && err.contains("missing.gguf") && err.contains("no such file"), qPrintable(err));
        auto bad = testutil::run_cli({"logits", "demo:llama3", "--tokens", "1,x,3", "--out", tmp.path() + "/x"});
        QVERIFY(bad.exit_code != 0);
        QVERIFY(QString::fromUtf8(bad.err).contains("'x'"));
    }
};

QTEST_GUILESS_MAIN(TestCli)
#include "test_cli.moc"
