#include "widgets/attention_view.h"

#include <qcustomplot.h>

#include <QCheckBox>
#include <QComboBox>
#include <QElapsedTimer>
#include <QHBoxLayout>
#include <QJsonArray>
#include <QJsonObject>
#include <QLabel>
#include <QMouseEvent>
#include <QPainter>
#include <QPushButton>
#include <QScrollArea>
#include <QSplitter>
#include <QTimer>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <functional>

#include "widgets/diagram_layout.h"
#include "widgets/token_style.h"

using archlens::AttentionRow;
using archlens::AttnKind;
using archlens::AttnScope;

namespace {

constexpr qint64 kAutoBlockKeys = 512;      // more keys than this: sum key blocks into cells
constexpr qint64 kAutoBlockCells = 256;     // ...so that about this many columns remain
constexpr size_t kFloatBudget = 48u << 20;  // ~192 MB of stored rows before old ones are summed
constexpr int kBudgetBlocks = 64;           // a summed row keeps this many key blocks
constexpr int kThumb = 28;                  // thumbnail side, pixels
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();

QString shortLabel(const QString& s) {
    return s.size() > 10 ? s.left(9) + QChar(0x2026) : s;
}

}  // namespace

// The layer × head grid: one small picture per head, drawn from whatever rows were captured for
// it (max per pixel, so a sharp pattern survives the shrinking); click one to open it.
class AttentionThumbnails : public QWidget {
  public:
    struct Cell {
        QImage image;  // empty: nothing captured for this head
    };
    std::vector<std::vector<Cell>> cells;  // [layer][head]
    std::vector<QColor> layerColors;
    int selLayer = -1, selHead = -1;  // -1 head: the layer's aggregate
    std::function<void(int, int)> onPick;

    QSize sizeHint() const override {
        int heads = 1;
        for (auto& l : cells) heads = std::max(heads, int(l.size()));
        return {kLeft + heads * (kThumb + kGap) + kGap,
                kTop + int(cells.size()) * (kThumb + kGap) + kGap};
    }

  protected:
    static constexpr int kLeft = 30, kTop = 16, kGap = 3;
    QRect cellRect(int l, int h) const {
        return {kLeft + h * (kThumb + kGap), kTop + l * (kThumb + kGap), kThumb, kThumb};
    }

    void paintEvent(QPaintEvent*) override {
        QPainter p(this);
        p.fillRect(rect(), palette().base());
        p.setPen(palette().text().color());
        QFont f = font();
        f.setPointSizeF(f.pointSizeF() * 0.8);
        p.setFont(f);
        p.drawText(QRect(kLeft, 0, width() - kLeft, kTop), Qt::AlignLeft | Qt::AlignVCenter,
                   tr("heads →"));
        for (int l = 0; l < int(cells.size()); ++l) {
            const QRect first = cellRect(l, 0);
            // The layer's kind colour beside its label, as in the diagram and the KV chart.
            p.fillRect(QRect(2, first.top() + 4, 4, kThumb - 8),
                       layerColors.size() > size_t(l) ? layerColors[size_t(l)] : Qt::gray);
            p.setPen(palette().text().color());
            p.drawText(QRect(8, first.top(), kLeft - 10, kThumb), Qt::AlignRight | Qt::AlignVCenter,
                       QStringLiteral("L%1").arg(l));
            for (int h = 0; h < int(cells[size_t(l)].size()); ++h) {
                const QRect r = cellRect(l, h);
                const Cell& c = cells[size_t(l)][size_t(h)];
                if (c.image.isNull())
                    p.fillRect(r, QColor(0xf2, 0xf2, 0xf2));
                else
                    p.drawImage(r, c.image);
                const bool sel = l == selLayer && (selHead < 0 || h == selHead);
                p.setPen(sel ? QPen(QColor(0xd5, 0x5e, 0x00), 2) : QPen(QColor(0xcc, 0xcc, 0xcc)));
                p.drawRect(r.adjusted(0, 0, -1, -1));
            }
        }
    }
    void mousePressEvent(QMouseEvent* e) override {
        for (int l = 0; l < int(cells.size()); ++l)
            for (int h = 0; h < int(cells[size_t(l)].size()); ++h)
                if (cellRect(l, h).contains(e->pos()) && onPick) return onPick(l, h);
    }
    bool event(QEvent* e) override {
        if (e->type() == QEvent::ToolTip) {
            auto* he = static_cast<QHelpEvent*>(e);
            for (int l = 0; l < int(cells.size()); ++l)
                for (int h = 0; h < int(cells[size_t(l)].size()); ++h)
                    if (cellRect(l, h).contains(he->pos())) {
                        QToolTip::showText(he->globalPos(),
                                           tr("layer %1, head %2%3 — click to open")
                                               .arg(l)
                                               .arg(h)
                                               .arg(cells[size_t(l)][size_t(h)].image.isNull()
                                                        ? tr(" (not captured)")
                                                        : QString()),
                                           this);
                        return true;
                    }
        }
        return QWidget::event(e);
    }
};

