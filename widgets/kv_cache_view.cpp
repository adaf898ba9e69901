#include "widgets/kv_cache_view.h"

#include <qcustomplot.h>

#include <QResizeEvent>
#include <QHBoxLayout>
#include <QJsonArray>
#include <QJsonObject>
#include <QLabel>
#include <QVBoxLayout>
#include <algorithm>
#include <numeric>

#include "widgets/diagram_layout.h"
#include "widgets/gauge_bar.h"

using archlens::AttnKind;
using archlens::AttnScope;
using archlens::LayerKind;

namespace {

// The engine's cache holds f32 values, or f16 ones for standard attention when the session asks
// (engine/session.h, LayerKv); MLA's latent cache is always f32.
double bytesPerValue(const InternalsModel& m, const archlens::AttentionSpec& a) {
    return a.kind == AttnKind::MLA ? 4.0 : m.kvBytesPerValue;
}

// Index into the kind series: the five attention kinds, then layers that reuse another's cache.
constexpr int kSharedKind = 5;
const LayerKind kKinds[] = {LayerKind::Global, LayerKind::Sliding, LayerKind::Chunked,
                            LayerKind::Mla, LayerKind::Nope};

QString bytesText(double b) {
    const char* units[] = {"B", "KiB", "MiB", "GiB", "TiB"};
    int u = 0;
    while (b >= 1024 && u < 4) {
        b /= 1024;
        ++u;
    }
    return u == 0 ? QStringLiteral("%1 B").arg(qint64(b))
                  : QStringLiteral("%1 %2")
                        .arg(b, 0, 'f', b < 10 ? 2 : 1)
                        .arg(QLatin1String(units[u]));
}

// The unit the chart's axis uses for a maximum of `b` bytes.
std::pair<double, QString> axisUnit(double b) {
    if (b >= 1024.0 * 1024 * 1024) return {1024.0 * 1024 * 1024, QStringLiteral("GiB")};
    if (b >= 1024.0 * 1024) return {1024.0 * 1024, QStringLiteral("MiB")};
    if (b >= 1024.0) return {1024.0, QStringLiteral("KiB")};
    return {1.0, QStringLiteral("B")};
}

int kindIndex(const archlens::ModelSpec& s, int layer) {
    const auto& l = s.layers[size_t(layer)];
    if (l.kv_source >= 0) return kSharedKind;
    const LayerKind k = archlens::layerKind(l.attn, s.learned_positions);
    return int(std::find(std::begin(kKinds), std::end(kKinds), k) - std::begin(kKinds));
}

QString kindName(int i) {
    return i == kSharedKind ? QObject::tr("reuses an earlier layer's cache")
                            : archlens::layerKindName(kKinds[i]);
}

}  // namespace

