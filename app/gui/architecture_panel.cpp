#include "app/gui/architecture_panel.h"

#include <QChildEvent>
#include <QComboBox>
#include <QDockWidget>
#include <QEvent>
#include <QLabel>
#include <QTimer>
#include <QVBoxLayout>

#include "app/gui/catalog_dialog.h"
#include "app/gui/chat_panel.h"
#include "app/gui/engine_worker.h"
#include "app/gui/main_window.h"
#include "widgets/attention_view.h"
#include "widgets/routing_view.h"

using archlens::DiagramTensor;
using archlens::DiagramView;

ArchitecturePanel::ArchitecturePanel(MainWindow* window) : QObject(window), window_(window) {
    setObjectName(QStringLiteral("architecturePanel"));
    container_ = new QWidget;
    container_->setObjectName(QStringLiteral("architecturePanelWidget"));
    auto* layout = new QVBoxLayout(container_);
    layout->setContentsMargins(0, 0, 0, 0);
    layout->setSpacing(2);
    diagram_ = new DiagramView(container_);
    diagram_->setObjectName(QStringLiteral("architectureDiagram"));
    diagram_->setSidePanelBelow(true);  // the dock is a narrow column: the diagram gets its width
    layout->addWidget(diagram_, 1);
    hint_ = new QLabel(tr("Load a model, or open one from the catalog, to see its architecture."), container_);
    hint_->setObjectName(QStringLiteral("architectureHint"));
    hint_->setWordWrap(true);
    hint_->setStyleSheet(QStringLiteral("QLabel { color: #6b7079; font-size: 11px; padding: 2px 6px; }"));
    hint_->setToolTip(tr("The engine runs every layer of a token in one call and reports nothing per layer, so the diagram "
                         "lights the layer picked in the Attention or Routing view. Click a layer's frame to pick it there."));
    layout->addWidget(hint_);
    window->setPanelWidget(MainWindow::Panel::Architecture, container_);

    // The chat's notice lives on the chat dock, not in the chat panel, so it stays readable while
    // the panel underneath is disabled.
    QDockWidget* chatDock = window->dock(MainWindow::Panel::Chat);
    chatNotice_ = new QLabel(chatDock);
    chatNotice_->setObjectName(QStringLiteral("architectureOnlyNotice"));
    chatNotice_->setWordWrap(true);
    chatNotice_->setTextFormat(Qt::RichText);
    chatNotice_->setStyleSheet(QStringLiteral("QLabel { background: #e8f1fb; color: #1d3b5c; border: 1px solid #8fb4dc; "
                                              "border-radius: 4px; padding: 10px; }"));
    chatNotice_->hide();
    if (chatDock) {
        chatTitle_ = chatDock->windowTitle();
        chatDock->installEventFilter(this);
    }

    for (auto p : {MainWindow::Panel::Attention, MainWindow::Panel::Routing})
        if (QDockWidget* d = window->dock(p)) d->installEventFilter(this);  // the live views arrive later
    attachViews();

    connect(window->engine(), &EngineController::modelLoaded, this, &ArchitecturePanel::onModelLoaded);
    connect(diagram_, &DiagramView::boxSelected, this, [this](const QString& id) {
        const archlens::DiagramBox* b = diagram_->diagramLayout().box(id);
        if (!b || b->group < 0) return;
        const auto& layers = diagram_->diagramLayout().groups[b->group].layerIndices;
        if (layers.isEmpty()) return;
        if (attention_) attention_->setLayer(layers.first());
        highlightLayer(layers.first(), tr("picked in the diagram"));
    });
    if (window->engine()->model()) onModelLoaded(window->engine()->model());
}

QList<DiagramTensor> ArchitecturePanel::diagramTensors(const ModelInfo& info) {
    QList<DiagramTensor> out;
    out.reserve(qsizetype(info.tensors.size()));
    for (const ModelTensorRow& t : info.tensors) {
        DiagramTensor d;
        d.name = t.name;
        d.fileName = t.fileName;
        d.shape = t.shape;
        d.type = t.type;
        d.bytes = t.bytes;
        out << d;
    }
    return out;
}

