// The architecture diagram as data: boxes, edges and frames computed from a ModelSpec, bottom to
// top in the grammar of the architecture-comparison figures (token embedding, the repeated block
// with its inner structure, final norm, LM head). Painting (diagram_view) only reads this, so the
// layout can be tested without pixels and two layouts can be aligned for a comparison.
#pragma once
#include <QColor>
#include <QList>
#include <QPolygonF>
#include <QRectF>
#include <QString>
#include <QStringList>

#include "engine/model/spec.h"

namespace archlens {

// One colour per layer kind everywhere (diagram, KV chart, legends). Okabe–Ito, colour-blind safe.
enum class LayerKind { Global, Sliding, Chunked, Mla, Nope };
LayerKind layerKind(const AttentionSpec& a, bool learnedPositions = false);
QColor layerKindColor(LayerKind k);
QString layerKindName(LayerKind k);

enum class BoxKind {
    Embedding, PositionEmbedding, Norm, Attention, Ffn, Moe, Router, Expert, SharedExpert, Add, LmHead, Softcap,
    AltUp,          // Gemma 3n: AltUp predict / correct over the residual streams
    Laurel,         // Gemma 3n: LAuReL low-rank residual, beside attention
    PerLayerInput,  // Gemma 3n: the layer's per-layer embedding gated into the streams
};

struct DiagramBox {
    QString id;  // stable across models ("g0.attn", "final_norm"): equal ids align in a comparison
    BoxKind kind = BoxKind::Norm;
    QRectF rect;
    QString title;
    QStringList lines;  // the numbers, one per line
    QStringList tags;   // small chips: "RoPE θ 10k", "QK-norm"
    QColor accent;      // layer-kind colour for attention, neutral otherwise
    int group = -1;     // index into DiagramLayout::groups; -1 outside the repeated blocks
    bool differs = false;  // set by alignForComparison
};

struct DiagramEdge {
    QPolygonF path;
    bool residual = false;
};

// A frame around one drawn block standing for every layer with the same structure.
struct DiagramGroup {
    QString repeat;  // "× 52"
    QString name;    // what sets it apart: "sliding-window (1024)", "MoE", or "transformer block"
    QString layers;  // "layers 0–4, 6–10, … (52)"
    QList<int> layerIndices;
    QRectF frame;
};

struct DiagramRow {  // one horizontal band; rows stack bottom to top
    QString id;
    qreal height = 0;
    QList<DiagramBox> boxes;  // rect.y() relative to the row's top
};

struct DiagramLayout {
    QString title;
    QStringList header;   // parameters, KV per token, sizes
    QStringList pattern;  // how layers differ: "attention: 5 × sliding-window (1024) + 1 × global, repeating"
    QList<DiagramBox> boxes;
    QList<DiagramEdge> edges;
    QList<DiagramGroup> groups;
    QList<DiagramRow> rows;  // kept so a comparison can re-place both sides row by row
    QSizeF size;

    const DiagramBox* box(const QString& id) const;
    QList<const DiagramBox*> boxesOfKind(BoxKind k) const;
    int groupOfLayer(int layer) const;
    QStringList allText() const;  // every string that is drawn (tests, search)
};

DiagramLayout layoutDiagram(const ModelSpec& spec, const QString& title = {});

// Places rows from their heights (rowHeights overrides, keyed by row id) and derives boxes, frames
// and edges. layoutDiagram calls it; alignForComparison calls it again with shared heights.
void placeRows(DiagramLayout& layout, const QList<QPair<QString, qreal>>& sequence, qreal headerHeight);
qreal headerHeightFor(const DiagramLayout& layout);

// Re-places both layouts on one merged row sequence, so the same block lines up on both sides,
// and marks the boxes whose content differs (or that only one side has).
void alignForComparison(DiagramLayout& a, DiagramLayout& b);

}  // namespace archlens