KvCacheView::KvCacheView(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("kvCacheView"));
    plot_ = new QCustomPlot(this);
    plot_->setObjectName(QStringLiteral("kvPlot"));
    plot_->setMinimumSize(220, 130);
    plot_->plotLayout()->clear();
    title_ = new QCPTextElement(plot_, tr("KV cache"), QFont(font().family(), 10, QFont::Bold));
    plot_->plotLayout()->addElement(0, 0, title_);

    barsRect_ = new QCPAxisRect(plot_);
    plot_->plotLayout()->addElement(1, 0, barsRect_);  // row 2 once the legend row is inserted
    QCPAxis* x = barsRect_->axis(QCPAxis::atBottom);
    QCPAxis* y = barsRect_->axis(QCPAxis::atLeft);
    x->setLabel(tr("layer"));
    x->setTicker(QSharedPointer<QCPAxisTickerText>(new QCPAxisTickerText));
    x->grid()->setVisible(false);
    // The MHA outline first, so the real bars are drawn over it.
    mhaBars_ = new QCPBars(x, y);
    mhaBars_->setWidth(0.86);
    mhaBars_->setPen(QPen(QColor(0x66, 0x66, 0x66), 1, Qt::DashLine));
    mhaBars_->setBrush(Qt::NoBrush);
    mhaBars_->setName(tr("plain MHA, same positions (derived)"));
    for (int k = 0; k <= kSharedKind; ++k) {
        auto* b = new QCPBars(x, y);
        b->setWidth(0.62);
        b->setPen(Qt::NoPen);
        b->setBrush(k == kSharedKind ? QColor(0xbb, 0xbb, 0xbb)
                                     : archlens::layerKindColor(kKinds[k]));
        b->setName(kindName(k));
        kindBars_.push_back(b);
    }
    // The legend gets its own row under the title: inside the axis rect it would hide bars.
    auto* legend = new QCPLegend;
    legend_ = legend;
    plot_->plotLayout()->insertRow(1);
    plot_->plotLayout()->addElement(1, 0, legend);
    legend->setFillOrder(QCPLayoutGrid::foColumnsFirst);
    legend->setWrap(3);
    legend->setBorderPen(Qt::NoPen);
    legend->setMargins(QMargins(2, 0, 2, 0));
    legend->setLayer(QStringLiteral("legend"));
    legend->setFont(QFont(font().family(), 7));
    legend->setBrush(QColor(255, 255, 255, 210));
    legend->setIconSize(12, 8);

    // Memory budget: one horizontal stacked bar, weights + KV + buffers.
    budgetRect_ = new QCPAxisRect(plot_);
    plot_->plotLayout()->addElement(3, 0, budgetRect_);
    budgetRect_->setMaximumSize(QWIDGETSIZE_MAX, 44);
    budgetRect_->setMinimumSize(10, 40);
    QCPAxis* by = budgetRect_->axis(QCPAxis::atLeft);
    QCPAxis* bx = budgetRect_->axis(QCPAxis::atBottom);
    by->setVisible(false);
    by->setRange(0.4, 1.6);
    auto mk = [&](const QColor& c, const QString& name) {
        auto* b = new QCPBars(by, bx);  // key axis vertical: horizontal bars
        b->setWidth(0.7);
        b->setPen(QPen(Qt::white));
        b->setBrush(c);
        b->setName(name);
        return b;
    };
    budgetWeights_ = mk(QColor(0x99, 0x99, 0x99), tr("weights"));
    // Reddish purple: not one of the layer-kind colours, so it never reads as "MLA".
    budgetKv_ = mk(QColor(0xcc, 0x79, 0xa7), tr("KV cache"));
    budgetBuffers_ = mk(QColor(0xcc, 0xcc, 0xcc), tr("buffers"));
    budgetKv_->moveAbove(budgetWeights_);
    budgetBuffers_->moveAbove(budgetKv_);
    // Only the kind bars and the outline are in the legend; the budget's axis label names its
    // parts.
    for (QCPBars* b : {budgetWeights_, budgetKv_, budgetBuffers_}) b->removeFromLegend();
    auto* group = new QCPMarginGroup(plot_);
    barsRect_->setMarginGroup(QCP::msLeft | QCP::msRight, group);
    budgetRect_->setMarginGroup(QCP::msLeft | QCP::msRight, group);
    plot_->plotLayout()->setRowStretchFactor(0, 0.01);
    plot_->plotLayout()->setRowStretchFactor(1, 0.01);
    plot_->plotLayout()->setRowStretchFactor(2, 4);
    plot_->plotLayout()->setRowStretchFactor(3, 0.01);
    for (QCPBars* b : kindBars_) b->addToLegend(legend);
    mhaBars_->addToLegend(legend);

    gauge_ = new GaugeBar(this);
    gauge_->setObjectName(QStringLiteral("kvCapacity"));
    gauge_->setToolTip(tr("Context used / the session's capacity"));
    status_ = new QLabel(this);
    status_->setObjectName(QStringLiteral("kvStatus"));
    status_->setWordWrap(true);
    status_->setContentsMargins(6, 0, 6, 2);
    status_->setTextInteractionFlags(Qt::TextSelectableByMouse);

    auto* bar = new QHBoxLayout;
    bar->setContentsMargins(4, 2, 4, 2);
    bar->addWidget(new QLabel(tr("context"), this));
    bar->addWidget(gauge_, 1);
    bar->addWidget(viewExport::makeExportButton(this, this));
    auto* lay = new QVBoxLayout(this);
    lay->setContentsMargins(0, 0, 0, 0);
    lay->setSpacing(2);
    lay->addLayout(bar);
    lay->addWidget(plot_, 1);
    lay->addWidget(status_);
    rebuild();
}

