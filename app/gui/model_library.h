// The model library panel: demo models, recently opened models and the ones already on this
// machine (Hugging Face cache, Ollama, LM Studio), each with architecture, parameters, size,
// weight type and a green/yellow/red memory fit, all known before loading. Open file / folder,
// drag and drop, double-click to load.
#pragma once
#include <QFutureWatcher>
#include <QWidget>
#include <vector>

#include "app/gui/engine_types.h"
#include "app/gui/model_discovery.h"

class EngineController;
class QLabel;
class QMimeData;
class QTreeWidget;
class QTreeWidgetItem;

class ModelLibrary : public QWidget {
    Q_OBJECT
  public:
    explicit ModelLibrary(EngineController* engine, QWidget* parent = nullptr);
    ~ModelLibrary() override;

    void setDiscoveryRoots(const DiscoveryRoots& roots) { roots_ = roots; }
    QTreeWidget* tree() const { return tree_; }
    QStringList recentModels() const;
    void addRecent(const QString& path);
    bool isScanning() const { return watcher_.isRunning(); }
    // Entries currently listed (after the last scan), for tests and the demo menu.
    const std::vector<ModelEntry>& entries() const { return entries_; }

    static bool acceptsDrop(const QMimeData* mime);
    static QString droppedPath(const QMimeData* mime);

  public slots:
    void rescan();
    void openFileDialog();
    void openFolderDialog();
    void loadPath(const QString& path);

  signals:
    void scanFinished();

  protected:
    void dragEnterEvent(QDragEnterEvent* e) override;
    void dropEvent(QDropEvent* e) override;

  private:
    void populate();
    void fillItem(QTreeWidgetItem* item, const ModelEntry& e);
    void markLoaded();
    void showDetails();

    EngineController* engine_;
    DiscoveryRoots roots_;
    QTreeWidget* tree_;
    QLabel* details_;
    QTreeWidgetItem* demoGroup_;
    QTreeWidgetItem* recentGroup_;
    QTreeWidgetItem* machineGroup_;
    std::vector<ModelEntry> entries_;
    QFutureWatcher<std::vector<ModelEntry>> watcher_;
    bool rescanPending_ = false;
};
