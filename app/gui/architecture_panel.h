// The architecture dock: the loaded model's diagram (widgets/DiagramView) fed from the engine
// controller: its spec, and its tensors so that clicking a block lists them. Models opened from a
// config only (catalog:NAME, a config.json, a GGUF header) put the app in "architecture only"
// mode: the diagram, parameter counts and KV math, and the chat disabled with a notice saying why.
//
// The layer lit in the diagram is the one picked in the Attention or Routing view: the engine runs
// all layers of a token in one call and reports nothing per layer, so there is no honest "layer
// being computed" signal to follow. Clicking a layer's frame in the diagram picks that layer in
// the Attention view in return.
#pragma once
#include <QList>
#include <QObject>
#include <QPointer>

#include "app/gui/engine_types.h"
#include "widgets/diagram_view.h"

class AttentionView;
class MainWindow;
class QLabel;
class QWidget;
class RoutingView;

class ArchitecturePanel : public QObject {
    Q_OBJECT
public:
    explicit ArchitecturePanel(MainWindow* window);

    archlens::DiagramView* diagram() const { return diagram_; }
    bool isArchitectureOnly() const { return architectureOnly_; }
    QLabel* chatNotice() const { return chatNotice_; }
    QString modelName() const { return modelName_; }

    // Model::tensors() as the diagram lists them.
    static QList<archlens::DiagramTensor> diagramTensors(const ModelInfo& info);

public slots:
    void highlightLayer(int layer, const QString& source);  // -1: none
    void openCatalogDialog();

protected:
    bool eventFilter(QObject* watched, QEvent* e) override;

private:
    void onModelLoaded(const ModelInfoPtr& info);
    void setArchitectureOnly(bool on, const QString& name);
    void attachViews();
    void placeNotice();

    MainWindow* window_;
    QWidget* container_;
    archlens::DiagramView* diagram_;
    QLabel* hint_;
    QLabel* chatNotice_;
    QPointer<AttentionView> attention_;
    QPointer<RoutingView> routing_;
    bool architectureOnly_ = false;
    QString modelName_;
    QString chatTitle_;
};
