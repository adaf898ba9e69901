// The chat: a ChatView over the current conversation, the input box, stop / regenerate / edit,
// the system prompt, sampling controls, speed and context gauges. It wires itself to the engine
// controller and the conversation store it is given; the main window only places it.
#pragma once
#include <QTimer>
#include <QWidget>

#include "app/gui/conversation_store.h"
#include "app/gui/engine_types.h"

class ChatView;
class EngineController;
class GaugeBar;
class QCheckBox;
class QDoubleSpinBox;
class QLabel;
class QLineEdit;
class QPlainTextEdit;
class QPushButton;
class QSpinBox;
class QToolButton;

class ChatPanel : public QWidget {
    Q_OBJECT
  public:
    ChatPanel(EngineController* engine, ConversationStore* store, QWidget* parent = nullptr);
    ~ChatPanel() override;
    void flushSave();  // writes a pending save now (before the store goes away)

    const Conversation& conversation() const { return conv_; }
    ChatView* view() const { return view_; }
    bool isGenerating() const { return activeGeneration_ != 0; }

    void setInputText(const QString& text);
    QString inputText() const;
    SamplingSettings sampling() const;
    void setSampling(const SamplingSettings& s);
    void setSystemPrompt(const QString& text);
    QString statsText() const;

  public slots:
    void send();  // the input box as a new user turn (or the edited one)
    void sendPrompt(const QString& text);
    void stop();
    void regenerate();        // drops the last answer and asks again
    void editTurn(int turn);  // puts a user turn back into the input box
    void cancelEdit();
    void newConversation();
    bool openConversation(const QString& id);

  signals:
    void conversationChanged(const QString& id);
    void answerFinished(const GenerationResult& result);
    void errorOccurred(const QString& title, const QString& message);

  protected:
    bool eventFilter(QObject* watched, QEvent* e) override;

  private:
    void onModelLoaded(const ModelInfoPtr& info);
    void onToken(const TokenSnapshotPtr& t);
    void onFinished(const GenerationResult& r);
    void startAnswer();
    void rebuildView();
    void updateControls();
    void updateStats(int tokens, double ttftMs, double tokPerSec);
    void scheduleSave();
    void saveNow();
    static QString turnNote(const ConversationTurn& t);

    EngineController* engine_;
    ConversationStore* store_;
    Conversation conv_;
    quint64 activeGeneration_ = 0;
    int activeTurn_ = -1;
    int editingTurn_ = -1;
    QTimer saveTimer_;

    ChatView* view_;
    QLabel* demoBanner_;
    QLabel* editBanner_;
    QWidget* editBar_;
    QToolButton* systemToggle_;
    QPlainTextEdit* systemEdit_;
    QPlainTextEdit* input_;
    QPushButton* sendButton_;
    QPushButton* stopButton_;
    QPushButton* regenButton_;
    QPushButton* newButton_;
    QLabel* stats_;
    GaugeBar* gauge_;
    QToolButton* samplingToggle_;
    QWidget* samplingBox_;
    QDoubleSpinBox* temperature_;
    QSpinBox* topK_;
    QDoubleSpinBox* topP_;
    QDoubleSpinBox* minP_;
    QDoubleSpinBox* repetition_;
    QCheckBox* fixedSeed_;
    QLineEdit* seed_;
    QSpinBox* maxTokens_;
    QCheckBox* colorTokens_;
    double liveTtft_ = 0;
    bool saveErrorShown_ = false;
};
