#include "app/gui/lessons_window.h"

#include <QApplication>
#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QElapsedTimer>
#include <QFileDialog>
#include <QGroupBox>
#include <QHBoxLayout>
#include <QKeyEvent>
#include <QLabel>
#include <QListWidget>
#include <QPageLayout>
#include <QPageSize>
#include <QPainter>
#include <QPainterPath>
#include <QPdfWriter>
#include <QProgressBar>
#include <QPushButton>
#include <QScrollArea>
#include <QScrollBar>
#include <QShortcut>
#include <QSlider>
#include <QSplitter>
#include <QStackedWidget>
#include <QTextBrowser>
#include <QThread>
#include <QTimer>
#include <QVBoxLayout>
#include <algorithm>

#include "app/gui/lessons_runner.h"
#include "engine/model/spec_summary.h"
#include "widgets/attention_view.h"
#include "widgets/diagram_view.h"
#include "widgets/kv_cache_view.h"
#include "widgets/next_token_view.h"
#include "widgets/routing_view.h"

using namespace archlens;

namespace lessons {

namespace {

// Resolves a block id against the layout: exact, or the same part in the first group that has it.
QString resolveBlock(const DiagramLayout& layout, const QString& id) {
    if (id.isEmpty() || layout.box(id)) return id;
    const QString part = id.section(QLatin1Char('.'), 1);
    if (!part.isEmpty())
        for (const DiagramBox& b : layout.boxes)
            if (b.id.section(QLatin1Char('.'), 1) == part) return b.id;
    return {};
}

ProbeConfig probesFor(ViewKind k) {
    ProbeConfig c;
    if (k == ViewKind::Attention) c.attention = true;
    if (k == ViewKind::Routing) c.routing = true;
    if (k == ViewKind::NextToken) {
        c.top_k = NextTokenView::kTopK;
        c.logit_lens = true;
    }
    return c;
}

QString viewTitle(ViewKind k) {
    switch (k) {
        case ViewKind::Attention: return QObject::tr("Attention");
        case ViewKind::Routing: return QObject::tr("Expert routing");
        case ViewKind::KvCache: return QObject::tr("KV cache");
        case ViewKind::NextToken: return QObject::tr("Next token and logit lens");
    }
    return {};
}

}  // namespace

// ---------------------------------------------------------------------------------------------
KvCurveWidget::KvCurveWidget(QWidget* parent) : QWidget(parent) { setMinimumHeight(170); }

void KvCurveWidget::setCurve(const std::vector<CurvePoint>& points, const QString& label, const QString& baselineLabel) {
    points_ = points;
    label_ = label;
    baselineLabel_ = baselineLabel;
    update();
}

void KvCurveWidget::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    p.fillRect(rect(), Qt::white);
    if (points_.size() < 2) return;
    const QFontMetrics fm(font());
    const QRectF plot(fm.horizontalAdvance(QStringLiteral("000.0 GiB")) + 12, fm.height() * 2.2, width() - fm.horizontalAdvance(QStringLiteral("000.0 GiB")) - 24,
                      height() - fm.height() * 4.6);
    quint64 maxB = 1;
    for (auto& c : points_) maxB = std::max({maxB, c.bytes, c.baseline});
    const double maxT = double(points_.back().tokens);
    auto at = [&](quint64 t, quint64 b) { return QPointF(plot.left() + plot.width() * double(t) / maxT, plot.bottom() - plot.height() * double(b) / double(maxB)); };
    p.setPen(QColor(0xdd, 0xdd, 0xdd));
    for (int i = 0; i <= 4; ++i) {
        const double y = plot.bottom() - plot.height() * i / 4.0;
        p.drawLine(QPointF(plot.left(), y), QPointF(plot.right(), y));
        p.setPen(Qt::darkGray);
        p.drawText(QRectF(0, y - fm.height() / 2.0, plot.left() - 6, fm.height()), Qt::AlignRight | Qt::AlignVCenter,
                   QString::fromStdString(human_bytes(double(maxB) * i / 4.0)));
        p.setPen(QColor(0xdd, 0xdd, 0xdd));
    }
    p.setPen(Qt::darkGray);
    for (int i = 0; i <= 4; ++i) {
        const quint64 t = quint64(maxT * i / 4.0);
        const QPointF q = at(t, 0);
        p.drawText(QRectF(q.x() - 40, plot.bottom() + 3, 80, fm.height()), Qt::AlignHCenter, QStringLiteral("%1k").arg(t / 1024));
    }
    p.drawText(QRectF(plot.left(), plot.bottom() + fm.height() + 4, plot.width(), fm.height()), Qt::AlignHCenter,
               tr("context (tokens)"));
    QPainterPath base, cur;
    for (size_t i = 0; i < points_.size(); ++i) {
        const QPointF a = at(points_[i].tokens, points_[i].baseline), b = at(points_[i].tokens, points_[i].bytes);
        if (i == 0) base.moveTo(a), cur.moveTo(b);
        else base.lineTo(a), cur.lineTo(b);
    }
    const QColor global = layerKindColor(LayerKind::Global), sliding = layerKindColor(LayerKind::Sliding);
    p.setBrush(Qt::NoBrush);
    p.setPen(QPen(global, 2, Qt::DashLine));
    p.drawPath(base);
    p.setPen(QPen(sliding, 3));
    p.drawPath(cur);
    // Legend and title.
    p.setPen(Qt::black);
    QFont bold = font();
    bold.setBold(true);
    p.setFont(bold);
    p.drawText(QRectF(0, 2, width(), fm.height()), Qt::AlignHCenter, tr("KV cache (bf16) vs context"));
    p.setFont(font());
    qreal x = plot.left() + 8, y = plot.top() + 4;
    p.setPen(QPen(sliding, 3));
    p.drawLine(QPointF(x, y + fm.height() / 2.0), QPointF(x + 22, y + fm.height() / 2.0));
    p.setPen(Qt::black);
    p.drawText(QPointF(x + 28, y + fm.ascent()), label_);
    y += fm.height() + 2;
    p.setPen(QPen(global, 2, Qt::DashLine));
    p.drawLine(QPointF(x, y + fm.height() / 2.0), QPointF(x + 22, y + fm.height() / 2.0));
    p.setPen(Qt::black);
    p.drawText(QPointF(x + 28, y + fm.ascent()), baselineLabel_);
}

