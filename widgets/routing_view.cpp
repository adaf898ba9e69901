#include "widgets/routing_view.h"

#include <qcustomplot.h>

#include <QComboBox>
#include <QHBoxLayout>
#include <QJsonArray>
#include <QJsonObject>
#include <QLabel>
#include <QMouseEvent>
#include <QTimer>
#include <QToolTip>
#include <QVBoxLayout>
#include <algorithm>
#include <cmath>
#include <numeric>

#include "widgets/token_style.h"

using archlens::RoutingRecord;

namespace {

constexpr int kLoadChartsMinHeight = 300;  // px of plot below which only the token heatmap shows
constexpr double kNaN = std::numeric_limits<double>::quiet_NaN();
const QColor kShared(0x99, 0x99, 0x99);
const QColor kMark(0xd5, 0x5e, 0x00);  // vermillion outline: stands out on viridis

QString shortLabel(const QString& s) {
    return s.size() > 8 ? s.left(7) + QChar(0x2026) : s;
}

QCPAxisRect* bareRect(QCustomPlot* plot) {
    auto* r = new QCPAxisRect(plot);
    r->setupFullAxesBox(false);
    r->axis(QCPAxis::atTop)->setVisible(false);
    r->axis(QCPAxis::atRight)->setVisible(false);
    return r;
}

}  // namespace

