#include "widgets/comparison_view.h"

#include <QComboBox>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QPainter>
#include <QScrollArea>
#include <QSplitter>
#include <QTableWidget>
#include <QVBoxLayout>
#include <algorithm>
#include <qcustomplot.h>

#include "engine/model/spec_summary.h"
#include "widgets/diagram_view.h"

namespace archlens {

namespace {

const QColor kColorA(0x00, 0x72, 0xb2), kColorB(0xe6, 0x9f, 0x00), kDiffFill(0xfb, 0xe3, 0xd3);

QFont font(qreal px, bool bold = false) {
    QFont f(QStringLiteral("DejaVu Sans"));
    f.setPixelSize(int(px));
    f.setBold(bold);
    return f;
}

// Bars for the exported picture: the same three quantities the view plots.
void paintBars(QPainter& p, QRectF area, const ModelSpec& a, const QString& na, const ModelSpec& b, const QString& nb) {
    const ParamCounts ca = count_params(a), cb = count_params(b);
    struct Metric {
        QString label;
        double va, vb;
        std::string (*fmt)(double);
    };
    auto count = [](double v) { return human_count(uint64_t(v)); };
    auto bytes = [](double v) { return human_bytes(v); };
    const Metric metrics[] = {{QStringLiteral("Total parameters"), double(ca.total), double(cb.total), +count},
                              {QStringLiteral("Active parameters per token"), double(ca.active), double(cb.active), +count},
                              {QStringLiteral("KV cache per token (bf16)"), double(kv_bytes_at(a, 1, 2.0)), double(kv_bytes_at(b, 1, 2.0)), +bytes}};
    const qreal rowH = 24, labelW = 210, valueW = 250;
    qreal y = area.top();
    p.setFont(font(12, true));
    p.setPen(Qt::black);
    for (auto& m : metrics) {
        p.setFont(font(12, true));
        p.drawText(QRectF(area.left(), y, labelW, rowH * 2), Qt::AlignLeft | Qt::AlignVCenter, m.label);
        const double mx = std::max(m.va, m.vb);
        const qreal barW = area.width() - labelW - valueW - 10;
        for (int side = 0; side < 2; ++side) {
            const double v = side ? m.vb : m.va;
            QRectF bar(area.left() + labelW, y + side * rowH + 4, mx > 0 ? barW * v / mx : 0, rowH - 8);
            p.fillRect(bar, side ? kColorB : kColorA);
            p.setFont(font(11));
            p.setPen(Qt::black);
            p.drawText(QRectF(bar.right() + 6, y + side * rowH, valueW + barW - bar.width(), rowH), Qt::AlignLeft | Qt::AlignVCenter,
                       QString::fromStdString(m.fmt(v)) + QStringLiteral("  ") + (side ? nb : na));
        }
        y += rowH * 2 + 8;
    }
}

qreal barsHeight() { return 3 * (24 * 2 + 8); }

void paintTable(QPainter& p, QRectF area, const QList<ComparisonRow>& rows, const QString& na, const QString& nb) {
    const qreal rowH = 20, c0 = area.width() * 0.34, c1 = area.width() * 0.33;
    qreal y = area.top();
    p.setFont(font(12, true));
    p.setPen(Qt::black);
    p.drawText(QRectF(area.left() + c0, y, c1, rowH), Qt::AlignLeft | Qt::AlignVCenter, na);
    p.drawText(QRectF(area.left() + c0 + c1, y, c1, rowH), Qt::AlignLeft | Qt::AlignVCenter, nb);
    y += rowH;
    for (auto& r : rows) {
        if (r.differs) p.fillRect(QRectF(area.left(), y, area.width(), rowH), kDiffFill);
        p.setFont(font(11, r.differs));
        p.setPen(Qt::black);
        auto elide = [&](const QString& s, qreal w) { return p.fontMetrics().elidedText(s, Qt::ElideRight, int(w - 8)); };
        p.drawText(QRectF(area.left() + 4, y, c0, rowH), Qt::AlignLeft | Qt::AlignVCenter, elide(r.label, c0));
        p.drawText(QRectF(area.left() + c0, y, c1, rowH), Qt::AlignLeft | Qt::AlignVCenter, elide(r.a, c1));
        p.drawText(QRectF(area.left() + c0 + c1, y, c1, rowH), Qt::AlignLeft | Qt::AlignVCenter, elide(r.b, c1));
        y += rowH;
    }
}

}  // namespace

QList<ComparisonPreset> comparisonPresets() {
    return {{QStringLiteral("DeepSeek-V3 vs Kimi K2"), QStringLiteral("deepseek-v3"), QStringLiteral("kimi-k2")},
            {QStringLiteral("Qwen3 0.6B vs Llama 3.2 1B"), QStringLiteral("qwen3-0.6b"), QStringLiteral("llama3.2-1b")},
            {QStringLiteral("DeepSeek-V3 vs Qwen3 235B-A22B"), QStringLiteral("deepseek-v3"), QStringLiteral("qwen3-235b-a22b")},
            {QStringLiteral("Llama 3 8B vs OLMo 2 7B"), QStringLiteral("llama3.1-8b"), QStringLiteral("olmo2-7b")},
            {QStringLiteral("OLMo 2 13B vs Gemma 3 12B"), QStringLiteral("olmo2-13b"), QStringLiteral("gemma3-12b")},
            {QStringLiteral("Gemma 3 27B vs Mistral Small 3.1 24B"), QStringLiteral("gemma3-27b"), QStringLiteral("mistral-small-3.1-24b")},
            {QStringLiteral("DeepSeek-V3 vs Llama 4 Maverick"), QStringLiteral("deepseek-v3"), QStringLiteral("llama4-maverick")},
            {QStringLiteral("GPT-2 medium vs Qwen3 0.6B"), QStringLiteral("gpt2-medium"), QStringLiteral("qwen3-0.6b")}};
}

QList<ComparisonRow> comparisonRows(const ModelSpec& a, const ModelSpec& b) {
    const auto fa = spec_facts(a), fb = spec_facts(b);
    QList<ComparisonRow> rows;
    for (size_t i = 0; i < fa.size() && i < fb.size(); ++i)
        rows << ComparisonRow{QString::fromStdString(fa[i].key), QString::fromStdString(fa[i].label), QString::fromStdString(fa[i].value),
                              QString::fromStdString(fb[i].value), fa[i].value != fb[i].value};
    return rows;
}

QVector<QPointF> kvCurve(const ModelSpec& s, quint64 maxContext, double bpv) {
    QVector<QPointF> pts;
    for (quint64 n = 256; n <= std::max<quint64>(maxContext, 256); n *= 2) pts << QPointF(double(n), double(kv_bytes_at(s, n, bpv)));
    return pts;
}

bool exportComparison(const ModelSpec& a, const QString& na, const ModelSpec& b, const QString& nb, const QString& path, QString* error,
                      qreal pngScale) {
    DiagramLayout la = layoutDiagram(a, na), lb = layoutDiagram(b, nb);
    alignForComparison(la, lb);
    const auto rows = comparisonRows(a, b);
    const qreal gap = 24, w = la.size.width() + gap + lb.size.width();
    const qreal diagramsH = std::max(la.size.height(), lb.size.height());
    const qreal tableH = 20 * (rows.size() + 1);
    const QSizeF size(w, diagramsH + 24 + barsHeight() + 20 + tableH + 24);
    DiagramPaintOptions o;
    o.showDifferences = true;
    return exportPicture(path, size, [&](QPainter& p) {
        p.fillRect(QRectF(QPointF(0, 0), size), Qt::white);
        paintDiagram(p, la, o);
        p.save();
        p.translate(la.size.width() + gap, 0);
        paintDiagram(p, lb, o);
        p.restore();
        p.setPen(QPen(QColor(0xd0, 0xd0, 0xd0), 1));
        p.drawLine(QPointF(la.size.width() + gap / 2, 10), QPointF(la.size.width() + gap / 2, diagramsH - 10));
        paintBars(p, QRectF(24, diagramsH + 24, w - 48, barsHeight()), a, na, b, nb);
        paintTable(p, QRectF(24, diagramsH + 24 + barsHeight() + 20, w - 48, tableH), rows, na, nb);
    }, pngScale, error, na + QStringLiteral(" vs ") + nb);
}

// ---- ComparisonView ----

ComparisonView::ComparisonView(QWidget* parent) : QWidget(parent) {
    m_presets = new QComboBox;
    m_presets->addItem(tr("Preset comparisons…"));
    for (auto& p : comparisonPresets()) m_presets->addItem(p.label);
    m_left = new DiagramCanvas;
    m_right = new DiagramCanvas;
    // Both columns scroll as one, so aligned blocks stay side by side.
    auto* pair = new QWidget;
    auto* ph = new QHBoxLayout(pair);
    ph->addWidget(m_left);
    ph->addWidget(m_right);
    auto* scroll = new QScrollArea;
    scroll->setWidget(pair);
    scroll->setWidgetResizable(true);

    m_table = new QTableWidget(0, 3);
    m_table->verticalHeader()->hide();
    m_table->horizontalHeader()->setSectionResizeMode(QHeaderView::Stretch);
    m_table->setEditTriggers(QAbstractItemView::NoEditTriggers);

    m_bars = new QCustomPlot;
    m_bars->setMinimumHeight(160);
    m_kvPlot = new QCustomPlot;
    m_kvPlot->setMinimumHeight(220);

    auto* right = new QWidget;
    auto* rv = new QVBoxLayout(right);
    rv->addWidget(m_table, 3);
    rv->addWidget(new QLabel(tr("Parameters and KV cache per token (derived from the configs)")));
    rv->addWidget(m_bars, 1);
    rv->addWidget(new QLabel(tr("KV cache vs context length (bf16)")));
    rv->addWidget(m_kvPlot, 2);

    auto* split = new QSplitter;
    split->addWidget(scroll);
    split->addWidget(right);
    split->setStretchFactor(0, 3);
    split->setStretchFactor(1, 2);
    auto* v = new QVBoxLayout(this);
    v->addWidget(m_presets, 0, Qt::AlignLeft);
    v->addWidget(split, 1);

    connect(m_presets, &QComboBox::activated, this, [this](int i) {
        if (i > 0 && !loadPreset(i - 1)) {
            auto p = comparisonPresets().value(i - 1);
            emit presetRequested(p.a, p.b);
        }
    });
}

bool ComparisonView::loadPreset(int index) {
    const auto presets = comparisonPresets();
    if (index < 0 || index >= presets.size() || !m_loader) return false;
    auto a = m_loader(presets[index].a), b = m_loader(presets[index].b);
    if (!a || !b) return false;
    setModels(*a, presets[index].a, *b, presets[index].b);
    return true;
}

const DiagramLayout& ComparisonView::leftLayout() const { return m_left->diagramLayout(); }
const DiagramLayout& ComparisonView::rightLayout() const { return m_right->diagramLayout(); }

int ComparisonView::differingRows() const {
    return int(std::count_if(m_rows.begin(), m_rows.end(), [](auto& r) { return r.differs; }));
}

int ComparisonView::plottedCurves() const { return m_kvPlot->graphCount(); }

bool ComparisonView::exportTo(const QString& path, QString* error) const {
    if (!m_has) {
        if (error) *error = tr("nothing to export: no models are compared");
        return false;
    }
    return exportComparison(m_a, m_nameA, m_b, m_nameB, path, error);
}

void ComparisonView::setModels(const ModelSpec& a, const QString& nameA, const ModelSpec& b, const QString& nameB) {
    m_a = a, m_b = b, m_nameA = nameA, m_nameB = nameB, m_has = true;
    DiagramLayout la = layoutDiagram(a, nameA), lb = layoutDiagram(b, nameB);
    alignForComparison(la, lb);
    DiagramPaintOptions o;
    o.showDifferences = true;
    m_left->setDiagramLayout(la);
    m_right->setDiagramLayout(lb);
    m_left->setOptions(o);
    m_right->setOptions(o);

    m_rows = comparisonRows(a, b);
    m_table->setHorizontalHeaderLabels({tr("Hyperparameter"), nameA, nameB});
    m_table->setRowCount(m_rows.size());
    for (int i = 0; i < m_rows.size(); ++i) {
        const auto& r = m_rows[i];
        QStringList cells{r.label, r.a, r.b};
        for (int c = 0; c < 3; ++c) {
            auto* item = new QTableWidgetItem(cells[c]);
            if (r.differs) {
                item->setBackground(kDiffFill);
                QFont f = item->font();
                f.setBold(true);
                item->setFont(f);
            }
            m_table->setItem(i, c, item);
        }
    }

    // Bars: parameters (billions) and KV per token (KiB), one colour per model.
    m_bars->clearPlottables();
    const ParamCounts ca = count_params(a), cb = count_params(b);
    QSharedPointer<QCPAxisTickerText> ticker(new QCPAxisTickerText);
    ticker->addTick(1, tr("total params (B)"));
    ticker->addTick(2, tr("active params (B)"));
    ticker->addTick(3, tr("KV / token (KiB)"));
    m_bars->xAxis->setTicker(ticker);
    m_bars->xAxis->setRange(0.4, 3.6);
    auto addBars = [&](const QString& name, QColor c, double offset, const ParamCounts& pc, const ModelSpec& s) {
        auto* bars = new QCPBars(m_bars->xAxis, m_bars->yAxis);
        bars->setName(name);
        bars->setWidth(0.35);
        bars->setBrush(c);
        bars->setPen(Qt::NoPen);
        bars->setData({1 + offset, 2 + offset, 3 + offset}, {pc.total / 1e9, pc.active / 1e9, kv_bytes_at(s, 1, 2.0) / 1024.0});
    };
    addBars(nameA, kColorA, -0.18, ca, a);
    addBars(nameB, kColorB, 0.18, cb, b);
    m_bars->yAxis->setScaleType(QCPAxis::stLogarithmic);
    m_bars->yAxis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    m_bars->rescaleAxes(true);
    m_bars->xAxis->setRange(0.4, 3.6);
    m_bars->yAxis->setRangeLower(0.01);
    m_bars->legend->setVisible(true);
    m_bars->replot();

    // KV bytes against context: sliding/chunked layers flatten, MLA stays low.
    const quint64 maxCtx = quint64(std::max(a.max_positions, b.max_positions));
    m_curveA = kvCurve(a, std::max<quint64>(maxCtx, 4096));
    m_curveB = kvCurve(b, std::max<quint64>(maxCtx, 4096));
    m_kvPlot->clearGraphs();
    int i = 0;
    for (auto [curve, name, color] : {std::tuple{&m_curveA, nameA, kColorA}, std::tuple{&m_curveB, nameB, kColorB}}) {
        auto* g = m_kvPlot->addGraph();
        g->setName(name);
        g->setPen(QPen(color, 2.2, i++ ? Qt::DashLine : Qt::SolidLine));
        QVector<double> xs, ys;
        for (auto& pt : *curve) xs << pt.x(), ys << pt.y() / (1024.0 * 1024.0 * 1024.0);
        g->setData(xs, ys);
    }
    m_kvPlot->xAxis->setScaleType(QCPAxis::stLogarithmic);
    m_kvPlot->xAxis->setTicker(QSharedPointer<QCPAxisTickerLog>(new QCPAxisTickerLog));
    m_kvPlot->xAxis->setLabel(tr("context length (tokens)"));
    m_kvPlot->yAxis->setLabel(tr("KV cache (GiB, bf16)"));
    m_kvPlot->legend->setVisible(true);
    m_kvPlot->rescaleAxes();
    m_kvPlot->replot();
}

}  // namespace archlens
