// The built-in catalog against the officially published parameter counts, and the KV-cache
// arithmetic against each architecture's own rule (MLA latent, sliding windows, GQA groups).
//
// Each resources/catalog/NAME.json carries "_published": the figure as its publisher wrote it
// ("671B", "1.23B"), where it comes from, and — when the figure covers more than the language
// model — what it includes that the spec does not describe ("excluded": a vision encoder counted
// from vision_config). Where a publisher rounds coarsely, the entry widens the 1% tolerance itself
// and says why ("tolerance_total"/"tolerance_active" + "why"); the test prints every deviation.
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QRegularExpression>
#include <QtTest>
#include <cmath>

#include "engine/core/error.h"
#include "engine/model/catalog.h"
#include "engine/model/model.h"
#include "engine/model/spec_parse.h"

using namespace archlens;

namespace {

// "671B" -> 6.71e11, "124M" -> 1.24e8, "1T" -> 1e12.
double parse_figure(const QString& s) {
    static const QRegularExpression re(QStringLiteral("^([0-9]+(?:\\.[0-9]+)?)([KMBT])$"));
    auto m = re.match(s.trimmed());
    if (!m.hasMatch()) return -1;
    double v = m.captured(1).toDouble();
    switch (m.captured(2).at(0).toLatin1()) {
        case 'K': return v * 1e3;
        case 'M': return v * 1e6;
        case 'B': return v * 1e9;
        case 'T': return v * 1e12;
    }
    return -1;
}

QJsonObject published(const std::string& name) {
    auto text = catalog_config(name);
    return QJsonDocument::fromJson(QByteArray::fromStdString(*text)).object().value("_published").toObject();
}

double excluded(const QJsonObject& pub) {
    double sum = 0;
    for (auto v : pub.value("excluded").toObject()) sum += v.toDouble();
    return sum;
}

const QStringList kNames = {"deepseek-v3", "deepseek-r1", "kimi-k2", "qwen3-0.6b", "qwen3-1.7b", "qwen3-4b", "qwen3-8b",
                            "qwen3-14b", "qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b", "olmo2-1b", "olmo2-7b",
                            "olmo2-13b", "olmo2-32b", "gemma3-1b", "gemma3-4b", "gemma3-12b", "gemma3-27b",
                            "gemma3n-e2b", "gemma3n-e4b", "mistral-small-3.1-24b", "llama4-scout", "llama4-maverick",
                            "llama3.2-1b", "llama3.2-3b", "llama3.1-8b", "llama3.1-70b", "llama3.1-405b", "gpt2",
                            "gpt2-medium", "gpt2-large", "gpt2-xl"};

}  // namespace

class TestCatalog : public QObject {
    Q_OBJECT
private slots:
    void allNamesPresent() {
        auto names = catalog_names();
        QCOMPARE(int(names.size()), int(kNames.size()));
        for (auto& n : kNames) QVERIFY2(catalog_config(n.toStdString()).has_value(), qPrintable(n));
        for (auto& n : names) {
            auto pub = published(n);
            QVERIFY2(!pub.value("source").toString().isEmpty(), n.c_str());
            QVERIFY2(parse_figure(pub.value("total").toString()) > 0, n.c_str());
        }
    }

    void paramsMatchPublished_data() {
        QTest::addColumn<QString>("name");
        for (auto& n : kNames) QTest::newRow(qPrintable(n)) << n;
    }
    void paramsMatchPublished() {
        QFETCH(QString, name);
        const std::string n = name.toStdString();
        const QJsonObject pub = published(n);
        if (pub.value("not_compared").toBool()) {
            // Either the engine reads this architecture (then report what it counts) or it says
            // plainly that it does not: never a crash or a vague error.
            try {
                const ParamCounts pc = count_params(Model::load_spec(kCatalogPrefix + n));
                qInfo("%-22s total %9.3fB, active %8.3fB (published %s / %s, not comparable)", n.c_str(), pc.total / 1e9,
                      pc.active / 1e9, qPrintable(pub.value("total").toString()), qPrintable(pub.value("active").toString()));
            } catch (const Error& e) {
                QVERIFY2(QString(e.what()).contains("unsupported architecture"), e.what());
            }
            QSKIP(qPrintable(pub.value("why").toString()));
        }
        const ModelSpec s = Model::load_spec(kCatalogPrefix + n);
        const ParamCounts pc = count_params(s);
        const double ex = excluded(pub);
        const double want_total = parse_figure(pub.value("total").toString()) - ex;
        // A dense model's published "active" is its total, vision encoder included; an MoE's active
        // figure is the language model's own (Llama 4's 17B leaves the vision encoder out).
        const bool same_figure = pub.value("active").toString() == pub.value("total").toString();
        const double want_active = parse_figure(pub.value("active").toString()) - (same_figure ? ex : 0.0);
        // DeepSeek-style figures count the output head but not the input embedding (a row lookup).
        const double ours_active = double(pc.active) - (pub.value("active_excludes_input_embedding").toBool()
                                                            ? double(uint64_t(s.vocab) * uint64_t(s.dim))
                                                            : 0.0);
        const double tol_total = pub.value("tolerance_total").toDouble(0.01);
        const double tol_active = pub.value("tolerance_active").toDouble(0.01);
        const double d_total = double(pc.total) / want_total - 1;
        const double d_active = ours_active / want_active - 1;
        qInfo("%-22s total %9.3fB vs %-8s%s %+6.2f%% | active %8.3fB vs %-6s %+6.2f%%", n.c_str(), pc.total / 1e9,
              qPrintable(pub.value("total").toString()), ex > 0 ? qPrintable(QString(" -%1B").arg(ex / 1e9, 0, 'f', 3)) : "",
              100 * d_total, ours_active / 1e9, qPrintable(pub.value("active").toString()), 100 * d_active);
        QVERIFY2(std::abs(d_total) <= tol_total, qPrintable(QString("total off by %1%").arg(100 * d_total)));
        QVERIFY2(std::abs(d_active) <= tol_active, qPrintable(QString("active off by %1%").arg(100 * d_active)));
        if (tol_total > 0.01 || tol_active > 0.01) QVERIFY2(!pub.value("why").toString().isEmpty(), "a widened tolerance needs a reason");
    }

