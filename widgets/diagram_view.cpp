#include "widgets/diagram_view.h"

#include <QComboBox>
#include <QFileDialog>
#include <QFileInfo>
#include <QFormLayout>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QImage>
#include <QLabel>
#include <QMouseEvent>
#include <QPainter>
#include <QPainterPath>
#include <QPushButton>
#include <QScrollArea>
#include <QSplitter>
#include <QSpinBox>
#include <QSvgGenerator>
#include <QTableWidget>
#include <QVBoxLayout>

#include "engine/model/spec_summary.h"

namespace archlens {

namespace {

const QColor kInk(0x22, 0x22, 0x22), kMuted(0x66, 0x66, 0x66), kDiff(0xd5, 0x5e, 0x00), kSelect(0x00, 0x72, 0xb2);

QFont font(qreal px, bool bold = false, bool italic = false) {
    QFont f(QStringLiteral("DejaVu Sans"));
    f.setPixelSize(int(px));
    f.setBold(bold);
    f.setItalic(italic);
    return f;
}

QColor pale(const QColor& c, int amount = 80) {  // blend towards white
    return QColor(c.red() + (255 - c.red()) * amount / 100, c.green() + (255 - c.green()) * amount / 100,
                  c.blue() + (255 - c.blue()) * amount / 100);
}

void arrowHead(QPainter& p, QPointF tip, QPointF from) {
    QLineF l(tip, from);
    l.setLength(7);
    QLineF a = l, b = l;
    a.setAngle(l.angle() + 25);
    b.setAngle(l.angle() - 25);
    p.drawPolygon(QPolygonF({tip, a.p2(), b.p2()}));
}

void drawTags(QPainter& p, const DiagramBox& b, qreal y) {
    p.setFont(font(9.5));
    qreal x = b.rect.left() + 8;
    for (auto& t : b.tags) {
        const qreal w = p.fontMetrics().horizontalAdvance(t) + 10;
        QRectF chip(x, y, w, 15);
        p.setPen(QPen(b.accent.darker(120), 0.8));
        p.setBrush(Qt::white);
        p.drawRoundedRect(chip, 7, 7);
        p.setPen(kInk);
        p.drawText(chip, Qt::AlignCenter, t);
        x += w + 5;
    }
}

void drawBox(QPainter& p, const DiagramBox& b, const DiagramPaintOptions& o) {
    const QRectF r = b.rect;
    p.setPen(QPen(b.accent.darker(115), 1.2));
    switch (b.kind) {
        case BoxKind::Add: {
            p.setBrush(Qt::white);
            p.setPen(QPen(kInk, 1.4));
            p.drawEllipse(r);
            const QPointF c = r.center();
            p.drawLine(QPointF(c.x() - 7, c.y()), QPointF(c.x() + 7, c.y()));
            p.drawLine(QPointF(c.x(), c.y() - 7), QPointF(c.x(), c.y() + 7));
            return;
        }
        case BoxKind::Norm: p.setBrush(pale(b.accent, 55)); break;
        case BoxKind::Moe: p.setBrush(pale(b.accent, 88)); break;
        case BoxKind::Expert: p.setBrush(pale(b.accent, 60)); break;
        case BoxKind::Router: p.setBrush(Qt::white); break;
        case BoxKind::SharedExpert: p.setBrush(pale(b.accent, 70)); break;
        case BoxKind::Attention: p.setBrush(pale(b.accent, 78)); break;
        default: p.setBrush(pale(b.accent, 82)); break;
    }
    p.drawRoundedRect(r, 7, 7);
    p.setPen(kInk);
    if (b.kind == BoxKind::Norm || b.kind == BoxKind::Expert || b.kind == BoxKind::Softcap) {
        p.setFont(font(b.kind == BoxKind::Expert ? 10.5 : 12, b.kind != BoxKind::Expert));
        p.drawText(r, Qt::AlignCenter, b.title);
    } else if (b.kind == BoxKind::Router) {
        p.setFont(font(10.5, true));
        p.drawText(r.adjusted(6, 2, -6, b.lines.isEmpty() ? -2 : -15), Qt::AlignCenter, b.title);
        p.setFont(font(9));
        if (!b.lines.isEmpty())
            p.drawText(r.adjusted(4, 17, -4, -1), Qt::AlignCenter,
                       p.fontMetrics().elidedText(b.lines.join(QStringLiteral(" · ")), Qt::ElideRight, int(r.width() - 8)));
    } else {
        qreal y = r.top() + 5;
        p.setFont(font(b.kind == BoxKind::SharedExpert ? 11.5 : 13, true));
        p.drawText(QRectF(r.left() + 4, y, r.width() - 8, 18), Qt::AlignHCenter | Qt::AlignTop, b.title);
        y += 20;
        p.setFont(font(11));
        const qreal textW = b.kind == BoxKind::SharedExpert ? r.width() - 8 : r.width() - 12;
        for (auto& line : b.lines) {
            p.drawText(QRectF(r.left() + (r.width() - textW) / 2, y, textW, 15), Qt::AlignHCenter | Qt::AlignTop, line);
            y += 15;
        }
        if (!b.tags.isEmpty()) drawTags(p, b, b.kind == BoxKind::Moe ? r.top() + 42 : r.bottom() - 20);
    }
    if (o.showDifferences && b.differs) {
        p.setBrush(Qt::NoBrush);
        p.setPen(QPen(kDiff, 2.4, Qt::DashLine));
        p.drawRoundedRect(r.adjusted(-3, -3, 3, 3), 9, 9);
    }
    if (!o.selectedId.isEmpty() && b.id == o.selectedId) {
        p.setBrush(Qt::NoBrush);
        p.setPen(QPen(kSelect, 3));
        p.drawRoundedRect(r.adjusted(-4, -4, 4, 4), 9, 9);
    }
}

}  // namespace

void paintDiagram(QPainter& p, const DiagramLayout& l, const DiagramPaintOptions& o) {
    p.save();
    p.setRenderHint(QPainter::Antialiasing);
    p.setRenderHint(QPainter::TextAntialiasing);
    p.fillRect(QRectF(QPointF(0, 0), l.size), Qt::white);
    // header
    p.setPen(kInk);
    p.setFont(font(20, true));
    p.drawText(QRectF(24, 10, l.size.width() - 48, 28), Qt::AlignLeft | Qt::AlignVCenter, l.title);
    qreal y = 44;
    p.setFont(font(12));
    for (auto& h : l.header) {
        p.drawText(QRectF(24, y, l.size.width() - 48, 16), Qt::AlignLeft | Qt::AlignVCenter, h);
        y += 18;
    }
    p.setFont(font(11.5, false, true));
    p.setPen(kMuted);
    for (auto& h : l.pattern) {
        p.drawText(QRectF(24, y, l.size.width() - 48, 16), Qt::AlignLeft | Qt::AlignVCenter, h);
        y += 17;
    }
    // frames, each labelled with how many layers it stands for
    for (int g = 0; g < l.groups.size(); ++g) {
        const DiagramGroup& dg = l.groups[g];
        const bool active = o.activeLayer >= 0 && dg.layerIndices.contains(o.activeLayer);
        p.setPen(QPen(active ? QColor(0xe6, 0x9f, 0x00) : QColor(0xb0, 0xb0, 0xb0), active ? 3 : 1.2));
        p.setBrush(active ? QColor(0xff, 0xf6, 0xdc) : QColor(0xf6, 0xf6, 0xf6));
        p.drawRoundedRect(dg.frame, 14, 14);
        p.setPen(kInk);
        p.setFont(font(22, true));
        const QRectF lab(dg.frame.left() + 14, dg.frame.top() + 6, 90, 28);
        p.drawText(lab, Qt::AlignLeft | Qt::AlignVCenter, dg.repeat);
        const qreal x = lab.left() + p.fontMetrics().horizontalAdvance(dg.repeat) + 12;
        p.setFont(font(12.5, true));
        p.drawText(QRectF(x, dg.frame.top() + 6, dg.frame.right() - x - 10, 16), Qt::AlignLeft | Qt::AlignVCenter, dg.name);
        p.setFont(font(10.5));
        p.setPen(kMuted);
        QString sub = dg.layers;
        if (active)
            sub = (o.activeLabel.isEmpty() ? QStringLiteral("computing layer %1") : o.activeLabel).arg(o.activeLayer) + QStringLiteral(" · ") + sub;
        p.drawText(QRectF(x, dg.frame.top() + 22, dg.frame.right() - x - 10, 14), Qt::AlignLeft | Qt::AlignVCenter, sub);
    }
    // data flow, then boxes over it
    for (auto& e : l.edges) {
        p.setPen(QPen(e.residual ? kMuted : kInk, e.residual ? 1.3 : 1.6));
        p.setBrush(Qt::NoBrush);
        p.drawPolyline(e.path);
        p.setBrush(e.residual ? kMuted : kInk);
        if (e.path.size() >= 2) arrowHead(p, e.path.last(), e.path[e.path.size() - 2]);
    }
    for (auto& b : l.boxes) drawBox(p, b, o);
    // the drawn experts are a sample: say so between the last two
    for (auto& b : l.boxes)
        if (b.kind == BoxKind::Moe) {
            const DiagramBox* last = nullptr;
            for (auto& e : l.boxes)
                if (e.kind == BoxKind::Expert && e.id.startsWith(b.id)) last = &e;
            if (last) {
                p.setPen(kMuted);
                p.setFont(font(13, true));
                p.drawText(QRectF(last->rect.left() - 12, last->rect.top(), 12, last->rect.height()), Qt::AlignCenter, QStringLiteral("…"));
            }
        }
    p.restore();
}

bool exportPicture(const QString& path, QSizeF size, const std::function<void(QPainter&)>& paint, qreal pngScale, QString* error,
                   const QString& title) {
    const QString ext = QFileInfo(path).suffix().toLower();
    if (ext == QLatin1String("svg")) {
        QSvgGenerator gen;
        gen.setFileName(path);
        gen.setSize(size.toSize());
        gen.setViewBox(QRectF(QPointF(0, 0), size));
        gen.setTitle(title);
        gen.setDescription(QStringLiteral("ArchLens architecture diagram, derived from the model's config"));
        QPainter p;
        if (!p.begin(&gen)) {
            if (error) *error = QStringLiteral("%1: cannot write").arg(path);
            return false;
        }
        paint(p);
        p.end();
        return QFileInfo(path).size() > 0;
    }
    if (ext == QLatin1String("png")) {
        QImage img((size * pngScale).toSize(), QImage::Format_RGB32);
        img.fill(Qt::white);
        QPainter p(&img);
        p.scale(pngScale, pngScale);
        paint(p);
        p.end();
        // Flat colours and text: a 256-colour palette looks the same and is a fraction of the size.
        const QImage out = img.convertToFormat(QImage::Format_Indexed8, Qt::ThresholdDither | Qt::AvoidDither);
        if (!out.save(path, "PNG", 9)) {
            if (error) *error = QStringLiteral("%1: cannot write").arg(path);
            return false;
        }
        return true;
    }
    if (error) *error = QStringLiteral("%1: unknown picture type (use .svg or .png)").arg(path);
    return false;
}

bool exportDiagram(const DiagramLayout& l, const QString& path, QString* error, qreal pngScale) {
    return exportPicture(path, l.size, [&](QPainter& p) { paintDiagram(p, l); }, pngScale, error, l.title);
}

double kvBytesPerValue(const QString& type) {
    if (type == QLatin1String("f32")) return 4;
    if (type == QLatin1String("q8_0")) return 34.0 / 32;  // 32 int8 + one f16 scale per block
    if (type == QLatin1String("q4_0")) return 18.0 / 32;
    return 2;  // bf16 / f16
}

// ---- DiagramCanvas ----

DiagramCanvas::DiagramCanvas(QWidget* parent) : QWidget(parent) {
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Preferred);
    setMouseTracking(false);
}