// ---------------------------------------------------------------------------------------------
LessonsWindow::LessonsWindow(QWidget* parent) : QWidget(parent, Qt::Window), runner_(new LessonRunner(this)) {
    setObjectName(QStringLiteral("lessons-window"));
    setWindowTitle(tr("ArchLens — Lessons"));
    lessons_ = loadLessons(&loadErrors_);
    demoTimer_ = new QTimer(this);
    demoTimer_->setSingleShot(true);
    demoTimer_->setInterval(120);  // a dragged slider builds one variant, not one per tick
    connect(demoTimer_, &QTimer::timeout, this, &LessonsWindow::startDemo);
    connect(runner_, &LessonRunner::finished, this, &LessonsWindow::onDemoFinished);
    buildUi();
    normalState_ = windowState();
    resize(1500, 900);
    if (!lessons_.isEmpty()) openLesson(0);
}

LessonsWindow::~LessonsWindow() = default;

void LessonsWindow::buildUi() {
    auto* root = new QHBoxLayout(this);
    root->setContentsMargins(6, 6, 6, 6);
    auto* split = new QSplitter(Qt::Horizontal, this);
    root->addWidget(split);

    // Lesson list.
    sidebar_ = new QWidget(split);
    auto* sl = new QVBoxLayout(sidebar_);
    sl->setContentsMargins(0, 0, 0, 0);
    auto* listTitle = new QLabel(tr("<b>Lessons</b>"), sidebar_);
    list_ = new QListWidget(sidebar_);
    list_->setObjectName(QStringLiteral("lesson-list"));
    for (const Lesson& l : lessons_) {
        auto* item = new QListWidgetItem(QStringLiteral("%1. %2").arg(l.order).arg(l.title), list_);
        item->setToolTip(l.summary);
    }
    list_->setWordWrap(true);
    sl->addWidget(listTitle);
    sl->addWidget(list_);
    if (!loadErrors_.isEmpty()) {
        auto* err = new QLabel(loadErrors_.join(QLatin1Char('\n')), sidebar_);
        err->setWordWrap(true);
        err->setStyleSheet(QStringLiteral("color: #b00;"));
        sl->addWidget(err);
    }
    connect(list_, &QListWidget::currentRowChanged, this, [this](int r) {
        if (r >= 0 && r != current_) openLesson(r);
    });

    // The lesson: title, progress, step text, navigation, control and readout.
    auto* middle = new QWidget(split);
    auto* ml = new QVBoxLayout(middle);
    ml->setContentsMargins(4, 0, 4, 0);
    title_ = new QLabel(middle);
    title_->setObjectName(QStringLiteral("lesson-title"));
    title_->setWordWrap(true);
    progressText_ = new QLabel(middle);
    progress_ = new QProgressBar(middle);
    progress_->setTextVisible(false);
    progress_->setMaximumHeight(8);
    stepTitle_ = new QLabel(middle);
    stepTitle_->setWordWrap(true);
    text_ = new QTextBrowser(middle);
    text_->setObjectName(QStringLiteral("lesson-text"));
    text_->setOpenExternalLinks(false);
    text_->setFrameShape(QFrame::NoFrame);
    auto* nav = new QHBoxLayout;
    prev_ = new QPushButton(tr("◀ Back"), middle);
    next_ = new QPushButton(tr("Next ▶"), middle);
    answer_ = new QPushButton(tr("Show answer"), middle);
    present_ = new QPushButton(tr("Present (F11)"), middle);
    exportPdf_ = new QPushButton(tr("PDF…"), middle);
    exportImages_ = new QPushButton(tr("Images…"), middle);
    for (QPushButton* b : {prev_, next_, answer_, present_, exportPdf_, exportImages_}) b->setFocusPolicy(Qt::NoFocus);
    nav->addWidget(prev_);
    nav->addWidget(next_);
    nav->addWidget(answer_);
    nav->addStretch();
    nav->addWidget(present_);
    nav->addWidget(exportPdf_);
    nav->addWidget(exportImages_);
    connect(prev_, &QPushButton::clicked, this, &LessonsWindow::previousStep);
    connect(next_, &QPushButton::clicked, this, &LessonsWindow::nextStep);
    connect(answer_, &QPushButton::clicked, this, &LessonsWindow::showAnswer);
    connect(present_, &QPushButton::clicked, this, &LessonsWindow::togglePresentation);
    connect(exportPdf_, &QPushButton::clicked, this, [this] { exportDialog(true); });
    connect(exportImages_, &QPushButton::clicked, this, [this] { exportDialog(false); });

    auto* box = new QGroupBox(tr("Try it"), middle);
    box->setObjectName(QStringLiteral("lesson-control"));
    auto* bl = new QVBoxLayout(box);
    auto* row1 = new QHBoxLayout;
    controlLabel_ = new QLabel(box);
    slider_ = new QSlider(Qt::Horizontal, box);
    slider_->setObjectName(QStringLiteral("lesson-slider"));
    slider_->setPageStep(1);
    slider_->setTickPosition(QSlider::TicksBelow);
    choice_ = new QComboBox(box);
    choice_->setObjectName(QStringLiteral("lesson-choice"));
    controlValue_ = new QLabel(box);
    controlValue_->setMinimumWidth(60);
    row1->addWidget(controlLabel_);
    row1->addWidget(slider_, 1);
    row1->addWidget(choice_, 1);
    row1->addWidget(controlValue_);
    auto* row2 = new QHBoxLayout;
    secondLabel_ = new QLabel(box);
    secondSlider_ = new QSlider(Qt::Horizontal, box);
    secondSlider_->setObjectName(QStringLiteral("lesson-second-slider"));
    secondSlider_->setPageStep(1);
    secondSlider_->setTickPosition(QSlider::TicksBelow);
    toggle_ = new QCheckBox(box);
    toggle_->setObjectName(QStringLiteral("lesson-toggle"));
    secondValue_ = new QLabel(box);
    secondValue_->setMinimumWidth(60);
    row2->addWidget(secondLabel_);
    row2->addWidget(secondSlider_, 1);
    row2->addWidget(toggle_, 1);
    row2->addWidget(secondValue_);
    controlHelp_ = new QLabel(box);
    controlHelp_->setWordWrap(true);
    controlHelp_->setStyleSheet(QStringLiteral("color: #555;"));
    numbers_ = new QLabel(box);
    numbers_->setObjectName(QStringLiteral("lesson-numbers"));
    numbers_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    numbers_->setWordWrap(true);
    note_ = new QLabel(box);
    note_->setWordWrap(true);
    curve_ = new KvCurveWidget(box);
    bl->addLayout(row1);
    bl->addLayout(row2);
    bl->addWidget(controlHelp_);
    bl->addWidget(numbers_);
    bl->addWidget(note_);
    bl->addWidget(curve_);
    connect(slider_, &QSlider::valueChanged, this, [this](int i) {
        if (updatingControl_ || current_ < 0) return;
        const auto& v = lessons_[current_].control.values;
        if (i >= 0 && i < int(v.size())) setControlValue(v[size_t(i)]);
    });
    connect(choice_, &QComboBox::currentIndexChanged, this, [this](int i) {
        if (!updatingControl_ && i >= 0) setControlValue(i);
    });
    connect(secondSlider_, &QSlider::valueChanged, this, [this](int i) {
        if (updatingControl_ || current_ < 0) return;
        const auto& v = lessons_[current_].control.secondValues;
        if (i >= 0 && i < int(v.size())) setControlSecond(v[size_t(i)]);
    });
    connect(toggle_, &QCheckBox::toggled, this, [this](bool on) {
        if (!updatingControl_) setControlSecond(on ? 1 : 0);
    });

    ml->addWidget(title_);
    ml->addWidget(progressText_);
    ml->addWidget(progress_);
    ml->addWidget(stepTitle_);
    ml->addWidget(text_, 1);
    ml->addLayout(nav);
    ml->addWidget(box);

    // Diagram over the live view.
    auto* right = new QSplitter(Qt::Vertical, split);
    diagram_ = new DiagramView(right);
    diagram_->setObjectName(QStringLiteral("lesson-diagram"));
    diagram_->canvas()->installEventFilter(this);
    auto* live = new QWidget(right);
    auto* ll = new QVBoxLayout(live);
    ll->setContentsMargins(0, 0, 0, 0);
    viewStatus_ = new QLabel(live);
    viewStatus_->setObjectName(QStringLiteral("lesson-view-status"));
    views_ = new QStackedWidget(live);
    attention_ = new AttentionView(views_);
    routing_ = new RoutingView(views_);
    kvCache_ = new KvCacheView(views_);
    nextToken_ = new NextTokenView(views_);
    views_->addWidget(attention_);
    views_->addWidget(routing_);
    views_->addWidget(kvCache_);
    views_->addWidget(nextToken_);
    ll->addWidget(viewStatus_);
    ll->addWidget(views_, 1);
    right->setStretchFactor(0, 4);
    right->setStretchFactor(1, 5);
    right->setSizes({400, 500});

    split->setStretchFactor(0, 0);
    split->setStretchFactor(1, 3);
    split->setStretchFactor(2, 5);
    split->setSizes({220, 520, 760});

    // Keyboard: shortcuts win over the focused slider, so ←/→ always step.
    auto key = [this](QKeySequence k, auto fn) {
        auto* s = new QShortcut(k, this);
        s->setContext(Qt::WindowShortcut);
        connect(s, &QShortcut::activated, this, fn);
    };
    key(QKeySequence(Qt::Key_Right), [this] { nextStep(); });
    key(QKeySequence(Qt::Key_Left), [this] { previousStep(); });
    key(QKeySequence(Qt::Key_PageDown), [this] { nextLesson(); });
    key(QKeySequence(Qt::Key_PageUp), [this] { previousLesson(); });
    key(QKeySequence(Qt::Key_F11), [this] { togglePresentation(); });
    key(QKeySequence(Qt::Key_Escape), [this] {
        if (presentation_) setPresentation(false);
        else close();
    });
    applyFonts();
}