RoutingView::RoutingView(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("routingView"));
    layerBox_ = new QComboBox(this);
    layerBox_->setToolTip(tr("Mixture-of-experts layer"));
    colourBox_ = new QComboBox(this);
    colourBox_->addItem(tr("colour: gate weight"));
    colourBox_->addItem(tr("colour: router probability"));
    colourBox_->setToolTip(
        tr("Gate weight: what each selected expert's output is scaled by. Router probability: the "
           "router's score for every expert, selected or not."));
    auto* bar = new QHBoxLayout;
    bar->setContentsMargins(4, 2, 4, 2);
    bar->addWidget(layerBox_);
    bar->addWidget(colourBox_);
    bar->addStretch(1);
    bar->addWidget(viewExport::makeExportButton(this, this));

    plot_ = new QCustomPlot(this);
    plot_->setObjectName(QStringLiteral("routingPlot"));
    plot_->setMinimumSize(240, 140);
    plot_->plotLayout()->clear();
    title_ =
        new QCPTextElement(plot_, tr("Expert routing"), QFont(font().family(), 10, QFont::Bold));
    plot_->plotLayout()->addElement(0, 0, title_);

    // Top: tokens × experts of one layer.
    auto* top = new QCPLayoutGrid;
    plot_->plotLayout()->addElement(1, 0, top);
    tokRect_ = bareRect(plot_);
    top->addElement(0, 0, tokRect_);
    tokScale_ = new QCPColorScale(plot_);
    top->addElement(0, 1, tokScale_);
    tokMap_ = new QCPColorMap(tokRect_->axis(QCPAxis::atBottom), tokRect_->axis(QCPAxis::atLeft));
    tokMap_->setInterpolate(false);
    tokMap_->setColorScale(tokScale_);
    tokMap_->setGradient(viewExport::viridis());
    tokRect_->axis(QCPAxis::atLeft)->setRangeReversed(true);  // expert 0 on top
    tokRect_->axis(QCPAxis::atLeft)->setLabel(tr("expert"));
    tokRect_->axis(QCPAxis::atBottom)->setLabel(tr("token"));
    tokRect_->axis(QCPAxis::atBottom)
        ->setTicker(QSharedPointer<QCPAxisTickerText>(new QCPAxisTickerText));
    tokRect_->axis(QCPAxis::atBottom)->setTickLabelRotation(60);
    tokRect_->axis(QCPAxis::atLeft)
        ->setTicker(QSharedPointer<QCPAxisTickerText>(new QCPAxisTickerText));
    tokRect_->setRangeDrag(Qt::Horizontal);
    tokRect_->setRangeZoom(Qt::Horizontal);
    auto* topGroup = new QCPMarginGroup(plot_);
    tokRect_->setMarginGroup(QCP::msTop | QCP::msBottom, topGroup);
    tokScale_->setMarginGroup(QCP::msTop | QCP::msBottom, topGroup);
    marks_ = new QCPGraph(tokRect_->axis(QCPAxis::atBottom), tokRect_->axis(QCPAxis::atLeft));
    marks_->setLineStyle(QCPGraph::lsNone);
    marks_->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssSquare, kMark, Qt::transparent, 9));
    marks_->setName(tr("selected"));
    sharedBand_ = new QCPItemRect(plot_);
    sharedBand_->setClipAxisRect(tokRect_);
    sharedBand_->topLeft->setAxes(tokRect_->axis(QCPAxis::atBottom),
                                  tokRect_->axis(QCPAxis::atLeft));
    sharedBand_->bottomRight->setAxes(tokRect_->axis(QCPAxis::atBottom),
                                      tokRect_->axis(QCPAxis::atLeft));
    sharedBand_->setPen(QPen(kShared.darker(130)));
    sharedBand_->setBrush(QBrush(kShared, Qt::BDiagPattern));
    sharedText_ = new QCPItemText(plot_);
    sharedText_->setClipAxisRect(tokRect_);
    sharedText_->position->setAxes(tokRect_->axis(QCPAxis::atBottom),
                                   tokRect_->axis(QCPAxis::atLeft));
    sharedText_->setPositionAlignment(Qt::AlignLeft | Qt::AlignVCenter);
    sharedText_->setColor(QColor(0x33, 0x33, 0x33));
    sharedText_->setBrush(QColor(255, 255, 255, 200));

    // Bottom: layers × experts load map and the chosen layer's histogram.
    auto* bottom = new QCPLayoutGrid;
    bottom_ = bottom;
    plot_->plotLayout()->addElement(2, 0, bottom);
    loadRect_ = bareRect(plot_);
    bottom->addElement(0, 0, loadRect_);
    loadScale_ = new QCPColorScale(plot_);
    bottom->addElement(0, 1, loadScale_);
    loadScale_->axis()->setLabel(tr("share"));
    loadMap_ =
        new QCPColorMap(loadRect_->axis(QCPAxis::atBottom), loadRect_->axis(QCPAxis::atLeft));
    loadMap_->setInterpolate(false);
    loadMap_->setColorScale(loadScale_);
    loadMap_->setGradient(viewExport::viridis());
    loadRect_->axis(QCPAxis::atLeft)->setRangeReversed(true);
    loadRect_->axis(QCPAxis::atLeft)->setLabel(tr("layer"));
    loadRect_->axis(QCPAxis::atBottom)->setLabel(tr("expert · load, whole conversation"));
    // Experts are integers: ticks on whole numbers only.
    for (QCPAxisRect* r : {loadRect_}) {
        QSharedPointer<QCPAxisTickerFixed> t(new QCPAxisTickerFixed);
        t->setTickStep(1);
        t->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
        r->axis(QCPAxis::atBottom)->setTicker(t);
        r->axis(QCPAxis::atLeft)->setTicker(t);
    }
    loadRect_->setRangeDrag({});
    loadRect_->setRangeZoom({});
    histRect_ = bareRect(plot_);
    bottom->addElement(0, 2, histRect_);
    hist_ = new QCPBars(histRect_->axis(QCPAxis::atBottom), histRect_->axis(QCPAxis::atLeft));
    hist_->setWidth(0.8);
    hist_->setPen(Qt::NoPen);
    hist_->setBrush(QColor(0x00, 0x72, 0xb2));
    histRect_->axis(QCPAxis::atLeft)->setLabel(tr("selections"));
    {
        QSharedPointer<QCPAxisTickerFixed> t(new QCPAxisTickerFixed);
        t->setTickStep(1);
        t->setScaleStrategy(QCPAxisTickerFixed::ssMultiples);
        histRect_->axis(QCPAxis::atBottom)->setTicker(t);
    }
    histRect_->setRangeDrag({});
    histRect_->setRangeZoom({});
    meanLine_ = new QCPItemStraightLine(plot_);
    meanLine_->setClipAxisRect(histRect_);
    meanLine_->point1->setAxes(histRect_->axis(QCPAxis::atBottom),
                               histRect_->axis(QCPAxis::atLeft));
    meanLine_->point2->setAxes(histRect_->axis(QCPAxis::atBottom),
                               histRect_->axis(QCPAxis::atLeft));
    meanLine_->setPen(QPen(kMark, 1.5, Qt::DashLine));
    plot_->plotLayout()->setRowStretchFactor(0, 0.01);
    plot_->plotLayout()->setRowStretchFactor(1, 3);
    plot_->plotLayout()->setRowStretchFactor(2, 2);
    bottom->setColumnStretchFactor(0, 3);
    bottom->setColumnStretchFactor(1, 0.01);
    bottom->setColumnStretchFactor(2, 2);
    top->setColumnStretchFactor(1, 0.01);
    plot_->setInteractions(QCP::iRangeDrag | QCP::iRangeZoom);
    plot_->setMouseTracking(true);
    connect(plot_, &QCustomPlot::mouseMove, this, &RoutingView::onHover);
    plot_->installEventFilter(this);

    status_ = new QLabel(this);
    status_->setObjectName(QStringLiteral("routingStatus"));
    status_->setWordWrap(true);
    status_->setContentsMargins(6, 0, 6, 2);
    auto* lay = new QVBoxLayout(this);
    lay->setContentsMargins(0, 0, 0, 0);
    lay->setSpacing(2);
    lay->addLayout(bar);
    lay->addWidget(plot_, 1);
    lay->addWidget(status_);

    timer_ = new QTimer(this);
    timer_->setSingleShot(true);
    timer_->setInterval(80);
    connect(timer_, &QTimer::timeout, this, &RoutingView::refresh);
    connect(layerBox_, qOverload<int>(&QComboBox::currentIndexChanged), this, [this](int i) {
        if (!updatingControls_ && i >= 0) setLayer(layerBox_->itemData(i).toInt());
    });
    connect(colourBox_, qOverload<int>(&QComboBox::currentIndexChanged), this,
            [this](int i) { setColour(i == 1 ? Colour::RouterProbability : Colour::GateWeight); });
    rebuild();
}

