// End-to-end tests of the desktop app, offscreen: the real window, the real engine on its worker
// thread, the built-in demo models. Data folders are Qt's test locations (~/.qttest), wiped first.
#include <QAction>
#include <QDockWidget>
#include <QImage>
#include <QJsonArray>
#include <QJsonDocument>
#include <QLabel>
#include <QListWidget>
#include <QMessageBox>
#include <QMenu>
#include <QMimeData>
#include <QPlainTextEdit>
#include <QSignalSpy>
#include <QStandardPaths>
#include <QTemporaryDir>
#include <QToolButton>
#include <QTreeWidget>
#include <QtTest>
#include <memory>

#include "app/gui/lens_budget.h"
#include "app/gui/capture.h"
#include "app/gui/chat_panel.h"
#include "app/gui/conversation_list.h"
#include "app/gui/conversation_store.h"
#include "engine/backend.h"
#include "app/gui/engine_worker.h"
#include "app/gui/main_window.h"
#include "app/gui/memory_fit.h"
#include "app/gui/model_discovery.h"
#include "app/gui/model_library.h"
#include "engine/demo.h"
#include "engine/model/model.h"
#include "widgets/chat_view.h"
#include "widgets/token_style.h"

namespace {

constexpr int kLoadTimeoutMs = 120000;  // a cold demo cache writes the GGUF first
constexpr int kAnswerTimeoutMs = 60000;

MainWindowOptions quietOptions(bool restore = false) {
    MainWindowOptions o;
    o.openDemoOnFirstLaunch = false;
    o.restoreLastConversation = restore;
    return o;
}

bool loadModel(MainWindow& w, const QString& source) {
    QSignalSpy loaded(w.engine(), &EngineController::modelLoaded);
    QSignalSpy failed(w.engine(), &EngineController::loadFailed);
    w.engine()->loadModel(source);
    QElapsedTimer t;
    t.start();
    while (loaded.isEmpty() && failed.isEmpty() && t.elapsed() < kLoadTimeoutMs) QTest::qWait(10);
    if (!failed.isEmpty()) qWarning() << "load failed:" << failed.first().at(1).toString();
    return !loaded.isEmpty() && w.engine()->model() && w.engine()->model()->source == source;
}

SamplingSettings testSampling(int maxTokens, quint64 seed = 7) {
    SamplingSettings s;
    s.temperature = 0.8;
    s.topK = 40;
    s.topP = 0.95;
    s.minP = 0.0;
    s.repetitionPenalty = 1.0;
    s.fixedSeed = true;
    s.seed = seed;
    s.maxTokens = maxTokens;
    return s;
}

// Puts the app's backend choice back to automatic when the test ends, whatever fails.
struct BackendRestore {
    ~BackendRestore() { EngineController::setBackend(QStringLiteral("auto")); }
};

// Sends `prompt` and waits for the answer; returns the result.
GenerationResult ask(MainWindow& w, const QString& prompt, int maxTokens = 24) {
    QSignalSpy done(w.chatPanel(), &ChatPanel::answerFinished);
    w.chatPanel()->setSampling(testSampling(maxTokens));
    w.chatPanel()->sendPrompt(prompt);
    if (done.isEmpty() && !done.wait(kAnswerTimeoutMs)) return {};
    return done.first().at(0).value<GenerationResult>();
}

QJsonObject readJsonFile(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) return {};
    return QJsonDocument::fromJson(f.readAll()).object();
}

}  // namespace

class TestApp : public QObject {
    Q_OBJECT

  private slots:
    void initTestCase() {
        QStandardPaths::setTestModeEnabled(true);
        setupApplicationIdentity();
        QDir(QStandardPaths::writableLocation(QStandardPaths::AppDataLocation)).removeRecursively();
        QSettings().clear();
        QVERIFY(QStandardPaths::writableLocation(QStandardPaths::AppDataLocation)
                    .contains(QStringLiteral(".qttest")));
    }

    void cleanup() { setMemoryBudgetOverride(std::nullopt); }

    void launchOpensDemoOnFirstLaunch() {
        QSettings().remove("app/launched");
        MainWindowOptions o;
        o.restoreLastConversation = false;
        MainWindow w(o);
        w.show();
        QSignalSpy loaded(w.engine(), &EngineController::modelLoaded);
        QVERIFY(!loaded.isEmpty() || loaded.wait(kLoadTimeoutMs));
        const ModelInfoPtr m = w.engine()->model();
        QVERIFY(m);
        QCOMPARE(m->source, QString::fromLatin1(MainWindow::kFirstDemo));
        QVERIFY(m->isDemo);
        QVERIFY(m->spec && m->spec->n_layers > 0);
        QVERIFY(w.findChild<QLabel*>(QStringLiteral("demoBanner"))->isVisible());
        QVERIFY(w.findChild<QLabel*>(QStringLiteral("demoBanner"))
                    ->text()
                    .contains(QStringLiteral("random weights")));
        // The status bar names the backend, and its tooltip says why the GPU is or is not used.
        const QLabel* status = w.findChild<QLabel*>(QStringLiteral("statusModel"));
        QVERIFY(status && status->text().contains(QStringLiteral("CPU")));
        QVERIFY2(status->toolTip().startsWith(QStringLiteral("CPU backend · ")), qPrintable(status->toolTip()));
        QCOMPARE(m->backendNote, status->toolTip());
        // Every panel and reserved slot is a named dock (saveState keys them by name).
        for (auto p :
             {MainWindow::Panel::Library, MainWindow::Panel::Chat, MainWindow::Panel::Conversations,
              MainWindow::Panel::Architecture, MainWindow::Panel::Attention,
              MainWindow::Panel::Routing, MainWindow::Panel::KvCache, MainWindow::Panel::TopK}) {
            QVERIFY(w.dock(p));
            QVERIFY(!w.dock(p)->objectName().isEmpty());
        }
        // Second launch: no demo is opened on its own.
        MainWindow w2(o);
        QTest::qWait(200);
        QVERIFY(!w2.engine()->isLoading());
    }