KvCacheView::~KvCacheView() = default;

void KvCacheView::setModel(const InternalsModelPtr& model) {
    model_ = model;
    contextSize_ = model ? model->contextSize : 0;
    clearHistory();
}

void KvCacheView::clearHistory() {
    bytes_.clear();
    engineTotal_ = 0;
    contextUsed_ = 0;
    rebuild();
}

void KvCacheView::setContext(const ContextSnapshotPtr& c) {
    if (c && c->contextSize > 0) contextSize_ = c->contextSize;
}

void KvCacheView::addToken(const TokenSnapshotPtr& t) {
    if (!t) return;
    bytes_ = t->kvBytesPerLayer;
    engineTotal_ = t->kvBytesTotal;
    contextUsed_ = t->contextUsed;
    if (t->contextSize > 0) contextSize_ = t->contextSize;
    rebuild();
}

std::vector<quint64> KvCacheView::mhaPerLayer() const {
    // Plain MHA: every query head keeps its own K and V, every layer global, for as many
    // positions as the engine reserved for its full-context layers (it grows caches in steps).
    std::vector<quint64> out;
    if (!model_ || !model_->spec) return out;
    const auto& s = *model_->spec;
    qint64 positions = 0;
    for (int l = 0; l < s.n_layers && size_t(l) < bytes_.size(); ++l) {
        const auto& a = s.layers[size_t(l)].attn;
        const bool ring = a.scope != AttnScope::Global && a.window > 0;
        const uint64_t per = archlens::kv_values_per_token(a);
        if (ring || s.layers[size_t(l)].kv_source >= 0 || per == 0) continue;
        positions =
            std::max(positions, qint64(double(bytes_[size_t(l)]) / (double(per) * bytesPerValue(*model_, a))));
    }
    if (positions == 0) positions = contextUsed_;
    for (const auto& l : s.layers) {
        const uint64_t perToken =
            uint64_t(l.attn.n_heads) * uint64_t(l.attn.head_dim + l.attn.v_head_dim);
        out.push_back(quint64(double(perToken) * model_->kvBytesPerValue * double(positions)));
    }
    return out;
}

quint64 KvCacheView::totalBytes() const {
    // Read back from what the chart draws, so a test of the total is a test of the bars.
    const std::vector<quint64> per = layerBytes();
    return std::accumulate(per.begin(), per.end(), quint64(0));
}

std::vector<quint64> KvCacheView::layerBytes() const {
    const int n = model_ && model_->spec ? model_->spec->n_layers : 0;
    std::vector<quint64> out(size_t(n), 0);
    for (QCPBars* b : kindBars_)
        for (auto it = b->data()->constBegin(); it != b->data()->constEnd(); ++it) {
            const int l = int(std::lround(it->key));
            if (l >= 0 && l < n)
                out[size_t(l)] += quint64(std::llround(it->value * b->property("unit").toDouble()));
        }
    return out;
}

quint64 KvCacheView::mhaEquivalentBytes() const {
    const auto m = mhaPerLayer();
    return std::accumulate(m.begin(), m.end(), quint64(0));
}

QString KvCacheView::summary() const {
    if (!model_ || !model_->spec)
        return tr("Load a model: its KV cache appears here as the context grows.");
    const quint64 mha = mhaEquivalentBytes();
    QString s = tr("<b>%1</b> allocated by the engine for %2 tokens (measured, %3 cache)")
                    .arg(bytesText(double(engineTotal_)))
                    .arg(contextUsed_)
                    .arg(model_->kvBytesPerValue == 2.0 ? QStringLiteral("f16") : QStringLiteral("f32"));
    if (mha > 0 && engineTotal_ > 0) {
        const double saving = 1.0 - double(engineTotal_) / double(mha);
        s += tr(" · plain multi-head attention would hold %1 for the same positions (derived from "
                "the spec)")
                 .arg(bytesText(double(mha)));
        if (saving > 0.005) s += tr(": <b>%1% less</b>").arg(saving * 100, 0, 'f', 0);
    }
    const quint64 w = model_->weightBytes, buf = model_->bufferBytes;
    s += tr("<br>memory: weights %1 + KV %2 + buffers ~%3 (estimate) = %4")
             .arg(bytesText(double(w)), bytesText(double(engineTotal_)), bytesText(double(buf)),
                  bytesText(double(w + engineTotal_ + buf)));
    return s;
}