int LessonsWindow::stepCount() const { return current_ < 0 ? 0 : int(lessons_[current_].steps.size()) + 1; }

void LessonsWindow::openLesson(int index) {
    if (index < 0 || index >= lessons_.size()) return;
    current_ = index;
    step_ = 0;
    answerShown_ = false;
    state_ = defaultState(lessons_[index]);
    demoKey_.clear();
    {
        const QSignalBlocker b(list_);
        list_->setCurrentRow(index);
    }
    buildControl();
    applyOutcome();
    showStep();
    emit lessonChanged(index);
}

void LessonsWindow::buildControl() {
    const LessonControl& c = lessons_[current_].control;
    updatingControl_ = true;
    const bool choices = !c.choices.isEmpty();
    controlLabel_->setText(c.label + QLatin1Char(':'));
    slider_->setVisible(!choices);
    choice_->setVisible(choices);
    choice_->clear();
    if (choices) {
        for (const ControlChoice& ch : c.choices) choice_->addItem(ch.label);
        choice_->setCurrentIndex(state_.value);
    } else {
        slider_->setRange(0, int(c.values.size()) - 1);
        const auto it = std::find(c.values.begin(), c.values.end(), state_.value);
        slider_->setValue(int(it - c.values.begin()));
    }
    const bool hasSecond = !c.secondLabel.isEmpty();
    secondLabel_->setVisible(hasSecond && !c.toggle);
    secondSlider_->setVisible(hasSecond && !c.toggle);
    secondValue_->setVisible(hasSecond && !c.toggle);
    toggle_->setVisible(hasSecond && c.toggle);
    if (c.toggle) {
        toggle_->setText(c.secondLabel);
        toggle_->setChecked(state_.second != 0);
    } else if (hasSecond) {
        secondLabel_->setText(c.secondLabel + QLatin1Char(':'));
        secondSlider_->setRange(0, int(c.secondValues.size()) - 1);
        const auto it = std::find(c.secondValues.begin(), c.secondValues.end(), state_.second);
        secondSlider_->setValue(int(it - c.secondValues.begin()));
    }
    controlHelp_->setText(c.help);
    updatingControl_ = false;
}