    void promptStreamsTokens() {
        MainWindow w(quietOptions());
        w.show();
        QVERIFY(loadModel(w, "demo:llama3"));
        ChatView* view = w.chatPanel()->view();
        std::vector<int> lengthsSeen;  // the answer's length as displayed after each token event
        std::vector<TokenSnapshotPtr> snaps;
        connect(w.engine(), &EngineController::tokenGenerated, this,
                [&](const TokenSnapshotPtr& t) {
                    snaps.push_back(t);
                    lengthsSeen.push_back(int(view->turn(view->turnCount() - 1).tokens.size()));
                });
        const GenerationResult r = ask(w, QStringLiteral("Hello there"), 32);
        QVERIFY(r.id != 0);
        QVERIFY2(r.reason == FinishReason::MaxTokens || r.reason == FinishReason::EndOfTurn,
                 qPrintable(r.reasonText()));
        QVERIFY(r.tokens > 0);
        QCOMPARE(int(snaps.size()), r.tokens);
        // Streaming: the view grew one token per event, not all at once at the end.
        for (size_t i = 0; i < lengthsSeen.size(); ++i) QCOMPARE(lengthsSeen[i], int(i) + 1);
        QCOMPARE(view->turnCount(), 2);
        QCOMPARE(view->turn(0).role, QStringLiteral("user"));
        QCOMPARE(view->turnPlainText(0), QStringLiteral("Hello there"));
        // Snapshots carry what the live views need.
        const TokenSnapshot& s0 = *snaps.front();
        QVERIFY(s0.token.prob > 0 && s0.token.prob <= 1);
        QVERIFY(s0.token.topK.size() >= 8);  // the chat asks for 8; a visible view may ask for more
        QVERIFY(s0.token.topK[0].prob >= s0.token.topK[1].prob);
        QCOMPARE(int(s0.kvBytesPerLayer.size()), w.engine()->model()->spec->n_layers);
        QVERIFY(s0.kvBytesTotal > 0);
        QCOMPARE(s0.contextSize, w.engine()->model()->contextSize);
        QVERIFY(snaps.back()->contextUsed > s0.contextUsed);
        QVERIFY(r.ttftMs > 0);
        // Tooltips: some point over the answer shows a token with its alternatives.
        QString tip;
        for (int y = 0; y < view->viewport()->height() && tip.isEmpty(); y += 3)
            for (int x = 0; x < view->viewport()->width() && tip.isEmpty(); x += 4)
                tip = view->tooltipAt({x, y});
        QVERIFY2(!tip.isEmpty(), "no token found under the mouse anywhere in the chat");
        QVERIFY(tip.contains(QStringLiteral("id ")));
        QVERIFY(tip.contains(u'%'));
        QVERIFY(!w.chatPanel()->statsText().isEmpty());
    }

    void stopWorksMidAnswer() {
        MainWindow w(quietOptions());
        w.show();
        QVERIFY(loadModel(w, "demo:llama3"));
        // The demo model has random weights: with some seeds it emits its end-of-turn token a few
        // tokens in, before the stop can arrive. Those answers say nothing about stopping: the
        // next seed is tried.
        bool checked = false;
        for (quint64 seed = 7; seed < 27 && !checked; ++seed) {
            int received = 0;
            QElapsedTimer sinceStop;
            auto c = connect(w.engine(), &EngineController::tokenGenerated, this, [&](const TokenSnapshotPtr&) {
                if (++received == 5) {
                    sinceStop.start();
                    w.chatPanel()->stop();
                }
            });
            QSignalSpy done(w.chatPanel(), &ChatPanel::answerFinished);
            w.chatPanel()->newConversation();
            w.chatPanel()->setSampling(testSampling(1500, seed));
            w.chatPanel()->sendPrompt(QStringLiteral("Tell me a long story"));
            QVERIFY(!done.isEmpty() || done.wait(kAnswerTimeoutMs));
            disconnect(c);
            const auto r = done.first().at(0).value<GenerationResult>();
            if (r.reason == FinishReason::EndOfTurn && r.tokens < 64) continue;
            checked = true;
            QCOMPARE(r.reason, FinishReason::Stopped);
            QVERIFY(r.tokens >= 5 && r.tokens < 1500);
            QVERIFY2(sinceStop.elapsed() < 1000, qPrintable(QString::number(sinceStop.elapsed())));
            const int atFinish = received;
            QTest::qWait(100);
            QCOMPARE(received, atFinish);  // nothing trickles in after the answer ended
            QCOMPARE(received, r.tokens);
            QVERIFY(!w.chatPanel()->isGenerating());
            const ConversationTurn& last = w.chatPanel()->conversation().turns.back();
            QCOMPARE(last.finish, QStringLiteral("stopped"));
            QCOMPARE(int(last.tokens.size()), r.tokens);
        }
        QVERIFY2(checked, "every seed's answer ended on its own within 64 tokens");
    }

