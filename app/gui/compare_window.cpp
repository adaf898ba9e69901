#include "app/gui/compare_window.h"

#include <QCheckBox>
#include <QComboBox>
#include <QDir>
#include <QFileInfo>
#include <QFutureWatcher>
#include <QGridLayout>
#include <QHBoxLayout>
#include <QLabel>
#include <QLineEdit>
#include <QPushButton>
#include <QScrollArea>
#include <QSpinBox>
#include <QSplitter>
#include <QTabWidget>
#include <QVBoxLayout>
#include <QtConcurrent/QtConcurrentRun>

#include "app/gui/engine_worker.h"
#include "engine/demo.h"
#include "engine/model/catalog.h"
#include "engine/model/model.h"
#include "engine/model/spec_summary.h"
#include "widgets/attention_view.h"
#include "widgets/chat_view.h"
#include "widgets/comparison_view.h"
#include "widgets/internals_snapshot.h"
#include "widgets/routing_view.h"

using archlens::ModelSpec;

namespace {

QString displayName(const QString& source) {
    if (source.startsWith(QString::fromLatin1(archlens::kCatalogPrefix))) return source.mid(int(qstrlen(archlens::kCatalogPrefix)));
    if (source.startsWith(QStringLiteral("demo:"))) {
        for (const auto& d : archlens::demo::demo_models())
            if (QStringLiteral("demo:") + QString::fromStdString(d.name) == source) return QString::fromStdString(d.title);
    }
    const QFileInfo fi(source);
    return fi.fileName() == QStringLiteral("config.json") ? fi.absoluteDir().dirName() : fi.fileName();
}

QString bytesText(quint64 b) {
    return QString::fromStdString(archlens::human_bytes(double(b)));
}

}  // namespace

// ---- one side ---------------------------------------------------------------------------------

CompareSide::CompareSide(const QString& label, QWidget* parent) : QWidget(parent), label_(label), engine_(new EngineController(this)) {
    setObjectName(QStringLiteral("compareSide") + label);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(4, 4, 4, 4);
    title_ = new QLabel(tr("<b>%1</b> · no model").arg(label), this);
    title_->setObjectName(QStringLiteral("compareSideTitle"));
    layout->addWidget(title_);
    answer_ = new ChatView(this);
    answer_->setObjectName(QStringLiteral("compareAnswer"));
    answer_->setMinimumHeight(90);
    stats_ = new QLabel(tr("—"), this);
    stats_->setObjectName(QStringLiteral("compareStats"));
    stats_->setStyleSheet(QStringLiteral("QLabel { color: #3b4250; font-family: monospace; }"));
    attention_ = new AttentionView(this);
    routing_ = new RoutingView(this);
    auto* split = new QSplitter(Qt::Vertical, this);
    split->addWidget(answer_);
    split->addWidget(attention_);
    split->addWidget(routing_);
    split->setStretchFactor(0, 1);
    split->setStretchFactor(1, 3);
    split->setStretchFactor(2, 3);
    layout->addWidget(stats_);
    layout->addWidget(split, 1);

    connect(attention_, &AttentionView::probeNeedsChanged, this, &CompareSide::updateProbes);
    connect(routing_, &RoutingView::probeNeedsChanged, this, &CompareSide::updateProbes);
    connect(engine_, &EngineController::loadStarted, this, [this](const QString& source) {
        title_->setText(tr("<b>%1</b> · loading %2…").arg(label_, displayName(source).toHtmlEscaped()));
    });
    connect(engine_, &EngineController::modelLoaded, this, [this](const ModelInfoPtr& info) {
        const InternalsModelPtr m = internalsModelOf(*info);
        attention_->setModel(m);
        routing_->setModel(m);
        // A dense model has no routing to show: its column gives the room to the attention map.
        routing_->setVisible(!routing_->moeLayers().empty());
        answer_->clearTurns();
        tokens_ = 0;
        title_->setText(tr("<b>%1</b> · %2 · %3 layers · %4").arg(label_, info->name.toHtmlEscaped()).arg(info->spec->n_layers).arg(info->backend));
        stats_->setText(tr("loaded in %1 ms · weights %2").arg(info->loadMs, 0, 'f', 0).arg(bytesText(info->weightBytes)));
        updateProbes();
        emit loaded(info);
    });
    connect(engine_, &EngineController::loadFailed, this, [this](const QString& source, const QString& msg, LoadFailure) {
        title_->setText(tr("<b>%1</b> · <span style='color:#b00020'>cannot load %2</span>").arg(label_, displayName(source).toHtmlEscaped()));
        stats_->setText(msg.left(200));
        emit failed(msg);
    });
    connect(engine_, &EngineController::generationStarted, this, [this](const ContextSnapshotPtr& c) {
        attention_->setContext(c);
        routing_->setContext(c);
        tokens_ = 0;
    });
    connect(engine_, &EngineController::tokenGenerated, this, [this](const TokenSnapshotPtr& t) {
        answer_->appendToken(t->token);
        attention_->addToken(t);
        routing_->addToken(t);
        tokens_ = t->index + 1;
        kvBytes_ = t->kvBytesTotal;
        const double tps = t->index > 0 && t->msSinceStart > 0 ? 1000.0 * tokens_ / t->msSinceStart : 0;
        showStats(tps, kvBytes_, tr("context %1 / %2").arg(t->contextUsed).arg(t->contextSize));
        emit tokenArrived();
    });
    connect(engine_, &EngineController::generationFinished, this, [this](const GenerationResult& r) {
        if (!r.tailText.isEmpty()) answer_->appendToLastToken(r.tailText);
        if (!r.error.isEmpty()) {
            answer_->setLastTurnNote(r.error);
        } else {
            answer_->setLastTurnNote(tr("%1 · %2 tokens · %3 tok/s · first token %4 ms")
                                         .arg(r.reasonText())
                                         .arg(r.tokens)
                                         .arg(r.tokensPerSecond, 0, 'f', 1)
                                         .arg(r.ttftMs, 0, 'f', 0));
            showStats(r.tokensPerSecond, kvBytes_, tr("%1 tokens · %2").arg(r.tokens).arg(r.reasonText()));
        }
        emit finished(r);
    });
}