RoutingView::~RoutingView() {
    if (!bottomShown_) delete bottom_;  // taken out of the plot's layout: nobody else owns it
}

bool RoutingView::eventFilter(QObject* o, QEvent* e) {
    if (o == plot_ && e->type() == QEvent::Resize) {
        // A short dock cannot hold three charts legibly: the token heatmap keeps the room and
        // the load charts come back when there is space for them.
        const bool show = plot_->height() >= kLoadChartsMinHeight;
        if (show != bottomShown_) {
            bottomShown_ = show;
            // Out of the layout its charts would still paint at their old place: hide them too.
            for (QCPLayerable* l : std::initializer_list<QCPLayerable*>{loadRect_, histRect_, loadScale_, loadMap_, hist_, meanLine_})
                l->setVisible(show);
            if (show) {
                plot_->plotLayout()->addElement(2, 0, bottom_);
                plot_->plotLayout()->setRowStretchFactor(2, 2);
            } else {
                plot_->plotLayout()->take(bottom_);
                plot_->plotLayout()->simplify();
            }
        }
        schedule();  // the title's length follows the width
    }
    return QWidget::eventFilter(o, e);
}

int RoutingView::nExperts(int layer) const {
    if (!model_ || !model_->spec || layer < 0 || layer >= model_->spec->n_layers) return 0;
    const auto& f = model_->spec->layers[size_t(layer)].ffn;
    return f.moe ? f.n_experts : 0;
}