QString KvCacheView::shortSummary() const {
    // One or two lines for a small dock; summary() (the tooltip) says it in full.
    if (!model_ || !model_->spec) return summary();
    const quint64 mha = mhaEquivalentBytes();
    QString s = tr("<b>%1</b> measured").arg(bytesText(double(engineTotal_)));
    if (mha > 0 && engineTotal_ > 0)
        s += tr(" · plain MHA %1 (derived) · <b>%2% less</b>")
                 .arg(bytesText(double(mha)))
                 .arg(std::max(0.0, (1.0 - double(engineTotal_) / double(mha)) * 100), 0, 'f', 0);
    const quint64 w = model_->weightBytes, buf = model_->bufferBytes;
    s += tr("<br>memory: weights %1 + KV %2 + buffers ~%3 (est.)")
             .arg(bytesText(double(w)), bytesText(double(engineTotal_)), bytesText(double(buf)));
    return s;
}

void KvCacheView::resizeEvent(QResizeEvent* e) {
    QWidget::resizeEvent(e);
    if (e->size() != e->oldSize()) rebuild();  // how many layer numbers fit, how long the labels
}

void KvCacheView::rebuild() {
    const auto* spec = model_ ? model_->spec.get() : nullptr;
    const int n = spec ? spec->n_layers : 0;
    const auto mha = mhaPerLayer();
    double top = 1;
    for (int l = 0; l < n; ++l) {
        top = std::max(top, l < int(bytes_.size()) ? double(bytes_[size_t(l)]) : 0.0);
        top = std::max(top, l < int(mha.size()) ? double(mha[size_t(l)]) : 0.0);
    }
    const auto [unit, unitName] = axisUnit(top);
    std::vector<QVector<double>> keys(kindBars_.size()), vals(kindBars_.size());
    QVector<double> mk, mv;
    std::vector<bool> used(kindBars_.size(), false);
    QCPLegend* legend = legend_;
    for (int l = 0; l < n; ++l) {
        const int k = kindIndex(*spec, l);
        used[size_t(k)] = true;
        keys[size_t(k)] << l;
        vals[size_t(k)] << (l < int(bytes_.size()) ? double(bytes_[size_t(l)]) / unit : 0.0);
        mk << l;
        mv << (l < int(mha.size()) ? double(mha[size_t(l)]) / unit : 0.0);
    }
    for (size_t k = 0; k < kindBars_.size(); ++k) {
        kindBars_[k]->setData(keys[k], vals[k], true);
        kindBars_[k]->setProperty("unit", unit);
        kindBars_[k]->setVisible(used[k]);
        // The legend lists only the kinds this model has.
        if (used[k] && !legend->hasItemWithPlottable(kindBars_[k]))
            kindBars_[k]->addToLegend(legend);
        if (!used[k]) kindBars_[k]->removeFromLegend(legend);
    }
    mhaBars_->setData(mk, mv, true);
    mhaBars_->setVisible(n > 0 && engineTotal_ > 0);
    QCPAxis* x = barsRect_->axis(QCPAxis::atBottom);
    auto ticker = qSharedPointerDynamicCast<QCPAxisTickerText>(x->ticker());
    ticker->clear();
    // as many layer numbers as fit side by side (~18 px each), always a round step
    const int fit = std::max(1, (plot_->width() - 90) / 18);
    int step = 1;
    for (int s : {1, 2, 4, 5, 10, 20, 25, 50, 100})
        if ((step = s) * fit >= n) break;
    for (int l = 0; l < n; l += step) ticker->addTick(l, QString::number(l));
    x->setRange(-0.6, std::max(1, n) - 0.4);
    // a short dock (the main window's default) gets a short label and two ticks
    const bool low = plot_->height() < 240;
    barsRect_->axis(QCPAxis::atLeft)->setLabel(low ? tr("%1/layer").arg(unitName) : tr("bytes per layer (%1)").arg(unitName));
    barsRect_->axis(QCPAxis::atLeft)->ticker()->setTickCount(low ? 2 : 5);
    barsRect_->axis(QCPAxis::atLeft)->setRange(0, top / unit * 1.12);

    // Budget bar.
    const double w = model_ ? double(model_->weightBytes) : 0, kv = double(engineTotal_),
                 buf = model_ ? double(model_->bufferBytes) : 0;
    const auto [bu, bname] = axisUnit(std::max(1.0, w + kv + buf));
    budgetWeights_->setData({1}, {w / bu});
    budgetKv_->setData({1}, {kv / bu});
    budgetBuffers_->setData({1}, {buf / bu});
    budgetRect_->axis(QCPAxis::atBottom)->setRange(0, std::max(1e-9, (w + kv + buf) / bu * 1.02));
    budgetRect_->axis(QCPAxis::atBottom)->setLabel(QString());
    budgetRect_->axis(QCPAxis::atBottom)->setTickLabelFont(QFont(font().family(), 7));

    QString t = tr("KV cache");
    if (spec) t += tr(" · %1 · %2 tokens (measured)").arg(bytesText(kv)).arg(contextUsed_);
    title_->setText(t);
    gauge_->setValues(contextUsed_, contextSize_);
    status_->setText(shortSummary());
    status_->setToolTip(summary());
    plot_->replot(QCustomPlot::rpQueuedReplot);
}