void LessonsWindow::setControlValue(int v) {
    if (current_ < 0) return;
    state_.value = v;
    updatingControl_ = true;
    const LessonControl& c = lessons_[current_].control;
    if (c.choices.isEmpty()) {
        const auto it = std::find(c.values.begin(), c.values.end(), v);
        if (it != c.values.end()) slider_->setValue(int(it - c.values.begin()));
    } else {
        choice_->setCurrentIndex(v);
    }
    updatingControl_ = false;
    applyOutcome();
}

void LessonsWindow::setControlSecond(int v) {
    if (current_ < 0) return;
    state_.second = v;
    updatingControl_ = true;
    const LessonControl& c = lessons_[current_].control;
    if (c.toggle) toggle_->setChecked(v != 0);
    else {
        const auto it = std::find(c.secondValues.begin(), c.secondValues.end(), v);
        if (it != c.secondValues.end()) secondSlider_->setValue(int(it - c.secondValues.begin()));
    }
    updatingControl_ = false;
    applyOutcome();
}

void LessonsWindow::applyOutcome() {
    const Lesson& l = lessons_[current_];
    const LessonControl& c = l.control;
    try {
        outcome_ = evaluate(l, state_);
        controlError_.clear();
    } catch (const std::exception& e) {
        controlError_ = QString::fromStdString(e.what());
        numbers_->setText(QStringLiteral("<span style='color:#b00'>%1</span>").arg(controlError_.toHtmlEscaped()));
        return;
    }
    controlValue_->setText(c.choices.isEmpty() ? QString::number(state_.value) : QString());
    secondValue_->setText(c.toggle ? QString() : QString::number(state_.second));
    QString html = QStringLiteral("<table cellspacing='2'>");
    for (const NumberRow& r : outcome_.rows)
        html += QStringLiteral("<tr><td>%1</td><td>&nbsp;&nbsp;</td><td align='right'><b>%2</b></td></tr>").arg(r.label.toHtmlEscaped(), r.text.toHtmlEscaped());
    html += QStringLiteral("</table>");
    numbers_->setText(html);
    note_->setText(outcome_.note);
    note_->setVisible(!outcome_.note.isEmpty());
    curve_->setVisible(!outcome_.curve.empty());
    curve_->setCurve(outcome_.curve, outcome_.curveLabel, outcome_.baselineLabel);

    diagram_->setSpec(outcome_.spec, outcome_.diagramTitle);
    diagram_->setKvType(QStringLiteral("bf16"));
    diagram_->setKvContext(int(kLongContext));
    diagram_->selectBox(resolveBlock(diagram_->diagramLayout(), outcome_.block));
    QTimer::singleShot(0, this, &LessonsWindow::scrollToLitBlock);
    QTimer::singleShot(80, this, &LessonsWindow::scrollToLitBlock);  // after the canvas took its new height

    views_->setCurrentIndex(int(l.view));
    const QString key = outcome_.demo.key();
    if (key != demoKey_) {
        demoKey_ = key;
        demoReady_ = false;
        demoError_.clear();
        demoName_ = outcome_.demo.name;
        viewStatus_->setText(tr("<b>%1</b> — running demo:%2 through the engine…").arg(viewTitle(l.view), demoName_));
        demoTimer_->start();
    }
}

