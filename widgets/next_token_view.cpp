#include "widgets/next_token_view.h"

#include <qcustomplot.h>

#include <QCheckBox>
#include <QHBoxLayout>
#include <QJsonArray>
#include <QJsonObject>
#include <QLabel>
#include <QResizeEvent>
#include <QVBoxLayout>
#include <algorithm>

#include "widgets/token_style.h"

namespace {

const QColor kBar(0x00, 0x72, 0xb2);
const QColor kChosen(0xd5, 0x5e, 0x00);
const QColor kLens(0x56, 0xb4, 0xe9);

QString shortLabel(const QString& s, int max = 14) {
    const QString v = tokenStyle::visibleText(s);
    return v.size() > max ? v.left(max - 1) + QChar(0x2026) : v;
}

// The most probable token of a snapshot (decoded alternatives first, else the bare probe).
int topOf(const TokenSnapshot& t) {
    if (!t.token.topK.empty()) return t.token.topK.front().id;
    return t.probes.top_k.empty() ? -1 : t.probes.top_k.front().id;
}

// Every step-th of n labels fits in `pixels` of axis at ~13 px a line.
int labelStep(int n, int pixels) {
    const int lines = std::max(1, pixels / 13);
    return std::max(1, (n + lines - 1) / lines);
}

QCPBars* horizontalBars(QCPAxisRect* r, const QColor& c) {
    auto* b = new QCPBars(r->axis(QCPAxis::atLeft), r->axis(QCPAxis::atBottom));
    b->setWidth(0.72);
    b->setPen(Qt::NoPen);
    b->setBrush(c);
    return b;
}

}  // namespace

NextTokenView::NextTokenView(QWidget* parent) : QWidget(parent) {
    setObjectName(QStringLiteral("nextTokenView"));
    lensBox_ = new QCheckBox(tr("logit lens"), this);
    lensBox_->setChecked(true);
    lensBox_->setToolTip(
        tr("Each layer's residual stream through the final norm and LM head: the token it would "
           "predict "
           "if the model stopped there"));
    auto* bar = new QHBoxLayout;
    bar->setContentsMargins(4, 2, 4, 2);
    bar->addWidget(lensBox_);
    bar->addStretch(1);
    bar->addWidget(viewExport::makeExportButton(this, this));

    plot_ = new QCustomPlot(this);
    plot_->setObjectName(QStringLiteral("nextTokenPlot"));
    plot_->setMinimumSize(220, 120);
    plot_->plotLayout()->clear();
    title_ = new QCPTextElement(plot_, tr("Next token"), QFont(font().family(), 10, QFont::Bold));
    plot_->plotLayout()->addElement(0, 0, title_);
    auto* row = new QCPLayoutGrid;
    plot_->plotLayout()->addElement(1, 0, row);
    plot_->plotLayout()->setRowStretchFactor(0, 0.01);
    topRect_ = new QCPAxisRect(plot_);
    lensRect_ = new QCPAxisRect(plot_);
    row->addElement(0, 0, topRect_);
    row->addElement(0, 1, lensRect_);
    for (QCPAxisRect* r : {topRect_, lensRect_}) {
        r->axis(QCPAxis::atLeft)->setRangeReversed(true);  // most probable / first layer on top
        r->axis(QCPAxis::atLeft)
            ->setTicker(QSharedPointer<QCPAxisTickerText>(new QCPAxisTickerText));
        r->axis(QCPAxis::atLeft)->grid()->setVisible(false);
        r->axis(QCPAxis::atBottom)->setRange(0, 1);
        r->axis(QCPAxis::atBottom)->ticker()->setTickCount(3);  // narrow docks: few, readable ticks
    }
    topRect_->axis(QCPAxis::atBottom)->setLabel(tr("probability · top-%1").arg(kTopK));
    lensRect_->axis(QCPAxis::atBottom)->setLabel(tr("top-1 probability per layer"));
    topBars_ = horizontalBars(topRect_, kBar);
    chosenBar_ = horizontalBars(topRect_, kChosen);
    lensBars_ = horizontalBars(lensRect_, kLens);
    lensFinal_ = horizontalBars(lensRect_, kBar);

    status_ = new QLabel(this);
    status_->setObjectName(QStringLiteral("nextTokenStatus"));
    status_->setWordWrap(true);
    status_->setContentsMargins(6, 0, 6, 2);
    auto* lay = new QVBoxLayout(this);
    lay->setContentsMargins(0, 0, 0, 0);
    lay->setSpacing(2);
    lay->addLayout(bar);
    lay->addWidget(plot_, 1);
    lay->addWidget(status_);
    connect(lensBox_, &QCheckBox::toggled, this, &NextTokenView::setLensVisible);
    rebuild();
}

