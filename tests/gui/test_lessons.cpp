// The guided lessons: every lesson opens, loads its models, lights its diagram block and opens its
// live view fed by its demo run through the engine; each control's readout equals what the engine
// derives from the edited spec (recomputed here independently from the catalog config); the
// induction lesson shows the induction stripe and the routing lesson sends every digit to the
// digit expert. ARCHLENS_LESSON_SHOTS=DIR also saves screens of three lessons for the docs.
#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QSlider>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>

#include "app/gui/lessons_model.h"
#include "app/gui/lessons_window.h"
#include "engine/model/catalog.h"
#include "engine/model/spec_parse.h"
#include "engine/model/spec_summary.h"
#include "engine/teaching_models.h"
#include "widgets/attention_view.h"
#include "widgets/diagram_view.h"
#include "widgets/kv_cache_view.h"
#include "widgets/next_token_view.h"
#include "widgets/routing_view.h"

using namespace archlens;
using namespace lessons;

namespace {

// The catalog config with keys replaced, written here with nlohmann-free string surgery through
// QJsonDocument (independent of lessons_model's helper), then parsed by the engine.
ModelSpec specWith(const char* name, const QJsonObject& edits) {
    QJsonObject root = QJsonDocument::fromJson(QByteArray::fromStdString(require_catalog_config(name))).object();
    const bool wrapped = root.contains(QStringLiteral("text_config"));
    QJsonObject t = wrapped ? root[QStringLiteral("text_config")].toObject() : root;
    for (auto it = edits.begin(); it != edits.end(); ++it) {
        if (it.value().isNull()) t.remove(it.key());
        else t[it.key()] = it.value();
    }
    if (wrapped) root[QStringLiteral("text_config")] = t;
    else root = t;
    return spec_from_hf_config_text(QJsonDocument(root).toJson().toStdString(), name);
}

QString commas(uint64_t n) { return QString::fromStdString(with_commas(n)); }

int lessonIndex(const LessonsWindow& w, const QString& id) {
    for (int i = 0; i < w.lessonCount(); ++i)
        if (w.lessons()[i].id == id) return i;
    return -1;
}

// The displayed row with this key (its text must show the exact number).
quint64 shown(const LessonsWindow& w, const QString& key) {
    for (const NumberRow& r : w.outcome().rows)
        if (r.key == key) {
            const QLabel* numbers = w.findChild<QLabel*>(QStringLiteral("lesson-numbers"));
            if (!numbers || !numbers->text().contains(r.text.toHtmlEscaped())) {
                qWarning("row %s not on screen", qPrintable(key));
                return ~0ull;
            }
            return r.exact;
        }
    qWarning("no row %s", qPrintable(key));
    return ~0ull;
}

}  // namespace