    void conversationSurvivesReopening() {
        QString id, answer;
        {
            MainWindow w(quietOptions());
            w.show();
            QVERIFY(loadModel(w, "demo:qwen3"));
            w.chatPanel()->setSystemPrompt(QStringLiteral("You are terse."));
            const GenerationResult r = ask(w, QStringLiteral("What is attention?"), 16);
            QVERIFY(r.tokens > 0);
            id = w.chatPanel()->conversation().id;
            answer = w.chatPanel()->conversation().turns.back().text;
            w.conversationStore()->flush();
            QVERIFY(QFile::exists(w.conversationStore()->filePath(id)));
            w.close();
        }
        MainWindow w2(quietOptions(true));
        QCOMPARE(w2.chatPanel()->conversation().id, id);
        QCOMPARE(int(w2.chatPanel()->conversation().turns.size()), 2);
        QCOMPARE(w2.chatPanel()->conversation().turns[0].text,
                 QStringLiteral("What is attention?"));
        QCOMPARE(w2.chatPanel()->conversation().turns[1].text, answer);
        QCOMPARE(w2.chatPanel()->conversation().systemPrompt, QStringLiteral("You are terse."));
        QCOMPARE(w2.chatPanel()->view()->turnCount(), 2);
        QCOMPARE(w2.chatPanel()->view()->turnPlainText(1), answer);
        // Restored tokens keep their probabilities and alternatives (tooltips work after
        // reopening).
        QVERIFY(!w2.chatPanel()->conversation().turns[1].tokens.empty());
        QVERIFY(!w2.chatPanel()->conversation().turns[1].tokens[0].topK.empty());
        bool listed = false;
        QListWidget* list = w2.conversationList()->list();
        for (int i = 0; i < list->count(); ++i)
            listed |= list->item(i)->data(Qt::UserRole).toString() == id;
        QVERIFY(listed);
    }

    void savedAfterEveryToken() {
        MainWindow w(quietOptions());
        QVERIFY(loadModel(w, "demo:llama3"));
        ConversationStore* store = w.conversationStore();
        int received = 0, lagMax = 0, savesDuring = 0;
        connect(w.engine(), &EngineController::tokenGenerated, this,
                [&](const TokenSnapshotPtr&) { ++received; });
        connect(store, &ConversationStore::saved, this, [&](const ConversationSummary& s) {
            if (!w.chatPanel()->isGenerating()) return;
            ++savesDuring;
            store->flush();  // saves are written by a background thread; wait for this one
            const QJsonObject o = readJsonFile(store->filePath(s.id));
            const int onDisk =
                o.value("turns").toArray().last().toObject().value("tokens").toArray().size();
            lagMax = std::max(lagMax, received - onDisk);
        });
        const GenerationResult r = ask(w, QStringLiteral("Count"), 400);
        QVERIFY(r.tokens > 2);
        QVERIFY(savesDuring >= 1);
        QCOMPARE(lagMax, 0);  // whatever the UI had received was on disk at each save
        store->flush();
        const QJsonObject o = readJsonFile(store->filePath(w.chatPanel()->conversation().id));
        QCOMPARE(o.value("format").toString(), QStringLiteral("archlens-conversation"));
        QCOMPARE(o.value("turns").toArray().last().toObject().value("tokens").toArray().size(),
                 qsizetype(r.tokens));
        // No temporaries left behind by the atomic writes.
        const QStringList leftovers = QDir(store->directory())
                                          .entryList(QDir::Files)
                                          .filter(QRegularExpression("^(?!.*\\.json$)"));
        QVERIFY2(leftovers.isEmpty(), qPrintable(leftovers.join(", ")));
    }

    void regenerateAndEditTurn() {
        MainWindow w(quietOptions());
        QVERIFY(loadModel(w, "demo:gpt2"));
        QVERIFY(ask(w, QStringLiteral("First question"), 8).tokens > 0);
        ChatPanel* chat = w.chatPanel();
        QSignalSpy done(chat, &ChatPanel::answerFinished);
        chat->regenerate();
        QVERIFY(!done.isEmpty() || done.wait(kAnswerTimeoutMs));
        QCOMPARE(int(chat->conversation().turns.size()), 2);
        QVERIFY(ask(w, QStringLiteral("Second question"), 8).tokens > 0);
        QCOMPARE(int(chat->conversation().turns.size()), 4);
        chat->editTurn(0);
        QCOMPARE(chat->inputText(), QStringLiteral("First question"));
        chat->setInputText(QStringLiteral("Edited question"));
        done.clear();
        chat->send();
        QVERIFY(!done.isEmpty() || done.wait(kAnswerTimeoutMs));
        QCOMPARE(int(chat->conversation().turns.size()), 2);
        QCOMPARE(chat->conversation().turns[0].text, QStringLiteral("Edited question"));
        QCOMPARE(chat->view()->turnPlainText(0), QStringLiteral("Edited question"));
    }

    // File ▸ Run models on: automatic by default; the GPU choice greyed out, with the reason, where
    // the CUDA backend cannot run; choosing the CPU reloads the open model there and keeps the chat.
    void backendMenuReloadsTheModelThere() {
        const BackendRestore restore;
        MainWindow w(quietOptions());
        w.show();
        QVERIFY(loadModel(w, "demo:llama3"));
        QVERIFY(w.findChild<QMenu*>(QStringLiteral("backendMenu")));
        auto* autoA = w.findChild<QAction*>(QStringLiteral("backend-auto"));
        auto* cpuA = w.findChild<QAction*>(QStringLiteral("backend-cpu"));
        auto* gpuA = w.findChild<QAction*>(QStringLiteral("backend-cuda"));
        QVERIFY(autoA && cpuA && gpuA);
        QVERIFY(autoA->isChecked() && !cpuA->isChecked() && !gpuA->isChecked());
        const QString why = QString::fromStdString(archlens::gpu_unavailable_reason());
        QCOMPARE(gpuA->isEnabled(), why.isEmpty());
        if (!why.isEmpty()) QVERIFY2(gpuA->toolTip().contains(why) && autoA->toolTip().contains(why), qPrintable(gpuA->toolTip()));
        QVERIFY(ask(w, QStringLiteral("hello"), 4).tokens > 0);
        const size_t turns = w.chatPanel()->conversation().turns.size();
        QVERIFY(turns >= 2);
        QSignalSpy loaded(w.engine(), &EngineController::modelLoaded);
        cpuA->trigger();
        QCOMPARE(EngineController::backend(), QStringLiteral("cpu"));
        QVERIFY(cpuA->isChecked() && !autoA->isChecked());
        QVERIFY(!loaded.isEmpty() || loaded.wait(kLoadTimeoutMs));
        QCOMPARE(w.engine()->model()->source, QStringLiteral("demo:llama3"));
        QCOMPARE(w.engine()->model()->backend, QStringLiteral("CPU"));
        QCOMPARE(w.chatPanel()->conversation().turns.size(), turns);  // the chat stays
        QVERIFY(ask(w, QStringLiteral("again"), 4).tokens > 0);
        cpuA->trigger();  // the same choice again: nothing reloads
        QTest::qWait(100);
        QCOMPARE(loaded.size(), 1);
        QVERIFY(!w.engine()->isLoading());
    }