NextTokenView::~NextTokenView() = default;

void NextTokenView::setModel(const InternalsModelPtr& model) {
    model_ = model;
    clearHistory();
    emit probeNeedsChanged();
}

void NextTokenView::clearHistory() {
    last_.reset();
    lensSnap_.reset();
    rebuild();
}

void NextTokenView::resizeEvent(QResizeEvent* e) {
    QWidget::resizeEvent(e);
    if (e->size() != e->oldSize()) rebuild();  // how many axis labels fit, and how long
}

void NextTokenView::setContext(const ContextSnapshotPtr&) {}

void NextTokenView::addToken(const TokenSnapshotPtr& t) {
    if (!t) return;
    last_ = t;
    if (!t->probes.logit_lens.empty()) lensSnap_ = t;
    rebuild();
}

archlens::ProbeConfig NextTokenView::probeNeeds() const {
    archlens::ProbeConfig c;
    c.top_k = kTopK;
    c.logit_lens = lensVisible();
    return c;
}

void NextTokenView::setLensVisible(bool on) {
    if (lensBox_->isChecked() != on) lensBox_->setChecked(on);
    lensRect_->setVisible(on);
    // A hidden axis rect still takes its column: collapse it.
    if (auto* row = qobject_cast<QCPLayoutGrid*>(plot_->plotLayout()->element(1, 0)))
        row->setColumnStretchFactor(1, on ? 1.0 : 0.001);
    rebuild();
    emit probeNeedsChanged();
}

bool NextTokenView::lensVisible() const {
    return lensBox_->isChecked();
}

std::vector<int> NextTokenView::lensTokens() const {
    std::vector<int> out;
    const int n = model_ && model_->spec ? model_->spec->n_layers : 0;
    out.assign(size_t(n), -1);
    if (!lensSnap_) return out;
    for (const auto& e : lensSnap_->probes.logit_lens)
        if (e.layer >= 0 && e.layer < n) out[size_t(e.layer)] = e.token;
    return out;
}