int RoutingView::nShared(int layer) const {
    if (!model_ || !model_->spec || layer < 0 || layer >= model_->spec->n_layers) return 0;
    const auto& f = model_->spec->layers[size_t(layer)].ffn;
    return f.moe ? f.n_shared : 0;
}

std::vector<int> RoutingView::moeLayers() const {
    std::vector<int> out;
    if (model_ && model_->spec)
        for (int l = 0; l < model_->spec->n_layers; ++l)
            if (model_->spec->layers[size_t(l)].ffn.moe) out.push_back(l);
    return out;
}

void RoutingView::setModel(const InternalsModelPtr& model) {
    model_ = model;
    const auto moe = moeLayers();
    layer_ = moe.empty() ? -1 : moe.front();
    clearHistory();
    rebuildControls();
    emit probeNeedsChanged();
}

void RoutingView::clearHistory() {
    tokens_.clear();
    choices_.clear();
    load_.clear();
    keepView_ = false;
    schedule();
}

void RoutingView::setContext(const ContextSnapshotPtr& c) {
    if (!c) return;
    tokens_.setContext(*c);
    const size_t keep = size_t(std::max<qint64>(0, c->reusedTokens));
    for (auto& l : choices_)
        if (l.size() > keep) l.resize(keep);
    schedule();
}

void RoutingView::addToken(const TokenSnapshotPtr& t) {
    if (!t) return;
    tokens_.addToken(*t);
    for (const RoutingRecord& r : t->probes.routing) {
        if (r.layer < 0 || r.pos < 0) continue;
        if (choices_.size() <= size_t(r.layer)) choices_.resize(size_t(r.layer) + 1);
        auto& l = choices_[size_t(r.layer)];
        if (l.size() <= size_t(r.pos)) l.resize(size_t(r.pos) + 1);
        l[size_t(r.pos)] = {r.experts, r.weights, r.router_probs};
    }
    if (!t->probes.expert_load.empty()) load_ = t->probes.expert_load;
    schedule();
}

archlens::ProbeConfig RoutingView::probeNeeds() const {
    archlens::ProbeConfig c;
    c.routing = !moeLayers().empty();
    return c;
}

void RoutingView::setLayer(int layer) {
    if (nExperts(layer) == 0) return;
    layer_ = layer;
    rebuildControls();
    schedule();
}

void RoutingView::setColour(Colour c) {
    colour_ = c;
    if (colourBox_->currentIndex() != int(c == Colour::RouterProbability))
        colourBox_->setCurrentIndex(int(c == Colour::RouterProbability));
    schedule();
}

void RoutingView::rebuildControls() {
    updatingControls_ = true;
    layerBox_->clear();
    for (int l : moeLayers()) {
        const auto& f = model_->spec->layers[size_t(l)].ffn;
        layerBox_->addItem(tr("layer %1 · %2 experts, top-%3%4")
                               .arg(l)
                               .arg(f.n_experts)
                               .arg(f.top_k)
                               .arg(f.n_shared ? tr(" + shared") : QString()),
                           l);
    }
    layerBox_->setCurrentIndex(std::max(0, layerBox_->findData(layer_)));
    layerBox_->setEnabled(layerBox_->count() > 0);
    updatingControls_ = false;
}

void RoutingView::schedule() {
    dirty_ = true;
    if (!timer_->isActive()) timer_->start();
}

void RoutingView::ensureBuilt() const {
    if (dirty_) const_cast<RoutingView*>(this)->refresh();
}

void RoutingView::refresh() {
    dirty_ = false;
    timer_->stop();
    rebuild();
}