void CompareSide::showStats(double tokPerSec, quint64 kvBytes, const QString& extra) {
    stats_->setText(tr("%1 tok/s · KV used %2%3").arg(tokPerSec, 0, 'f', 1).arg(bytesText(kvBytes), extra.isEmpty() ? QString() : QStringLiteral(" · ") + extra));
}

ModelInfoPtr CompareSide::model() const {
    return engine_->model();
}

QString CompareSide::answerText() const {
    for (int i = answer_->turnCount() - 1; i >= 0; --i)
        if (answer_->turn(i).role == u"assistant") return answer_->turnPlainText(i);
    return {};
}

bool CompareSide::isGenerating() const {
    return engine_->isGenerating();
}

void CompareSide::load(const QString& source) {
    engine_->loadModel(source);
}

void CompareSide::send(const QString& prompt, const SamplingSettings& sampling) {
    if (!engine_->model()) return;
    answer_->clearTurns();
    answer_->appendTurn({QStringLiteral("user"), prompt, {}, {}});
    answer_->appendTurn({QStringLiteral("assistant"), QString(), {}, {}});
    tokens_ = 0;
    kvBytes_ = 0;
    stats_->setText(tr("prefill…"));
    // One fresh question per send: the same input on both sides, nothing carried over.
    engine_->generate({{QStringLiteral("user"), prompt}}, sampling);
}

void CompareSide::stop() {
    engine_->stop();
}

void CompareSide::updateProbes() {
    engine_->setProbeConfig(mergeProbeNeeds({attention_->probeNeeds(), routing_->probeNeeds()}));
}

// ---- the window -------------------------------------------------------------------------------