void DiagramCanvas::setDiagramLayout(const DiagramLayout& l) {
    m_layout = l;
    updateGeometry();
    update();
}

void DiagramCanvas::setOptions(const DiagramPaintOptions& o) {
    m_options = o;
    update();
}

qreal DiagramCanvas::scale() const { return m_layout.size.width() > 0 ? width() / m_layout.size.width() : 1.0; }

QSize DiagramCanvas::sizeHint() const { return m_layout.size.toSize().isEmpty() ? QSize(400, 600) : m_layout.size.toSize(); }

int DiagramCanvas::heightForWidth(int w) const {
    return m_layout.size.width() > 0 ? int(m_layout.size.height() * w / m_layout.size.width()) : w;
}

void DiagramCanvas::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.fillRect(rect(), Qt::white);
    if (m_layout.boxes.isEmpty()) return;
    p.scale(scale(), scale());
    paintDiagram(p, m_layout, m_options);
}

void DiagramCanvas::mousePressEvent(QMouseEvent* e) {
    const QPointF pt = e->position() / scale();
    // Innermost box first: an expert inside the MoE box wins.
    const DiagramBox* hit = nullptr;
    for (auto& b : m_layout.boxes)
        if (b.rect.contains(pt) && (!hit || b.rect.width() * b.rect.height() < hit->rect.width() * hit->rect.height())) hit = &b;
    if (hit) emit boxClicked(hit->id);
}