void RoutingView::rebuild() {
    const int E = nExperts(layer_), S = nShared(layer_);
    const auto* spec = model_ ? model_->spec.get() : nullptr;
    nPos_ = tokens_.size();
    if (size_t(std::max(0, layer_)) < choices_.size())
        nPos_ = std::max(nPos_, qint64(choices_[size_t(layer_)].size()));

    // Tokens × experts; the shared experts sit below a one-row gap, drawn as always on.
    const int rows = std::max(1, E + (S > 0 ? S + 1 : 0));
    const int cols = int(std::max<qint64>(1, nPos_));
    auto* d = tokMap_->data();
    d->setSize(cols, rows);
    d->setRange(QCPRange(0, cols - 1), QCPRange(0, rows - 1));
    d->fill(kNaN);
    QVector<double> mx, my;
    if (layer_ >= 0 && size_t(layer_) < choices_.size()) {
        const auto& l = choices_[size_t(layer_)];
        for (qint64 p = 0; p < qint64(l.size()); ++p) {
            const Choice& c = l[size_t(p)];
            if (colour_ == Colour::RouterProbability)
                for (int e = 0; e < E && e < int(c.probs.size()); ++e)
                    d->setCell(int(p), e, double(c.probs[size_t(e)]));
            for (size_t k = 0; k < c.experts.size(); ++k) {
                const int e = c.experts[k];
                if (colour_ == Colour::GateWeight && k < c.weights.size())
                    d->setCell(int(p), e, double(c.weights[k]));
                mx << double(p);
                my << double(e);
            }
        }
    }
    marks_->setData(mx, my);
    // The outline fits inside a cell however many tokens share the width.
    const double cellPx = std::min(double(tokRect_->width()) / cols, double(tokRect_->height()) / rows);
    marks_->setScatterStyle(QCPScatterStyle(QCPScatterStyle::ssSquare, kMark, Qt::transparent, std::clamp(cellPx - 1, 3.0, 9.0)));
    double top = 0;
    for (int p = 0; p < cols; ++p)
        for (int e = 0; e < E; ++e)
            if (!std::isnan(d->cell(p, e))) top = std::max(top, d->cell(p, e));
    // Gate weights can exceed 1 (routed scaling): the scale follows the data then.
    tokMap_->setDataRange(QCPRange(0, std::max(1.0, top)));
    tokScale_->axis()->setLabel(colour_ == Colour::GateWeight ? tr("gate weight")
                                                              : tr("router probability"));
    sharedBand_->setVisible(S > 0 && nPos_ > 0);
    sharedText_->setVisible(S > 0 && nPos_ > 0);
    if (S > 0) {
        sharedBand_->topLeft->setCoords(-0.5, E + 0.5);
        sharedBand_->bottomRight->setCoords(cols - 0.5, E + S + 0.5);
        sharedText_->position->setCoords(
            std::max(-0.5, tokRect_->axis(QCPAxis::atBottom)->range().lower) + 0.2,
            E + (S + 1) / 2.0);
        sharedText_->setText(S == 1 ? tr("shared expert: every token, no gate")
                                    : tr("%1 shared experts: every token, no gate").arg(S));
    }
    auto yt =
        qSharedPointerDynamicCast<QCPAxisTickerText>(tokRect_->axis(QCPAxis::atLeft)->ticker());
    yt->clear();
    const int ystep = std::max(1, int(std::ceil(double(E) / std::clamp(tokRect_->height() / 12, 2, 16))));
    for (int e = 0; e < E; e += ystep) yt->addTick(e, QStringLiteral("E%1").arg(e));
    if (S > 0) yt->addTick(E + 1, tr("shared"));
    auto xt =
        qSharedPointerDynamicCast<QCPAxisTickerText>(tokRect_->axis(QCPAxis::atBottom)->ticker());
    xt->clear();
    QCPAxis* xa = tokRect_->axis(QCPAxis::atBottom);
    if (!keepView_ || nPos_ == 0) {
        xa->setRange(-0.5, cols - 0.5);
        keepView_ = nPos_ > 0;
    } else if (xa->range().upper >= shownCols_ - 1.5) {  // was showing the newest token
        xa->setRangeUpper(cols - 0.5);
    }
    shownCols_ = cols;
    const qint64 lo = std::max<qint64>(0, qint64(std::ceil(xa->range().lower))),
                 hi = std::min<qint64>(nPos_ - 1, qint64(xa->range().upper));
    const qint64 xfit = std::clamp<qint64>(tokRect_->width() / 14, 2, 40);
    const qint64 xstep = std::max<qint64>(1, (hi - lo + xfit) / xfit);
    for (qint64 p = lo; p <= hi; p += xstep) xt->addTick(double(p), shortLabel(tokens_.label(p)));
    tokRect_->axis(QCPAxis::atLeft)->setRange(-0.5, rows - 0.5);

    // Load map: share of each MoE layer's selections per expert (dense layers blank).
    const int L = spec ? spec->n_layers : 0;
    int maxE = 1;
    for (int l = 0; l < L; ++l) maxE = std::max(maxE, nExperts(l));
    auto* ld = loadMap_->data();
    ld->setSize(maxE, std::max(1, L));
    ld->setRange(QCPRange(0, maxE - 1), QCPRange(0, std::max(1, L) - 1));
    ld->fill(kNaN);
    double topShare = 0;
    for (int l = 0; l < L && size_t(l) < load_.size(); ++l) {
        const auto& c = load_[size_t(l)];
        const double sum = double(std::accumulate(c.begin(), c.end(), uint64_t(0)));
        if (sum <= 0) continue;
        for (size_t e = 0; e < c.size(); ++e) {
            ld->setCell(int(e), l, double(c[e]) / sum);
            topShare = std::max(topShare, double(c[e]) / sum);
        }
    }
    loadMap_->setDataRange(QCPRange(0, std::max(topShare, 1e-6)));
    loadRect_->axis(QCPAxis::atBottom)->setRange(-0.5, maxE - 0.5);
    loadRect_->axis(QCPAxis::atLeft)->setRange(-0.5, std::max(1, L) - 0.5);

    // Histogram of the chosen layer with its mean: imbalance = max / mean.
    const std::vector<double> h = loadHistogram();
    QVector<double> hx, hy;
    for (size_t e = 0; e < h.size(); ++e) {
        hx << double(e);
        hy << h[e];
    }
    hist_->setData(hx, hy);
    const double mean = h.empty() ? 0 : std::accumulate(h.begin(), h.end(), 0.0) / double(h.size());
    meanLine_->point1->setCoords(-1, mean);
    meanLine_->point2->setCoords(double(h.size()), mean);
    meanLine_->setVisible(mean > 0 && bottomShown_);
    const double imb = imbalance();
    histRect_->axis(QCPAxis::atBottom)
        ->setLabel(layer_ >= 0
                       ? tr("layer %1 load · max/mean %2")
                             .arg(layer_)
                             .arg(imb > 0 ? QString::number(imb, 'f', 2) : QStringLiteral("–"))
                       : tr("expert"));
    histRect_->axis(QCPAxis::atBottom)->setRange(-0.7, std::max<double>(1, double(h.size())) - 0.3);
    const double hmax = h.empty() ? 0 : *std::max_element(h.begin(), h.end());
    histRect_->axis(QCPAxis::atLeft)->setRange(0, std::max(1.0, hmax * 1.15));

    // A dense model has nothing to map: the charts go, the title and the status say why.
    const bool dense = spec && moeLayers().empty();
    for (QCPLayerable* l : std::initializer_list<QCPLayerable*>{tokRect_, tokScale_, tokMap_})
        l->setVisible(!dense);
    for (QCPLayerable* l : std::initializer_list<QCPLayerable*>{loadRect_, histRect_, loadScale_, loadMap_, hist_})
        l->setVisible(bottomShown_ && !dense);
    if (dense) meanLine_->setVisible(false);
    colourBox_->setEnabled(!dense);
    if (E == 0) {
        title_->setText(spec ? tr("No expert routing: a dense model")
                             : tr("Expert routing"));
        status_->setText(
            spec ? tr("This model has no mixture-of-experts layers: every token goes through the same "
                      "feed-forward block. Open a MoE model (the Qwen3-MoE, DeepSeek-V3, Kimi K2 or Llama 4 "
                      "demo) to watch its router.")
                 : tr("Load a mixture-of-experts model (e.g. the Qwen3-MoE or DeepSeek-V3 demo) "
                      "and chat."));
    } else {
        const auto& f = spec->layers[size_t(layer_)].ffn;
        title_->setText((plot_->width() < 560 ? tr("Layer %1 · %2 experts, top-%3%4")  // a narrow dock
                                              : tr("Expert routing · layer %1 · %2 experts, %3 per token%4"))
                            .arg(layer_)
                            .arg(E)
                            .arg(f.top_k)
                            .arg(S ? tr(" + %1 shared").arg(S) : QString()));
        status_->setText(tr("measured: the engine's routing choices and gate weights (outlined = "
                            "selected), and its expert counts "
                            "since the session began · imbalance %1")
                             .arg(imb > 0 ? QString::number(imb, 'f', 2) : QStringLiteral("–")) +
                         (bottomShown_ ? QString() : tr(" · enlarge the panel for the load map and histogram")));
    }
    plot_->replot(QCustomPlot::rpQueuedReplot);
}