void LessonsWindow::startDemo() {
    if (current_ < 0) return;
    const Lesson& l = lessons_[current_];
    runner_->start(outcome_.demo, promptIds(l.prompt), probesFor(l.view));
}

void LessonsWindow::onDemoFinished(const DemoRun& run) {
    if (current_ < 0) return;
    const Lesson& l = lessons_[current_];
    if (demoTimer_->isActive()) return;  // a newer request is about to start
    demoReady_ = true;
    demoError_ = run.error;
    if (!run.error.isEmpty()) {
        viewStatus_->setText(tr("<b>%1</b> — demo:%2 failed: %3").arg(viewTitle(l.view), demoName_, run.error.toHtmlEscaped()));
        emit demoFinished();
        return;
    }
    const QString what = tr("<b>%1</b> — demo:%2, %3 prompt tokens, measured by the engine").arg(viewTitle(l.view), demoName_).arg(run.context->ids.size());
    viewStatus_->setText(what);
    switch (l.view) {
        case ViewKind::Attention:
            attention_->setModel(run.model);
            attention_->setContext(run.context);
            attention_->addToken(run.token);
            attention_->setThumbnailsVisible(false);
            attention_->setLayer(std::min(outcome_.viewLayer, std::max(0, run.model->spec->n_layers - 1)));
            attention_->setHead(outcome_.viewHead);
            attention_->refresh();
            break;
        case ViewKind::Routing:
            routing_->setModel(run.model);
            routing_->setContext(run.context);
            routing_->addToken(run.token);
            if (!routing_->moeLayers().empty()) routing_->setLayer(routing_->moeLayers().front());
            routing_->refresh();
            break;
        case ViewKind::KvCache:
            kvCache_->setModel(run.model);
            kvCache_->setContext(run.context);
            kvCache_->addToken(run.token);
            break;
        case ViewKind::NextToken:
            nextToken_->setModel(run.model);
            nextToken_->setContext(run.context);
            nextToken_->addToken(run.token);
            nextToken_->setLensVisible(true);
            break;
    }
    emit demoFinished();
}

