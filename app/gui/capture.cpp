#include "app/gui/capture.h"

#include <QApplication>
#include <QCommandLineParser>
#include <QDir>
#include <QDockWidget>
#include <QPixmap>

#include "app/gui/chat_panel.h"
#include "app/gui/engine_worker.h"
#include "app/gui/main_window.h"
#include "app/gui/model_library.h"

void setupApplicationIdentity() {
    QCoreApplication::setOrganizationName(QStringLiteral("ArchLens"));
    QCoreApplication::setApplicationName(QStringLiteral("ArchLens"));
    QCoreApplication::setApplicationVersion(QStringLiteral("0.1"));
    registerEngineMetaTypes();
}

namespace {

struct Parser {
    QCommandLineParser p;
    QCommandLineOption model{"model", "Open this model: a GGUF file, an HF folder or demo:NAME.",
                             "PATH"};
    QCommandLineOption prompt{"prompt", "Send this message once the model is loaded.", "TEXT"};
    QCommandLineOption maxTokens{"max-tokens", "Answer length limit for --prompt (default 48).",
                                 "N"};
    QCommandLineOption captureDir{"capture-dir",
                                  "Save window.png and panel-*.png here after the answer.", "DIR"};
    QCommandLineOption quit{"quit-after-capture",
                            "Exit when done (status 0), or on failure (non-zero)."};
    QCommandLineOption size{"size", "Window size for the capture (default 1440x900).", "WxH"};
    QCommandLineOption budget{"memory-budget",
                              "Pretend this many bytes of memory are free (fit checks).", "BYTES"};
    QCommandLineOption timeout{"timeout", "Give up after this many seconds (default 300).", "S"};
    QCommandLineOption backend{"backend",
                               "Where models run: auto (the GPU when one can take the model, else the "
                               "CPU; the default), cpu or cuda.",
                               "B"};
    Parser() {
        p.setApplicationDescription(
            "ArchLens: see inside open-weight LLMs while you chat.\n"
            "Scripted capture: archlens --model demo:llama3 --prompt Hello --capture-dir DIR "
            "--quit-after-capture");
        p.addHelpOption();
        p.addVersionOption();
        p.addOptions({model, prompt, maxTokens, captureDir, quit, size, budget, timeout, backend});
    }
};

}  // namespace

QString CaptureOptions::helpText() {
    Parser parser;
    return parser.p.helpText();
}

std::optional<CaptureOptions> CaptureOptions::parse(const QStringList& args, QString* error,
                                                    bool* helpRequested) {
    Parser parser;
    if (!parser.p.parse(args)) {
        if (error) *error = parser.p.errorText();
        return std::nullopt;
    }
    if (helpRequested)
        *helpRequested =
            parser.p.isSet(QStringLiteral("help")) || parser.p.isSet(QStringLiteral("version"));
    CaptureOptions o;
    o.model = parser.p.value(parser.model);
    o.prompt = parser.p.value(parser.prompt);
    o.captureDir = parser.p.value(parser.captureDir);
    o.quitAfterCapture = parser.p.isSet(parser.quit);
    auto fail = [&](const QString& msg) {
        if (error) *error = msg;
        return std::nullopt;
    };
    if (parser.p.isSet(parser.maxTokens)) {
        bool ok = false;
        o.maxTokens = parser.p.value(parser.maxTokens).toInt(&ok);
        if (!ok || o.maxTokens <= 0)
            return fail(QStringLiteral("--max-tokens needs a positive number"));
    }
    if (parser.p.isSet(parser.size)) {
        const QStringList wh = parser.p.value(parser.size).split(u'x');
        const int w = wh.value(0).toInt(), h = wh.size() == 2 ? wh[1].toInt() : 0;
        if (w < 320 || h < 240) return fail(QStringLiteral("--size needs WxH, at least 320x240"));
        o.windowSize = {w, h};
    }
    if (parser.p.isSet(parser.backend)) {
        o.backend = parser.p.value(parser.backend);
        if (o.backend != u"auto" && o.backend != u"cpu" && o.backend != u"cuda")
            return fail(QStringLiteral("--backend must be auto, cpu or cuda"));
    }
    if (parser.p.isSet(parser.budget)) {
        bool ok = false;
        o.memoryBudget = parser.p.value(parser.budget).toULongLong(&ok);
        if (!ok) return fail(QStringLiteral("--memory-budget needs a number of bytes"));
    }
    if (parser.p.isSet(parser.timeout)) {
        bool ok = false;
        o.timeoutSeconds = parser.p.value(parser.timeout).toInt(&ok);
        if (!ok || o.timeoutSeconds <= 0)
            return fail(QStringLiteral("--timeout needs a positive number of seconds"));
    }
    if (!parser.p.positionalArguments().isEmpty())
        return fail(QStringLiteral("unexpected argument '%1' (use --model PATH)")
                        .arg(parser.p.positionalArguments().first()));
    if ((!o.prompt.isEmpty() || !o.captureDir.isEmpty() || o.quitAfterCapture) && o.model.isEmpty())
        return fail(
            QStringLiteral("--prompt, --capture-dir and --quit-after-capture need --model"));
    return o;
}