std::vector<int> RoutingView::markedExperts(qint64 pos) const {
    ensureBuilt();
    std::vector<int> out;
    for (auto it = marks_->data()->constBegin(); it != marks_->data()->constEnd(); ++it)
        if (qint64(std::lround(it->key)) == pos) out.push_back(int(std::lround(it->value)));
    std::sort(out.begin(), out.end());
    return out;
}

double RoutingView::cellValue(qint64 pos, int expert) const {
    ensureBuilt();
    auto* d = tokMap_->data();
    if (pos < 0 || pos >= d->keySize() || expert < 0 || expert >= d->valueSize()) return kNaN;
    return d->cell(int(pos), expert);
}

std::vector<double> RoutingView::loadHistogram() const {
    std::vector<double> out;
    if (layer_ < 0 || size_t(layer_) >= load_.size())
        return std::vector<double>(size_t(std::max(0, nExperts(layer_))), 0.0);
    for (uint64_t c : load_[size_t(layer_)]) out.push_back(double(c));
    return out;
}

double RoutingView::imbalance() const {
    const auto h = loadHistogram();
    if (h.empty()) return 0;
    const double mean = std::accumulate(h.begin(), h.end(), 0.0) / double(h.size());
    return mean > 0 ? *std::max_element(h.begin(), h.end()) / mean : 0;
}