// ---- DiagramView ----

DiagramView::DiagramView(QWidget* parent) : QWidget(parent) {
    m_canvas = new DiagramCanvas;
    auto* scroll = new QScrollArea;
    scroll->setWidget(m_canvas);
    scroll->setWidgetResizable(true);
    scroll->setBackgroundRole(QPalette::Base);

    auto* side = new QWidget;
    auto* sv = new QVBoxLayout(side);
    auto* badge = new QLabel(tr("derived from the config"));
    badge->setStyleSheet(QStringLiteral("QLabel { background: #eef; border-radius: 6px; padding: 2px 6px; color: #335; }"));
    badge->setToolTip(tr("Every number here is computed from the model specification, not measured."));
    m_params = new QLabel;
    m_params->setTextFormat(Qt::RichText);
    m_params->setTextInteractionFlags(Qt::TextSelectableByMouse);
    m_context = new QSpinBox;
    m_context->setRange(1, 100000000);
    m_context->setSingleStep(1024);
    m_context->setValue(32768);
    m_kvType = new QComboBox;
    m_kvType->addItems({QStringLiteral("bf16"), QStringLiteral("f32"), QStringLiteral("q8_0"), QStringLiteral("q4_0")});
    m_kv = new QLabel;
    m_kv->setTextFormat(Qt::RichText);
    m_kv->setWordWrap(true);
    auto* kvForm = new QFormLayout;
    kvForm->addRow(tr("Context (tokens)"), m_context);
    kvForm->addRow(tr("KV type"), m_kvType);
    m_blockTitle = new QLabel(tr("Click a block to see its tensors."));
    m_blockTitle->setWordWrap(true);
    m_tensorTable = new QTableWidget(0, 4);
    m_tensorTable->setMinimumHeight(110);
    m_tensorTable->setHorizontalHeaderLabels({tr("Tensor"), tr("Shape"), tr("Type"), tr("Bytes")});
    m_tensorTable->horizontalHeader()->setStretchLastSection(false);
    m_tensorTable->horizontalHeader()->setSectionResizeMode(0, QHeaderView::Stretch);
    for (int c = 1; c < 4; ++c) m_tensorTable->horizontalHeader()->setSectionResizeMode(c, QHeaderView::ResizeToContents);
    m_tensorTable->setWordWrap(false);
    m_tensorTable->verticalHeader()->hide();
    m_tensorTable->setEditTriggers(QAbstractItemView::NoEditTriggers);
    auto* exportButton = new QPushButton(tr("Export SVG / PNG…"));
    sv->addWidget(badge, 0, Qt::AlignLeft);
    sv->addWidget(m_params);
    sv->addLayout(kvForm);
    sv->addWidget(m_kv);
    sv->addWidget(m_blockTitle);
    sv->addWidget(m_tensorTable, 1);
    sv->addWidget(exportButton);

    auto* h = new QHBoxLayout(this);
    h->setContentsMargins(0, 0, 0, 0);
    m_split = new QSplitter(Qt::Horizontal);
    m_split->setChildrenCollapsible(false);
    m_split->addWidget(scroll);
    // In a scroll area so that, under the diagram in a narrow dock, it can be shorter than its content.
    auto* sideScroll = new QScrollArea;
    sideScroll->setWidget(side);
    sideScroll->setWidgetResizable(true);
    sideScroll->setFrameShape(QFrame::NoFrame);
    sideScroll->setHorizontalScrollBarPolicy(Qt::ScrollBarAlwaysOff);
    sideScroll->setMinimumWidth(side->minimumSizeHint().width() + 12);
    m_split->addWidget(sideScroll);
    m_split->setStretchFactor(0, 3);
    m_split->setStretchFactor(1, 2);
    h->addWidget(m_split);

    connect(m_canvas, &DiagramCanvas::boxClicked, this, &DiagramView::selectBox);
    connect(m_context, &QSpinBox::valueChanged, this, [this] { updateSidePanel(); });
    connect(m_kvType, &QComboBox::currentTextChanged, this, [this] { updateSidePanel(); });
    connect(exportButton, &QPushButton::clicked, this, [this] {
        const QString path = QFileDialog::getSaveFileName(this, tr("Export diagram"), diagramLayout().title + QStringLiteral(".svg"),
                                                          tr("SVG (*.svg);;PNG (*.png)"));
        if (path.isEmpty()) return;
        QString err;
        if (!exportTo(path, &err)) m_blockTitle->setText(err);
    });
}