CompareWindow::CompareWindow(QWidget* parent) : QWidget(parent, Qt::Window) {
    setObjectName(QStringLiteral("compareWindow"));
    setWindowTitle(tr("Compare models — ArchLens"));
    setAttribute(Qt::WA_DeleteOnClose, false);
    auto* layout = new QVBoxLayout(this);

    // Model pickers: editable, any catalog name, demo or path.
    auto* pick = new QHBoxLayout;
    auto makeBox = [this](const QString& name) {
        auto* box = new QComboBox(this);
        box->setObjectName(name);
        box->setEditable(true);
        box->setMinimumContentsLength(22);
        box->setInsertPolicy(QComboBox::NoInsert);
        for (const auto& d : archlens::demo::demo_models()) box->addItem(QStringLiteral("demo:") + QString::fromStdString(d.name));
        for (const auto& n : archlens::catalog_names()) box->addItem(QString::fromLatin1(archlens::kCatalogPrefix) + QString::fromStdString(n));
        box->setToolTip(tr("A catalog model (architecture only), a demo model, or the path of a GGUF file, model folder or config.json"));
        return box;
    };
    boxA_ = makeBox(QStringLiteral("compareModelA"));
    boxB_ = makeBox(QStringLiteral("compareModelB"));
    auto* go = new QPushButton(tr("Compare"), this);
    go->setObjectName(QStringLiteral("compareButton"));
    pick->addWidget(new QLabel(tr("A:"), this));
    pick->addWidget(boxA_, 1);
    pick->addWidget(new QLabel(tr("B:"), this));
    pick->addWidget(boxB_, 1);
    pick->addWidget(go);
    layout->addLayout(pick);
    connect(go, &QPushButton::clicked, this, &CompareWindow::compare);

    // The eight preset pairs, one click each.
    auto* presets = new QGridLayout;
    presets->setSpacing(4);
    const auto list = archlens::comparisonPresets();
    for (int i = 0; i < list.size(); ++i) {
        auto* b = new QPushButton(list[i].label, this);
        b->setObjectName(QStringLiteral("preset-%1").arg(i));
        b->setToolTip(QStringLiteral("catalog:%1  vs  catalog:%2").arg(list[i].a, list[i].b));
        connect(b, &QPushButton::clicked, this, [this, i] { loadPreset(i); });
        presets->addWidget(b, i / 4, i % 4);
        presetButtons_ << b;
    }
    layout->addLayout(presets);

    tabs_ = new QTabWidget(this);
    tabs_->setObjectName(QStringLiteral("compareTabs"));
    comparison_ = new archlens::ComparisonView(this);
    comparison_->setObjectName(QStringLiteral("comparisonView"));
    comparison_->setSpecLoader([](const QString& name) { return loadSpec(name); });
    tabs_->addTab(comparison_, tr("Architectures"));

    auto* live = new QWidget(this);
    auto* liveLayout = new QVBoxLayout(live);
    auto* row = new QHBoxLayout;
    prompt_ = new QLineEdit(live);
    prompt_->setObjectName(QStringLiteral("comparePrompt"));
    prompt_->setPlaceholderText(tr("One prompt, sent to both models"));
    prompt_->setText(tr("Explain what a KV cache is."));
    send_ = new QPushButton(tr("Send to both"), live);
    send_->setObjectName(QStringLiteral("compareSend"));
    stop_ = new QPushButton(tr("Stop"), live);
    maxTokens_ = new QSpinBox(live);
    maxTokens_->setRange(1, 4096);
    maxTokens_->setValue(64);
    maxTokens_->setPrefix(tr("max "));
    maxTokens_->setSuffix(tr(" tokens"));
    sync_ = new QCheckBox(tr("same layer and head on both sides"), live);
    sync_->setObjectName(QStringLiteral("compareSync"));
    sync_->setChecked(true);
    row->addWidget(prompt_, 1);
    row->addWidget(maxTokens_);
    row->addWidget(send_);
    row->addWidget(stop_);
    row->addWidget(sync_);
    liveLayout->addLayout(row);
    liveStatus_ = new QLabel(live);
    liveStatus_->setObjectName(QStringLiteral("compareLiveStatus"));
    liveStatus_->setWordWrap(true);
    liveLayout->addWidget(liveStatus_);
    auto* sides = new QSplitter(Qt::Horizontal, live);
    a_ = new CompareSide(QStringLiteral("A"), sides);
    b_ = new CompareSide(QStringLiteral("B"), sides);
    sides->addWidget(a_);
    sides->addWidget(b_);
    liveLayout->addWidget(sides, 1);
    tabs_->addTab(live, tr("Run both"));
    layout->addWidget(tabs_, 1);

    connect(send_, &QPushButton::clicked, this, [this] { sendPrompt({}); });
    connect(prompt_, &QLineEdit::returnPressed, this, [this] { sendPrompt({}); });
    connect(stop_, &QPushButton::clicked, this, &CompareWindow::stop);
    connect(sync_, &QCheckBox::toggled, this, &CompareWindow::setViewsSynced);
    for (CompareSide* s : {a_, b_}) {
        connect(s, &CompareSide::loaded, this, [this] {
            updateLiveState();
            // Both engines loaded: their specs are the architecture comparison too.
            if (a_->model() && b_->model() && isRunnable(modelA()) && isRunnable(modelB()) && a_->model()->source == modelA() &&
                b_->model()->source == modelB()) {
                comparison_->setModels(*a_->model()->spec, a_->model()->name, *b_->model()->spec, b_->model()->name);
                emit specsShown();
            }
        });
        connect(s, &CompareSide::failed, this, &CompareWindow::updateLiveState);
        connect(s->engine(), &EngineController::busyChanged, this, &CompareWindow::updateLiveState);
    }
    // Same layer and head on both sides: each side's choice is copied to the other.
    connect(a_->attention(), &AttentionView::probeNeedsChanged, this, [this] { syncAttention(a_->attention(), b_->attention()); });
    connect(b_->attention(), &AttentionView::probeNeedsChanged, this, [this] { syncAttention(b_->attention(), a_->attention()); });
    connect(a_->attention(), &AttentionView::querySelected, this, [this](qint64 q) {
        if (sync_->isChecked() && !syncing_) b_->attention()->selectQuery(q);
    });
    connect(b_->attention(), &AttentionView::querySelected, this, [this](qint64 q) {
        if (sync_->isChecked() && !syncing_) a_->attention()->selectQuery(q);
    });
    for (auto [from, to] : {std::pair{a_->routing(), b_->routing()}, std::pair{b_->routing(), a_->routing()}}) {
        if (auto* box = from->findChild<QComboBox*>())
            connect(box, qOverload<int>(&QComboBox::currentIndexChanged), this, [this, from, to] { syncRouting(from, to); });
    }

    updateLiveState();
    resize(1400, 900);
}