void ArchitecturePanel::onModelLoaded(const ModelInfoPtr& info) {
    if (!info || !info->spec) return;
    modelName_ = info->name;
    diagram_->setSpec(*info->spec, info->architectureOnly ? tr("%1 — architecture only").arg(info->name) : info->name);
    diagram_->setTensors(diagramTensors(*info));
    diagram_->setActiveLayer(-1);
    if (info->architectureOnly)
        hint_->setText(tr("Architecture only: drawn from the config, no weights loaded (no tensors to list, no chat)."));
    else
        hint_->setText(tr("Click a block for its tensors. The lit layer is the one picked in the Attention or Routing view."));
    setArchitectureOnly(info->architectureOnly, info->name);
}

void ArchitecturePanel::setArchitectureOnly(bool on, const QString& name) {
    architectureOnly_ = on;
    if (ChatPanel* chat = window_->chatPanel()) chat->setEnabled(!on);
    QDockWidget* chatDock = window_->dock(MainWindow::Panel::Chat);
    if (chatDock) chatDock->setWindowTitle(on ? tr("Chat — not available (architecture only)") : chatTitle_);
    if (on) {
        chatNotice_->setText(tr("<b>%1 is open as architecture only.</b><br>Its configuration has no weights, so it cannot chat: "
                                "the Architecture panel shows its diagram, parameter counts and KV-cache math.<br>"
                                "To chat, load a GGUF file, a model folder or a demo model (File → Demo models).")
                                 .arg(name.toHtmlEscaped()));
        chatNotice_->show();
        chatNotice_->raise();
        placeNotice();
        if (QDockWidget* d = window_->dock(MainWindow::Panel::Architecture)) {
            d->show();
            d->raise();
        }
    } else {
        chatNotice_->hide();
    }
}

void ArchitecturePanel::placeNotice() {
    QDockWidget* chatDock = window_->dock(MainWindow::Panel::Chat);
    if (!chatDock || !chatNotice_->isVisible()) return;
    QRect area = chatDock->widget() ? chatDock->widget()->geometry() : chatDock->rect();
    const int w = std::max(120, area.width() - 24);
    chatNotice_->setFixedWidth(w);
    chatNotice_->adjustSize();
    chatNotice_->move(area.left() + 12, area.top() + 12);
    chatNotice_->raise();
}

void ArchitecturePanel::highlightLayer(int layer, const QString& source) {
    diagram_->setActiveLayerLabel(source.isEmpty() ? QString() : tr("layer %1 · ") + source);
    diagram_->setActiveLayer(layer);
}

void ArchitecturePanel::attachViews() {
    auto* att = qobject_cast<AttentionView*>(window_->dock(MainWindow::Panel::Attention) ? window_->dock(MainWindow::Panel::Attention)->widget() : nullptr);
    if (att && att != attention_) {
        attention_ = att;
        // The view reports a layer/head change through probeNeedsChanged (what it captures follows).
        connect(att, &AttentionView::probeNeedsChanged, this, [this, att] {
            if (attention_ == att && !architectureOnly_) highlightLayer(att->layer(), tr("picked in Attention"));
        });
    }
    auto* rv = qobject_cast<RoutingView*>(window_->dock(MainWindow::Panel::Routing) ? window_->dock(MainWindow::Panel::Routing)->widget() : nullptr);
    if (rv && rv != routing_) {
        routing_ = rv;
        // Its first combo box is the MoE layer; the view's own handler runs first (connected first).
        if (auto* box = rv->findChild<QComboBox*>()) {
            connect(box, qOverload<int>(&QComboBox::currentIndexChanged), this, [this, rv](int i) {
                if (routing_ == rv && i >= 0 && !architectureOnly_ && rv->layer() >= 0) highlightLayer(rv->layer(), tr("picked in Routing"));
            });
        }
    }
}

bool ArchitecturePanel::eventFilter(QObject* watched, QEvent* e) {
    if (e->type() == QEvent::ChildAdded || e->type() == QEvent::ChildRemoved) {
        if (watched != window_->dock(MainWindow::Panel::Chat)) QTimer::singleShot(0, this, &ArchitecturePanel::attachViews);
    } else if (e->type() == QEvent::Resize || e->type() == QEvent::Show || e->type() == QEvent::LayoutRequest) {
        if (watched == window_->dock(MainWindow::Panel::Chat)) QTimer::singleShot(0, this, &ArchitecturePanel::placeNotice);
    }
    return QObject::eventFilter(watched, e);
}

void ArchitecturePanel::openCatalogDialog() {
    auto* dlg = new CatalogDialog(window_);
    dlg->setAttribute(Qt::WA_DeleteOnClose);
    connect(dlg, &CatalogDialog::catalogModelChosen, window_->engine(), &EngineController::loadArchitecture);
    dlg->open();
}