void DiagramView::setSpec(const ModelSpec& spec, const QString& title) {
    m_spec = spec;
    m_hasSpec = true;
    m_canvas->setDiagramLayout(layoutDiagram(spec, title));
    m_context->setValue(std::min(spec.max_positions > 0 ? spec.max_positions : 32768, 32768));
    updateSidePanel();
}

void DiagramView::setTensors(const QList<DiagramTensor>& tensors) {
    m_tensors = tensors;
    selectBox(m_canvas->options().selectedId);
}

bool DiagramView::exportTo(const QString& path, QString* error) const { return exportDiagram(diagramLayout(), path, error); }

void DiagramView::setActiveLayer(int layer) {
    DiagramPaintOptions o = m_canvas->options();
    o.activeLayer = layer;
    m_canvas->setOptions(o);
}

void DiagramView::setSidePanelBelow(bool below) {
    // A narrow dock: the diagram gets the full width, the numbers go underneath.
    m_split->setOrientation(below ? Qt::Vertical : Qt::Horizontal);
    if (QWidget* side = m_split->widget(1)) side->setMinimumWidth(below ? 0 : side->minimumWidth());
    m_split->setSizes(below ? QList<int>{700, 300} : QList<int>{600, 400});
}

void DiagramView::setActiveLayerLabel(const QString& label) {
    DiagramPaintOptions o = m_canvas->options();
    o.activeLabel = label;
    m_canvas->setOptions(o);
}

