// The architecture diagram view: paints a DiagramLayout, explains it in a side panel (parameters
// broken down, KV cache at a chosen context and KV type), lists a block's tensors when weights are
// loaded, lights the layer being computed, and exports SVG/PNG.
#pragma once
#include <QList>
#include <QWidget>
#include <functional>

#include "engine/model/spec.h"
#include "widgets/diagram_layout.h"

class QComboBox;
class QLabel;
class QSpinBox;
class QSplitter;
class QTableWidget;
class QPainter;

namespace archlens {

struct DiagramPaintOptions {
    int activeLayer = -1;    // lit frame + "computing layer N"
    QString activeLabel;     // with %1 for the layer; empty: "computing layer %1"
    QString selectedId;      // outlined box
    bool showDifferences = false;  // comparison: outline boxes with differs = true
};

void paintDiagram(QPainter& p, const DiagramLayout& layout, const DiagramPaintOptions& options = {});

// Writes a picture of `size` to FILE.svg or FILE.png (by extension); PNG at `pngScale` × size.
// Returns false with *error set when the file cannot be written or the extension is unknown.
bool exportPicture(const QString& path, QSizeF size, const std::function<void(QPainter&)>& paint, qreal pngScale = 1.5,
                   QString* error = nullptr, const QString& title = {});
bool exportDiagram(const DiagramLayout& layout, const QString& path, QString* error = nullptr, qreal pngScale = 1.5);

// A tensor of the loaded weights, as the side panel lists it.
struct DiagramTensor {
    QString name;   // canonical, "blk.3.attn_q"
    QString shape;  // "[4096, 4096]"
    QString type;   // "Q4_K"
    quint64 bytes = 0;
    QString fileName;  // as stored in the file (tooltip), may be empty
};

// Paints one layout, scaled to fit its width; clicking a box selects it.
class DiagramCanvas : public QWidget {
    Q_OBJECT
public:
    explicit DiagramCanvas(QWidget* parent = nullptr);
    void setDiagramLayout(const DiagramLayout& layout);
    const DiagramLayout& diagramLayout() const { return m_layout; }
    void setOptions(const DiagramPaintOptions& o);
    const DiagramPaintOptions& options() const { return m_options; }
    QSize sizeHint() const override;
    bool hasHeightForWidth() const override { return true; }
    int heightForWidth(int w) const override;

signals:
    void boxClicked(const QString& id);

protected:
    void paintEvent(QPaintEvent*) override;
    void mousePressEvent(QMouseEvent*) override;

private:
    qreal scale() const;
    DiagramLayout m_layout;
    DiagramPaintOptions m_options;
};

class DiagramView : public QWidget {
    Q_OBJECT
public:
    explicit DiagramView(QWidget* parent = nullptr);

    void setSpec(const ModelSpec& spec, const QString& title = {});
    void setTensors(const QList<DiagramTensor>& tensors);  // empty: architecture only
    const DiagramLayout& diagramLayout() const { return m_canvas->diagramLayout(); }
    DiagramCanvas* canvas() const { return m_canvas; }
    bool exportTo(const QString& path, QString* error = nullptr) const;
    void setSidePanelBelow(bool below);  // narrow docks: numbers under the diagram, not beside it

    // Text of the side panel, for tests and copy-out.
    QString parameterSummary() const;
    QString kvSummary() const;
    QList<DiagramTensor> tensorsForBox(const QString& id) const;

public slots:
    void setActiveLayer(int layer);  // -1: none
    void setActiveLayerLabel(const QString& label);  // "%1" = the layer; empty: "computing layer %1"
    void selectBox(const QString& id);
    void setKvContext(int tokens);
    void setKvType(const QString& type);  // "bf16", "f32", "q8_0", "q4_0"

signals:
    void boxSelected(const QString& id);

private:
    void updateSidePanel();
    ModelSpec m_spec;
    bool m_hasSpec = false;
    QList<DiagramTensor> m_tensors;
    DiagramCanvas* m_canvas;
    QSplitter* m_split;
    QLabel* m_params;
    QLabel* m_kv;
    QSpinBox* m_context;
    QComboBox* m_kvType;
    QLabel* m_blockTitle;
    QTableWidget* m_tensorTable;
};

// Bytes stored per KV value for the KV types the side panel offers.
double kvBytesPerValue(const QString& type);

}  // namespace archlens