QString RoutingView::tokenText(qint64 pos) const {
    QString s = tr("token %1 «%2» (id %3), layer %4")
                    .arg(pos)
                    .arg(tokens_.label(pos))
                    .arg(tokens_.id(pos))
                    .arg(layer_);
    if (layer_ < 0 || size_t(layer_) >= choices_.size() ||
        size_t(pos) >= choices_[size_t(layer_)].size() ||
        choices_[size_t(layer_)][size_t(pos)].experts.empty())
        return s + tr(": not captured");
    const Choice& c = choices_[size_t(layer_)][size_t(pos)];
    QStringList parts;
    for (size_t k = 0; k < c.experts.size(); ++k)
        parts << tr("E%1 × %2")
                     .arg(c.experts[k])
                     .arg(k < c.weights.size() ? QString::number(double(c.weights[k]), 'f', 3)
                                               : QStringLiteral("?"));
    if (nShared(layer_) > 0) parts << tr("shared × 1");
    return s + QStringLiteral("\n") + parts.join(QStringLiteral(", "));
}

void RoutingView::onHover(QMouseEvent* e) {
    if (tokRect_->rect().contains(e->pos())) {
        const qint64 p =
            qint64(std::floor(tokRect_->axis(QCPAxis::atBottom)->pixelToCoord(e->pos().x()) + 0.5));
        if (p >= 0 && p < nPos_)
            return QToolTip::showText(e->globalPosition().toPoint(), tokenText(p), plot_);
    } else if (loadRect_->rect().contains(e->pos())) {
        const int ex =
            int(std::floor(loadRect_->axis(QCPAxis::atBottom)->pixelToCoord(e->pos().x()) + 0.5));
        const int l =
            int(std::floor(loadRect_->axis(QCPAxis::atLeft)->pixelToCoord(e->pos().y()) + 0.5));
        if (l >= 0 && size_t(l) < load_.size() && ex >= 0 && size_t(ex) < load_[size_t(l)].size())
            return QToolTip::showText(e->globalPosition().toPoint(),
                                      tr("layer %1, expert %2: %3 selections")
                                          .arg(l)
                                          .arg(ex)
                                          .arg(load_[size_t(l)][size_t(ex)]),
                                      plot_);
    }
    QToolTip::hideText();
}