class TestLessons : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() {
        // Demo variants go to a scratch cache, not the user's.
        qputenv("XDG_CACHE_HOME", QDir::temp().filePath(QStringLiteral("archlens-test-lessons-cache")).toUtf8());
    }

    void lessons_are_embedded_and_complete() {
        QStringList errors;
        const QList<Lesson> all = loadLessons(&errors);
        QVERIFY2(errors.isEmpty(), qPrintable(errors.join('\n')));
        QCOMPARE(all.size(), 10);
        for (const Lesson& l : all) {
            QVERIFY2(catalog_config(l.catalog.toStdString()).has_value(), qPrintable(l.id));
            for (const QString& c : l.compare) QVERIFY2(catalog_config(c.toStdString()).has_value(), qPrintable(c));
            QVERIFY(l.steps.size() >= 2);
            // Every placeholder resolves.
            for (const LessonStep& s : l.steps) {
                const QString t = fillPlaceholders(s.text);
                QVERIFY2(!t.contains(QLatin1Char('{')) && !t.contains(QStringLiteral("?")), qPrintable(l.id + ": " + t));
            }
            QVERIFY2(!fillPlaceholders(l.question).contains(QLatin1Char('{')), qPrintable(l.id));
            QVERIFY2(!fillPlaceholders(l.answer).contains(QLatin1Char('{')), qPrintable(l.id));
        }
    }

    void every_lesson_opens_lights_its_block_and_runs_its_demo() {
        LessonsWindow w;
        w.show();
        QCOMPARE(w.lessonCount(), 10);
        for (int i = 0; i < w.lessonCount(); ++i) {
            w.openLesson(i);
            const Lesson& l = w.lessons()[i];
            QVERIFY2(w.controlError().isEmpty(), qPrintable(w.controlError()));
            QVERIFY2(!w.litBlock().isEmpty(), qPrintable(l.id));
            QVERIFY2(w.diagram()->diagramLayout().box(w.litBlock()), qPrintable(l.id));
            QCOMPARE(w.liveViewKind(), l.view);
            QVERIFY(w.liveView()->isVisible());
            QVERIFY2(w.waitForDemo(120000), qPrintable(l.id));
            QVERIFY2(w.demoError().isEmpty(), qPrintable(l.id + ": " + w.demoError()));
            QVERIFY(!w.numbersText().isEmpty());
            // The view shows the engine's run.
            switch (l.view) {
                case ViewKind::Attention: QVERIFY(!std::isnan(w.attentionView()->cellValue(1, 0))); break;
                case ViewKind::Routing: QVERIFY(!w.routingView()->markedExperts(0).empty()); break;
                case ViewKind::KvCache: QVERIFY(w.kvCacheView()->totalBytes() > 0); break;
                case ViewKind::NextToken: QVERIFY(w.nextTokenView()->topTokenId() >= 0); break;
            }
            // Steps and the check-yourself answer.
            QCOMPARE(w.stepCount(), int(l.steps.size()) + 1);
            for (int s = 1; s < w.stepCount(); ++s) w.nextStep();
            QCOMPARE(w.step(), w.stepCount() - 1);
            QVERIFY(!w.stepText().contains(fillPlaceholders(l.answer)));
            w.nextStep();
            QVERIFY(w.answerShown());
            QVERIFY(w.stepText().contains(fillPlaceholders(l.answer).left(40)));
        }
    }

    void keyboard_moves_through_steps_and_lessons() {
        LessonsWindow w;
        w.show();
        QVERIFY(QTest::qWaitForWindowExposed(&w));
        w.openLesson(0);
        QTest::keyClick(&w, Qt::Key_Right);
        QCOMPARE(w.step(), 1);
        QTest::keyClick(&w, Qt::Key_Left);
        QCOMPARE(w.step(), 0);
        QTest::keyClick(&w, Qt::Key_PageDown);
        QCOMPARE(w.currentLesson(), 1);
        QTest::keyClick(&w, Qt::Key_PageUp);
        QCOMPARE(w.currentLesson(), 0);
        QTest::keyClick(&w, Qt::Key_F11);
        QVERIFY(w.presentation());
        QTest::keyClick(&w, Qt::Key_Escape);
        QVERIFY(!w.presentation());
        w.waitForDemo();
    }

    void gqa_control_gives_the_specs_kv_bytes() {
        LessonsWindow w;
        w.openLesson(lessonIndex(w, QStringLiteral("gqa")));
        for (int kv : {1, 2, 4, 8, 16, 32}) {
            w.setControlValue(kv);
            const ModelSpec s = specWith("llama3.1-8b", {{QStringLiteral("num_key_value_heads"), kv}});
            QCOMPARE(s.layers[0].attn.n_kv_heads, kv);
            QCOMPARE(shown(w, QStringLiteral("kv_token")), kv_bytes_at(s, 1, 2.0));
            QCOMPARE(shown(w, QStringLiteral("kv_32k")), kv_bytes_at(s, 32768, 2.0));
            // By hand: layers × kv heads × (k + v) head dims × 2 bytes.
            QCOMPARE(shown(w, QStringLiteral("kv_token")), quint64(32 * kv * 256 * 2));
            QVERIFY(w.numbersText().contains(commas(kv_bytes_at(s, 32768, 2.0))));
            QCOMPARE(w.diagram()->diagramLayout().box(w.litBlock())->kind, BoxKind::Attention);
        }
        w.waitForDemo();
    }

    void mla_control_gives_the_specs_kv_bytes() {
        LessonsWindow w;
        w.openLesson(lessonIndex(w, QStringLiteral("mla")));
        for (int r : {64, 256, 512, 1024}) {
            w.setControlValue(r);
            const ModelSpec s = specWith("deepseek-v3", {{QStringLiteral("kv_lora_rank"), r}});
            QCOMPARE(shown(w, QStringLiteral("kv_values")), quint64(r + 64));
            QCOMPARE(shown(w, QStringLiteral("kv_token")), kv_bytes_at(s, 1, 2.0));
            QCOMPARE(shown(w, QStringLiteral("kv_token")), quint64(61 * (r + 64) * 2));
            QCOMPARE(shown(w, QStringLiteral("kv_32k")), kv_bytes_at(s, 32768, 2.0));
        }
        // Plain MHA on the same heads: 128 heads × (192 + 128) × 61 layers × 2 bytes.
        QCOMPARE(shown(w, QStringLiteral("kv_token_mha")), quint64(128) * 320 * 61 * 2);
        w.waitForDemo();
        QVERIFY(w.kvCacheView()->totalBytes() > 0);
        QVERIFY(w.kvCacheView()->mhaEquivalentBytes() > w.kvCacheView()->totalBytes());
    }

    void window_control_gives_the_specs_kv_curve_and_the_band() {
        LessonsWindow w;
        w.show();
        w.openLesson(lessonIndex(w, QStringLiteral("sliding-window")));
        for (int W : {8, 512, 1024, 4096}) {
            for (int locals : {0, 1, 5, 7}) {
                w.setControlSecond(locals);
                w.setControlValue(W);
                const ModelSpec s = specWith("gemma3-27b", {{QStringLiteral("sliding_window"), W}, {QStringLiteral("sliding_window_pattern"), locals + 1}});
                // Independently: per layer, min(n, W) for local layers, n for global ones.
                uint64_t expect = 0;
                for (auto& L : s.layers) {
                    const uint64_t held = L.attn.scope == AttnScope::Sliding ? std::min<uint64_t>(32768, uint64_t(W)) : 32768;
                    expect += held * kv_values_per_token(L.attn) * 2;
                }
                QCOMPARE(shown(w, QStringLiteral("kv_32k")), expect);
                QCOMPARE(shown(w, QStringLiteral("kv_32k")), kv_bytes_at(s, 32768, 2.0));
                QCOMPARE(shown(w, QStringLiteral("kv_128k")), kv_bytes_at(s, 131072, 2.0));
                const int sliding = int(std::count_if(s.layers.begin(), s.layers.end(), [](auto& L) { return L.attn.scope == AttnScope::Sliding; }));
                QCOMPARE(shown(w, QStringLiteral("sliding_layers")), quint64(sliding));
                QCOMPARE(sliding, locals == 0 ? 0 : 62 - 62 / (locals + 1));
                // The curve is the same function of n.
                for (const CurvePoint& p : w.kvCurve()->points()) QCOMPARE(p.bytes, kv_bytes_at(s, p.tokens, 2.0));
            }
        }
        // The demo with window 8: keys further back than 7 positions are masked in the attention view.
        w.setControlSecond(5);
        w.setControlValue(8);
        QVERIFY(w.waitForDemo());
        QVERIFY2(w.demoError().isEmpty(), qPrintable(w.demoError()));
        AttentionView* a = w.attentionView();
        const qint64 q = 30;
        QVERIFY(!std::isnan(a->cellValue(q, q)));
        QVERIFY(!std::isnan(a->cellValue(q, q - 7)));
        QVERIFY(std::isnan(a->cellValue(q, q - 8)));
        QVERIFY(std::isnan(a->cellValue(q, 0)));
        // Window 1024: nothing masked inside the prompt.
        w.setControlValue(1024);
        QVERIFY(w.waitForDemo());
        QVERIFY(!std::isnan(w.attentionView()->cellValue(q, 0)));
    }

    void moe_control_gives_active_params_and_routes_digits() {
        LessonsWindow w;
        w.openLesson(lessonIndex(w, QStringLiteral("moe")));
        for (int k : {1, 2, 8}) {
            for (int shared : {0, 1}) {
                w.setControlSecond(shared);
                w.setControlValue(k);
                const ModelSpec s = specWith("deepseek-v3", {{QStringLiteral("num_experts_per_tok"), k}, {QStringLiteral("n_shared_experts"), shared}});
                const ParamCounts c = count_params(s);
                QCOMPARE(shown(w, QStringLiteral("active")), c.active);
                QCOMPARE(shown(w, QStringLiteral("total")), c.total);
                QCOMPARE(shown(w, QStringLiteral("shared_params")), c.shared_experts);
                QCOMPARE(c.shared_experts == 0, shared == 0);
                QVERIFY(w.waitForDemo(120000));
                QVERIFY2(w.demoError().isEmpty(), qPrintable(w.demoError()));
                // The demo's numbers are its spec's.
                auto spec = w.routingView()->moeLayers();
                QVERIFY(!spec.empty());
            }
        }
        // top-1: every digit goes to expert 0, letters to 1, punctuation to 2, spaces to 3.
        w.setControlSecond(1);
        w.setControlValue(1);
        QVERIFY(w.waitForDemo(120000));
        const std::vector<int> ids = promptIds(w.lessons()[w.currentLesson()].prompt);
        RoutingView* r = w.routingView();
        int digits = 0;
        for (int layer : r->moeLayers()) {
            r->setLayer(layer);
            for (size_t p = 0; p < ids.size(); ++p) {
                const int cls = teaching::char_class(ids[p], 512);
                QCOMPARE(r->markedExperts(qint64(p)), std::vector<int>{cls});
                digits += cls == 0;
            }
        }
        QCOMPARE(digits, 13 * int(r->moeLayers().size()));  // 13 digits in the prompt
        // top-2: the class expert is still among the chosen.
        w.setControlValue(2);
        QVERIFY(w.waitForDemo(120000));
        r->setLayer(r->moeLayers().front());
        for (size_t p = 0; p < ids.size(); ++p) {
            const auto m = r->markedExperts(qint64(p));
            QCOMPARE(int(m.size()), 2);
            QVERIFY(std::find(m.begin(), m.end(), teaching::char_class(ids[p], 512)) != m.end());
        }
    }

    void induction_lesson_shows_the_induction_stripe() {
        LessonsWindow w;
        w.show();
        w.openLesson(lessonIndex(w, QStringLiteral("gpt2-to-llama3")));
        QVERIFY(w.waitForDemo());
        QVERIFY2(w.demoError().isEmpty(), qPrintable(w.demoError()));
        AttentionView* a = w.attentionView();
        QCOMPARE(a->layer(), 1);
        QCOMPARE(a->head(), 0);
        const std::vector<int> ids = promptIds(w.lessons()[w.currentLesson()].prompt);
        const qint64 n = qint64(ids.size()) / 2;
        QCOMPARE(n, 14);
        int ok = 0;
        for (qint64 q = n; q < 2 * n; ++q) {
            qint64 best = -1;
            double bestV = -1;
            for (qint64 k = 0; k <= q; ++k) {
                const double v = a->cellValue(q, k);
                if (!std::isnan(v) && v > bestV) bestV = v, best = k;
            }
            ok += best == q - n + 1;
        }
        QVERIFY2(ok >= int(0.95 * double(n)), qPrintable(QStringLiteral("%1/%2").arg(ok).arg(n)));
        // The control: the learned position table is n_positions × d.
        for (int n2 : {256, 1024, 131072}) {
            w.setControlValue(n2);
            const ModelSpec s = specWith("gpt2", {{QStringLiteral("n_positions"), n2}});
            QCOMPARE(shown(w, QStringLiteral("pos_table")), quint64(n2) * 768);
            QCOMPARE(shown(w, QStringLiteral("total")), count_params(s).total);
        }
    }

    void other_controls_follow_the_spec() {
        LessonsWindow w;
        // NoPE interval.
        w.openLesson(lessonIndex(w, QStringLiteral("nope")));
        for (int k : {1, 4, 8}) {
            w.setControlValue(k);
            const ModelSpec s = specWith("llama4-scout", {{QStringLiteral("no_rope_layers"), QJsonValue()}, {QStringLiteral("no_rope_layer_interval"), k}});
            const int nope = int(std::count_if(s.layers.begin(), s.layers.end(), [](auto& L) { return !L.attn.rope.enabled; }));
            QCOMPARE(nope, 48 / k);
            QCOMPARE(shown(w, QStringLiteral("nope_layers")), quint64(nope));
            QCOMPARE(shown(w, QStringLiteral("kv_32k")), kv_bytes_at(s, 32768, 2.0));
        }
        // Gemma 3n slices with and without streaming the PLE table.
        w.openLesson(lessonIndex(w, QStringLiteral("gemma3n")));
        for (int slice : {0, 1})
            for (int stream : {0, 1}) {
                w.setControlSecond(stream);
                w.setControlValue(slice);
                const ParamCounts c = count_params(specWith(slice ? "gemma3n-e4b" : "gemma3n-e2b", {}));
                QCOMPARE(shown(w, QStringLiteral("on_device")), stream ? c.total - c.per_layer_embedding : c.total);
                QCOMPARE(shown(w, QStringLiteral("ple")), c.per_layer_embedding);
            }
        // Experts.
        w.openLesson(lessonIndex(w, QStringLiteral("deepseek-vs-kimi")));
        for (int e : {64, 256, 384, 512}) {
            w.setControlValue(e);
            const ParamCounts c = count_params(specWith("deepseek-v3", {{QStringLiteral("n_routed_experts"), e}}));
            QCOMPARE(shown(w, QStringLiteral("total")), c.total);
            QCOMPARE(shown(w, QStringLiteral("active")), c.active);
        }
        QCOMPARE(shown(w, QStringLiteral("kimi-k2:total")), count_params(specWith("kimi-k2", {})).total);
        // Qwen3 family and norm placement switch the diagram's model.
        w.openLesson(lessonIndex(w, QStringLiteral("qwen3-dense-vs-moe")));
        const char* qwen[] = {"qwen3-32b", "qwen3-30b-a3b", "qwen3-235b-a22b"};
        for (int i = 0; i < 3; ++i) {
            w.setControlValue(i);
            const ModelSpec s = specWith(qwen[i], {});
            QCOMPARE(shown(w, QStringLiteral("active")), count_params(s).active);
            QCOMPARE(shown(w, QStringLiteral("kv_32k")), kv_bytes_at(s, 32768, 2.0));
            QCOMPARE(w.diagram()->diagramLayout().boxesOfKind(BoxKind::Moe).isEmpty(), i == 0);
        }
        w.openLesson(lessonIndex(w, QStringLiteral("norms")));
        const char* norms[] = {"llama3.1-8b", "olmo2-7b", "gemma3-27b"};
        const quint64 perBlock[] = {2, 2, 4};
        for (int i = 0; i < 3; ++i) {
            w.setControlValue(i);
            QCOMPARE(shown(w, QStringLiteral("norms_per_block")), perBlock[i]);
            QCOMPARE(shown(w, QStringLiteral("norms")), count_params(specWith(norms[i], {})).norms);
            QCOMPARE(w.diagram()->diagramLayout().box(w.litBlock())->kind, BoxKind::Norm);
        }
        w.waitForDemo();
    }

    void exports_pdf_and_images() {
        LessonsWindow w;
        w.resize(1400, 860);
        w.show();
        QTemporaryDir dir;
        QStringList written;
        QString err;
        const int i = lessonIndex(w, QStringLiteral("gqa"));
        QVERIFY2(w.exportImages(i, dir.path(), &written, &err), qPrintable(err));
        QCOMPARE(written.size(), w.stepCount());
        QImage img(written.front());
        QVERIFY(img.width() > 600);
        const QString pdf = dir.filePath(QStringLiteral("gqa.pdf"));
        QVERIFY2(w.exportPdf(i, pdf, &err), qPrintable(err));
        QFile f(pdf);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QByteArray bytes = f.readAll();
        QVERIFY(bytes.startsWith("%PDF"));
        QCOMPARE(int(bytes.count("/Type /Page\n") + bytes.count("/Type /Page\r") + bytes.count("/Type /Page ") + bytes.count("/Type /Page>")) > 0, true);
    }

    // Screens for the README: ARCHLENS_LESSON_SHOTS=DIR saves three lessons at a chosen step.
    void screenshots() {
        const QString dir = qEnvironmentVariable("ARCHLENS_LESSON_SHOTS");
        if (dir.isEmpty()) QSKIP("set ARCHLENS_LESSON_SHOTS=DIR to save lesson screenshots");
        QDir().mkpath(dir);
        LessonsWindow w;
        w.resize(1500, 900);
        w.show();
        struct Shot {
            const char* id;
            int value, second, step;
        } shots[] = {{"gpt2-to-llama3", 1024, 0, 1}, {"sliding-window", 8, 5, 2}, {"moe", 1, 1, 1}};
        for (const Shot& s : shots) {
            w.openLesson(lessonIndex(w, QString::fromLatin1(s.id)));
            if (s.second >= 0 && !w.lessons()[w.currentLesson()].control.secondLabel.isEmpty()) w.setControlSecond(s.second);
            w.setControlValue(s.value);
            w.setStep(s.step);
            QVERIFY(w.waitForDemo());
            QTest::qWait(300);
            QImage img = w.grab().toImage();
            QVERIFY(img.scaledToWidth(1200, Qt::SmoothTransformation).save(QDir(dir).filePath(QStringLiteral("lesson-%1.png").arg(QString::fromLatin1(s.id)))));
        }
    }
};

QTEST_MAIN(TestLessons)
#include "test_lessons.moc"