    // A model the chosen backend refuses (here: CUDA where it cannot run) is an error, and the model
    // that was loaded still answers — its session, dropped to make room, is made again.
    void refusedLoadKeepsThePreviousModel() {
        if (archlens::gpu_unavailable_reason().empty()) QSKIP("a GPU is usable here: CUDA would not refuse the demo");
        const BackendRestore restore;
        MainWindow w(quietOptions());
        w.show();
        QVERIFY(loadModel(w, "demo:llama3"));
        QVERIFY(ask(w, QStringLiteral("first"), 4).tokens > 0);
        EngineController::setBackend(QStringLiteral("cuda"));
        QSignalSpy failed(w.engine(), &EngineController::loadFailed);
        QVERIFY(!loadModel(w, "demo:qwen3"));
        QCOMPARE(failed.size(), 1);
        QVERIFY2(failed.first().at(1).toString().contains(QStringLiteral("CUDA")), qPrintable(failed.first().at(1).toString()));
        QCOMPARE(w.engine()->model()->source, QStringLiteral("demo:llama3"));
        const GenerationResult r = ask(w, QStringLiteral("still here?"), 4);
        QVERIFY2(r.tokens > 0, qPrintable(r.error));
    }

    void corruptModelShowsErrorAndAppKeepsRunning() {
        QTemporaryDir dir;
        const QString path = dir.filePath(QStringLiteral("corrupt.gguf"));
        QFile f(path);
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("GGUF\x03\x00\x00\x00", 8);
        f.write(QByteArray(100, '\xff'));  // absurd tensor and metadata counts
        f.close();

        MainWindow w(quietOptions());
        w.show();
        QSignalSpy errors(&w, &MainWindow::errorShown);
        w.engine()->loadModel(path);
        QVERIFY(!errors.isEmpty() || errors.wait(kLoadTimeoutMs));
        QVERIFY(w.lastErrorBox());
        QVERIFY(w.lastErrorBox()->isVisible());
        QVERIFY2(w.lastErrorText().contains(QStringLiteral("corrupt.gguf")),
                 qPrintable(w.lastErrorText()));
        QVERIFY(!w.engine()->model());
        // The app is still alive: the next model loads and answers.
        QVERIFY(loadModel(w, "demo:llama3"));
        QVERIFY(ask(w, QStringLiteral("still there?"), 4).tokens > 0);
        w.lastErrorBox()->accept();
    }

    void cancelledLoadLeavesNothingLoaded() {
        MainWindow w(quietOptions());
        QSignalSpy failed(w.engine(), &EngineController::loadFailed);
        w.engine()->loadModel(QStringLiteral("demo:llama3"));
        w.engine()->cancelLoad();  // before the worker starts: its first check sees it
        QVERIFY(!failed.isEmpty() || failed.wait(kLoadTimeoutMs));
        QCOMPARE(failed.first().at(2).value<LoadFailure>(), LoadFailure::Cancelled);
        QVERIFY(!w.engine()->model());
        QVERIFY(!w.engine()->isLoading());
        QVERIFY(w.lastErrorText().isEmpty());  // a cancel is not an error dialog
    }

    void keyboardAndDrop() {
        MainWindow w(quietOptions());
        w.show();
        QVERIFY(loadModel(w, "demo:llama3"));
        auto* input = w.findChild<QPlainTextEdit*>(QStringLiteral("chatInput"));
        QVERIFY(input);
        w.chatPanel()->setSampling(testSampling(4));
        input->setPlainText(QStringLiteral("typed"));
        QSignalSpy done(w.chatPanel(), &ChatPanel::answerFinished);
        QTest::keyClick(input, Qt::Key_Return, Qt::ControlModifier);
        QVERIFY(!done.isEmpty() || done.wait(kAnswerTimeoutMs));
        QCOMPARE(w.chatPanel()->conversation().turns.front().text, QStringLiteral("typed"));
        // Dropping a model file (or folder) onto the window loads it.
        QMimeData mime;
        mime.setUrls({QUrl::fromLocalFile(
            QString::fromStdString(archlens::demo::resolve_model_path("demo:gpt2")))});
        QVERIFY(ModelLibrary::acceptsDrop(&mime));
        QSignalSpy loaded(w.engine(), &EngineController::modelLoaded);
        QDropEvent drop(QPointF(10, 10), Qt::CopyAction, &mime, Qt::LeftButton, Qt::NoModifier);
        // Straight to the widget: the offscreen platform registers no drop sites, so
        // QApplication::notify would not route a synthetic drop.
        static_cast<QObject*>(&w)->event(&drop);
        QVERIFY(drop.isAccepted());
        QVERIFY(!loaded.isEmpty() || loaded.wait(kLoadTimeoutMs));
        QVERIFY(w.engine()->model()->filePath.endsWith(QStringLiteral(".gguf")));
        QVERIFY(w.modelLibrary()->recentModels().contains(w.engine()->model()->source));
        QMimeData text;
        text.setText(QStringLiteral("not a file"));
        QVERIFY(!ModelLibrary::acceptsDrop(&text));
    }

    void missingModelShowsError() {
        MainWindow w(quietOptions());
        QSignalSpy errors(&w, &MainWindow::errorShown);
        w.engine()->loadModel(QStringLiteral("/nonexistent/model.gguf"));
        QVERIFY(!errors.isEmpty() || errors.wait(kLoadTimeoutMs));
        QVERIFY(w.lastErrorText().contains(QStringLiteral("/nonexistent/model.gguf")));
    }