AttentionView::AttentionView(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("attentionView"));
    layerBox_ = new QComboBox(this);
    headBox_ = new QComboBox(this);
    blockBox_ = new QComboBox(this);
    sinkBox_ = new QCheckBox(tr("hide sink"), this);
    sinkBox_->setToolTip(
        tr("Hide the first token, where many heads park attention they do not need, and rescale "
           "the colours to the rest"));
    logBox_ = new QCheckBox(tr("log"), this);
    logBox_->setToolTip(
        tr("Logarithmic colour scale: small probabilities in long contexts stay visible"));
    gridBox_ = new QCheckBox(tr("all heads"), this);
    gridBox_->setToolTip(tr("Layer × head thumbnails (captures every head of every layer)"));
    gridBox_->setChecked(true);
    auto* fit = new QPushButton(tr("Fit"), this);
    fit->setToolTip(tr("Show the whole map (wheel zooms, drag pans)"));
    blockBox_->addItem(tr("auto"), 0);
    for (int b : {1, 4, 16, 64, 256})
        blockBox_->addItem(b == 1 ? tr("1 key") : tr("%1 keys").arg(b), b);
    blockBox_->setToolTip(tr("Keys summed into one cell (long contexts)"));
    layerBox_->setToolTip(tr("Layer"));
    headBox_->setToolTip(tr("Head, or the mean / max over the layer's heads"));

    auto* bar = new QHBoxLayout;
    bar->setContentsMargins(4, 2, 4, 2);
    bar->addWidget(layerBox_);
    bar->addWidget(headBox_);
    bar->addWidget(sinkBox_);
    bar->addWidget(logBox_);
    bar->addWidget(new QLabel(tr("cell:"), this));
    bar->addWidget(blockBox_);
    bar->addWidget(fit);
    bar->addWidget(gridBox_);
    bar->addStretch(1);
    bar->addWidget(viewExport::makeExportButton(this, this));

    plot_ = new QCustomPlot(this);
    plot_->setObjectName(QStringLiteral("attentionPlot"));
    plot_->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
    plot_->plotLayout()->insertRow(0);
    title_ = new QCPTextElement(plot_, tr("Attention"), QFont(font().family(), 10, QFont::Bold));
    plot_->plotLayout()->addElement(0, 0, title_);
    map_ = new QCPColorMap(plot_->xAxis, plot_->yAxis);
    map_->setInterpolate(false);
    map_->setTightBoundary(true);
    scale_ = new QCPColorScale(plot_);
    plot_->plotLayout()->addElement(1, 1, scale_);
    scale_->setType(QCPAxis::atRight);
    scale_->axis()->setLabel(tr("probability"));
    map_->setColorScale(scale_);
    map_->setGradient(viewExport::viridis());
    auto* group = new QCPMarginGroup(plot_);
    plot_->axisRect()->setMarginGroup(QCP::msBottom | QCP::msTop, group);
    scale_->setMarginGroup(QCP::msBottom | QCP::msTop, group);
    plot_->yAxis->setRangeReversed(true);  // query 0 on top, as in BertViz / CircuitsVis
    plot_->xAxis->setLabel(tr("key (attended to)"));
    plot_->yAxis->setLabel(tr("query (attending)"));
    plot_->xAxis->setTicker(QSharedPointer<QCPAxisTickerText>(new QCPAxisTickerText));
    plot_->yAxis->setTicker(QSharedPointer<QCPAxisTickerText>(new QCPAxisTickerText));
    plot_->xAxis->setTickLabelRotation(60);
    windowEdge_ = new QCPCurve(plot_->xAxis, plot_->yAxis);
    windowEdge_->setPen(QPen(archlens::layerKindColor(archlens::LayerKind::Sliding), 2));
    windowEdge_->setName(tr("window edge"));
    rowMark_ = new QCPItemRect(plot_);
    rowMark_->setPen(QPen(QColor(0xd5, 0x5e, 0x00), 2));
    rowMark_->setBrush(Qt::NoBrush);
    rowMark_->setVisible(false);
    plot_->setMinimumSize(240, 160);
    connect(plot_->xAxis, qOverload<const QCPRange&>(&QCPAxis::rangeChanged), this,
            [this] { updateTicks(); });
    connect(plot_->yAxis, qOverload<const QCPRange&>(&QCPAxis::rangeChanged), this,
            [this] { updateTicks(); });
    connect(plot_, &QCustomPlot::mouseMove, this, &AttentionView::onHover);
    // Label density depends on the axis length: recount after a resize.
    connect(plot_, &QCustomPlot::afterLayout, this, [this] {
        if (lastAxisSize_ == plot_->axisRect()->size()) return;
        lastAxisSize_ = plot_->axisRect()->size();
        updateTicks();
        plot_->replot(QCustomPlot::rpQueuedReplot);
    });
    connect(plot_, &QCustomPlot::mousePress, this, &AttentionView::onClick);
    plot_->setMouseTracking(true);

    thumbs_ = new AttentionThumbnails;
    thumbs_->onPick = [this](int l, int h) {
        setLayer(l);
        setHead(h);
    };
    thumbScroll_ = new QScrollArea(this);
    thumbScroll_->setWidget(thumbs_);
    thumbScroll_->setWidgetResizable(false);
    thumbScroll_->setMinimumWidth(90);

    auto* split = new QSplitter(Qt::Horizontal, this);
    split->addWidget(plot_);
    split->addWidget(thumbScroll_);
    split->setStretchFactor(0, 4);
    split->setStretchFactor(1, 1);

    status_ = new QLabel(this);
    status_->setObjectName(QStringLiteral("attentionStatus"));
    status_->setWordWrap(true);
    status_->setContentsMargins(6, 0, 6, 2);

    auto* lay = new QVBoxLayout(this);
    lay->setContentsMargins(0, 0, 0, 0);
    lay->setSpacing(2);
    lay->addLayout(bar);
    lay->addWidget(split, 1);
    lay->addWidget(status_);

    timer_ = new QTimer(this);
    timer_->setSingleShot(true);
    timer_->setInterval(80);  // per-token updates coalesced: a fast model must not starve painting
    connect(timer_, &QTimer::timeout, this, &AttentionView::refresh);

    connect(layerBox_, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int i) {
        if (!updatingControls_ && i >= 0) setLayer(i);
    });
    connect(headBox_, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int i) {
        if (updatingControls_ || i < 0) return;
        const int h = headBox_->itemData(i).toInt();
        if (h == -1)
            setAggregate(Aggregate::Mean);
        else if (h == -2)
            setAggregate(Aggregate::Max);
        else
            setHead(h);
    });
    connect(blockBox_, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int i) {
        if (!updatingControls_ && i >= 0) setKeyBlock(blockBox_->itemData(i).toInt());
    });
    connect(sinkBox_, &QCheckBox::toggled, this, &AttentionView::setHideSink);
    connect(logBox_, &QCheckBox::toggled, this, &AttentionView::setLogScale);
    connect(gridBox_, &QCheckBox::toggled, this, &AttentionView::setThumbnailsVisible);
    connect(fit, &QPushButton::clicked, this, [this] {
        keepView_ = false;
        refresh();
    });
    rebuildControls();
    updateStatus();
}

