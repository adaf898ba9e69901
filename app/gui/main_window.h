// The window people live in: every panel is a dock (movable, closable, remembered between runs,
// with a reset-layout action). Thin on purpose: it creates the shared objects (engine controller,
// conversation store), places the panels, and shows errors and status; each panel wires itself.
#pragma once
#include <QMainWindow>
#include <QMap>
#include <QMessageBox>
#include <QPointer>
#include <QTimer>

#include "app/gui/engine_types.h"

class ChatPanel;
class ConversationList;
class ConversationStore;
class EngineController;
class ModelLibrary;
class QDockWidget;
class QLabel;
class QToolButton;
class QAction;
class QProgressBar;
class QPushButton;

struct MainWindowOptions {
    bool openDemoOnFirstLaunch = true;  // a fresh machine starts with something to look at
    bool restoreLastConversation = true;
    QString conversationsDir;  // empty: <AppDataLocation>/conversations
};

class MainWindow : public QMainWindow {
    Q_OBJECT
  public:
    // Library, conversations and chat are this issue's; the rest are slots the live views fill.
    enum class Panel {
        Library,
        Conversations,
        Chat,
        Architecture,
        Attention,
        Routing,
        KvCache,
        TopK
    };
    static constexpr const char* kFirstDemo = "demo:llama3";

    explicit MainWindow(const MainWindowOptions& options = {}, QWidget* parent = nullptr);
    ~MainWindow() override;

    EngineController* engine() const { return engine_; }
    ConversationStore* conversationStore() const { return store_; }
    ChatPanel* chatPanel() const { return chat_; }
    ModelLibrary* modelLibrary() const { return library_; }
    ConversationList* conversationList() const { return conversations_; }
    QDockWidget* dock(Panel p) const { return docks_.value(p); }
    void setPanelWidget(Panel p, QWidget* w);  // replaces the placeholder; the dock takes ownership
    static QString panelKey(Panel p);          // "chat", "kv-cache", ... (file names, object names)
    QList<Panel> panels() const { return docks_.keys(); }

    // The last error shown (non-modal dialogs: the app keeps running behind them).
    QString lastErrorTitle() const { return lastErrorTitle_; }
    QString lastErrorText() const { return lastErrorText_; }
    QMessageBox* lastErrorBox() const { return lastErrorBox_; }
    QString statusText() const;

  public slots:
    void showError(const QString& title, const QString& message);
    void resetLayout();
    void togglePresentation();
    void exportFocusedView();

  signals:
    void errorShown(const QString& title, const QString& message);

  protected:
    void closeEvent(QCloseEvent* e) override;
    void showEvent(QShowEvent* e) override;
    void dragEnterEvent(QDragEnterEvent* e) override;
    void dropEvent(QDropEvent* e) override;

  private:
    QDockWidget* addPanel(Panel p, const QString& title, QWidget* w);
    void buildLayout();
    void applyDefaultSizes();
    void buildActions();
    void buildStatusBar();
    void updateStatus();
    void onModelLoaded(const ModelInfoPtr& info);
    // File ▸ Run models on: where models load from now on; reloads the open model there.
    void setBackend(const QString& value, const QString& label);

    EngineController* engine_;
    ConversationStore* store_;
    ModelLibrary* library_ = nullptr;
    ChatPanel* chat_ = nullptr;
    ConversationList* conversations_ = nullptr;
    QMap<Panel, QDockWidget*> docks_;
    QByteArray defaultState_;
    bool restoredState_ = false, sized_ = false;
    QLabel* modelLabel_ = nullptr;
    QToolButton* sliceButton_ = nullptr;  // Gemma 3n MatFormer sizes
    QAction* sliceAction_ = nullptr;
    QLabel* statusModel_ = nullptr;
    QLabel* statusMemory_ = nullptr;
    QLabel* loadLabel_ = nullptr;
    QProgressBar* loadProgress_ = nullptr;
    QPushButton* loadCancel_ = nullptr;
    QTimer statusTimer_;
    QPointer<QMessageBox> lastErrorBox_;
    QString lastErrorTitle_, lastErrorText_;
};