void NextTokenView::rebuild() {
    ids_.clear();
    probs_.clear();
    texts_.clear();
    chosen_ = last_ ? last_->token.id : -1;
    position_ = last_ ? last_->position : -1;
    if (last_) {
        // The decoded alternatives when the worker supplied them; else the bare probe.
        if (!last_->token.topK.empty()) {
            for (const auto& a : last_->token.topK) {
                ids_.push_back(a.id);
                probs_.push_back(a.prob);
                texts_ << a.text;
            }
        } else {
            for (const auto& tp : last_->probes.top_k) {
                ids_.push_back(tp.id);
                probs_.push_back(tp.prob);
                texts_ << QStringLiteral("#%1").arg(tp.id);
            }
        }
        if (ids_.size() > size_t(kTopK)) {
            ids_.resize(size_t(kTopK));
            probs_.resize(size_t(kTopK));
            texts_ = texts_.mid(0, kTopK);
        }
    }
    QVector<double> k, v, ck, cv;
    auto tick =
        qSharedPointerDynamicCast<QCPAxisTickerText>(topRect_->axis(QCPAxis::atLeft)->ticker());
    tick->clear();
    // the plot's rows share its height with the title and the axis labels; in a narrow dock (the
    // main window's default) labels shorten so that the bars keep some width
    const int rowsPx = std::max(0, plot_->height() - 70);
    const bool narrow = plot_->width() < 560;
    const int chars = narrow ? 9 : 14;
    for (QCPAxisRect* r : {topRect_, lensRect_}) r->axis(QCPAxis::atBottom)->ticker()->setTickCount(narrow ? 1 : 3);
    topRect_->axis(QCPAxis::atBottom)->setLabel(narrow ? tr("p · top-%1").arg(kTopK) : tr("probability · top-%1").arg(kTopK));
    const int topStep = labelStep(kTopK, rowsPx);
    for (size_t i = 0; i < ids_.size(); ++i) {
        (ids_[i] == chosen_ ? ck : k) << double(i);
        (ids_[i] == chosen_ ? cv : v) << double(probs_[i]);
        if (int(i) % topStep == 0 || ids_[i] == chosen_) tick->addTick(double(i), shortLabel(texts_[qsizetype(i)], chars));
    }
    topBars_->setData(k, v);
    chosenBar_->setData(ck, cv);
    topRect_->axis(QCPAxis::atLeft)
        ->setRange(-0.6, std::max<double>(kTopK, double(ids_.size())) - 0.4);
    // Scaled to the data: a flat distribution (a demo's random weights) would vanish on 0..1.
    const double topMax =
        probs_.empty() ? 1.0 : double(*std::max_element(probs_.begin(), probs_.end()));
    topRect_->axis(QCPAxis::atBottom)->setRange(0, std::min(1.0, std::max(0.02, topMax * 1.15)));

    // Lens: one bar per layer, the last layer's (= the model's own prediction) in the main colour.
    QVector<double> lk, lv, fk, fv;
    auto ltick =
        qSharedPointerDynamicCast<QCPAxisTickerText>(lensRect_->axis(QCPAxis::atLeft)->ticker());
    ltick->clear();
    const int n = model_ && model_->spec ? model_->spec->n_layers : 0;
    const int step = labelStep(n, rowsPx);
    if (const TokenSnapshot* ls = lensSnap_.get()) {
        const int top = topOf(*ls);  // that step's own prediction
        for (size_t i = 0; i < ls->probes.logit_lens.size(); ++i) {
            const auto& e = ls->probes.logit_lens[i];
            const QString text = i < ls->logitLens.size() ? ls->logitLens[i].text
                                                          : QStringLiteral("#%1").arg(e.token);
            const bool final = e.token == top;
            (final ? fk : lk) << double(e.layer);
            (final ? fv : lv) << double(e.prob);
            if (e.layer % step == 0 || e.layer == n - 1)
                ltick->addTick(double(e.layer),
                               QStringLiteral("L%1 %2").arg(e.layer).arg(shortLabel(text, chars)));
        }
    }
    lensRect_->axis(QCPAxis::atBottom)->setLabel(
        narrow ? tr("lens p")  // the status line names an earlier lens's position
        : lensSnap_ && lensSnap_ != last_
            ? tr("top-1 probability per layer · lens of position %1").arg(lensSnap_->position)
            : tr("top-1 probability per layer"));
    lensBars_->setData(lk, lv);
    lensFinal_->setData(fk, fv);
    lensRect_->axis(QCPAxis::atLeft)->setRange(-0.6, std::max(1, n) - 0.4);
    double lensMax = 0;
    for (double p : lv + fv) lensMax = std::max(lensMax, p);
    lensRect_->axis(QCPAxis::atBottom)->setRange(0, std::min(1.0, std::max(0.02, lensMax * 1.15)));

    if (!last_) {
        title_->setText(tr("Next token"));
        status_->setText(
            model_
                ? tr("Chat: the model's top-%1 for each generated token appears here.").arg(kTopK)
                : tr("Load a model and chat."));
    } else {
        const QString chosen = tokenStyle::visibleText(last_->token.text.isEmpty()
                                                           ? ContextTokens::pieceText(last_->piece)
                                                           : last_->token.text);
        title_->setText((narrow ? tr("pos %1 · «%2» %3") : tr("Next token at position %1 · chose «%2» (%3)"))
                            .arg(position_)
                            .arg(shortLabel(chosen, narrow ? 12 : 32), tokenStyle::percent(last_->token.prob)));
        // a narrow dock keeps its height for the bars
        QString text = narrow ? tr("measured softmax (before sampling); chosen in orange; dark-blue lens "
                                   "bars already predict the top token")
                              : tr("measured: softmax of the logits (before temperature/top-p), chosen token in "
                                   "orange; the lens bars in "
                                   "dark blue already predict the final top token");
        if (lensVisible() && lensSnap_ != last_)
            text += !lensSnap_ ? tr(" · no lens yet")
                    : narrow   ? tr(" · lens of position %1").arg(lensSnap_->position)
                               : tr(" · the lens is position %1's (it runs every few tokens where its LM-head "
                                    "products would slow the chat)")
                                     .arg(lensSnap_->position);
        status_->setText(text);
    }
    plot_->replot(QCustomPlot::rpQueuedReplot);
}