    void tooLargeModelRefusedBeforeLoading() {
        setMemoryBudgetOverride(2ull << 20);  // 2 MiB "free": a demo needs more
        MainWindow w(quietOptions());
        w.show();
        QSignalSpy failed(w.engine(), &EngineController::loadFailed);
        QSignalSpy loaded(w.engine(), &EngineController::modelLoaded);
        QSignalSpy errors(&w, &MainWindow::errorShown);
        w.engine()->loadModel(QStringLiteral("demo:llama3"));
        QVERIFY(!failed.isEmpty() || failed.wait(kLoadTimeoutMs));
        QCOMPARE(failed.first().at(2).value<LoadFailure>(), LoadFailure::Refused);
        QVERIFY(loaded.isEmpty());
        QVERIFY(!w.engine()->model());
        QCOMPARE(errors.size(), 1);
        const QString msg = w.lastErrorText();
        QVERIFY2(msg.contains(QStringLiteral("does not fit in memory")), qPrintable(msg));
        QVERIFY2(msg.contains(QStringLiteral("2.00 MiB")), qPrintable(msg));
        QVERIFY(w.lastErrorTitle().contains(QStringLiteral("too large")));
        // The library shows the same verdict before anyone tries.
        const ModelEntry e =
            inspectModel({QStringLiteral("demo:llama3"), "x", "demo", {}}, 2ull << 20, 4096);
        QVERIFY(e.error.isEmpty());
        QCOMPARE(e.memory.fit, MemoryFit::TooLarge);
    }

    void memoryFitClassification() {
        archlens::ModelSpec spec =
            archlens::Model::load_spec(archlens::demo::resolve_model_path("demo:llama3"));
        const qint64 ctx = defaultContext(spec);
        const quint64 w = 100ull << 20;
        const MemoryEstimate probe = estimateMemory(spec, w, ctx, 1ull << 40);
        QCOMPARE(probe.fit, MemoryFit::Fits);
        QVERIFY(probe.kv > 0);
        QCOMPARE(probe.kv, archlens::kv_bytes_at(spec, quint64(ctx), 4.0));  // f32 cache
        QVERIFY(!probe.kvF16);
        // When only an f16 cache fits, the app runs one (standard attention: half the bytes).
        const MemoryEstimate half = estimateMemory(spec, w, ctx, 1ull << 40, true);
        QCOMPARE(half.kv, archlens::kv_bytes_at(spec, quint64(ctx), 2.0));
        const quint64 between = (half.total() + probe.total()) / 2;
        QCOMPARE(estimateMemory(spec, w, ctx, between).fit, MemoryFit::TooLarge);
        const MemoryEstimate chosen = chooseKvCache(spec, w, ctx, between);
        QVERIFY(chosen.kvF16);
        QVERIFY(chosen.fit != MemoryFit::TooLarge);
        QVERIFY(!chooseKvCache(spec, w, ctx, 1ull << 40).kvF16);  // room enough: exact f32
        QCOMPARE(estimateMemory(spec, w, ctx, probe.total() + probe.total() / 10).fit,
                 MemoryFit::Tight);
        QCOMPARE(estimateMemory(spec, w, ctx, probe.total() - 1).fit, MemoryFit::TooLarge);
        QVERIFY(systemAvailableMemory() > 0);
    }