    // KV bytes follow the architecture, not a generic 2 x layers x dim.
    // Gemma 3n: Google's "effective" size leaves out the per-layer and token embedding tables
    // (1.91B for E2B, ~4B for E4B); the raw 5B / 8B add audio and vision encoders we do not model.
    void gemma3nEffectiveParams() {
        const std::pair<const char*, double> want[] = {{"gemma3n-e2b", 1.91e9}, {"gemma3n-e4b", 3.98e9}};
        for (auto& [name, effective] : want) {
            archlens::ModelSpec s = archlens::Model::load_spec(std::string("catalog:") + name);
            auto pc = archlens::count_params(s);
            QVERIFY2(std::fabs(double(pc.active) / effective - 1.0) < 0.01, name);
            QVERIFY(pc.per_layer_embedding == uint64_t(s.ple_vocab) * uint64_t(s.n_layers) * uint64_t(s.ple_dim));
            QVERIFY(pc.total > pc.active + pc.per_layer_embedding);
        }
    }

    void kvFollowsArchitecture() {
        // DeepSeek-V3: MLA caches the 512-d latent + 64-d shared RoPE key per layer.
        auto ds = Model::load_spec("catalog:deepseek-v3");
        QVERIFY(ds.has_mla());
        QCOMPARE(kv_values_per_token(ds.layers[0].attn), uint64_t(512 + 64));
        QCOMPARE(kv_bytes_at(ds, 1, 2.0), uint64_t(61 * 576 * 2));
        // Llama 3.1 8B: GQA, 8 KV heads of 128 for 32 query heads -> 128 KiB per token in bf16.
        auto l8 = Model::load_spec("catalog:llama3.1-8b");
        QCOMPARE(l8.layers[0].attn.n_heads / l8.layers[0].attn.n_kv_heads, 4);
        QCOMPARE(kv_bytes_at(l8, 1, 2.0), uint64_t(32 * 8 * 256 * 2));
        // Gemma 3 27B: 52 sliding layers stop growing at 1024 tokens, 10 global layers keep growing.
        auto g = Model::load_spec("catalog:gemma3-27b");
        int sliding = 0;
        for (auto& l : g.layers) sliding += l.attn.scope == AttnScope::Sliding && l.attn.window == 1024;
        QCOMPARE(sliding, 52);
        const uint64_t per_layer = 16 * 128 * 2;  // values per token per layer
        QCOMPARE(kv_bytes_at(g, 32768, 2.0), uint64_t((52 * 1024 + 10 * 32768) * per_layer * 2));
        // Llama 4 Scout: chunked layers hold at most one 8192-token chunk; NoPE layers are global.
        auto sc = Model::load_spec("catalog:llama4-scout");
        int chunked = 0, nope = 0;
        for (auto& l : sc.layers) {
            chunked += l.attn.scope == AttnScope::Chunked && l.attn.window == 8192;
            nope += !l.attn.rope.enabled && l.attn.scope == AttnScope::Global;
        }
        QCOMPARE(chunked, 36);
        QCOMPARE(nope, 12);
    }

    void configOnlyModel() {
        auto m = Model::load("catalog:qwen3-0.6b");
        QCOMPARE(int(m->format()), int(ModelFormat::ConfigOnly));
        QVERIFY(m->tensors().empty());
        QCOMPARE(m->spec().n_layers, 28);
        try {
            Model::load("catalog:no-such-model");
            QFAIL("expected an error");
        } catch (const Error& e) {
            QVERIFY(QString(e.what()).contains("deepseek-v3"));  // lists what exists
        }
    }
};

QTEST_GUILESS_MAIN(TestCatalog)
#include "test_catalog.moc"