AttentionView::~AttentionView() = default;

int AttentionView::nHeads(int layer) const {
    if (!model_ || !model_->spec || layer < 0 || layer >= model_->spec->n_layers) return 0;
    return model_->spec->layers[size_t(layer)].attn.n_heads;
}

qint64 AttentionView::windowBegin(qint64 q) const {
    if (!model_ || !model_->spec || layer_ >= model_->spec->n_layers) return 0;
    return model_->spec->layers[size_t(layer_)].attn.key_begin(q);  // the engine's own masks
}

void AttentionView::setModel(const InternalsModelPtr& model) {
    model_ = model;
    layer_ = head_ = 0;
    aggregate_ = Aggregate::Head;
    selectedQuery_ = -1;
    clearHistory();
    rebuildControls();
    emit probeNeedsChanged();
}

void AttentionView::clearHistory() {
    thumbsStale_ = true;
    invalidateMap();
    tokens_.clear();
    rows_.clear();
    storedFloats_ = budgetRetryAt_ = 0;
    keepView_ = false;
    schedule();
}

void AttentionView::setContext(const ContextSnapshotPtr& c) {
    thumbsStale_ = true;
    invalidateMap();
    if (!c) return;
    tokens_.setContext(*c);
    // Rows of the reused prefix stay valid (same tokens, same cache); the rest is recomputed.
    for (auto& heads : rows_)
        for (auto& qs : heads) {
            for (size_t q = size_t(std::max<qint64>(0, c->reusedTokens)); q < qs.size(); ++q)
                storedFloats_ -= qs[q].v.size();
            if (qs.size() > size_t(std::max<qint64>(0, c->reusedTokens)))
                qs.resize(size_t(std::max<qint64>(0, c->reusedTokens)));
        }
    schedule();
}

void AttentionView::addToken(const TokenSnapshotPtr& t) {
    if (!t) return;
    tokens_.addToken(*t);
    for (const AttentionRow& r : t->probes.attention) storeRow(r);
    enforceBudget();
    schedule();
}

void AttentionView::storeRow(const AttentionRow& r) {
    if (r.layer < 0 || r.head < 0 || r.query_pos < 0) return;
    if (rows_.size() <= size_t(r.layer)) rows_.resize(size_t(r.layer) + 1);
    auto& heads = rows_[size_t(r.layer)];
    if (heads.size() <= size_t(r.head)) heads.resize(size_t(r.head) + 1);
    auto& qs = heads[size_t(r.head)];
    if (qs.size() <= size_t(r.query_pos)) qs.resize(size_t(r.query_pos) + 1);
    Row& row = qs[size_t(r.query_pos)];
    if (r.layer == layer_ && r.query_pos < qint64(rowDrawn_.size()) && rowDrawn_[size_t(r.query_pos)])
        invalidateMap();  // a drawn row changes
    storedFloats_ -= row.v.size();
    row.keyBegin = r.key_begin;
    row.block = 1;
    row.v = r.probs;
    storedFloats_ += row.v.size();
}

