// archlens: the desktop app. With --model it also runs scripted (see capture.h).
#include <QApplication>
#include <QScreen>
#include <cstdio>

#include "app/gui/capture.h"
#include "app/gui/engine_worker.h"
#include "app/gui/main_window.h"
#include "app/gui/memory_fit.h"

int main(int argc, char** argv) {
    QApplication app(argc, argv);
    setupApplicationIdentity();

    QString error;
    bool help = false;
    const auto opts = CaptureOptions::parse(app.arguments(), &error, &help);
    if (!opts) {
        std::fprintf(stderr, "archlens: %s\n\n%s", qPrintable(error),
                     qPrintable(CaptureOptions::helpText()));
        return 2;
    }
    if (help) {
        std::printf("%s", qPrintable(CaptureOptions::helpText()));
        return 0;
    }
    if (opts->memoryBudget) setMemoryBudgetOverride(*opts->memoryBudget);
    EngineController::setBackend(opts->backend);

    MainWindowOptions wo;
    wo.openDemoOnFirstLaunch = !opts->scripted();
    wo.restoreLastConversation = !opts->scripted();
    MainWindow window(wo);
    if (!opts->captureDir.isEmpty()) window.resize(opts->windowSize);
    window.show();
    // Captures show the default arrangement at a known size, whatever the user last left.
    if (!opts->captureDir.isEmpty()) window.resetLayout();

    std::unique_ptr<CaptureRunner> runner;
    if (opts->scripted()) {
        runner = std::make_unique<CaptureRunner>(&window, *opts);
        QObject::connect(runner.get(), &CaptureRunner::finished, &app,
                         [&](int code, const QString& message) {
                             if (code != 0)
                                 std::fprintf(stderr, "archlens: %s\n", qPrintable(message));
                             else if (!message.isEmpty())
                                 std::printf("archlens: %s\n", qPrintable(message));
                             for (const QString& f : runner->writtenFiles())
                                 std::printf("%s\n", qPrintable(f));
                             std::fflush(stdout);
                             if (opts->quitAfterCapture) QCoreApplication::exit(code);
                         });
        runner->start();
    }
    return app.exec();
}