void DiagramView::setKvContext(int tokens) { m_context->setValue(tokens); }
void DiagramView::setKvType(const QString& type) { m_kvType->setCurrentText(type); }

QString DiagramView::parameterSummary() const {
    if (!m_hasSpec) return {};
    const ParamCounts c = count_params(m_spec);
    auto h = [](uint64_t n) { return QString::fromStdString(human_count(n)); };
    QStringList rows;
    rows << QStringLiteral("Total %1 · active %2 per token").arg(h(c.total), h(c.active));
    rows << QStringLiteral("token embedding %1").arg(h(c.embedding));
    rows << QStringLiteral("LM head %1").arg(c.lm_head ? h(c.lm_head) : QStringLiteral("tied"));
    rows << QStringLiteral("attention %1").arg(h(c.attention));
    if (c.ffn_dense) rows << QStringLiteral("dense FFN %1").arg(h(c.ffn_dense));
    if (c.experts) rows << QStringLiteral("routed experts %1 (%2 active)").arg(h(c.experts), h(c.experts - (c.total - c.active)));
    if (c.shared_experts) rows << QStringLiteral("shared experts %1").arg(h(c.shared_experts));
    if (c.router) rows << QStringLiteral("routers %1").arg(h(c.router));
    rows << QStringLiteral("norms %1").arg(h(c.norms));
    return rows.join(QLatin1Char('\n'));
}