    void eventLoopStaysResponsiveWhileGenerating() {
        // A 10 ms timer measures its own lateness while the engine generates. On a machine whose
        // cores are oversubscribed by other processes, the kernel's run-queue wait of this thread
        // (/proc/thread-self/schedstat) is subtracted: that delay is not the app's doing; so is a
        // virtual machine's steal time (its CPUs descheduled by the host, /proc/stat), of which
        // the most any one CPU lost in the interval is subtracted. Both are coarse on a busy host
        // (this 2-vCPU VM showed lone 80-300 ms gaps with seconds of steal around them, in runs
        // whose other ticks were all under 25 ms), so the bound is on the 98th percentile of the
        // remaining delay (a GUI thread that waited on the engine, or painted too much per token,
        // is late on most ticks), with any single gap under one second. When the machine is
        // neither oversubscribed nor stolen from, the raw delay's 98th percentile must also stay under 50 ms.
        auto runQueueWaitMs = [] {
            QFile f(QStringLiteral("/proc/thread-self/schedstat"));
            if (!f.open(QIODevice::ReadOnly)) return 0.0;
            return f.readAll().split(' ').value(1).toDouble() / 1e6;
        };
        // Per CPU: steal time in ms so far (USER_HZ ticks of 10 ms).
        auto stealMs = [] {
            std::vector<double> out;
            QFile f(QStringLiteral("/proc/stat"));
            if (!f.open(QIODevice::ReadOnly)) return out;
            for (const QByteArray& line : f.readAll().split('\n')) {
                if (!line.startsWith("cpu") || line.startsWith("cpu ")) continue;
                const QList<QByteArray> v = line.simplified().split(' ');
                out.push_back(v.value(8).toDouble() * 10.0);
            }
            return out;
        };
        auto mostStolen = [](const std::vector<double>& a, const std::vector<double>& b) {
            double m = 0;
            for (size_t i = 0; i < std::min(a.size(), b.size()); ++i) m = std::max(m, b[i] - a[i]);
            return m;
        };
        auto loadPerCore = [] {
            QFile f(QStringLiteral("/proc/loadavg"));
            if (!f.open(QIODevice::ReadOnly)) return 0.0;
            return f.readAll().split(' ').value(0).toDouble() /
                   std::max(1, QThread::idealThreadCount());
        };
        MainWindow w(quietOptions());
        w.show();
        QVERIFY(loadModel(w, "demo:deepseek-v3"));
        QElapsedTimer clock, generating;
        double last = 0, lastWait = runQueueWaitMs(), worstRaw = 0, worstOwn = 0, stolen = 0;
        std::vector<double> own, raw;
        std::vector<double> lastSteal = stealMs();
        qint64 ticks = 0;
        QTimer probe;
        probe.setTimerType(Qt::PreciseTimer);
        probe.setInterval(10);
        connect(&probe, &QTimer::timeout, this, [&] {
            const double now = double(clock.nsecsElapsed()) / 1e6, wait = runQueueWaitMs();
            const std::vector<double> steal = stealMs();
            if (w.chatPanel()->isGenerating()) {
                const double late = now - last - 10, st = mostStolen(lastSteal, steal);
                worstRaw = std::max(worstRaw, late);
                worstOwn = std::max(worstOwn, late - (wait - lastWait) - st);
                own.push_back(late - (wait - lastWait) - st);
                raw.push_back(late);
                stolen += st;
                ++ticks;
            }
            last = now;
            lastWait = wait;
            lastSteal = steal;
        });
        // One unmeasured answer first, with the seed the measured loop starts with: one-time costs of
        // the platform (the first font fallback for an unusual script in the random text, cold
        // caches) were seen to stall a fresh process's first paint by 150-550 ms on a clean clone.
        {
            QSignalSpy warm(w.chatPanel(), &ChatPanel::answerFinished);
            w.chatPanel()->setSampling(testSampling(300, 11));
            w.chatPanel()->sendPrompt(QStringLiteral("Keep talking"));
            QVERIFY(!warm.isEmpty() || warm.wait(kAnswerTimeoutMs));
            QCoreApplication::processEvents();
        }
        const double loadBefore = loadPerCore();
        clock.start();
        probe.start();
        generating.start();
        int answers = 0;
        // Keep the engine busy for ~2 s of generation (random weights may end an answer early).
        while (generating.elapsed() < 2000 && answers < 50) {
            QSignalSpy done(w.chatPanel(), &ChatPanel::answerFinished);
            w.chatPanel()->newConversation();
            // Answers of up to 300 tokens keep the test short. (The attention map adds only the
            // new rows per refresh; its cost at 1500 tokens is printed by test_views.)
            w.chatPanel()->setSampling(testSampling(300, 11 + answers));
            w.chatPanel()->sendPrompt(QStringLiteral("Keep talking"));
            QVERIFY(!done.isEmpty() || done.wait(kAnswerTimeoutMs));
            ++answers;
        }
        probe.stop();
        const double load = std::max(loadBefore, loadPerCore());
        auto p98of = [](std::vector<double> v) {
            std::sort(v.begin(), v.end());
            return v.empty() ? 0.0 : v[std::min(v.size() - 1, v.size() * 98 / 100)];
        };
        const double p98 = p98of(own), rawP98 = p98of(raw);
        qInfo(
            "event-loop latency while generating: worst %.1f ms raw; excluding run-queue wait and "
            "steal: 98th percentile %.1f ms, worst %.1f ms; %lld ticks; load %.2f per core; steal "
            "%.0f ms",
            worstRaw, p98, worstOwn, ticks, load, stolen);
        QVERIFY(ticks > 20);
        QVERIFY2(p98 < 50, qPrintable(QStringLiteral("98th percentile timer delay %1 ms").arg(p98)));
        QVERIFY2(worstOwn < 1000,
                 qPrintable(QStringLiteral("worst timer delay %1 ms").arg(worstOwn)));
        if (load < 0.9 && stolen < 50)
            QVERIFY2(rawP98 < 50,
                     qPrintable(QStringLiteral("98th percentile raw timer delay %1 ms").arg(rawP98)));
    }

    void loadAnotherModelWhileGenerating() {
        MainWindow w(quietOptions());
        QVERIFY(loadModel(w, "demo:llama3"));
        QSignalSpy done(w.chatPanel(), &ChatPanel::answerFinished);
        QSignalSpy first(w.engine(), &EngineController::tokenGenerated);
        w.chatPanel()->setSampling(testSampling(1500));
        w.chatPanel()->sendPrompt(QStringLiteral("go on"));
        QVERIFY(!first.isEmpty() || first.wait(kAnswerTimeoutMs));
        QVERIFY(loadModel(w, "demo:qwen3-moe"));
        QVERIFY(!done.isEmpty() || done.wait(kAnswerTimeoutMs));
        QVERIFY(!w.chatPanel()->isGenerating());
        // The conversation continues on the new model (its cache starts empty).
        QVERIFY(ask(w, QStringLiteral("and now?"), 6).tokens > 0);
        QCOMPARE(w.chatPanel()->conversation().turns.back().model,
                 QStringLiteral("Qwen3-MoE (tiny)"));
    }

    void closingWhileGeneratingIsSafe() {
        auto w = std::make_unique<MainWindow>(quietOptions());
        w->show();
        QVERIFY(loadModel(*w, "demo:llama3"));
        QSignalSpy first(w->engine(), &EngineController::tokenGenerated);
        w->chatPanel()->setSampling(testSampling(1500));
        w->chatPanel()->sendPrompt(QStringLiteral("never ending"));
        QVERIFY(!first.isEmpty() || first.wait(kAnswerTimeoutMs));
        QElapsedTimer t;
        t.start();
        w->close();
        w.reset();
        QVERIFY2(t.elapsed() < 2000, qPrintable(QString::number(t.elapsed())));
    }

