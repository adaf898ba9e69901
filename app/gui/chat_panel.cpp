#include "app/gui/chat_panel.h"

#include <QCheckBox>
#include <QDoubleSpinBox>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QJsonDocument>
#include <QKeyEvent>
#include <QLabel>
#include <QLineEdit>
#include <QPlainTextEdit>
#include <QPushButton>
#include <QRegularExpressionValidator>
#include <QSettings>
#include <QSpinBox>
#include <QToolButton>
#include <QVBoxLayout>

#include "app/gui/engine_worker.h"
#include "widgets/chat_view.h"
#include "widgets/gauge_bar.h"
#include "widgets/token_style.h"

namespace {

QToolButton* disclosureButton(const QString& text, QWidget* parent) {
    auto* b = new QToolButton(parent);
    b->setText(text);
    b->setCheckable(true);
    b->setToolButtonStyle(Qt::ToolButtonTextBesideIcon);
    b->setArrowType(Qt::RightArrow);
    b->setAutoRaise(true);
    QObject::connect(b, &QToolButton::toggled, b,
                     [b](bool on) { b->setArrowType(on ? Qt::DownArrow : Qt::RightArrow); });
    return b;
}

QDoubleSpinBox* doubleSpin(double lo, double hi, double step, int decimals, QWidget* parent) {
    auto* s = new QDoubleSpinBox(parent);
    s->setRange(lo, hi);
    s->setSingleStep(step);
    s->setDecimals(decimals);
    return s;
}

QString legendHtml() {
    QString html = ChatPanel::tr("p ");
    for (float p : {1.0f, 0.3f, 0.1f, 0.01f, 0.001f})
        html += QStringLiteral("<span style='background:%1'>&nbsp;%2&nbsp;</span>")
                    .arg(tokenStyle::probabilityColor(p).name(),
                         p >= 0.01f ? QString::number(double(p) * 100, 'f', 0)
                                    : QString::number(double(p) * 100, 'g', 1));
    return html + QStringLiteral(" %");
}

}  // namespace