QString RoutingView::exportName() const {
    return QStringLiteral("routing-L%1").arg(layer_);
}

QString RoutingView::toCsv() const {
    QString out = QStringLiteral("layer,pos,token,rank,expert,gate_weight,router_prob\n");
    for (size_t l = 0; l < choices_.size(); ++l)
        for (size_t p = 0; p < choices_[l].size(); ++p) {
            const Choice& c = choices_[l][p];
            for (size_t k = 0; k < c.experts.size(); ++k)
                out += QStringLiteral("%1,%2,%3,%4,%5,%6,%7\n")
                           .arg(l)
                           .arg(p)
                           .arg(viewExport::csvField(tokens_.text(qint64(p))))
                           .arg(k)
                           .arg(c.experts[k])
                           .arg(k < c.weights.size() ? double(c.weights[k]) : 0.0, 0, 'g', 9)
                           .arg(size_t(c.experts[k]) < c.probs.size()
                                    ? double(c.probs[size_t(c.experts[k])])
                                    : 0.0,
                                0, 'g', 9);
        }
    return out;
}

QJsonDocument RoutingView::toJson() const {
    QJsonObject o;
    o[QStringLiteral("view")] = QStringLiteral("routing");
    o[QStringLiteral("model")] = model_ ? model_->name : QString();
    o[QStringLiteral("layer")] = layer_;
    o[QStringLiteral("source")] =
        QStringLiteral("measured (engine routing probe, session expert counts)");
    QJsonArray toks;
    for (qint64 p = 0; p < tokens_.size(); ++p)
        toks.append(QJsonObject{{"pos", p}, {"id", tokens_.id(p)}, {"text", tokens_.text(p)}});
    o[QStringLiteral("tokens")] = toks;
    QJsonArray layers;
    for (size_t l = 0; l < choices_.size(); ++l) {
        QJsonArray positions;
        for (size_t p = 0; p < choices_[l].size(); ++p) {
            const Choice& c = choices_[l][p];
            if (c.experts.empty()) continue;
            QJsonArray ex, w;
            for (int e : c.experts) ex.append(e);
            for (float x : c.weights) w.append(double(x));
            positions.append(QJsonObject{{"pos", qint64(p)}, {"experts", ex}, {"weights", w}});
        }
        if (!positions.isEmpty())
            layers.append(QJsonObject{{"layer", qint64(l)}, {"tokens", positions}});
    }
    o[QStringLiteral("routing")] = layers;
    QJsonArray load;
    for (size_t l = 0; l < load_.size(); ++l) {
        QJsonArray c;
        for (uint64_t n : load_[l]) c.append(qint64(n));
        load.append(c);
    }
    o[QStringLiteral("expert_load")] = load;
    o[QStringLiteral("imbalance_max_over_mean")] = imbalance();
    return QJsonDocument(o);
}