    void discoveryFindsLocalStores() {
        QTemporaryDir root;
        const QString gguf =
            QString::fromStdString(archlens::demo::resolve_model_path("demo:llama3"));
        auto mk = [&](const QString& rel) { return QDir().mkpath(root.filePath(rel)); };
        auto copy = [&](const QString& rel) { return QFile::copy(gguf, root.filePath(rel)); };
        // Hugging Face cache: a safetensors snapshot (config only matters for listing) and a GGUF.
        QVERIFY(mk("hf/models--acme--tiny/snapshots/abc123"));
        QVERIFY(mk("hf/models--acme--tiny/refs"));
        QFile ref(root.filePath("hf/models--acme--tiny/refs/main"));
        QVERIFY(ref.open(QIODevice::WriteOnly));
        ref.write("abc123");
        ref.close();
        QFile cfg(root.filePath("hf/models--acme--tiny/snapshots/abc123/config.json"));
        QVERIFY(cfg.open(QIODevice::WriteOnly));
        cfg.write(
            R"({"model_type":"llama","vocab_size":512,"hidden_size":64,"intermediate_size":128,"num_hidden_layers":2,
                      "num_attention_heads":4,"num_key_value_heads":2,"max_position_embeddings":512,"torch_dtype":"bfloat16"})");
        cfg.close();
        QFile st(root.filePath("hf/models--acme--tiny/snapshots/abc123/model.safetensors"));
        QVERIFY(st.open(QIODevice::WriteOnly));
        st.write(QByteArray(1000, 0));
        st.close();
        QVERIFY(mk("hf/models--acme--tiny-gguf/snapshots/r1"));
        QVERIFY(copy("hf/models--acme--tiny-gguf/snapshots/r1/tiny-Q8_0.gguf"));
        // Ollama: manifest -> blob.
        QVERIFY(mk("ollama/manifests/registry.ollama.ai/library/tiny"));
        QVERIFY(mk("ollama/blobs"));
        QVERIFY(copy("ollama/blobs/sha256-0123abcd"));
        QFile man(root.filePath("ollama/manifests/registry.ollama.ai/library/tiny/latest"));
        QVERIFY(man.open(QIODevice::WriteOnly));
        man.write(
            R"({"schemaVersion":2,"layers":[{"mediaType":"application/vnd.ollama.image.template","digest":"sha256:ffff"},
                     {"mediaType":"application/vnd.ollama.image.model","digest":"sha256:0123abcd","size":1}]})");
        man.close();
        // LM Studio: publisher/repo/file.gguf (and a projector that is not a model).
        QVERIFY(mk("lms/acme/tiny-GGUF"));
        QVERIFY(copy("lms/acme/tiny-GGUF/tiny.gguf"));
        QVERIFY(copy("lms/acme/tiny-GGUF/mmproj-tiny.gguf"));

        DiscoveryRoots roots;
        roots.huggingFace << root.filePath("hf");
        roots.ollama << root.filePath("ollama");
        roots.lmStudio << root.filePath("lms");
        const std::vector<ModelEntry> found = discoverModels(roots);
        QStringList names;
        for (const auto& e : found) names << e.source + u'|' + e.name;
        names.sort();
        QCOMPARE(names,
                 QStringList({"huggingface|acme/tiny", "huggingface|acme/tiny-gguf/tiny-Q8_0.gguf",
                              "lmstudio|acme/tiny-GGUF/tiny.gguf", "ollama|tiny:latest"}));
        for (const auto& e : found) {
            const ModelEntry info = inspectModel(e, 1ull << 40, 4096);
            QVERIFY2(info.error.isEmpty(), qPrintable(info.error));
            QVERIFY(info.architecture.startsWith(QStringLiteral("llama")));
            QCOMPARE(info.memory.fit, MemoryFit::Fits);
            QVERIFY(info.bytes > 0);
            if (e.source == u"huggingface" && e.name == u"acme/tiny")
                QCOMPARE(info.weightType, QStringLiteral("BF16"));
            else
                QCOMPARE(info.weightType, QStringLiteral("F32"));
        }

        // The library panel lists them with fit colours once its scan is done.
        MainWindow w(quietOptions());
        w.modelLibrary()->setDiscoveryRoots(roots);
        QSignalSpy scanned(w.modelLibrary(), &ModelLibrary::scanFinished);
        w.modelLibrary()->rescan();
        QVERIFY(!scanned.isEmpty() || scanned.wait(kLoadTimeoutMs));
        int machine = 0;
        for (const auto& e : w.modelLibrary()->entries())
            machine += e.source != u"demo" && e.source != u"recent";
        QCOMPARE(machine, 4);
    }

    void captureModeWritesPngs() {
        QTemporaryDir dir;
        QString error;
        auto opts = CaptureOptions::parse(
            {"archlens", "--model", "demo:gemma3", "--prompt", "Hi", "--max-tokens", "12",
             "--capture-dir", dir.path(), "--quit-after-capture"},
            &error);
        QVERIFY2(opts, qPrintable(error));
        QCOMPARE(opts->maxTokens, 12);
        QVERIFY(opts->quitAfterCapture);
        MainWindow w(quietOptions());
        w.resize(opts->windowSize);
        w.show();
        CaptureRunner runner(&w, *opts);
        QSignalSpy finished(&runner, &CaptureRunner::finished);
        runner.start();
        QVERIFY(!finished.isEmpty() || finished.wait(kLoadTimeoutMs));
        QCOMPARE(finished.first().at(0).toInt(), 0);
        QVERIFY(QFile::exists(dir.filePath("window.png")));
        for (const char* panel :
             {"panel-chat.png", "panel-library.png", "panel-attention.png", "panel-kv-cache.png"})
            QVERIFY2(QFile::exists(dir.filePath(panel)), panel);
        const QImage img(dir.filePath("window.png"));
        QCOMPARE(img.size(), opts->windowSize);
        QCOMPARE(int(w.chatPanel()->conversation().turns.size()), 2);
    }

    void captureModeFailsOnBadModel() {
        QTemporaryDir dir;
        auto opts = CaptureOptions::parse(
            {"archlens", "--model", "/nonexistent.gguf", "--capture-dir", dir.path()}, nullptr);
        QVERIFY(opts);
        MainWindow w(quietOptions());
        CaptureRunner runner(&w, *opts);
        QSignalSpy finished(&runner, &CaptureRunner::finished);
        runner.start();
        QVERIFY(!finished.isEmpty() || finished.wait(kLoadTimeoutMs));
        QCOMPARE(finished.first().at(0).toInt(), 1);
        QVERIFY(finished.first().at(1).toString().contains(QStringLiteral("/nonexistent.gguf")));
        QVERIFY(!QFile::exists(dir.filePath("window.png")));
    }

    void chatControlsExpand() {
        MainWindow w(quietOptions());
        w.resize(1440, 900);
        w.show();
        QVERIFY(loadModel(w, "demo:llama3"));
        auto* system = w.findChild<QPlainTextEdit*>(QStringLiteral("systemPrompt"));
        QVERIFY(system && !system->isVisible());
        for (QToolButton* b : w.chatPanel()->findChildren<QToolButton*>()) b->setChecked(true);
        QVERIFY(system->isVisible());
        SamplingSettings s = testSampling(77, 123);
        w.chatPanel()->setSampling(s);
        QCOMPARE(w.chatPanel()->sampling(), s);
        // ARCHLENS_TEST_SHOTS=DIR keeps a picture of the expanded controls for a human to look at.
        if (const QString dir = qEnvironmentVariable("ARCHLENS_TEST_SHOTS"); !dir.isEmpty())
            QVERIFY(w.dock(MainWindow::Panel::Chat)
                        ->grab()
                        .save(dir + QStringLiteral("/chat-expanded.png")));
    }

    void captureOptionsRejectBadInput() {
        QString error;
        QVERIFY(!CaptureOptions::parse({"archlens", "--prompt", "x"}, &error));
        QVERIFY(error.contains(QStringLiteral("--model")));
        QVERIFY(!CaptureOptions::parse(
            {"archlens", "--model", "demo:llama3", "--max-tokens", "zero"}, &error));
        QVERIFY(!CaptureOptions::parse({"archlens", "stray"}, &error));
        auto plain = CaptureOptions::parse({"archlens"}, &error);
        QVERIFY(plain && !plain->scripted());
    }

    void layoutIsRememberedAndResettable() {
        {
            MainWindow w(quietOptions());
            w.show();
            QVERIFY(w.dock(MainWindow::Panel::Routing)->isVisible());
            w.dock(MainWindow::Panel::Routing)->close();
            w.close();
        }
        {
            MainWindow w(quietOptions());
            w.show();
            QVERIFY(!w.dock(MainWindow::Panel::Routing)->isVisible());
            w.resetLayout();
            QVERIFY(w.dock(MainWindow::Panel::Routing)->isVisible());
            w.close();
        }
    }

    void conversationStoreRoundTrip() {
        QTemporaryDir dir;
        ConversationStore store(dir.path());
        Conversation c = Conversation::create();
        c.systemPrompt = QStringLiteral("sys");
        c.sampling.seed = 18446744073709551615ull;  // survives JSON (stored as a string)
        ConversationTurn u{QStringLiteral("user"), QStringLiteral("héllo ⏎"), {}, {}, {}, 0, 0, 0};
        ConversationTurn a{QStringLiteral("assistant"),
                           QStringLiteral("ok"),
                           {},
                           QStringLiteral("m"),
                           QStringLiteral("end of turn"),
                           12.5,
                           3,
                           9};
        a.tokens.push_back({42,
                            QStringLiteral("ok"),
                            0.5f,
                            {{42, QStringLiteral("ok"), 0.5f}, {7, QStringLiteral("no"), 0.25f}}});
        c.turns = {u, a};
        QVERIFY(store.save(c));
        auto back = store.load(c.id);
        QVERIFY(back);
        QCOMPARE(back->turns.size(), size_t(2));
        QCOMPARE(back->turns[0].text, u.text);
        QCOMPARE(back->turns[1].tokens[0].topK[1].text, QStringLiteral("no"));
        QCOMPARE(back->turns[1].tokens[0].prob, 0.5f);
        QCOMPARE(back->sampling.seed, c.sampling.seed);
        QCOMPARE(back->displayTitle(), u.text);
        QCOMPARE(int(store.list().size()), 1);
        QFile junk(dir.filePath("junk.json"));
        QVERIFY(junk.open(QIODevice::WriteOnly));
        junk.write("{not json");
        junk.close();
        QCOMPARE(int(store.list().size()), 1);  // unreadable files are skipped, not fatal
        Conversation evil = c;
        evil.id = QStringLiteral("../escape");
        QVERIFY(!store.save(evil));
        QVERIFY(store.remove(c.id));
        QCOMPARE(int(store.list().size()), 0);
    }

    // The chat's logit-lens budget: a lens that costs 12 decode steps runs on few tokens and
    // keeps its share of the time near the quarter it is allowed; a cheap one runs on every token.
    void lensBudgetKeepsItsShare() {
        auto run = [](double plainMs, double lensMs, int steps, int* withLens) {
            LensBudget b;
            *withLens = 0;
            for (int i = 0; i < steps; ++i) {
                const bool on = b.wanted();
                b.record(on ? lensMs : plainMs, on);
                *withLens += on;
            }
            return b;
        };
        int dear = 0, cheap = 0;
        const LensBudget d = run(10, 130, 1000, &dear);
        QVERIFY2(dear >= 20 && dear <= 40, qPrintable(QString::number(dear)));  // ~1000 * 10 / (3 * 120)
        QVERIFY(d.lensMs() <= 0.25 * d.totalMs() + 130);
        QVERIFY(d.lensMs() >= 0.2 * d.totalMs());
        run(10, 11, 1000, &cheap);
        QVERIFY2(cheap >= 990, qPrintable(QString::number(cheap)));
        QVERIFY(LensBudget().wanted());  // the first token has its lens
    }

    void tokenStyleHelpers() {
        QCOMPARE(tokenStyle::visibleText(QStringLiteral("a b\n")), QStringLiteral("a·b⏎"));
        QVERIFY(tokenStyle::probabilityColor(1.0f).lightness() >
                tokenStyle::probabilityColor(0.001f).lightness());
        QCOMPARE(tokenStyle::percent(0.5f), QStringLiteral("50.0%"));
    }
};

QTEST_MAIN(TestApp)
#include "test_app.moc"