ChatPanel::ChatPanel(EngineController* engine, ConversationStore* store, QWidget* parent)
    : QWidget(parent), engine_(engine), store_(store), conv_(Conversation::create()) {
    setObjectName(QStringLiteral("chatPanel"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(6, 6, 6, 6);
    layout->setSpacing(4);

    demoBanner_ =
        new QLabel(tr("Demo model — random weights: shows the machinery, not meaning. "
                      "The text it writes is noise; the attention, routing and memory are real."),
                   this);
    demoBanner_->setObjectName(QStringLiteral("demoBanner"));
    demoBanner_->setWordWrap(true);
    demoBanner_->setStyleSheet(
        QStringLiteral("QLabel { background: #fff4d6; border: 1px solid #e8c96a; "
                       "border-radius: 3px; padding: 4px 6px; color: #5c4400; }"));
    demoBanner_->hide();
    layout->addWidget(demoBanner_);

    auto* top = new QHBoxLayout;
    systemToggle_ = disclosureButton(tr("System prompt"), this);
    samplingToggle_ = disclosureButton(tr("Sampling"), this);
    colorTokens_ = new QCheckBox(tr("Colour tokens"), this);
    colorTokens_->setChecked(true);
    auto* legend = new QLabel(legendHtml(), this);
    legend->setObjectName(QStringLiteral("probabilityLegend"));
    legend->setToolTip(
        tr("Token colour = the probability the model gave it (100% … 0.1%). Hover a token to see "
           "its id and the alternatives the model considered."));
    top->addWidget(systemToggle_);
    top->addWidget(samplingToggle_);
    top->addStretch(1);
    top->addWidget(colorTokens_);
    top->addWidget(legend);
    layout->addLayout(top);

    systemEdit_ = new QPlainTextEdit(this);
    systemEdit_->setObjectName(QStringLiteral("systemPrompt"));
    systemEdit_->setPlaceholderText(
        tr("Optional instructions sent before the conversation (the \"system\" turn)."));
    systemEdit_->setMaximumHeight(72);
    systemEdit_->hide();
    layout->addWidget(systemEdit_);

    samplingBox_ = new QWidget(this);
    auto* grid = new QGridLayout(samplingBox_);
    grid->setContentsMargins(0, 0, 0, 0);
    temperature_ = doubleSpin(0, 2, 0.05, 2, samplingBox_);
    temperature_->setToolTip(tr("0 = greedy: always the most probable token"));
    topK_ = new QSpinBox(samplingBox_);
    topK_->setRange(0, 1000);
    topK_->setToolTip(tr("Keep only the k most probable tokens (0 = off)"));
    topP_ = doubleSpin(0, 1, 0.01, 2, samplingBox_);
    topP_->setToolTip(
        tr("Keep the smallest set of tokens whose probabilities add up to p (1 = off)"));
    minP_ = doubleSpin(0, 1, 0.01, 2, samplingBox_);
    minP_->setToolTip(tr("Drop tokens below min-p × the top token's probability (0 = off)"));
    repetition_ = doubleSpin(1, 2, 0.05, 2, samplingBox_);
    repetition_->setToolTip(tr("Penalise tokens seen recently (1 = off)"));
    fixedSeed_ = new QCheckBox(tr("fixed seed"), samplingBox_);
    seed_ = new QLineEdit(samplingBox_);
    seed_->setValidator(
        new QRegularExpressionValidator(QRegularExpression(QStringLiteral("\\d{1,19}")), seed_));
    seed_->setMaximumWidth(140);
    maxTokens_ = new QSpinBox(samplingBox_);
    maxTokens_->setRange(1, 1000000);
    int col = 0;
    auto add = [&](const QString& label, QWidget* w) {
        grid->addWidget(new QLabel(label, samplingBox_), col / 8, col % 8);
        grid->addWidget(w, col / 8, col % 8 + 1);
        col += 2;
    };
    add(tr("temperature"), temperature_);
    add(tr("top-k"), topK_);
    add(tr("top-p"), topP_);
    add(tr("min-p"), minP_);
    add(tr("repetition"), repetition_);
    add(tr("max tokens"), maxTokens_);
    grid->addWidget(fixedSeed_, col / 8, col % 8);
    grid->addWidget(seed_, col / 8, col % 8 + 1);
    grid->setColumnStretch(8, 1);  // fields keep their natural width; the slack goes right
    samplingBox_->hide();
    layout->addWidget(samplingBox_);

    view_ = new ChatView(this);
    view_->setObjectName(QStringLiteral("chatView"));
    layout->addWidget(view_, 1);

    editBar_ = new QWidget(this);
    auto* eb = new QHBoxLayout(editBar_);
    eb->setContentsMargins(0, 0, 0, 0);
    editBanner_ = new QLabel(editBar_);
    editBanner_->setStyleSheet(QStringLiteral("color: #21569c;"));
    auto* cancelEdit = new QPushButton(tr("Cancel edit"), editBar_);
    eb->addWidget(editBanner_, 1);
    eb->addWidget(cancelEdit);
    editBar_->hide();
    layout->addWidget(editBar_);

    auto* inputRow = new QHBoxLayout;
    input_ = new QPlainTextEdit(this);
    input_->setObjectName(QStringLiteral("chatInput"));
    input_->setPlaceholderText(tr("Message (Ctrl+Enter to send)"));
    input_->setMaximumHeight(80);
    sendButton_ = new QPushButton(tr("Send"), this);
    sendButton_->setDefault(true);
    sendButton_->setToolTip(tr("Send (Ctrl+Enter)"));
    inputRow->addWidget(input_, 1);
    inputRow->addWidget(sendButton_, 0, Qt::AlignBottom);
    layout->addLayout(inputRow);

    auto* controls = new QHBoxLayout;
    stopButton_ = new QPushButton(tr("Stop"), this);
    stopButton_->setToolTip(tr("Stop the answer (Esc)"));
    regenButton_ = new QPushButton(tr("Regenerate"), this);
    newButton_ = new QPushButton(tr("New chat"), this);
    stats_ = new QLabel(this);
    stats_->setObjectName(QStringLiteral("chatStats"));
    stats_->setSizePolicy(QSizePolicy::Ignored, QSizePolicy::Preferred);  // never widens the dock
    stats_->setToolTip(
        tr("Measured: decode speed after the first token, and the time from sending to the first "
           "token "
           "(prompt processing included)."));
    gauge_ = new GaugeBar(this);
    gauge_->setObjectName(QStringLiteral("contextGauge"));
    controls->addWidget(stopButton_);
    controls->addWidget(regenButton_);
    controls->addWidget(newButton_);
    controls->addSpacing(8);
    controls->addWidget(stats_, 1);
    gauge_->setPrefix(tr("context"));
    gauge_->setMaximumWidth(220);
    controls->addWidget(gauge_);
    layout->addLayout(controls);

    // Remembered defaults for new chats.
    QSettings settings;
    setSampling(SamplingSettings::fromJson(
        QJsonDocument::fromJson(settings.value("chat/sampling").toByteArray()).object()));
    systemEdit_->setPlainText(settings.value("chat/systemPrompt").toString());
    conv_.systemPrompt = systemEdit_->toPlainText();
    conv_.sampling = sampling();
    colorTokens_->setChecked(settings.value("chat/colorTokens", true).toBool());
    view_->setColorTokens(colorTokens_->isChecked());

    connect(systemToggle_, &QToolButton::toggled, systemEdit_, &QWidget::setVisible);
    connect(samplingToggle_, &QToolButton::toggled, samplingBox_, &QWidget::setVisible);
    connect(colorTokens_, &QCheckBox::toggled, this, [this](bool on) {
        view_->setColorTokens(on);
        QSettings().setValue("chat/colorTokens", on);
    });
    connect(systemEdit_, &QPlainTextEdit::textChanged, this, [this] {
        conv_.systemPrompt = systemEdit_->toPlainText();
        QSettings().setValue("chat/systemPrompt", conv_.systemPrompt);
        if (!conv_.turns.empty()) scheduleSave();
    });
    auto samplingChanged = [this] {
        conv_.sampling = sampling();
        QSettings().setValue("chat/sampling",
                             QJsonDocument(conv_.sampling.toJson()).toJson(QJsonDocument::Compact));
        if (!conv_.turns.empty()) scheduleSave();
    };
    for (QDoubleSpinBox* s : {temperature_, topP_, minP_, repetition_})
        connect(s, &QDoubleSpinBox::valueChanged, this, samplingChanged);
    for (QSpinBox* s : {topK_, maxTokens_})
        connect(s, &QSpinBox::valueChanged, this, samplingChanged);
    connect(fixedSeed_, &QCheckBox::toggled, this, samplingChanged);
    connect(fixedSeed_, &QCheckBox::toggled, seed_, &QWidget::setEnabled);
    connect(seed_, &QLineEdit::textChanged, this, samplingChanged);

    connect(sendButton_, &QPushButton::clicked, this, &ChatPanel::send);
    connect(stopButton_, &QPushButton::clicked, this, &ChatPanel::stop);
    connect(regenButton_, &QPushButton::clicked, this, &ChatPanel::regenerate);
    connect(newButton_, &QPushButton::clicked, this, &ChatPanel::newConversation);
    connect(cancelEdit, &QPushButton::clicked, this, &ChatPanel::cancelEdit);
    connect(view_, &ChatView::editRequested, this, &ChatPanel::editTurn);
    // Ctrl+Enter sends; a plain Enter stays a newline in the message.
    input_->installEventFilter(this);

    connect(engine_, &EngineController::modelLoaded, this, &ChatPanel::onModelLoaded);
    connect(engine_, &EngineController::tokenGenerated, this, &ChatPanel::onToken);
    connect(engine_, &EngineController::generationFinished, this, &ChatPanel::onFinished);
    connect(engine_, &EngineController::busyChanged, this, &ChatPanel::updateControls);

    connect(store_, &ConversationStore::writeFailed, this, [this](const QString& message) {
        if (!saveErrorShown_) emit errorOccurred(tr("Cannot save the conversation"), message);
        saveErrorShown_ =
            true;  // once per session: a full disk would otherwise raise one per token
    });

    // One save per event-loop pass however many tokens arrived in it.
    saveTimer_.setSingleShot(true);
    saveTimer_.setInterval(0);
    connect(&saveTimer_, &QTimer::timeout, this, &ChatPanel::saveNow);

    if (engine_->model()) onModelLoaded(engine_->model());
    updateControls();
}

ChatPanel::~ChatPanel() = default;

bool ChatPanel::eventFilter(QObject* watched, QEvent* e) {
    if (watched == input_ && e->type() == QEvent::KeyPress) {
        auto* ke = static_cast<QKeyEvent*>(e);
        if ((ke->key() == Qt::Key_Return || ke->key() == Qt::Key_Enter) &&
            (ke->modifiers() & Qt::ControlModifier)) {
            send();
            return true;
        }
    }
    return QWidget::eventFilter(watched, e);
}

void ChatPanel::flushSave() {
    if (saveTimer_.isActive()) saveNow();
    store_->flush();
}

void ChatPanel::setInputText(const QString& text) {
    input_->setPlainText(text);
}

QString ChatPanel::inputText() const {
    return input_->toPlainText();
}

SamplingSettings ChatPanel::sampling() const {
    SamplingSettings s;
    s.temperature = temperature_->value();
    s.topK = topK_->value();
    s.topP = topP_->value();
    s.minP = minP_->value();
    s.repetitionPenalty = repetition_->value();
    s.fixedSeed = fixedSeed_->isChecked();
    s.seed = seed_->text().toULongLong();
    s.maxTokens = maxTokens_->value();
    return s;
}

void ChatPanel::setSampling(const SamplingSettings& s) {
    // Showing settings is not choosing them: no change signals, no new defaults saved.
    const QSignalBlocker b1(temperature_), b2(topK_), b3(topP_), b4(minP_), b5(repetition_),
        b6(fixedSeed_), b7(seed_), b8(maxTokens_);
    temperature_->setValue(s.temperature);
    topK_->setValue(s.topK);
    topP_->setValue(s.topP);
    minP_->setValue(s.minP);
    repetition_->setValue(s.repetitionPenalty);
    fixedSeed_->setChecked(s.fixedSeed);
    seed_->setText(QString::number(s.seed));
    seed_->setEnabled(s.fixedSeed);
    maxTokens_->setValue(s.maxTokens);
}

void ChatPanel::setSystemPrompt(const QString& text) {
    systemEdit_->setPlainText(text);
}

QString ChatPanel::statsText() const {
    return stats_->text();
}

void ChatPanel::onModelLoaded(const ModelInfoPtr& info) {
    demoBanner_->setVisible(info->isDemo);
    gauge_->setValues(0, info->contextSize);
    // A new model has an empty cache: the next answer recomputes the conversation so far.
    updateControls();
}

void ChatPanel::sendPrompt(const QString& text) {
    setInputText(text);
    send();
}

void ChatPanel::send() {
    const QString text = input_->toPlainText();
    if (text.trimmed().isEmpty() || !engine_->model()) return;
    if (editingTurn_ >= 0 && editingTurn_ < int(conv_.turns.size()))
        conv_.turns.resize(size_t(editingTurn_));
    editingTurn_ = -1;
    editBar_->hide();
    ConversationTurn turn;
    turn.role = QStringLiteral("user");
    turn.text = text;
    conv_.turns.push_back(turn);
    input_->clear();
    rebuildView();
    startAnswer();
}

void ChatPanel::startAnswer() {
    const ModelInfoPtr model = engine_->model();
    if (!model) return;
    ConversationTurn answer;
    answer.role = QStringLiteral("assistant");
    answer.model = model->name;
    conv_.modelSource = model->source;
    conv_.modelName = model->name;
    conv_.sampling = sampling();
    conv_.updated = QDateTime::currentDateTimeUtc();
    const int answerIndex = int(conv_.turns.size());
    activeGeneration_ = engine_->generate(conv_.messages(answerIndex), conv_.sampling);
    conv_.turns.push_back(answer);
    activeTurn_ = answerIndex;
    liveTtft_ = 0;
    view_->appendTurn({answer.role, {}, {}, {}});
    stats_->setText(tr("thinking…"));
    saveNow();
    emit conversationChanged(conv_.id);
    updateControls();
}

void ChatPanel::onToken(const TokenSnapshotPtr& t) {
    if (t->generationId != activeGeneration_ || activeTurn_ < 0 ||
        activeTurn_ >= int(conv_.turns.size()))
        return;
    ConversationTurn& turn = conv_.turns[size_t(activeTurn_)];
    turn.tokens.push_back(t->token);
    turn.text += t->token.text;
    view_->appendToken(t->token);
    gauge_->setValues(t->contextUsed, t->contextSize);
    if (t->index == 0) liveTtft_ = t->msSinceStart;
    const double tps =
        t->index > 0 ? t->index * 1000.0 / std::max(t->msSinceStart - liveTtft_, 1e-3) : 0;
    updateStats(t->index + 1, liveTtft_, tps);
    conv_.updated = QDateTime::currentDateTimeUtc();
    scheduleSave();
}

void ChatPanel::onFinished(const GenerationResult& r) {
    if (r.id != activeGeneration_) return;
    activeGeneration_ = 0;
    if (activeTurn_ >= 0 && activeTurn_ < int(conv_.turns.size())) {
        ConversationTurn& turn = conv_.turns[size_t(activeTurn_)];
        if (!r.tailText.isEmpty()) {
            turn.text += r.tailText;
            if (!turn.tokens.empty()) turn.tokens.back().text += r.tailText;
        }
        turn.finish =
            r.reason == FinishReason::Error ? tr("error: %1").arg(r.error) : r.reasonText();
        turn.tokensPerSecond = r.tokensPerSecond;
        turn.ttftMs = r.ttftMs;
        turn.seed = r.seed;
        if (!r.tailText.isEmpty()) view_->appendToLastToken(r.tailText);
        view_->setLastTurnNote(turnNote(turn));
    }
    activeTurn_ = -1;
    updateStats(r.tokens, r.ttftMs, r.tokensPerSecond);
    if (r.reason == FinishReason::ContextFull && !r.error.isEmpty())
        emit errorOccurred(tr("Context full"), r.error);
    if (r.reason == FinishReason::Error) emit errorOccurred(tr("Generation failed"), r.error);
    conv_.updated = QDateTime::currentDateTimeUtc();
    saveNow();
    updateControls();
    emit answerFinished(r);
}

void ChatPanel::updateStats(int tokens, double ttftMs, double tokPerSec) {
    QStringList parts;  // the token count is on the answer's footer and the context gauge
    if (tokPerSec <= 0 && ttftMs <= 0) parts << tr("%n token(s)", nullptr, tokens);
    if (tokPerSec > 0) parts << tr("%1 tok/s").arg(tokPerSec, 0, 'f', tokPerSec < 100 ? 1 : 0);
    if (ttftMs > 0) parts << tr("first token %1 ms").arg(ttftMs, 0, 'f', ttftMs < 10 ? 1 : 0);
    stats_->setText(parts.join(QStringLiteral(" · ")));
}

QString ChatPanel::turnNote(const ConversationTurn& t) {
    QStringList parts;
    if (!t.finish.isEmpty()) parts << t.finish;
    parts << tr("%n token(s)", nullptr, int(t.tokens.size()));
    if (t.tokensPerSecond > 0) parts << tr("%1 tok/s").arg(t.tokensPerSecond, 0, 'f', 1);
    if (t.ttftMs > 0) parts << tr("first token %1 ms").arg(t.ttftMs, 0, 'f', 0);
    if (!t.model.isEmpty()) parts << t.model;
    return parts.join(QStringLiteral(" · "));
}

void ChatPanel::stop() {
    if (activeGeneration_) engine_->stop();
}

void ChatPanel::regenerate() {
    if (!engine_->model()) return;
    if (activeGeneration_) {
        engine_->stop();
        activeGeneration_ = 0;  // its remaining tokens are ignored; its turn is dropped below
    }
    while (!conv_.turns.empty() && conv_.turns.back().role == u"assistant") conv_.turns.pop_back();
    if (conv_.turns.empty()) return;
    rebuildView();
    startAnswer();
}

void ChatPanel::editTurn(int turn) {
    if (turn < 0 || turn >= int(conv_.turns.size()) || conv_.turns[size_t(turn)].role != u"user")
        return;
    if (activeGeneration_) stop();
    editingTurn_ = turn;
    input_->setPlainText(conv_.turns[size_t(turn)].text);
    input_->setFocus();
    editBanner_->setText(
        tr("Editing message %1: sending replaces it and everything after it.").arg(turn / 2 + 1));
    editBar_->show();
}

void ChatPanel::cancelEdit() {
    editingTurn_ = -1;
    editBar_->hide();
    input_->clear();
}

void ChatPanel::newConversation() {
    if (activeGeneration_) {
        engine_->stop();
        activeGeneration_ = 0;
    }
    if (saveTimer_.isActive()) saveNow();
    conv_ = Conversation::create();
    conv_.systemPrompt = systemEdit_->toPlainText();
    conv_.sampling = sampling();
    activeTurn_ = -1;
    cancelEdit();
    rebuildView();
    stats_->clear();
    if (engine_->model()) gauge_->setValues(0, engine_->model()->contextSize);
    emit conversationChanged(conv_.id);
    updateControls();
}

bool ChatPanel::openConversation(const QString& id) {
    QString error;
    auto c = store_->load(id, &error);
    if (!c) {
        emit errorOccurred(tr("Cannot open the conversation"), error);
        return false;
    }
    if (activeGeneration_) {
        engine_->stop();
        activeGeneration_ = 0;
    }
    if (saveTimer_.isActive()) saveNow();
    conv_ = std::move(*c);
    activeTurn_ = -1;
    cancelEdit();
    {
        const QSignalBlocker b(systemEdit_);  // opening is not editing: no save, no new default
        systemEdit_->setPlainText(conv_.systemPrompt);
    }
    setSampling(conv_.sampling);
    rebuildView();
    stats_->clear();
    emit conversationChanged(conv_.id);
    updateControls();
    return true;
}

void ChatPanel::rebuildView() {
    std::vector<ChatViewTurn> turns;
    for (const auto& t : conv_.turns)
        turns.push_back({t.role, t.text, t.tokens,
                         t.role == u"assistant" && !t.finish.isEmpty() ? turnNote(t) : QString()});
    view_->setTurns(turns);
}

void ChatPanel::updateControls() {
    const bool loaded = engine_->model() != nullptr;
    const bool generating = activeGeneration_ != 0;
    sendButton_->setEnabled(loaded);
    sendButton_->setToolTip(loaded ? tr("Send (Ctrl+Enter)") : tr("Load a model first"));
    stopButton_->setEnabled(generating);
    regenButton_->setEnabled(loaded && !conv_.turns.empty());
}

void ChatPanel::scheduleSave() {
    if (!saveTimer_.isActive()) saveTimer_.start();
}

void ChatPanel::saveNow() {
    saveTimer_.stop();
    if (conv_.turns.empty()) return;  // an untouched new chat leaves no file behind
    store_->saveAsync(conv_);
}