QString DiagramView::kvSummary() const {
    if (!m_hasSpec) return {};
    const QString type = m_kvType->currentText();
    const double bpv = kvBytesPerValue(type);
    const uint64_t n = uint64_t(m_context->value());
    auto hb = [](double b) { return QString::fromStdString(human_bytes(b)); };
    QStringList rows;
    rows << QStringLiteral("KV per token %1 (%2)").arg(hb(double(kv_bytes_at(m_spec, 1, bpv))), type);
    rows << QStringLiteral("at %1 tokens: %2").arg(QString::fromStdString(with_commas(n)), hb(double(kv_bytes_at(m_spec, n, bpv))));
    // Per layer kind, so sliding and chunked layers visibly stop at their window.
    QMap<int, QPair<int, double>> byKind;
    for (auto& l : m_spec.layers) {
        uint64_t held = l.attn.scope != AttnScope::Global && l.attn.window > 0 ? std::min<uint64_t>(n, uint64_t(l.attn.window)) : n;
        auto& e = byKind[int(layerKind(l.attn, m_spec.learned_positions))];
        e.first++;
        e.second += double(held) * double(kv_values_per_token(l.attn)) * bpv;
    }
    for (auto it = byKind.begin(); it != byKind.end(); ++it)
        rows << QStringLiteral("  %1 × %2: %3").arg(it.value().first).arg(layerKindName(LayerKind(it.key())), hb(it.value().second));
    return rows.join(QLatin1Char('\n'));
}