void AttentionView::enforceBudget() {
    // All heads of all layers grow with the square of the context: past the budget, rows of
    // layers not on screen are summed into key blocks (what their thumbnails need anyway).
    if (storedFloats_ <= std::max(kFloatBudget, budgetRetryAt_)) return;
    for (size_t l = 0; l < rows_.size(); ++l) {
        if (int(l) == layer_) continue;
        for (auto& qs : rows_[l])
            for (Row& row : qs) {
                if (row.block != 1 || row.v.size() <= size_t(kBudgetBlocks)) continue;
                const int b = int((row.v.size() + kBudgetBlocks - 1) / kBudgetBlocks);
                std::vector<float> s((row.v.size() + size_t(b) - 1) / size_t(b), 0.f);
                for (size_t j = 0; j < row.v.size(); ++j) s[j / size_t(b)] += row.v[j];
                storedFloats_ -= row.v.size() - s.size();
                row.v = std::move(s);
                row.block = b;
            }
        if (storedFloats_ <= kFloatBudget / 2) return;
    }
    // What is left is the layer on screen at full resolution: try again after it grew a quarter.
    budgetRetryAt_ = storedFloats_ + storedFloats_ / 4;
}

archlens::ProbeConfig AttentionView::probeNeeds() const {
    archlens::ProbeConfig c;
    if (!model_) return c;
    c.attention = true;
    if (thumbnailsVisible()) return c;  // every layer, every head
    c.attn_layers = {layer_};
    if (aggregate_ == Aggregate::Head) c.attn_heads = {head_};
    return c;
}

void AttentionView::setLayer(int layer) {
    thumbsStale_ = true;
    if (!model_ || !model_->spec || layer < 0 || layer >= model_->spec->n_layers) return;
    const bool changed = layer != layer_;
    layer_ = layer;
    invalidateMap();
    head_ = std::min(head_, std::max(0, nHeads(layer) - 1));
    keepView_ = false;
    rebuildControls();
    schedule();
    if (changed) emit probeNeedsChanged();
}

void AttentionView::setHead(int head) {
    thumbsStale_ = true;
    if (head < 0 || head >= nHeads(layer_)) return;
    const bool changed = head != head_ || aggregate_ != Aggregate::Head;
    head_ = head;
    aggregate_ = Aggregate::Head;
    invalidateMap();
    rebuildControls();
    schedule();
    if (changed) emit probeNeedsChanged();
}

void AttentionView::setAggregate(Aggregate a) {
    thumbsStale_ = true;
    if (a == aggregate_) return;
    aggregate_ = a;
    invalidateMap();
    rebuildControls();
    schedule();
    emit probeNeedsChanged();
}

void AttentionView::setHideSink(bool on) {
    if (on != hideSink_) invalidateMap();
    hideSink_ = on;
    if (sinkBox_->isChecked() != on) sinkBox_->setChecked(on);
    schedule();
}

void AttentionView::setLogScale(bool on) {
    logScale_ = on;
    if (logBox_->isChecked() != on) logBox_->setChecked(on);
    schedule();
}

void AttentionView::setKeyBlock(int keys) {
    keyBlockSetting_ = std::max(0, keys);
    invalidateMap();
    keepView_ = false;
    rebuildControls();
    schedule();
}

void AttentionView::setThumbnailsVisible(bool on) {
    if (gridBox_->isChecked() != on) gridBox_->setChecked(on);
    thumbScroll_->setVisible(on);
    schedule();
    emit probeNeedsChanged();
}

bool AttentionView::thumbnailsVisible() const {
    return gridBox_->isChecked();
}

void AttentionView::rebuildControls() {
    updatingControls_ = true;
    layerBox_->clear();
    headBox_->clear();
    if (model_ && model_->spec) {
        const auto& s = *model_->spec;
        for (int l = 0; l < s.n_layers; ++l) {
            const auto kind = archlens::layerKind(s.layers[size_t(l)].attn, s.learned_positions);
            QString name = tr("layer %1").arg(l);
            if (kind == archlens::LayerKind::Sliding)
                name += tr(" · window %1").arg(s.layers[size_t(l)].attn.window);
            else if (kind == archlens::LayerKind::Chunked)
                name += tr(" · chunk %1").arg(s.layers[size_t(l)].attn.window);
            else if (kind == archlens::LayerKind::Mla)
                name += tr(" · MLA");
            else if (kind == archlens::LayerKind::Nope)
                name += tr(" · NoPE");
            layerBox_->addItem(name);
        }
        layerBox_->setCurrentIndex(layer_);
        for (int h = 0; h < nHeads(layer_); ++h) headBox_->addItem(tr("head %1").arg(h), h);
        headBox_->addItem(tr("mean of heads"), -1);
        headBox_->addItem(tr("max of heads"), -2);
        headBox_->setCurrentIndex(aggregate_ == Aggregate::Mean  ? nHeads(layer_)
                                  : aggregate_ == Aggregate::Max ? nHeads(layer_) + 1
                                                                 : head_);
    }
    blockBox_->setCurrentIndex(std::max(0, blockBox_->findData(keyBlockSetting_)));
    updatingControls_ = false;
}