CaptureRunner::CaptureRunner(MainWindow* window, CaptureOptions options, QObject* parent)
    : QObject(parent), window_(window), opts_(std::move(options)) {
    watchdog_.setSingleShot(true);
    connect(&watchdog_, &QTimer::timeout, this, [this] {
        fail(tr("timed out after %1 s (%2)")
                 .arg(opts_.timeoutSeconds)
                 .arg(loaded_ ? tr("waiting for the answer") : tr("loading the model")));
    });
}

void CaptureRunner::start() {
    EngineController* engine = window_->engine();
    connect(engine, &EngineController::modelLoaded, this, [this](const ModelInfoPtr& info) {
        if (info->source == opts_.model) onLoaded();
    });
    connect(engine, &EngineController::loadFailed, this,
            [this](const QString& source, const QString& msg, LoadFailure) {
                if (source == opts_.model) fail(tr("cannot open %1: %2").arg(opts_.model, msg));
            });
    connect(window_->chatPanel(), &ChatPanel::answerFinished, this, &CaptureRunner::onAnswered);
    watchdog_.start(opts_.timeoutSeconds * 1000);
    engine->loadModel(opts_.model);
}

void CaptureRunner::onLoaded() {
    if (done_ || loaded_) return;
    loaded_ = true;
    if (opts_.prompt.isEmpty()) {
        capture();
        return;
    }
    ChatPanel* chat = window_->chatPanel();
    chat->newConversation();
    SamplingSettings s = chat->sampling();
    s.maxTokens = opts_.maxTokens;
    // Reproducible screenshots: the same command gives the same answer.
    if (!s.fixedSeed) {
        s.fixedSeed = true;
        s.seed = 1;
    }
    chat->setSampling(s);
    chat->sendPrompt(opts_.prompt);
}

void CaptureRunner::onAnswered(const GenerationResult& r) {
    if (done_) return;
    if (r.reason == FinishReason::Error) return fail(tr("generation failed: %1").arg(r.error));
    capture();
}

void CaptureRunner::capture() {
    if (opts_.captureDir.isEmpty()) return succeed({});
    // The library fills in sizes and memory fit when its scan ends (on a fresh machine it first
    // creates the demo files): the picture waits for it.
    if (ModelLibrary* lib = window_->modelLibrary(); lib && lib->isScanning()) {
        connect(lib, &ModelLibrary::scanFinished, this, &CaptureRunner::capture,
                Qt::SingleShotConnection);
        return;
    }
    // A view whose minimum size grew with its content may have pushed the window out; ask for
    // the requested size again (the layout gives way down to the panels' minimums).
    if (window_->size() != opts_.windowSize && !window_->isFullScreen())
        window_->resize(opts_.windowSize);
    // Let queued paints and layout passes run so the grab shows the final state.
    QTimer::singleShot(400, this, [this] {
        if (done_) return;
        QString error;
        written_ = captureWindow(window_, opts_.captureDir, &error);
        if (!error.isEmpty()) return fail(error);
        succeed(tr("saved %1 images in %2")
                    .arg(written_.size())
                    .arg(QDir(opts_.captureDir).absolutePath()));
    });
}

QStringList CaptureRunner::captureWindow(MainWindow* window, const QString& dir, QString* error) {
    QStringList files;
    if (!QDir().mkpath(dir)) {
        if (error) *error = QObject::tr("cannot create the folder %1").arg(dir);
        return files;
    }
    auto save = [&](QWidget* w, const QString& name) {
        const QString file = QDir(dir).filePath(name);
        const QPixmap pix = w->grab();
        if (pix.isNull() || !pix.save(file, "PNG")) {
            if (error && error->isEmpty()) *error = QObject::tr("cannot write %1").arg(file);
            return;
        }
        files << file;
    };
    save(window, QStringLiteral("window.png"));
    for (MainWindow::Panel p : window->panels()) {
        QDockWidget* d = window->dock(p);
        if (d && d->isVisible() && d->widget())
            save(d, QStringLiteral("panel-%1.png").arg(MainWindow::panelKey(p)));
    }
    return files;
}

void CaptureRunner::fail(const QString& message) {
    if (done_) return;
    done_ = true;
    watchdog_.stop();
    emit finished(1, message);
}

void CaptureRunner::succeed(const QString& message) {
    if (done_) return;
    done_ = true;
    watchdog_.stop();
    emit finished(0, message);
}