QList<DiagramTensor> DiagramView::tensorsForBox(const QString& id) const {
    QList<DiagramTensor> out;
    const DiagramBox* b = diagramLayout().box(id);
    if (!b) return out;
    QString prefix;
    if (b->group >= 0) {
        const auto& layers = diagramLayout().groups[b->group].layerIndices;
        if (layers.isEmpty()) return out;
        prefix = QStringLiteral("blk.%1.").arg(layers.first());
    }
    const QString part = id.section(QLatin1Char('.'), 1);  // "attn", "ffn.router", "attn_pre_norm"
    auto wanted = [&](const QString& name) {
        if (!prefix.isEmpty() && !name.startsWith(prefix)) return false;
        const QString t = prefix.isEmpty() ? name : name.mid(prefix.size());
        if (id == QLatin1String("embed")) return t.startsWith(QLatin1String("token_embd"));
        if (id == QLatin1String("pos_embed")) return t.startsWith(QLatin1String("position_embd"));
        if (id == QLatin1String("final_norm")) return t.startsWith(QLatin1String("output_norm"));
        if (id == QLatin1String("lm_head")) return t == QLatin1String("output") || t.startsWith(QLatin1String("output."));
        if (part == QLatin1String("attn_pre_norm")) return t.startsWith(QLatin1String("attn_norm"));
        if (part == QLatin1String("attn_post_norm")) return t.startsWith(QLatin1String("post_attention_norm"));
        if (part == QLatin1String("ffn_pre_norm")) return t.startsWith(QLatin1String("ffn_norm"));
        if (part == QLatin1String("ffn_post_norm")) return t.startsWith(QLatin1String("post_ffw_norm"));
        if (part == QLatin1String("attn")) return t.startsWith(QLatin1String("attn_")) && !t.startsWith(QLatin1String("attn_norm"));
        if (part == QLatin1String("ffn.router")) return t.startsWith(QLatin1String("ffn_gate_inp")) || t.startsWith(QLatin1String("exp_probs_b"));
        if (part == QLatin1String("ffn.shared")) return t.contains(QLatin1String("shexp"));
        if (part.startsWith(QLatin1String("ffn.expert"))) return t.contains(QLatin1String("_exps"));
        if (part == QLatin1String("ffn")) return t.startsWith(QLatin1String("ffn_")) && !t.startsWith(QLatin1String("ffn_norm"));
        return false;
    };
    for (auto& t : m_tensors)
        if (wanted(t.name)) out << t;
    return out;
}

void DiagramView::selectBox(const QString& id) {
    DiagramPaintOptions o = m_canvas->options();
    o.selectedId = id;
    m_canvas->setOptions(o);
    m_tensorTable->setRowCount(0);
    const DiagramBox* b = diagramLayout().box(id);
    if (!b) return;
    QString where;
    if (b->group >= 0) {
        const DiagramGroup& g = diagramLayout().groups[b->group];
        where = QStringLiteral(" — %1, shown for layer %2").arg(g.layers).arg(g.layerIndices.value(0));
    }
    if (m_tensors.isEmpty()) {
        m_blockTitle->setText(QStringLiteral("<b>%1</b>%2<br>Architecture only: load weights to see tensors.").arg(b->title, where));
    } else {
        const auto rows = tensorsForBox(id);
        m_blockTitle->setText(QStringLiteral("<b>%1</b>%2<br>%3 tensors").arg(b->title, where).arg(rows.size()));
        m_tensorTable->setRowCount(rows.size());
        for (int i = 0; i < rows.size(); ++i) {
            auto* nameItem = new QTableWidgetItem(rows[i].name);
            if (!rows[i].fileName.isEmpty() && rows[i].fileName != rows[i].name)
                nameItem->setToolTip(tr("Stored in the file as %1").arg(rows[i].fileName));
            m_tensorTable->setItem(i, 0, nameItem);
            m_tensorTable->setItem(i, 1, new QTableWidgetItem(rows[i].shape));
            m_tensorTable->setItem(i, 2, new QTableWidgetItem(rows[i].type));
            m_tensorTable->setItem(i, 3, new QTableWidgetItem(QString::fromStdString(human_bytes(double(rows[i].bytes)))));
        }
    }
    // Under the diagram (narrow dock) the list may be scrolled away: bring it into view.
    if (auto* sa = qobject_cast<QScrollArea*>(m_split->widget(1))) {
        sa->widget()->adjustSize();
        sa->ensureWidgetVisible(m_tensorTable, 0, 0);
    }
    emit boxSelected(id);
}

void DiagramView::updateSidePanel() {
    m_params->setText(QStringLiteral("<b>Parameters</b><br>") + parameterSummary().toHtmlEscaped().replace(QLatin1Char('\n'), QStringLiteral("<br>")));
    m_kv->setText(QStringLiteral("<b>KV cache</b><br>") + kvSummary().toHtmlEscaped().replace(QLatin1Char('\n'), QStringLiteral("<br>")));
}

}  // namespace archlens
