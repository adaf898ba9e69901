// Scriptable runs, for documentation, reviews and tests:
//   archlens --model PATH|demo:NAME [--prompt TEXT] [--max-tokens N] [--capture-dir DIR]
//            [--quit-after-capture]
// loads the model, sends the prompt, waits for the answer, saves window.png and one
// panel-<name>.png per visible panel into DIR, and exits 0; on any failure it prints the reason
// and exits non-zero. Works under Xvfb and with QT_QPA_PLATFORM=offscreen.
#pragma once
#include <QObject>
#include <QSize>
#include <QString>
#include <QStringList>
#include <QTimer>
#include <optional>

#include "app/gui/engine_types.h"

class MainWindow;
class QApplication;

struct CaptureOptions {
    QString model;
    QString prompt;
    int maxTokens = 48;
    QString captureDir;
    bool quitAfterCapture = false;
    QSize windowSize{1440, 900};
    std::optional<quint64> memoryBudget;  // --memory-budget BYTES (tests, demonstrations)
    int timeoutSeconds = 300;
    QString backend = QStringLiteral("auto");  // --backend cpu|cuda|auto

    bool scripted() const { return !model.isEmpty(); }
    // Parses the command line (argv[0] first). Returns nullopt and sets *error on bad input;
    // --help / --version are handled by the caller through `helpText`.
    static std::optional<CaptureOptions> parse(const QStringList& args, QString* error,
                                               bool* helpRequested = nullptr);
    static QString helpText();
};

class CaptureRunner : public QObject {
    Q_OBJECT
  public:
    CaptureRunner(MainWindow* window, CaptureOptions options, QObject* parent = nullptr);

    void start();
    QStringList writtenFiles() const { return written_; }
    // Grabs the window and each visible panel into dir; returns the files written.
    static QStringList captureWindow(MainWindow* window, const QString& dir, QString* error);

  signals:
    void finished(int exitCode, const QString& message);

  private:
    void onLoaded();
    void onAnswered(const GenerationResult& r);
    void capture();
    void fail(const QString& message);
    void succeed(const QString& message);

    MainWindow* window_;
    CaptureOptions opts_;
    QTimer watchdog_;
    QStringList written_;
    bool done_ = false;
    bool loaded_ = false;
};

// Application-wide names (QSettings and data folders) and meta types; used by main() and tests.
void setupApplicationIdentity();
