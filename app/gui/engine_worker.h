// The engine on its own thread. EngineWorker lives on that thread and owns the model, the session
// and the tokenizer; EngineController lives on the UI thread, owns the thread and is what panels
// talk to. The UI never waits for the engine: requests are queued, results come back as signals
// carrying immutable snapshots. Stop and cancel are atomics the worker polls once per token (and
// between prefill chunks and load phases), so they act within one token.
#pragma once
#include <QElapsedTimer>
#include <QMutex>
#include <QObject>
#include <QThread>
#include <atomic>
#include <deque>
#include <memory>
#include <optional>
#include <vector>

#include "app/gui/engine_types.h"
#include "engine/probes.h"

namespace archlens {
class Model;
class Session;
class Tokenizer;
class ChatTemplate;
}  // namespace archlens

class EngineWorker : public QObject {
    Q_OBJECT
  public:
    EngineWorker();
    ~EngineWorker() override;

    // Thread-safe; called from the UI thread while the worker is busy.
    void requestStop(quint64 upToGeneration) { raise(stopUpTo_, upToGeneration); }
    void requestCancelLoad(quint64 upToLoad) { raise(cancelUpTo_, upToLoad); }
    void setProbeConfig(const archlens::ProbeConfig& cfg);

  public slots:
    void loadModel(const LoadRequest& req);
    void generate(const GenerationRequest& req);
    void unloadModel();

  signals:
    void loadProgress(quint64 loadId, const QString& phase, int percent);  // percent < 0: busy
    void modelLoaded(quint64 loadId, const ModelInfoPtr& info);
    void loadFailed(quint64 loadId, const QString& message, LoadFailure kind);
    void generationStarted(const ContextSnapshotPtr& context);
    void tokenGenerated(const TokenSnapshotPtr& token);
    void generationFinished(const GenerationResult& result);

  private:
    struct Loaded;
    static void raise(std::atomic<quint64>& a, quint64 v);
    bool stopRequested(quint64 gen) const { return stopUpTo_.load() >= gen; }
    bool cancelRequested(quint64 load) const { return cancelUpTo_.load() >= load; }
    std::vector<int> renderPrompt(const std::vector<ChatMessageInput>& messages) const;
    // The views' probe needs onto the session; the logit lens only where lensAllowed (LensBudget).
    // Returns whether the lens is on.
    bool applyProbeConfig(bool lensAllowed = true);

    std::unique_ptr<Loaded> m_;
    std::vector<int> cached_;  // tokens whose keys/values are in the session's KV cache
    std::atomic<quint64> stopUpTo_{0}, cancelUpTo_{0};
    QMutex probeMutex_;
    archlens::ProbeConfig probeConfig_;
};

class EngineController : public QObject {
    Q_OBJECT
  public:
    explicit EngineController(QObject* parent = nullptr);
    ~EngineController() override;  // stops, cancels and joins: safe while generating

    // Stops a running answer first, then loads (the old model stays until the new one is ready).
    quint64 loadModel(const QString& pathOrDemo);
    // The spec only (diagram, parameter counts, KV math), no weights: the loaded model is dropped
    // and nothing can chat until a runnable model is loaded. catalog:NAME and *.json always open
    // so.
    quint64 loadArchitecture(const QString& pathOrCatalog);
    // The same model (or architecture) again, running the named MatFormer slice ("" = whole).
    quint64 loadSlice(const QString& source, const QString& slice, bool architectureOnly);
    void cancelLoad();
    // Empty when no model is loaded (generationFinished with an error follows).
    quint64 generate(const std::vector<ChatMessageInput>& messages,
                     const SamplingSettings& sampling);
    void stop();
    void setProbeConfig(const archlens::ProbeConfig& cfg) { worker_->setProbeConfig(cfg); }

    void setContextCap(qint64 tokens) { contextCap_ = tokens; }
    // Where models load from now on: "auto" (the default), "cpu" or "cuda" (the app's --backend).
    static void setBackend(const QString& b);
    static QString backend();
    qint64 contextCap() const { return contextCap_; }

    ModelInfoPtr model() const { return model_; }
    bool isLoading() const { return loadingId_ != 0; }
    bool isGenerating() const { return generatingId_ != 0; }
    quint64 currentGeneration() const { return generatingId_; }
    QString loadingSource() const { return loadingSource_; }
    // The latest per-token numbers (for the status bar).
    quint64 kvBytes() const { return kvBytes_; }

  signals:
    // Generation events arrive in order (started, tokens, finished), one signal per token.
    void loadStarted(const QString& source);
    void loadProgress(const QString& phase, int percent);
    void modelLoaded(const ModelInfoPtr& info);
    void loadFailed(const QString& source, const QString& message, LoadFailure kind);
    void generationStarted(const ContextSnapshotPtr& context);
    void tokenGenerated(const TokenSnapshotPtr& token);
    void generationFinished(const GenerationResult& result);
    void busyChanged();

  private:
    // The worker can outrun the UI (a tiny model makes thousands of tokens per second). Its
    // generation events go into this inbox and the UI drains it in slices of a few milliseconds,
    // so timers, input and painting run in between however fast tokens come.
    struct InboxEvent {
        ContextSnapshotPtr started;
        TokenSnapshotPtr token;
        std::optional<GenerationResult> finished;
    };
    quint64 startLoad(const QString& source, bool architectureOnly, const QString& slice = {});
    void post(InboxEvent e);   // worker thread
    Q_INVOKABLE void drain();  // UI thread

    QThread thread_;
    EngineWorker* worker_;
    QMutex inboxMutex_;
    std::deque<InboxEvent> inbox_;
    bool drainScheduled_ = false;
    ModelInfoPtr model_;
    quint64 nextLoad_ = 0, nextGeneration_ = 0;
    quint64 loadingId_ = 0, generatingId_ = 0;
    // Loads up to this id were cancelled: a result that arrives afterwards is discarded, so a
    // cancel always leaves nothing loaded, however quickly the worker finished.
    quint64 cancelledLoadUpTo_ = 0;
    QString loadingSource_;
    qint64 contextCap_ = 4096;
    quint64 kvBytes_ = 0;
};
