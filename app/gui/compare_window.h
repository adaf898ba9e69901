// View → Compare models…: two models side by side. The "Architectures" tab is the widgets'
// ComparisonView (diagrams aligned block to block, hyperparameter table, bars, KV curves) fed by a
// spec loader that takes catalog names and any model path; the eight preset pairs are one click
// each. The "Run both" tab is the live half: when both models can run (demo models, GGUF files,
// model folders) each gets its own EngineController (its own EngineWorker on its own thread), one
// prompt goes to both, and the answers stream side by side with tokens/s and KV used, each side's
// attention and routing views kept on the same layer and head. Nothing here waits on an engine.
#pragma once
#include <QFutureWatcher>
#include <QWidget>
#include <optional>

#include "app/gui/engine_types.h"
#include "engine/model/spec.h"

class AttentionView;
class ChatView;
class EngineController;
class QCheckBox;
class QComboBox;
class QLabel;
class QPushButton;
class QLineEdit;
class QSpinBox;
class QTabWidget;
class RoutingView;
namespace archlens {
class ComparisonView;
}

// One live column: its own engine, the answer, its numbers and its attention/routing views.
class CompareSide : public QWidget {
    Q_OBJECT
public:
    explicit CompareSide(const QString& label, QWidget* parent = nullptr);

    EngineController* engine() const { return engine_; }
    AttentionView* attention() const { return attention_; }
    RoutingView* routing() const { return routing_; }
    ChatView* answerView() const { return answer_; }
    QLabel* statsLabel() const { return stats_; }
    ModelInfoPtr model() const;
    QString answerText() const;  // the latest answer as shown
    int answerTokens() const { return tokens_; }
    bool isGenerating() const;

    void load(const QString& source);
    void send(const QString& prompt, const SamplingSettings& sampling);
    void stop();

signals:
    void loaded(const ModelInfoPtr& info);
    void failed(const QString& message);
    void tokenArrived();
    void finished(const GenerationResult& result);

private:
    void updateProbes();
    void showStats(double tokPerSec, quint64 kvBytes, const QString& extra = {});

    QString label_;
    EngineController* engine_;
    QLabel* title_;
    ChatView* answer_;
    QLabel* stats_;
    AttentionView* attention_;
    RoutingView* routing_;
    int tokens_ = 0;
    quint64 kvBytes_ = 0;
};

class CompareWindow : public QWidget {
    Q_OBJECT
public:
    explicit CompareWindow(QWidget* parent = nullptr);
    ~CompareWindow() override;

    archlens::ComparisonView* comparison() const { return comparison_; }
    CompareSide* side(int i) const { return i == 0 ? a_ : b_; }
    QTabWidget* tabs() const { return tabs_; }
    QList<QPushButton*> presetButtons() const { return presetButtons_; }
    QString modelA() const;
    QString modelB() const;
    bool liveReady() const;  // both sides loaded and runnable
    bool viewsSynced() const;

    // catalog:NAME, a bare catalog name, demo:NAME, a GGUF, a model folder or a config.json.
    static std::optional<archlens::ModelSpec> loadSpec(const QString& nameOrPath, QString* error = nullptr);
    static bool isRunnable(const QString& source);  // has weights the engine can run

public slots:
    void setModels(const QString& a, const QString& b);  // compares; loads both engines when both can run
    void compare();                                      // the two model boxes
    bool loadPreset(int index);
    void sendPrompt(const QString& prompt);  // to both; empty: the prompt box
    void stop();
    void setViewsSynced(bool on);

signals:
    void specsShown();
    void liveReadyChanged(bool ready);

private:
    void syncAttention(AttentionView* from, AttentionView* to);
    void syncRouting(RoutingView* from, RoutingView* to);
    void updateLiveState();

    QComboBox* boxA_;
    QComboBox* boxB_;
    QTabWidget* tabs_;
    archlens::ComparisonView* comparison_;
    QList<QPushButton*> presetButtons_;
    CompareSide* a_;
    CompareSide* b_;
    QLineEdit* prompt_;
    QPushButton* send_;
    QPushButton* stop_;
    QSpinBox* maxTokens_;
    QCheckBox* sync_;
    QLabel* liveStatus_;
    QFutureWatcher<QString> specWatcher_;
    struct Pending {
        std::optional<archlens::ModelSpec> a, b;
        QString nameA, nameB;
    };
    std::shared_ptr<Pending> pending_;
    bool syncing_ = false;
    quint64 specRequest_ = 0;
};