void AttentionView::schedule() {
    dirty_ = true;
    if (!timer_->isActive()) timer_->start();
}

void AttentionView::ensureBuilt() const {
    if (dirty_) const_cast<AttentionView*>(this)->refresh();
}

std::vector<float> AttentionView::combinedRow(qint64 q, qint64* keyBegin, int* block) const {
    *keyBegin = 0;
    *block = 0;
    if (size_t(layer_) >= rows_.size()) return {};
    const auto& heads = rows_[size_t(layer_)];
    auto rowOf = [&](int h) -> const Row* {
        if (size_t(h) >= heads.size() || size_t(q) >= heads[size_t(h)].size()) return nullptr;
        const Row& r = heads[size_t(h)][size_t(q)];
        return r.block > 0 ? &r : nullptr;
    };
    if (aggregate_ == Aggregate::Head) {
        const Row* r = rowOf(head_);
        if (!r) return {};
        *keyBegin = r->keyBegin;
        *block = r->block;
        return r->v;
    }
    // Mean / max over the heads captured for this query (all of a layer's heads share its mask).
    std::vector<float> acc;
    int n = 0;
    for (int h = 0; h < int(heads.size()); ++h) {
        const Row* r = rowOf(h);
        if (!r) continue;
        if (n == 0) {
            acc = r->v;
            *keyBegin = r->keyBegin;
            *block = r->block;
        } else if (r->v.size() == acc.size() && r->block == *block) {
            for (size_t j = 0; j < acc.size(); ++j)
                acc[j] =
                    aggregate_ == Aggregate::Max ? std::max(acc[j], r->v[j]) : acc[j] + r->v[j];
        } else {
            continue;
        }
        ++n;
    }
    if (aggregate_ == Aggregate::Mean && n > 1)
        for (float& v : acc) v /= float(n);
    return acc;
}

void AttentionView::refresh() {
    dirty_ = false;
    timer_->stop();
    rebuildMap();
    // The grid reads every stored row: at most once a second while tokens stream in.
    if (thumbnailsVisible() &&
        (!thumbClock_.isValid() || thumbClock_.elapsed() > 1000 || thumbsStale_)) {
        thumbClock_.start();
        thumbsStale_ = false;
        // Thumbnails: max over each pixel's block, normalised per head so every pattern shows.
        QCPColorGradient g = viewExport::viridis();  // color() is not const (it caches its table)
        const auto* spec = model_ ? model_->spec.get() : nullptr;
        thumbs_->cells.assign(spec ? size_t(spec->n_layers) : 0, {});
        thumbs_->layerColors.clear();
        for (int l = 0; spec && l < spec->n_layers; ++l) {
            thumbs_->layerColors.push_back(archlens::layerKindColor(
                archlens::layerKind(spec->layers[size_t(l)].attn, spec->learned_positions)));
            auto& cells = thumbs_->cells[size_t(l)];
            cells.resize(size_t(nHeads(l)));
            if (size_t(l) >= rows_.size()) continue;
            for (int h = 0; h < int(cells.size()) && size_t(h) < rows_[size_t(l)].size(); ++h) {
                const auto& qs = rows_[size_t(l)][size_t(h)];
                const qint64 n = qint64(qs.size());
                if (n == 0) continue;
                const int side = int(std::min<qint64>(kThumb, n));
                std::vector<float> px(size_t(side * side), -1.f);
                float mx = 0;
                // A thumbnail has side² pixels: sample about 4 rows and 4 keys per pixel instead
                // of reading every stored row of every head (that took ~80 ms at 1500 tokens and
                // stalled the event loop once a second).
                const qint64 qstep = std::max<qint64>(1, n / (4 * side));
                for (qint64 q = 0; q < n; q += qstep) {
                    const Row& r = qs[size_t(q)];
                    if (r.block == 0) continue;
                    const int y = int(q * side / n);
                    const size_t jstep = std::max<size_t>(1, r.v.size() / size_t(4 * side));
                    for (size_t j = 0; j < r.v.size(); j += jstep) {
                        const qint64 k = r.keyBegin + qint64(j) * r.block;
                        const int x = int(std::min<qint64>(side - 1, k * side / n));
                        float& p = px[size_t(y * side + x)];
                        p = std::max(p, r.v[j]);
                        mx = std::max(mx, r.v[j]);
                    }
                }
                QImage img(side, side, QImage::Format_RGB32);
                for (int y = 0; y < side; ++y)
                    for (int x = 0; x < side; ++x) {
                        const float p = px[size_t(y * side + x)];
                        img.setPixel(
                            x, y,
                            p < 0 ? qRgb(0xf2, 0xf2, 0xf2)
                                  : g.color(double(p / std::max(mx, 1e-9f)), QCPRange(0, 1)));
                    }
                cells[size_t(h)].image = img;
            }
        }
        thumbs_->selLayer = layer_;
        thumbs_->selHead = aggregate_ == Aggregate::Head ? head_ : -1;
        thumbs_->resize(thumbs_->sizeHint());
        thumbs_->update();
    } else if (thumbnailsVisible() && !thumbPending_) {
        thumbPending_ = true;
        QTimer::singleShot(1000, this, [this] {
            thumbPending_ = false;
            thumbsStale_ = true;
            schedule();
        });
    }
    updateStatus();
}