bool LessonsWindow::waitForDemo(int timeoutMs) {
    QElapsedTimer t;
    t.start();
    while (!demoReady_ && t.elapsed() < timeoutMs) {
        QApplication::processEvents(QEventLoop::AllEvents, 20);
        if (!demoReady_) QThread::msleep(5);
    }
    QApplication::processEvents();
    return demoReady_;
}

void LessonsWindow::showStep() {
    const Lesson& l = lessons_[current_];
    const int n = stepCount();
    step_ = std::clamp(step_, 0, n - 1);
    title_->setText(QStringLiteral("<span style='font-size:large'><b>%1</b></span><br><span style='color:#555'>%2</span>")
                        .arg(l.title.toHtmlEscaped(), l.summary.toHtmlEscaped()));
    QString body;
    if (step_ < l.steps.size()) {
        stepTitle_->setText(QStringLiteral("<b>%1</b>").arg(l.steps[step_].title.toHtmlEscaped()));
        body = QStringLiteral("<p>%1</p>").arg(fillPlaceholders(l.steps[step_].text).toHtmlEscaped());
        answer_->setVisible(false);
    } else {
        stepTitle_->setText(tr("<b>Check yourself</b>"));
        body = QStringLiteral("<p><b>Q.</b> %1</p>").arg(fillPlaceholders(l.question).toHtmlEscaped());
        if (answerShown_) body += QStringLiteral("<p><b>A.</b> %1</p>").arg(fillPlaceholders(l.answer).toHtmlEscaped());
        else body += tr("<p style='color:#777'>Think first, then press → or “Show answer”.</p>");
        answer_->setVisible(!answerShown_);
    }
    body += QStringLiteral("<p style='color:#777; font-size:small'>Opens %1 (architecture only, numbers from its config) and runs demo:%2.</p>")
                .arg(l.catalog, l.demo);
    text_->setHtml(body);
    prev_->setEnabled(step_ > 0 || current_ > 0);
    next_->setEnabled(step_ < n - 1 || !answerShown_ || current_ + 1 < lessons_.size());
    updateProgress();
    emit stepChanged(step_);
}

QString LessonsWindow::stepText() const { return text_->toPlainText(); }