CompareWindow::~CompareWindow() = default;

QString CompareWindow::modelA() const {
    return boxA_->currentText().trimmed();
}
QString CompareWindow::modelB() const {
    return boxB_->currentText().trimmed();
}

bool CompareWindow::isRunnable(const QString& source) {
    if (source.startsWith(QStringLiteral("demo:"))) return true;
    if (source.startsWith(QString::fromLatin1(archlens::kCatalogPrefix)) || source.endsWith(QStringLiteral(".json"), Qt::CaseInsensitive))
        return false;
    const QFileInfo fi(source);
    return fi.exists();
}

std::optional<ModelSpec> CompareWindow::loadSpec(const QString& nameOrPath, QString* error) {
    QString s = nameOrPath.trimmed();
    // A bare catalog name (the presets) is a catalog reference.
    if (!s.contains(u':') && !s.contains(u'/') && archlens::catalog_config(s.toStdString())) s = QString::fromLatin1(archlens::kCatalogPrefix) + s;
    try {
        return archlens::Model::load_spec(archlens::demo::resolve_model_path(s.toStdString()));
    } catch (const std::exception& e) {
        if (error) *error = QString::fromUtf8(e.what());
        return std::nullopt;
    }
}

void CompareWindow::setModels(const QString& a, const QString& b) {
    boxA_->setCurrentText(a);
    boxB_->setCurrentText(b);
    compare();
}

void CompareWindow::compare() {
    const QString a = modelA(), b = modelB();
    if (a.isEmpty() || b.isEmpty()) return;
    if (isRunnable(a) && isRunnable(b)) {
        // The engines read the specs as they load; the comparison follows when both are in.
        if (!a_->model() || a_->model()->source != a) a_->load(a);
        if (!b_->model() || b_->model()->source != b) b_->load(b);
        if (a_->model() && b_->model() && a_->model()->source == a && b_->model()->source == b) {
            comparison_->setModels(*a_->model()->spec, a_->model()->name, *b_->model()->spec, b_->model()->name);
            emit specsShown();
        }
        updateLiveState();
        return;
    }
    // Architecture only: the specs are read off the UI thread (a GGUF header may be large).
    const quint64 req = ++specRequest_;
    auto pending = std::make_shared<Pending>();
    pending->nameA = displayName(a);
    pending->nameB = displayName(b);
    auto* w = new QFutureWatcher<QString>(this);
    connect(w, &QFutureWatcher<QString>::finished, this, [this, w, req, pending] {
        w->deleteLater();
        if (req != specRequest_) return;
        const QString err = w->result();
        if (!pending->a || !pending->b) {
            liveStatus_->setText(tr("<span style='color:#b00020'>Cannot compare: %1</span>").arg(err.toHtmlEscaped()));
            tabs_->setCurrentIndex(0);
            return;
        }
        comparison_->setModels(*pending->a, pending->nameA, *pending->b, pending->nameB);
        emit specsShown();
    });
    w->setFuture(QtConcurrent::run([a, b, pending]() -> QString {
        QString ea, eb;
        pending->a = loadSpec(a, &ea);
        pending->b = loadSpec(b, &eb);
        return !ea.isEmpty() ? a + QStringLiteral(": ") + ea : !eb.isEmpty() ? b + QStringLiteral(": ") + eb : QString();
    }));
    updateLiveState();
}