void AttentionView::fillMapRows() {
    auto* d = map_->data();
    const qint64 to = std::min<qint64>(nQueries_, qint64(rowDrawn_.size()));
    for (qint64 q = firstUndrawn_; q < to; ++q) {
        if (rowDrawn_[size_t(q)]) continue;
        qint64 kb = 0;
        int b = 0;
        const std::vector<float> v = combinedRow(q, &kb, &b);
        if (b == 0) continue;  // not arrived (yet)
        rowDrawn_[size_t(q)] = 1;
        for (size_t j = 0; j < v.size(); ++j) {
            const qint64 k = kb + qint64(j) * b;
            if (hideSink_ && k == 0) continue;
            const int c = int(k / block_);
            if (c >= capCols_) continue;
            const double old = d->cell(c, int(q));
            d->setCell(c, int(q), std::isnan(old) ? double(v[j]) : old + double(v[j]));
        }
        // the row is complete: its cells join the colour range
        const int c0 = int(std::max<qint64>(0, kb) / block_), c1 = std::min(capCols_ - 1, int((kb + qint64(v.size()) * b) / block_));
        for (int c = c0; c <= c1; ++c) {
            const double x = d->cell(c, int(q));
            if (std::isnan(x)) continue;
            mapMax_ = std::max(mapMax_, x);
            if (x > 0) mapMin_ = std::min(mapMin_, x);
        }
    }
    while (firstUndrawn_ < qint64(rowDrawn_.size()) && rowDrawn_[size_t(firstUndrawn_)]) ++firstUndrawn_;
}

void AttentionView::rebuildMap() {
    // Rows: every context position; keys: the same positions (causal).
    nQueries_ = tokens_.size();
    if (size_t(layer_) < rows_.size())
        for (const auto& qs : rows_[size_t(layer_)])
            nQueries_ = std::max(nQueries_, qint64(qs.size()));
    nKeys_ = nQueries_;
    block_ = keyBlockSetting_ > 0 ? keyBlockSetting_
                                  : (nKeys_ <= kAutoBlockKeys
                                         ? 1
                                         : int((nKeys_ + kAutoBlockCells - 1) / kAutoBlockCells));
    const int nx = std::max(1, int((nKeys_ + block_ - 1) / block_));
    const int ny = int(std::max<qint64>(1, nQueries_));
    auto* d = map_->data();
    const bool grow = mapValid_ && block_ == mapBlock_ && ny <= capRows_ && nx <= capCols_;
    if (!grow) {
        // Whole rebuild, with headroom so that the next tokens only add rows.
        // (Small headroom: the colour map redraws its whole image, padding included, whenever a
        // cell changes.)
        capRows_ = ny + std::max(64, ny / 8);
        capCols_ = nx + std::max(16, nx / 8);
        d->setSize(capCols_, capRows_);
        // Cell c covers keys [c*B, (c+1)*B): its centre is c*B + (B-1)/2 in key coordinates.
        const double half = (block_ - 1) / 2.0;
        d->setRange(QCPRange(half, (capCols_ - 1) * double(block_) + half), QCPRange(0, capRows_ - 1));
        d->fill(kNaN);
        rowDrawn_.assign(size_t(capRows_), 0);
        firstUndrawn_ = edgeRows_ = 0;
        ++fullRebuilds_;
        mapMax_ = 0;
        mapMin_ = 1;
        windowEdge_->data()->clear();
        mapBlock_ = block_;
        mapValid_ = true;
    }
    fillMapRows();
    const double mx = mapMax_, mn = mapMin_;
    maxShown_ = mx;
    // Hiding the sink rescales to what remains; otherwise probabilities keep their 0..1 meaning.
    const double upper = hideSink_ ? std::max(mx, 1e-6) : 1.0;
    map_->setDataScaleType(logScale_ ? QCPAxis::stLogarithmic : QCPAxis::stLinear);
    map_->setDataRange(logScale_ ? QCPRange(std::max(1e-5, std::min(mn, upper / 10)), upper)
                                 : QCPRange(0, upper));
    scale_->axis()->setLabel(block_ > 1 ? tr("attention on %1-key block (sum)").arg(block_)
                                        : tr("probability"));

    // The window's edge: keys left of it are masked for that query (new rows appended).
    bool windowed = false;
    if (model_ && model_->spec && layer_ < model_->spec->n_layers) {
        const auto& a = model_->spec->layers[size_t(layer_)].attn;
        windowed = a.scope != AttnScope::Global && a.window > 0;
        if (windowed) {
            windowEdge_->setPen(QPen(archlens::layerKindColor(a.scope == AttnScope::Sliding
                                                                  ? archlens::LayerKind::Sliding
                                                                  : archlens::LayerKind::Chunked),
                                     2));
            QVector<double> ts, xs, ys;
            for (qint64 q = edgeRows_; q < nQueries_; ++q) {
                const double x = double(windowBegin(q)) - 0.5;
                ts << 2.0 * double(q) << 2.0 * double(q) + 1;
                xs << x << x;
                ys << double(q) - 0.5 << double(q) + 0.5;
            }
            windowEdge_->addData(ts, xs, ys, true);
        }
    }
    windowEdge_->setVisible(windowed);
    edgeRows_ = nQueries_;

    if (!keepView_ || nQueries_ == 0) {
        plot_->xAxis->setRange(-0.5, std::max<double>(nx * double(block_), 1) - 0.5);
        plot_->yAxis->setRange(-0.5, ny - 0.5);
        keepView_ = nQueries_ > 0;
    } else {
        // Follow the stream: widen the view while the user has not zoomed into the middle.
        // (Several tokens may arrive between two rebuilds: compare with the previous edge.)
        if (plot_->yAxis->range().upper >= shownRows_ - 1.5) plot_->yAxis->setRangeUpper(ny - 0.5);
        if (plot_->xAxis->range().upper >= shownKeys_ - 1.5)
            plot_->xAxis->setRangeUpper(nx * double(block_) - 0.5);
    }
    shownRows_ = ny;
    shownKeys_ = nx * double(block_);
    if (selectedQuery_ >= 0 && selectedQuery_ < nQueries_) {
        rowMark_->topLeft->setCoords(-0.5, double(selectedQuery_) - 0.5);
        rowMark_->bottomRight->setCoords(nx * double(block_) - 0.5, double(selectedQuery_) + 0.5);
        rowMark_->setVisible(true);
    } else {
        rowMark_->setVisible(false);
    }

    QString what;
    if (aggregate_ == Aggregate::Head)
        what = tr("head %1").arg(head_);
    else
        what = aggregate_ == Aggregate::Mean ? tr("mean of heads") : tr("max of heads");
    title_->setText(tr("Attention · layer %1 · %2%3")
                        .arg(layer_)
                        .arg(what)
                        .arg(hideSink_ ? tr(" · sink hidden") : QString()));
    updateTicks();
    plot_->replot(QCustomPlot::rpQueuedReplot);
}