QString KvCacheView::toCsv() const {
    QString out =
        QStringLiteral("layer,kind,window,bytes_allocated,bytes_plain_mha_same_positions\n");
    const auto* spec = model_ ? model_->spec.get() : nullptr;
    const auto mha = mhaPerLayer();
    for (int l = 0; spec && l < spec->n_layers; ++l)
        out += QStringLiteral("%1,%2,%3,%4,%5\n")
                   .arg(l)
                   .arg(viewExport::csvField(kindName(kindIndex(*spec, l))))
                   .arg(spec->layers[size_t(l)].attn.window)
                   .arg(l < int(bytes_.size()) ? bytes_[size_t(l)] : 0)
                   .arg(l < int(mha.size()) ? mha[size_t(l)] : 0);
    return out;
}

QJsonDocument KvCacheView::toJson() const {
    QJsonObject o;
    o[QStringLiteral("view")] = QStringLiteral("kv-cache");
    o[QStringLiteral("model")] = model_ ? model_->name : QString();
    o[QStringLiteral("context_used")] = contextUsed_;
    o[QStringLiteral("context_size")] = contextSize_;
    o[QStringLiteral("kv_bytes_total")] = qint64(engineTotal_);
    o[QStringLiteral("kv_source")] =
        QStringLiteral("measured: the engine's allocations (%1)").arg(model_ && model_->kvBytesPerValue == 2.0 ? "f16" : "f32");
    o[QStringLiteral("plain_mha_bytes")] = qint64(mhaEquivalentBytes());
    o[QStringLiteral("plain_mha_source")] = QStringLiteral(
        "derived from the spec: n_heads*(head_dim+v_head_dim) per layer, same positions");
    o[QStringLiteral("weight_bytes")] = qint64(model_ ? model_->weightBytes : 0);
    o[QStringLiteral("buffer_bytes_estimate")] = qint64(model_ ? model_->bufferBytes : 0);
    QJsonArray layers;
    const auto* spec = model_ ? model_->spec.get() : nullptr;
    const auto mha = mhaPerLayer();
    for (int l = 0; spec && l < spec->n_layers; ++l)
        layers.append(
            QJsonObject{{"layer", l},
                        {"kind", kindName(kindIndex(*spec, l))},
                        {"window", spec->layers[size_t(l)].attn.window},
                        {"bytes", qint64(l < int(bytes_.size()) ? bytes_[size_t(l)] : 0)},
                        {"plain_mha_bytes", qint64(l < int(mha.size()) ? mha[size_t(l)] : 0)}});
    o[QStringLiteral("layers")] = layers;
    return QJsonDocument(o);
}