QString NextTokenView::toCsv() const {
    QString out = QStringLiteral("section,rank_or_layer,token_id,token,prob\n");
    for (size_t i = 0; i < ids_.size(); ++i)
        out += QStringLiteral("top_k,%1,%2,%3,%4\n")
                   .arg(i)
                   .arg(ids_[i])
                   .arg(viewExport::csvField(texts_[qsizetype(i)]))
                   .arg(double(probs_[i]), 0, 'g', 9);
    if (const TokenSnapshot* ls = lensSnap_.get())
        for (size_t i = 0; i < ls->probes.logit_lens.size(); ++i) {
            const auto& e = ls->probes.logit_lens[i];
            out += QStringLiteral("logit_lens,%1,%2,%3,%4\n")
                       .arg(e.layer)
                       .arg(e.token)
                       .arg(viewExport::csvField(
                           i < ls->logitLens.size() ? ls->logitLens[i].text : QString()))
                       .arg(double(e.prob), 0, 'g', 9);
        }
    return out;
}

QJsonDocument NextTokenView::toJson() const {
    QJsonObject o;
    o[QStringLiteral("view")] = QStringLiteral("next-token");
    o[QStringLiteral("model")] = model_ ? model_->name : QString();
    o[QStringLiteral("position")] = position_;
    o[QStringLiteral("chosen_id")] = chosen_;
    o[QStringLiteral("source")] = QStringLiteral("measured (engine top-k and logit-lens probes)");
    QJsonArray top;
    for (size_t i = 0; i < ids_.size(); ++i)
        top.append(QJsonObject{
            {"id", ids_[i]}, {"text", texts_[qsizetype(i)]}, {"prob", double(probs_[i])}});
    o[QStringLiteral("top_k")] = top;
    QJsonArray lens;
    if (const TokenSnapshot* ls = lensSnap_.get())
        for (size_t i = 0; i < ls->probes.logit_lens.size(); ++i) {
            const auto& e = ls->probes.logit_lens[i];
            lens.append(QJsonObject{
                {"layer", e.layer},
                {"id", e.token},
                {"text", i < ls->logitLens.size() ? ls->logitLens[i].text : QString()},
                {"prob", double(e.prob)}});
        }
    o[QStringLiteral("logit_lens")] = lens;
    o[QStringLiteral("logit_lens_position")] = lensPosition();  // the lens may be an earlier token's
    return QJsonDocument(o);
}