void AttentionView::updateTicks() {
    // Token labels where they fit: every n-th position, as many as the axis has room for.
    auto label = [this](QCPAxis* axis, bool keys) {
        auto ticker = qSharedPointerDynamicCast<QCPAxisTickerText>(axis->ticker());
        if (!ticker) return;
        ticker->clear();
        const QCPRange r = axis->range();
        const qint64 lo = std::max<qint64>(0, qint64(std::ceil(r.lower))),
                     hi = std::min<qint64>(nQueries_ - 1, qint64(std::floor(r.upper)));
        if (hi < lo) return;
        const qint64 span = hi - lo + 1;
        // One label per ~14 px of axis (a text line), at most 30.
        const int px = axis->orientation() == Qt::Horizontal ? axis->axisRect()->width() : axis->axisRect()->height();
        const qint64 fit = std::clamp<qint64>(px / 14, 2, 30);
        const qint64 step = std::max<qint64>(1, (span + fit - 1) / fit);
        const qint64 kStep = keys ? std::max<qint64>(step, block_) : step;
        for (qint64 p = (lo + kStep - 1) / kStep * kStep; p <= hi; p += kStep)
            ticker->addTick(double(p),
                            QStringLiteral("%1 %2").arg(shortLabel(tokens_.label(p))).arg(p));
    };
    label(plot_->xAxis, true);
    label(plot_->yAxis, false);
}

void AttentionView::updateStatus() {
    if (!model_ || !model_->spec) {
        status_->setText(
            tr("Load a model and chat: the attention of every generated token appears here."));
        return;
    }
    const auto& a = model_->spec->layers[size_t(std::min(layer_, model_->spec->n_layers - 1))].attn;
    QStringList parts;
    parts << tr("measured: the engine's softmax rows");
    if (a.kind == AttnKind::MLA) parts << tr("MLA: per head after decompression of the latent");
    if (a.scope == AttnScope::Sliding && a.window > 0)
        parts << tr("sliding window %1 (orange edge)").arg(a.window);
    if (a.scope == AttnScope::Chunked && a.window > 0)
        parts << tr("chunks of %1 (edge drawn)").arg(a.window);
    if (block_ > 1) parts << tr("%1 keys per cell").arg(block_);
    if (nQueries_ == 0) parts << tr("nothing captured yet");
    status_->setText(parts.join(QStringLiteral(" · ")));
}

double AttentionView::cellValue(qint64 query, qint64 key) const {
    ensureBuilt();
    if (query < 0 || query >= nQueries_ || key < 0 || key >= nKeys_) return kNaN;
    return map_->data()->cell(int(key / block_), int(query));
}

QString AttentionView::cellText(qint64 q, qint64 k) const {
    const double v = cellValue(q, k);
    QString keyPart;
    if (block_ > 1) {
        const qint64 k0 = k / block_ * block_;
        keyPart = tr("keys %1–%2").arg(k0).arg(std::min(nKeys_ - 1, k0 + block_ - 1));
    } else {
        keyPart = tr("key %1 «%2» (id %3)").arg(k).arg(tokens_.label(k)).arg(tokens_.id(k));
    }
    const QString value = std::isnan(v) ? (k > q                ? tr("future: masked")
                                           : k < windowBegin(q) ? tr("outside the window: masked")
                                                                : tr("not captured"))
                                        : tokenStyle::percent(float(v));
    return tr("query %1 «%2» (id %3) → %4: %5")
        .arg(q)
        .arg(tokens_.label(q))
        .arg(tokens_.id(q))
        .arg(keyPart, value);
}

