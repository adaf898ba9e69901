// The architecture dock and the comparison window in the real app, offscreen: a demo model fills
// the dock with its spec and tensors, a catalog model puts the app in architecture-only mode (chat
// disabled), a preset comparison loads both specs, and the live comparison sends one prompt to two
// demo models on two engines and streams both answers.
#include <QComboBox>
#include <QDir>
#include <QDockWidget>
#include <QLabel>
#include <QPushButton>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QMenu>
#include <QToolButton>
#include <QTreeWidget>
#include <fstream>
#include <QtTest>

#include "app/gui/architecture_panel.h"
#include "app/gui/catalog_dialog.h"
#include "app/gui/chat_panel.h"
#include "app/gui/compare_window.h"
#include "app/gui/engine_worker.h"
#include "app/gui/internals_panels.h"
#include "app/gui/main_window.h"
#include "engine/model/model.h"
#include "engine/model/synth.h"
#include "widgets/attention_view.h"
#include "widgets/comparison_view.h"
#include "widgets/diagram_view.h"
#include "widgets/routing_view.h"

namespace {
constexpr int kLoadTimeoutMs = 120000;
constexpr int kAnswerTimeoutMs = 60000;

MainWindowOptions quiet() {
    MainWindowOptions o;
    o.openDemoOnFirstLaunch = false;
    o.restoreLastConversation = false;
    return o;
}

bool waitLoaded(MainWindow& w, const QString& source, bool architecture = false) {
    QSignalSpy loaded(w.engine(), &EngineController::modelLoaded);
    QSignalSpy failed(w.engine(), &EngineController::loadFailed);
    if (architecture)
        w.engine()->loadArchitecture(source);
    else
        w.engine()->loadModel(source);
    QElapsedTimer t;
    t.start();
    while (loaded.isEmpty() && failed.isEmpty() && t.elapsed() < kLoadTimeoutMs) QTest::qWait(10);
    if (!failed.isEmpty()) qWarning() << "load failed:" << failed.first().at(1).toString();
    return !loaded.isEmpty() && w.engine()->model() && w.engine()->model()->source == source;
}

ArchitecturePanel* panelOf(MainWindow& w) {
    return w.findChild<ArchitecturePanel*>();
}

// ARCHLENS_SHOTS=DIR saves what the tests drive, for a look and for the docs.
void shot(QWidget* w, const QString& name) {
    const QString dir = qEnvironmentVariable("ARCHLENS_SHOTS");
    if (dir.isEmpty()) return;
    QDir().mkpath(dir);
    QTest::qWait(300);  // coalesced view refreshes
    QVERIFY(w->grab().save(dir + u'/' + name));
}

QString diagramText(const archlens::DiagramView* d) {
    return d->diagramLayout().allText().join(u'\n');
}
}  // namespace