bool CompareWindow::loadPreset(int index) {
    const auto list = archlens::comparisonPresets();
    if (index < 0 || index >= list.size()) return false;
    ++specRequest_;  // a preset overrides a pending architecture load
    boxA_->setCurrentText(QString::fromLatin1(archlens::kCatalogPrefix) + list[index].a);
    boxB_->setCurrentText(QString::fromLatin1(archlens::kCatalogPrefix) + list[index].b);
    tabs_->setCurrentIndex(0);
    const bool ok = comparison_->loadPreset(index);
    if (ok) emit specsShown();
    updateLiveState();
    return ok;
}

bool CompareWindow::liveReady() const {
    return a_->model() && b_->model() && !a_->engine()->isLoading() && !b_->engine()->isLoading() && a_->model()->source == modelA() &&
           b_->model()->source == modelB();
}

void CompareWindow::updateLiveState() {
    const bool ready = liveReady();
    const bool busy = a_->isGenerating() || b_->isGenerating();
    send_->setEnabled(ready);
    stop_->setEnabled(busy);
    prompt_->setEnabled(ready);
    QStringList why;
    for (const QString& m : {modelA(), modelB()})
        if (!isRunnable(m)) why << tr("%1 is architecture only (no weights)").arg(m.toHtmlEscaped());
    if (!why.isEmpty())
        liveStatus_->setText(tr("The live half needs two models that can run (demo models, GGUF files, model folders): %1.").arg(why.join(QStringLiteral("; "))));
    else if (a_->engine()->isLoading() || b_->engine()->isLoading())
        liveStatus_->setText(tr("Loading both models…"));
    else if (ready)
        liveStatus_->setText(busy ? tr("Both answering…") : tr("Both models are loaded: one prompt goes to both, answered side by side."));
    else
        liveStatus_->setText(tr("Press Compare to load both models."));
    emit liveReadyChanged(ready);
}

void CompareWindow::sendPrompt(const QString& text) {
    const QString prompt = text.isEmpty() ? prompt_->text().trimmed() : text;
    if (prompt.isEmpty() || !liveReady()) return;
    if (!text.isEmpty()) prompt_->setText(text);
    // The same settings and seed on both sides: the only difference is the model.
    SamplingSettings s;
    s.maxTokens = maxTokens_->value();
    s.fixedSeed = true;
    s.seed = 42;
    tabs_->setCurrentIndex(1);
    a_->send(prompt, s);
    b_->send(prompt, s);
    updateLiveState();
}

void CompareWindow::stop() {
    a_->stop();
    b_->stop();
}

bool CompareWindow::viewsSynced() const {
    return sync_->isChecked();
}

void CompareWindow::setViewsSynced(bool on) {
    if (sync_->isChecked() != on) sync_->setChecked(on);
    if (on) {
        syncAttention(a_->attention(), b_->attention());
        syncRouting(a_->routing(), b_->routing());
    }
}

void CompareWindow::syncAttention(AttentionView* from, AttentionView* to) {
    if (syncing_ || !sync_->isChecked()) return;
    syncing_ = true;
    // Models of different depth: the other side keeps its layer when it has no such layer.
    to->setLayer(from->layer());
    if (from->aggregate() == AttentionView::Aggregate::Head)
        to->setHead(from->head());
    else
        to->setAggregate(from->aggregate());
    if (to->thumbnailsVisible() != from->thumbnailsVisible()) to->setThumbnailsVisible(from->thumbnailsVisible());
    syncing_ = false;
}

void CompareWindow::syncRouting(RoutingView* from, RoutingView* to) {
    if (syncing_ || !sync_->isChecked() || from->layer() < 0) return;
    syncing_ = true;
    to->setLayer(from->layer());
    syncing_ = false;
}