void AttentionView::onHover(QMouseEvent* e) {
    const double kx = plot_->xAxis->pixelToCoord(e->pos().x()),
                 qy = plot_->yAxis->pixelToCoord(e->pos().y());
    const qint64 k = qint64(std::floor(kx + 0.5)), q = qint64(std::floor(qy + 0.5));
    if (!plot_->axisRect()->rect().contains(e->pos()) || q < 0 || q >= nQueries_ || k < 0 ||
        k >= nKeys_) {
        QToolTip::hideText();
        return;
    }
    QToolTip::showText(e->globalPosition().toPoint(), cellText(q, k), plot_);
}

void AttentionView::onClick(QMouseEvent* e) {
    if (e->button() != Qt::LeftButton || !plot_->axisRect()->rect().contains(e->pos())) return;
    const qint64 q = qint64(std::floor(plot_->yAxis->pixelToCoord(e->pos().y()) + 0.5));
    if (q < 0 || q >= nQueries_) return;
    selectQuery(q);
    emit querySelected(q);
}

void AttentionView::selectQuery(qint64 pos) {
    selectedQuery_ = pos;
    ensureBuilt();
    // Scroll the row into view without changing the zoom.
    const QCPRange r = plot_->yAxis->range();
    if (pos >= 0 && (pos < r.lower || pos > r.upper)) {
        const double size = r.size();
        plot_->yAxis->setRange(double(pos) - size / 2, double(pos) + size / 2);
        keepView_ = true;
    }
    schedule();
}

QString AttentionView::exportName() const {
    QString what = aggregate_ == Aggregate::Head   ? QStringLiteral("H%1").arg(head_)
                   : aggregate_ == Aggregate::Mean ? QStringLiteral("mean")
                                                   : QStringLiteral("max");
    return QStringLiteral("attention-L%1-%2").arg(layer_).arg(what);
}

QString AttentionView::toCsv() const {
    ensureBuilt();
    // Long format, one drawn cell per line: easy to load in pandas / R / a spreadsheet.
    QString out = QStringLiteral("layer,head,query_pos,query_token,key_pos,key_token,value\n");
    const QString head = aggregate_ == Aggregate::Head   ? QString::number(head_)
                         : aggregate_ == Aggregate::Mean ? QStringLiteral("mean")
                                                         : QStringLiteral("max");
    auto* d = map_->data();
    for (qint64 q = 0; q < nQueries_; ++q)
        for (int c = 0; c < d->keySize(); ++c) {
            const double v = d->cell(c, int(q));
            if (std::isnan(v)) continue;
            const qint64 k = qint64(c) * block_;
            out += QStringLiteral("%1,%2,%3,%4,%5,%6,%7\n")
                       .arg(layer_)
                       .arg(head)
                       .arg(q)
                       .arg(viewExport::csvField(tokens_.text(q)))
                       .arg(k)
                       .arg(viewExport::csvField(
                           block_ > 1 ? QStringLiteral("[%1 keys]").arg(block_) : tokens_.text(k)))
                       .arg(v, 0, 'g', 9);
        }
    return out;
}

QJsonDocument AttentionView::toJson() const {
    ensureBuilt();
    QJsonObject o;
    o[QStringLiteral("view")] = QStringLiteral("attention");
    o[QStringLiteral("model")] = model_ ? model_->name : QString();
    o[QStringLiteral("layer")] = layer_;
    o[QStringLiteral("head")] = aggregate_ == Aggregate::Head
                                    ? QJsonValue(head_)
                                    : QJsonValue(aggregate_ == Aggregate::Mean ? "mean" : "max");
    o[QStringLiteral("key_block")] = block_;
    o[QStringLiteral("sink_hidden")] = hideSink_;
    o[QStringLiteral("source")] = QStringLiteral("measured (engine attention probe)");
    QJsonArray toks;
    for (qint64 p = 0; p < tokens_.size(); ++p)
        toks.append(QJsonObject{{"pos", p}, {"id", tokens_.id(p)}, {"text", tokens_.text(p)}});
    o[QStringLiteral("tokens")] = toks;
    QJsonArray rows;
    auto* d = map_->data();
    for (qint64 q = 0; q < nQueries_; ++q) {
        QJsonArray vals;
        bool any = false;
        for (int c = 0; c < d->keySize(); ++c) {
            const double v = d->cell(c, int(q));
            any = any || !std::isnan(v);
            vals.append(std::isnan(v) ? QJsonValue() : QJsonValue(v));
        }
        if (any) rows.append(QJsonObject{{"query", q}, {"values", vals}});
    }
    o[QStringLiteral("rows")] = rows;
    return QJsonDocument(o);
}