void LessonsWindow::updateProgress() {
    const int n = stepCount();
    progressText_->setText(tr("Lesson %1 of %2 · step %3 of %4").arg(current_ + 1).arg(lessons_.size()).arg(step_ + 1).arg(n));
    int done = 0, total = 0;
    for (int i = 0; i < lessons_.size(); ++i) {
        const int s = int(lessons_[i].steps.size()) + 1;
        total += s;
        if (i < current_) done += s;
    }
    progress_->setRange(0, total);
    progress_->setValue(done + step_ + 1);
}

void LessonsWindow::setStep(int s) {
    if (current_ < 0) return;
    step_ = std::clamp(s, 0, stepCount() - 1);
    showStep();
}

void LessonsWindow::nextStep() {
    if (current_ < 0) return;
    if (step_ < stepCount() - 1) setStep(step_ + 1);
    else if (!answerShown_) showAnswer();
    else nextLesson();
}

void LessonsWindow::previousStep() {
    if (current_ < 0) return;
    if (step_ > 0) setStep(step_ - 1);
    else if (current_ > 0) {
        openLesson(current_ - 1);
        setStep(stepCount() - 1);
    }
}

void LessonsWindow::nextLesson() {
    if (current_ + 1 < lessons_.size()) openLesson(current_ + 1);
}

void LessonsWindow::previousLesson() {
    if (current_ > 0) openLesson(current_ - 1);
}

void LessonsWindow::showAnswer() {
    answerShown_ = true;
    step_ = stepCount() - 1;
    showStep();
}

void LessonsWindow::setPresentation(bool on) {
    if (on == presentation_) return;
    presentation_ = on;
    sidebar_->setVisible(!on);
    if (on) {
        normalState_ = windowState();
        showFullScreen();
    } else {
        setWindowState(normalState_);
        if (!(normalState_ & Qt::WindowFullScreen)) showNormal();
    }
    present_->setText(on ? tr("Leave (Esc)") : tr("Present (F11)"));
    applyFonts();
}

void LessonsWindow::applyFonts() {
    QFont base = QApplication::font();
    const double k = presentation_ ? 1.6 : 1.0;
    QFont text = base;
    text.setPointSizeF(base.pointSizeF() * 1.15 * k);
    text_->setFont(text);
    QFont step = text;
    step.setPointSizeF(text.pointSizeF() * 1.1);
    stepTitle_->setFont(step);
    QFont title = base;
    title.setPointSizeF(base.pointSizeF() * 1.3 * k);
    title_->setFont(title);
    QFont mid = base;
    mid.setPointSizeF(base.pointSizeF() * (presentation_ ? 1.35 : 1.0));
    for (QWidget* w : std::initializer_list<QWidget*>{numbers_, note_, controlLabel_, controlValue_, secondLabel_, secondValue_, toggle_, choice_,
                                                      controlHelp_, progressText_})
        w->setFont(mid);
}

void LessonsWindow::keyPressEvent(QKeyEvent* e) { QWidget::keyPressEvent(e); }

bool LessonsWindow::eventFilter(QObject* o, QEvent* e) {
    if (o == diagram_->canvas() && e->type() == QEvent::Resize) {
        auto* r = static_cast<QResizeEvent*>(e);
        if (r->oldSize().width() != r->size().width()) QTimer::singleShot(0, this, &LessonsWindow::scrollToLitBlock);
    }
    return QWidget::eventFilter(o, e);
}

void LessonsWindow::scrollToLitBlock() {
    const DiagramBox* b = diagram_->diagramLayout().box(litBlock());
    auto* scroll = diagram_->findChild<QScrollArea*>();
    DiagramCanvas* canvas = diagram_->canvas();
    if (!scroll || diagram_->diagramLayout().size.width() <= 0) return;
    // The scroll area does not honour the canvas's height-for-width: give it its full height so
    // the diagram scrolls instead of being cut off.
    const int h = canvas->heightForWidth(canvas->width());
    if (canvas->minimumHeight() != h) {
        canvas->setMinimumHeight(h);
        scroll->widget()->updateGeometry();
        QApplication::processEvents(QEventLoop::ExcludeUserInputEvents);
    }
    if (!b) return;
    const qreal k = canvas->width() / diagram_->diagramLayout().size.width();
    const QPointF c = b->rect.center() * k;
    scroll->ensureVisible(int(c.x()), int(c.y()), 40, int(b->rect.height() * k / 2 + 60));
    if (qEnvironmentVariableIsSet("ARCHLENS_LESSON_DEBUG"))
        qInfo("scroll %s canvas %dx%d k %.3f c %.0f,%.0f bar %d/%d", qPrintable(litBlock()), canvas->width(), canvas->height(), k, c.x(), c.y(),
              scroll->verticalScrollBar()->value(), scroll->verticalScrollBar()->maximum());
}

