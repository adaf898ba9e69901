// The comparison view on a preset pair (Gemma 3 27B vs Mistral Small 3.1 24B), offscreen: aligned
// diagrams, the hyperparameter table's differences, KV curves, export.
#include <QImage>
#include <QTemporaryDir>
#include <QtTest>

#include "engine/core/error.h"
#include "engine/model/model.h"
#include "widgets/comparison_view.h"

using namespace archlens;

namespace {
std::optional<ModelSpec> fromCatalog(const QString& name) {
    try {
        return Model::load_spec("catalog:" + name.toStdString());
    } catch (const Error&) {
        return std::nullopt;
    }
}
const ComparisonRow* rowOf(const QList<ComparisonRow>& rows, const QString& key) {
    for (auto& r : rows)
        if (r.key == key) return &r;
    return nullptr;
}
}  // namespace

class TestComparison : public QObject {
    Q_OBJECT
private slots:
    void presetGemmaVsMistral() {
        ComparisonView v;
        v.resize(1600, 1000);
        v.setSpecLoader(fromCatalog);
        int idx = -1;
        const auto presets = comparisonPresets();
        for (int i = 0; i < presets.size(); ++i)
            if (presets[i].a == "gemma3-27b" && presets[i].b == "mistral-small-3.1-24b") idx = i;
        QVERIFY(idx >= 0);
        QVERIFY(v.loadPreset(idx));

        // Aligned block to block: the shared rows stand on the same line on both sides (a taller
        // box, e.g. one with tags, grows upwards into its row).
        const DiagramLayout& a = v.leftLayout();
        const DiagramLayout& b = v.rightLayout();
        for (const char* id : {"embed", "g0.attn", "g0.ffn", "final_norm", "lm_head"}) {
            QVERIFY2(a.box(id) && b.box(id), id);
            QCOMPARE(a.box(id)->rect.bottom(), b.box(id)->rect.bottom());
        }
        // What only Gemma has is marked; what both draw alike is not.
        QVERIFY(a.box("g0.attn_post_norm") && a.box("g0.attn_post_norm")->differs);
        QVERIFY(!b.box("g0.attn_post_norm"));
        QVERIFY(!a.box("g0.attn_pre_norm")->differs);
        QVERIFY(a.box("g0.attn")->differs);  // QK-norm tag on one side only

        QVERIFY(v.differingRows() > 5);
        QVERIFY(rowOf(v.rows(), "kv_heads")->differs);
        QCOMPARE(rowOf(v.rows(), "heads")->differs, false);
        QVERIFY(rowOf(v.rows(), "attention_scope")->a.contains("5 × sliding-window (1024) + 1 × global"));
        QCOMPARE(rowOf(v.rows(), "attention_scope")->b, QString("global"));

        // KV vs context: both curves plotted; Gemma's sliding layers stop growing at 1024 tokens,
        // so its cost per extra token at long context is only its 10 global layers'.
        QCOMPARE(v.plottedCurves(), 2);
        const auto ca = v.kvCurveData(0), cb = v.kvCurveData(1);
        QVERIFY(ca.size() > 4 && ca.size() == cb.size());
        const double slopeA = (ca.last().y() - ca[ca.size() - 2].y()) / (ca.last().x() - ca[ca.size() - 2].x());
        QCOMPARE(slopeA, 10.0 * 16 * 256 * 2);  // 10 global layers × 16 KV heads × (k+v 128+128) × bf16

        QTemporaryDir dir;
        QString err;
        QVERIFY2(v.exportTo(dir.filePath("cmp.png"), &err), qPrintable(err));
        QVERIFY(!QImage(dir.filePath("cmp.png")).isNull());
        QVERIFY2(v.exportTo(dir.filePath("cmp.svg"), &err), qPrintable(err));
        v.show();
        QVERIFY(!v.grab().isNull());
    }

    void everyPresetLoads() {
        ComparisonView v;
        v.setSpecLoader(fromCatalog);
        for (int i = 0; i < comparisonPresets().size(); ++i) {
            QVERIFY2(v.loadPreset(i), qPrintable(comparisonPresets()[i].label));
            QVERIFY(v.leftLayout().box("lm_head") && v.rightLayout().box("lm_head"));
            QCOMPARE(v.leftLayout().size.height(), v.rightLayout().size.height());
        }
    }

    void withoutLoaderAsksTheApp() {
        ComparisonView v;
        QVERIFY(!v.loadPreset(0));
        QString err;
        QVERIFY(!v.exportTo("x.png", &err));
    }
};

QTEST_MAIN(TestComparison)
#include "test_comparison.moc"