class TestAppArchitecture : public QObject {
    Q_OBJECT
private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        QCoreApplication::setOrganizationName(QStringLiteral("ArchLensTest"));
        QCoreApplication::setApplicationName(QStringLiteral("archlens-architecture-test"));
        QSettings().clear();
    }

    void demoModelFillsTheArchitectureDock() {
        MainWindow w(quiet());
        w.show();
        ArchitecturePanel* panel = panelOf(w);
        QVERIFY(panel);
        QDockWidget* dock = w.dock(MainWindow::Panel::Architecture);
        QVERIFY(dock);
        QVERIFY(dock->isAncestorOf(panel->diagram()));
        QVERIFY(waitLoaded(w, QStringLiteral("demo:deepseek-v3")));
        const auto& spec = *w.engine()->model()->spec;
        const QString text = diagramText(panel->diagram());
        QVERIFY2(text.contains(QStringLiteral("Multi-head latent attention")), qPrintable(text));
        // The layers are all accounted for in the frames' "× N" (1 dense + the MoE rest).
        int layers = 0;
        for (const auto& g : panel->diagram()->diagramLayout().groups) layers += g.layerIndices.size();
        QCOMPARE(layers, spec.n_layers);
        QVERIFY(!panel->isArchitectureOnly());
        QVERIFY(w.chatPanel()->isEnabled());
        // Clicking a block lists its tensors, from the engine's Model::tensors().
        QVERIFY(!w.engine()->model()->tensors.empty());
        const auto* attn = panel->diagram()->diagramLayout().boxesOfKind(archlens::BoxKind::Attention).value(0);
        QVERIFY(attn);
        const auto rows = panel->diagram()->tensorsForBox(attn->id);
        QVERIFY(!rows.isEmpty());
        QVERIFY(rows.first().name.contains(QStringLiteral("attn")));
        QVERIFY(rows.first().bytes > 0);
        QVERIFY(!rows.first().shape.isEmpty());
        QVERIFY(!rows.first().type.isEmpty());

        // A llama-style demo: grouped-query attention with its group count, 4 layers.
        QVERIFY(waitLoaded(w, QStringLiteral("demo:llama3")));
        const QString t2 = diagramText(panel->diagram());
        QVERIFY2(t2.contains(QStringLiteral("Grouped-query attention")), qPrintable(t2));
        QVERIFY2(t2.contains(QStringLiteral("× %1").arg(w.engine()->model()->spec->n_layers)), qPrintable(t2));
    }

    void layerPickedInAttentionLightsTheDiagram() {
        MainWindow w(quiet());
        w.show();
        ArchitecturePanel* panel = panelOf(w);
        QVERIFY(panel);
        // The live views may be placed by the window or later by InternalsPanels: both work.
        auto* views = w.findChild<InternalsPanels*>();
        if (!views) views = new InternalsPanels(&w);
        QVERIFY(waitLoaded(w, QStringLiteral("demo:llama3")));
        QTRY_VERIFY(qobject_cast<AttentionView*>(w.dock(MainWindow::Panel::Attention)->widget()));
        views->attention()->setLayer(2);
        QTRY_COMPARE(panel->diagram()->canvas()->options().activeLayer, 2);
        QVERIFY(panel->diagram()->canvas()->options().activeLabel.contains(QStringLiteral("Attention")));
        // And back: a layer frame clicked in the diagram picks that layer in the attention view.
        const auto& groups = panel->diagram()->diagramLayout().groups;
        QVERIFY(!groups.isEmpty());
        const auto* box = panel->diagram()->diagramLayout().boxesOfKind(archlens::BoxKind::Attention).value(0);
        QVERIFY(box);
        panel->diagram()->selectBox(box->id);
        QCOMPARE(views->attention()->layer(), groups[box->group].layerIndices.first());

        if (!qEnvironmentVariableIsEmpty("ARCHLENS_SHOTS")) {
            // The dock with room to read it: a DeepSeek-V3 demo, a MoE block's tensors listed, layer 2 lit.
            w.resize(1600, 1200);
            w.dock(MainWindow::Panel::TopK)->hide();
            QVERIFY(waitLoaded(w, QStringLiteral("demo:deepseek-v3")));
            QTRY_VERIFY(views->attention()->layer() >= 0);
            const auto* moe = panel->diagram()->diagramLayout().boxesOfKind(archlens::BoxKind::Moe).value(0);
            QVERIFY(moe);
            panel->diagram()->selectBox(moe->id);
            views->attention()->setLayer(0);
            views->attention()->setLayer(2);
            w.resizeDocks({w.dock(MainWindow::Panel::Architecture)}, {520}, Qt::Horizontal);
            w.resizeDocks({w.dock(MainWindow::Panel::Attention)}, {220}, Qt::Vertical);
            QTest::qWait(50);
            panel->diagram()->selectBox(moe->id);  // the tensor list scrolled into view at the new size
            shot(w.dock(MainWindow::Panel::Architecture), QStringLiteral("app-architecture.png"));
            shot(&w, QStringLiteral("app-architecture-window.png"));
        }
    }

    void catalogModelOpensArchitectureOnly() {
        MainWindow w(quiet());
        w.show();
        ArchitecturePanel* panel = panelOf(w);
        QVERIFY(panel);
        QVERIFY(waitLoaded(w, QStringLiteral("demo:llama3")));
        QVERIFY(w.chatPanel()->isEnabled());

        // Through the library's catalog dialog, as a user would.
        CatalogDialog dlg(&w);
        QVERIFY(dlg.tree()->topLevelItemCount() >= 33);
        QTreeWidgetItem* pick = nullptr;
        for (int i = 0; i < dlg.tree()->topLevelItemCount(); ++i)
            if (dlg.tree()->topLevelItem(i)->text(0) == u"deepseek-v3") pick = dlg.tree()->topLevelItem(i);
        QVERIFY(pick);
        QVERIFY(pick->text(2).contains(QStringLiteral("671B")));
        QVERIFY(pick->text(1).contains(QStringLiteral("MLA")));
        QSignalSpy loaded(w.engine(), &EngineController::modelLoaded);
        connect(&dlg, &CatalogDialog::catalogModelChosen, w.engine(), &EngineController::loadArchitecture);
        dlg.tree()->setCurrentItem(pick);
        emit dlg.tree()->itemActivated(pick, 0);
        QTRY_VERIFY_WITH_TIMEOUT(!loaded.isEmpty(), kLoadTimeoutMs);
        const ModelInfoPtr m = w.engine()->model();
        QVERIFY(m);
        QCOMPARE(m->source, QStringLiteral("catalog:deepseek-v3"));
        QVERIFY(m->architectureOnly);
        QCOMPARE(m->spec->n_layers, 61);

        QVERIFY(panel->isArchitectureOnly());
        QVERIFY(!w.chatPanel()->isEnabled());
        QVERIFY(panel->chatNotice()->isVisible());
        QVERIFY(panel->chatNotice()->text().contains(QStringLiteral("architecture only")));
        QVERIFY(w.dock(MainWindow::Panel::Chat)->windowTitle().contains(QStringLiteral("architecture only")));
        QTRY_VERIFY(w.statusText().contains(QStringLiteral("architecture only")));
        const QString text = diagramText(panel->diagram());
        QVERIFY2(text.contains(QStringLiteral("Multi-head latent attention")), qPrintable(text));
        QVERIFY(text.contains(QStringLiteral("256")));  // routed experts
        QVERIFY(panel->diagram()->parameterSummary().contains(QStringLiteral("671")));
        QVERIFY(!panel->diagram()->kvSummary().isEmpty());

        if (!qEnvironmentVariableIsEmpty("ARCHLENS_SHOTS")) {
            w.resize(1600, 1000);
            shot(&w, QStringLiteral("app-architecture-only.png"));
        }

        // A runnable model brings the chat back.
        QVERIFY(waitLoaded(w, QStringLiteral("demo:qwen3")));
        QVERIFY(!panel->isArchitectureOnly());
        QVERIFY(w.chatPanel()->isEnabled());
        QVERIFY(!panel->chatNotice()->isVisible());
    }

    void comparisonPresetLoadsBothSpecs() {
        CompareWindow cw;
        cw.show();
        QCOMPARE(cw.presetButtons().size(), 8);
        QSignalSpy shown(&cw, &CompareWindow::specsShown);
        cw.presetButtons().at(0)->click();  // DeepSeek-V3 vs Kimi K2
        QCOMPARE(shown.size(), 1);
        QCOMPARE(cw.modelA(), QStringLiteral("catalog:deepseek-v3"));
        QCOMPARE(cw.modelB(), QStringLiteral("catalog:kimi-k2"));
        QVERIFY(!cw.comparison()->rows().isEmpty());
        QVERIFY(cw.comparison()->differingRows() > 0);
        QCOMPARE(cw.comparison()->plottedCurves(), 2);
        QVERIFY(cw.comparison()->leftLayout().allText().join(u' ').contains(QStringLiteral("Multi-head latent attention")));
        QVERIFY(cw.comparison()->rightLayout().allText().join(u' ').contains(QStringLiteral("384")));  // Kimi K2's experts
        // Catalog entries cannot run: the live half says so and stays off.
        QVERIFY(!cw.liveReady());
        QVERIFY(!cw.findChild<QPushButton*>(QStringLiteral("compareSend"))->isEnabled());
        QVERIFY(cw.findChild<QLabel*>(QStringLiteral("compareLiveStatus"))->text().contains(QStringLiteral("architecture only")));
        // Any pair of paths: catalog name and demo through the spec loader, off the UI thread.
        cw.setModels(QStringLiteral("catalog:gpt2"), QStringLiteral("catalog:qwen3-0.6b"));
        QTRY_COMPARE_WITH_TIMEOUT(shown.size(), 2, kLoadTimeoutMs);
        QVERIFY(cw.comparison()->leftLayout().allText().join(u' ').contains(QStringLiteral("gpt2")) ||
                cw.comparison()->leftLayout().title.contains(QStringLiteral("gpt2")));
    }

    void liveComparisonStreamsBothAnswers() {
        CompareWindow cw;
        cw.show();
        cw.setModels(QStringLiteral("demo:llama3"), QStringLiteral("demo:deepseek-v3"));
        QTRY_VERIFY_WITH_TIMEOUT(cw.liveReady(), kLoadTimeoutMs);
        // Both engines' specs are the architecture comparison too.
        QTRY_VERIFY(cw.comparison()->rows().size() > 0);
        CompareSide* a = cw.side(0);
        CompareSide* b = cw.side(1);
        QVERIFY(a->engine() != b->engine());
        QCOMPARE(a->model()->source, QStringLiteral("demo:llama3"));
        QCOMPARE(b->model()->source, QStringLiteral("demo:deepseek-v3"));

        QSignalSpy doneA(a, &CompareSide::finished), doneB(b, &CompareSide::finished);
        QSignalSpy tokA(a, &CompareSide::tokenArrived), tokB(b, &CompareSide::tokenArrived);
        cw.sendPrompt(QStringLiteral("Hello there"));
        // Both stream (tokens arrive on both sides), then both finish.
        QTRY_VERIFY_WITH_TIMEOUT(tokA.size() > 0 && tokB.size() > 0, kAnswerTimeoutMs);
        QTRY_VERIFY_WITH_TIMEOUT(doneA.size() == 1 && doneB.size() == 1, kAnswerTimeoutMs);
        const auto ra = doneA.first().at(0).value<GenerationResult>();
        const auto rb = doneB.first().at(0).value<GenerationResult>();
        QVERIFY2(ra.error.isEmpty() && rb.error.isEmpty(), qPrintable(ra.error + rb.error));
        QVERIFY(ra.tokens > 0 && rb.tokens > 0);
        QCOMPARE(a->answerTokens(), ra.tokens);
        QCOMPARE(b->answerTokens(), rb.tokens);
        QVERIFY(!a->answerText().isEmpty());
        QVERIFY(!b->answerText().isEmpty());
        QVERIFY(a->statsLabel()->text().contains(QStringLiteral("tok/s")));
        QVERIFY(b->statsLabel()->text().contains(QStringLiteral("KV used")));

        // The attention views follow each other: same layer and head on both sides.
        QVERIFY(cw.viewsSynced());
        a->attention()->setLayer(1);
        a->attention()->setHead(1);
        QCOMPARE(b->attention()->layer(), 1);
        QCOMPARE(b->attention()->head(), 1);
        b->attention()->setLayer(2);
        QCOMPARE(a->attention()->layer(), 2);
        // The attention rows were captured for the synced layer on both sides.
        QVERIFY(a->attention()->probeNeeds().attention);
        // Routing: DeepSeek-V3 (tiny) has MoE layers; llama has none and is left alone.
        const auto moe = b->routing()->moeLayers();
        QVERIFY(!moe.empty());
        QVERIFY(a->routing()->moeLayers().empty());
        if (!qEnvironmentVariableIsEmpty("ARCHLENS_SHOTS")) {
            cw.resize(1500, 1100);
            b->routing()->setLayer(moe.front());
            a->attention()->setLayer(1);
            shot(&cw, QStringLiteral("app-compare-live.png"));
        }
    }
    // Gemma 3n MatFormer: the toolbar offers the sizes nested in the model and switches to one.
    void matformerSizesSwitchTheRunningModel() {
        MainWindow w(quiet());
        w.show();
        auto* button = w.findChild<QToolButton*>(QStringLiteral("matformerSize"));
        QVERIFY(button);
        QVERIFY(waitLoaded(w, QStringLiteral("demo:llama3")));
        QVERIFY(!button->isVisible());  // nothing nested in Llama

        // The catalog's E4B: Google's published slices; picking E2B shows a 30-layer architecture.
        QVERIFY(waitLoaded(w, QStringLiteral("catalog:gemma3n-e4b"), true));
        QTRY_VERIFY(button->isVisible());
        QAction* e2b = nullptr;
        for (QAction* a : button->menu()->actions())
            if (a->text().startsWith(QStringLiteral("Config for official E2B Model — 30 layers, 1.9"))) e2b = a;
        QVERIFY(e2b);
        QSignalSpy loaded(w.engine(), &EngineController::modelLoaded);
        e2b->trigger();
        QTRY_VERIFY_WITH_TIMEOUT(!loaded.isEmpty(), kLoadTimeoutMs);
        QCOMPARE(w.engine()->model()->spec->n_layers, 30);
        QCOMPARE(w.engine()->model()->slice, QStringLiteral("Config for official E2B Model"));
        QVERIFY(button->text().contains(QStringLiteral("official E2B")));
        QTRY_VERIFY(diagramText(panelOf(w)->diagram()).contains(QStringLiteral("30")));

        // A runnable Gemma 3n with a slicing CSV beside it: the slice chats.
        QTemporaryDir dir;
        const QString path = dir.path() + QStringLiteral("/g3n.gguf");
        archlens::ModelSpec spec = archlens::Model::load_spec("demo:gemma3n");
        archlens::write_synthetic_gguf(spec, {}, path.toStdString());
        std::string dims;
        for (int i = 0; i < spec.n_layers; ++i) dims += (i ? ", " : "") + std::to_string(spec.layers[size_t(i)].ffn.ffn_dim / 2);
        std::ofstream(dir.path().toStdString() + "/slices.csv") << "name,FFN Hidden Dims,Layers Skipped\nHalf FFN,\"[" << dims << "]\",\n";
        QVERIFY(waitLoaded(w, path));
        QTRY_VERIFY(button->isVisible());
        QCOMPARE(w.engine()->model()->slices, QStringList{QStringLiteral("Half FFN")});
        loaded.clear();
        w.engine()->loadSlice(path, QStringLiteral("Half FFN"), false);
        QTRY_VERIFY_WITH_TIMEOUT(!loaded.isEmpty(), kLoadTimeoutMs);
        const ModelInfoPtr m = w.engine()->model();
        QCOMPARE(m->slice, QStringLiteral("Half FFN"));
        QCOMPARE(m->spec->layers[0].ffn.ffn_dim, spec.layers[0].ffn.ffn_dim / 2);
        QVERIFY(m->name.endsWith(QStringLiteral("[Half FFN]")));
        QVERIFY(w.chatPanel()->isEnabled());
    }
};

QTEST_MAIN(TestAppArchitecture)
#include "test_app_architecture.moc"