QString LessonsWindow::litBlock() const { return diagram_->canvas()->options().selectedId; }

ViewKind LessonsWindow::liveViewKind() const { return ViewKind(views_->currentIndex()); }

QWidget* LessonsWindow::liveView() const { return views_->currentWidget(); }

QString LessonsWindow::numbersText() const {
    QStringList rows;
    for (const NumberRow& r : outcome_.rows) rows << r.label + QStringLiteral(": ") + r.text;
    return rows.join(QLatin1Char('\n'));
}

QList<QImage> LessonsWindow::captureLesson(int lesson) {
    QList<QImage> out;
    const int keepLesson = current_, keepStep = step_;
    openLesson(lesson);
    waitForDemo();
    for (int s = 0; s < stepCount(); ++s) {
        setStep(s);
        if (s == stepCount() - 1) showAnswer();
        QApplication::processEvents();
        out << grab().toImage();
    }
    if (keepLesson >= 0 && keepLesson != lesson) {
        openLesson(keepLesson);
        setStep(keepStep);
    }
    return out;
}

bool LessonsWindow::exportImages(int lesson, const QString& dir, QStringList* written, QString* error) {
    if (lesson < 0 || lesson >= lessons_.size()) return false;
    QDir().mkpath(dir);
    const QList<QImage> shots = captureLesson(lesson);
    for (int i = 0; i < shots.size(); ++i) {
        const QString path = QDir(dir).filePath(QStringLiteral("lesson-%1-%2.png").arg(lessons_[lesson].id).arg(i + 1, 2, 10, QLatin1Char('0')));
        if (!shots[i].save(path)) {
            if (error) *error = tr("%1: cannot write the image").arg(path);
            return false;
        }
        if (written) *written << path;
    }
    return true;
}

bool LessonsWindow::exportPdf(int lesson, const QString& path, QString* error) {
    if (lesson < 0 || lesson >= lessons_.size()) return false;
    const QList<QImage> shots = captureLesson(lesson);
    QPdfWriter pdf(path);
    pdf.setTitle(lessons_[lesson].title);
    pdf.setCreator(QStringLiteral("ArchLens"));
    pdf.setPageSize(QPageSize(QPageSize::A4));
    pdf.setPageOrientation(QPageLayout::Landscape);
    pdf.setResolution(150);
    QPainter p;
    if (!p.begin(&pdf)) {
        if (error) *error = tr("%1: cannot write the PDF").arg(path);
        return false;
    }
    const Lesson& l = lessons_[lesson];
    for (int i = 0; i < shots.size(); ++i) {
        if (i > 0) pdf.newPage();
        const QRect page(0, 0, pdf.width(), pdf.height());
        QFont f = p.font();
        f.setPointSize(14);
        f.setBold(true);
        p.setFont(f);
        const int head = p.fontMetrics().height() * 2;
        p.drawText(QRect(page.left(), page.top(), page.width(), head), Qt::AlignLeft | Qt::AlignVCenter,
                   QStringLiteral("%1. %2 — %3 %4/%5").arg(l.order).arg(l.title, tr("screen")).arg(i + 1).arg(shots.size()));
        const QRect area(page.left(), page.top() + head, page.width(), page.height() - head);
        const QSize s = shots[i].size().scaled(area.size(), Qt::KeepAspectRatio);
        p.drawImage(QRect(area.left() + (area.width() - s.width()) / 2, area.top(), s.width(), s.height()), shots[i]);
    }
    p.end();
    return true;
}

void LessonsWindow::exportDialog(bool pdf) {
    if (current_ < 0) return;
    const QString stem = QStringLiteral("lesson-") + lessons_[current_].id;
    QString err;
    if (pdf) {
        const QString path = QFileDialog::getSaveFileName(this, tr("Export lesson as PDF"), stem + QStringLiteral(".pdf"), tr("PDF (*.pdf)"));
        if (!path.isEmpty() && !exportPdf(current_, path, &err)) viewStatus_->setText(err);
    } else {
        const QString dir = QFileDialog::getExistingDirectory(this, tr("Export lesson screens to a folder"));
        if (!dir.isEmpty() && !exportImages(current_, dir, nullptr, &err)) viewStatus_->setText(err);
    }
}

}  // namespace lessons
