#include "app/gui/main_window.h"

#include <QAction>
#include <QActionGroup>
#include <QApplication>
#include <QCloseEvent>
#include <QDockWidget>
#include <QFileDialog>
#include <QLabel>
#include <QMenu>
#include <QMenuBar>
#include <QMessageBox>
#include <QMimeData>
#include <QProgressBar>
#include <QPushButton>
#include <QSettings>
#include <QStatusBar>
#include <QToolBar>
#include <QToolButton>

#include "app/gui/architecture_panel.h"
#include "app/gui/chat_panel.h"
#include "app/gui/compare_window.h"
#include "app/gui/conversation_list.h"
#include "app/gui/conversation_store.h"
#include "app/gui/engine_worker.h"
#include "app/gui/internals_panels.h"
#include "app/gui/lessons_window.h"
#include "app/gui/model_library.h"
#include "app/gui/panel_placeholder.h"
#include "engine/backend.h"
#include "engine/demo.h"

namespace {
// Bump when the default dock arrangement changes: an older saved state is then ignored.
constexpr int kLayoutVersion = 1;
}  // namespace

MainWindow::MainWindow(const MainWindowOptions& options, QWidget* parent)
    : QMainWindow(parent),
      engine_(new EngineController(this)),
      store_(new ConversationStore(options.conversationsDir, this)) {
    setObjectName(QStringLiteral("mainWindow"));
    setWindowTitle(tr("ArchLens"));
    setAcceptDrops(true);
    setDockNestingEnabled(true);
    setDockOptions(QMainWindow::AnimatedDocks | QMainWindow::AllowNestedDocks |
                   QMainWindow::AllowTabbedDocks);

    library_ = new ModelLibrary(engine_, this);
    chat_ = new ChatPanel(engine_, store_, this);
    conversations_ = new ConversationList(store_, this);
    addPanel(Panel::Library, tr("Model library"), library_);
    addPanel(Panel::Conversations, tr("Conversations"), conversations_);
    addPanel(Panel::Chat, tr("Chat"), chat_);
    addPanel(Panel::Architecture, tr("Architecture"),
             new PanelPlaceholder(tr("Architecture diagram"),
                                  tr("The loaded model's blocks, lit as it runs.")));
    addPanel(Panel::Attention, tr("Attention"),
             new PanelPlaceholder(
                 tr("Attention"),
                 tr("Query × key heatmaps per layer and head, live while it answers.")));
    addPanel(Panel::Routing, tr("Routing"),
             new PanelPlaceholder(tr("Expert routing"),
                                  tr("Tokens × experts for mixture-of-experts layers.")));
    addPanel(Panel::KvCache, tr("KV cache"),
             new PanelPlaceholder(tr("KV cache"),
                                  tr("Bytes per layer, by attention kind, as the context grows.")));
    addPanel(Panel::TopK, tr("Next token"),
             new PanelPlaceholder(tr("Next token"), tr("Top-k probabilities of the next token.")));
    buildLayout();
    new ArchitecturePanel(
        this);                  // the diagram in the architecture dock (finds itself by findChild)
    new InternalsPanels(this);  // attention, routing, KV cache and next-token views in their docks
    buildActions();
    buildStatusBar();

    connect(conversations_, &ConversationList::openRequested, chat_, &ChatPanel::openConversation);
    connect(conversations_, &ConversationList::newRequested, chat_, &ChatPanel::newConversation);
    connect(conversations_, &ConversationList::deleted, this, [this](const QString& id) {
        if (chat_->conversation().id == id) chat_->newConversation();
    });
    connect(chat_, &ChatPanel::conversationChanged, this, [this](const QString& id) {
        conversations_->setCurrent(id);
        QSettings().setValue("chat/lastConversation", id);
    });
    connect(chat_, &ChatPanel::errorOccurred, this, &MainWindow::showError);
    connect(engine_, &EngineController::modelLoaded, this, &MainWindow::onModelLoaded);
    connect(engine_, &EngineController::loadFailed, this,
            [this](const QString& source, const QString& msg, LoadFailure kind) {
                if (kind == LoadFailure::Cancelled)
                    statusBar()->showMessage(msg, 5000);
                else if (kind == LoadFailure::Refused)
                    showError(tr("Model too large for this machine's memory"), msg);
                else
                    showError(tr("Cannot open the model"),
                              msg.contains(source) || source.isEmpty()
                                  ? msg
                                  : source + QStringLiteral(":\n") + msg);
                updateStatus();
            });

    QSettings settings;
    restoreGeometry(settings.value("window/geometry").toByteArray());
    if (settings.value("window/layoutVersion").toInt() == kLayoutVersion)
        restoredState_ = restoreState(settings.value("window/state").toByteArray(), kLayoutVersion);
    else
        resize(1440, 900);

    if (options.restoreLastConversation) {
        const QString last = settings.value("chat/lastConversation").toString();
        if (!last.isEmpty() && QFile::exists(store_->filePath(last))) chat_->openConversation(last);
    }
    if (options.openDemoOnFirstLaunch && !settings.value("app/launched").toBool())
        engine_->loadModel(kFirstDemo);
    settings.setValue("app/launched", true);
    library_->rescan();
    updateStatus();
}

MainWindow::~MainWindow() {
    chat_->flushSave();
    // The panels go while this window is still whole: QWidget's destructor would delete them
    // after our members are gone, and a panel that asks the window something on its way out
    // (an event filter on a dock, say) would read freed memory.
    for (Panel p : docks_.keys()) delete docks_.take(p);
}

QString MainWindow::panelKey(Panel p) {
    switch (p) {
        case Panel::Library:
            return QStringLiteral("library");
        case Panel::Conversations:
            return QStringLiteral("conversations");
        case Panel::Chat:
            return QStringLiteral("chat");
        case Panel::Architecture:
            return QStringLiteral("architecture");
        case Panel::Attention:
            return QStringLiteral("attention");
        case Panel::Routing:
            return QStringLiteral("routing");
        case Panel::KvCache:
            return QStringLiteral("kv-cache");
        case Panel::TopK:
            return QStringLiteral("top-k");
    }
    return {};
}

QDockWidget* MainWindow::addPanel(Panel p, const QString& title, QWidget* w) {
    auto* d = new QDockWidget(title, this);
    d->setObjectName(QStringLiteral("dock-") + panelKey(p));  // saveState() keys docks by name
    d->setWidget(w);
    d->setFeatures(QDockWidget::DockWidgetClosable | QDockWidget::DockWidgetMovable |
                   QDockWidget::DockWidgetFloatable);
    docks_.insert(p, d);
    return d;
}

void MainWindow::setPanelWidget(Panel p, QWidget* w) {
    QDockWidget* d = docks_.value(p);
    if (!d) return;
    QWidget* old = d->widget();
    d->setWidget(w);
    if (old) old->deleteLater();
}

void MainWindow::buildLayout() {
    // No central widget: the chat is a dock like the others, so every panel can move or close.
    // Rows: [library | chat | architecture] over [attention | routing | KV cache].
    auto* lib = docks_[Panel::Library];
    addDockWidget(Qt::LeftDockWidgetArea, lib);
    splitDockWidget(lib, docks_[Panel::Chat], Qt::Horizontal);
    splitDockWidget(lib, docks_[Panel::Conversations], Qt::Vertical);
    addDockWidget(Qt::RightDockWidgetArea, docks_[Panel::Architecture]);
    splitDockWidget(docks_[Panel::Architecture], docks_[Panel::TopK], Qt::Vertical);
    addDockWidget(Qt::BottomDockWidgetArea, docks_[Panel::Attention]);
    splitDockWidget(docks_[Panel::Attention], docks_[Panel::Routing], Qt::Horizontal);
    splitDockWidget(docks_[Panel::Routing], docks_[Panel::KvCache], Qt::Horizontal);
    defaultState_ = saveState(kLayoutVersion);
}

void MainWindow::applyDefaultSizes() {
    // Sizes only stick once the window has its real geometry, hence from the first show.
    auto* lib = docks_[Panel::Library];
    const int w = std::max(width(), 900), h = std::max(height(), 600);
    // One call per dock area: resizeDocks does not trade space between the left and right areas.
    resizeDocks({docks_[Panel::Architecture]}, {w * 24 / 100}, Qt::Horizontal);
    resizeDocks({lib, docks_[Panel::Chat]}, {w * 28 / 100, w * 48 / 100}, Qt::Horizontal);
    resizeDocks({lib, docks_[Panel::Conversations]}, {h * 40 / 100, h * 20 / 100}, Qt::Vertical);
    resizeDocks({docks_[Panel::Architecture], docks_[Panel::TopK]}, {h * 35 / 100, h * 25 / 100},
                Qt::Vertical);
    resizeDocks({docks_[Panel::Attention], docks_[Panel::Routing], docks_[Panel::KvCache]},
                {w * 45 / 100, w * 30 / 100, w * 25 / 100}, Qt::Horizontal);
    resizeDocks({docks_[Panel::Attention]}, {h * 28 / 100}, Qt::Vertical);
}

void MainWindow::showEvent(QShowEvent* e) {
    QMainWindow::showEvent(e);
    if (!sized_) {
        sized_ = true;
        if (!restoredState_) applyDefaultSizes();
    }
}

void MainWindow::buildActions() {
    auto* open = new QAction(tr("&Open model…"), this);
    open->setShortcut(QKeySequence::Open);
    connect(open, &QAction::triggered, library_, &ModelLibrary::openFileDialog);
    auto* openFolder = new QAction(tr("Open model &folder…"), this);
    connect(openFolder, &QAction::triggered, library_, &ModelLibrary::openFolderDialog);
    auto* newChat = new QAction(tr("&New chat"), this);
    newChat->setShortcut(QKeySequence::New);
    connect(newChat, &QAction::triggered, chat_, &ChatPanel::newConversation);
    auto* stop = new QAction(tr("&Stop"), this);
    stop->setEnabled(false);
    connect(engine_, &EngineController::busyChanged, stop,
            [this, stop] { stop->setEnabled(engine_->isGenerating()); });
    stop->setShortcut(Qt::Key_Escape);
    stop->setShortcutContext(Qt::WindowShortcut);
    connect(stop, &QAction::triggered, chat_, &ChatPanel::stop);
    auto* quit = new QAction(tr("&Quit"), this);
    quit->setShortcut(QKeySequence::Quit);
    connect(quit, &QAction::triggered, this, &QWidget::close);
    auto* reset = new QAction(tr("&Reset layout"), this);
    connect(reset, &QAction::triggered, this, &MainWindow::resetLayout);
    auto* present = new QAction(tr("&Presentation mode"), this);
    present->setShortcut(Qt::Key_F11);
    connect(present, &QAction::triggered, this, &MainWindow::togglePresentation);
    auto* exportView = new QAction(tr("&Export focused view as PNG…"), this);
    exportView->setShortcut(Qt::CTRL | Qt::Key_E);
    connect(exportView, &QAction::triggered, this, &MainWindow::exportFocusedView);

    auto* openCatalog = new QAction(tr("Open &catalog model…"), this);
    openCatalog->setToolTip(
        tr("A well-known model's real configuration, architecture only (no chat)"));
    connect(openCatalog, &QAction::triggered, findChild<ArchitecturePanel*>(),
            &ArchitecturePanel::openCatalogDialog);
    auto* compare = new QAction(tr("&Compare models…"), this);
    connect(compare, &QAction::triggered, this, [this] {
        auto* w = findChild<CompareWindow*>();
        if (!w) w = new CompareWindow(this);
        w->show();
        w->raise();
        w->activateWindow();
    });

    auto* lessons = new QAction(tr("&Lessons…"), this);
    lessons->setToolTip(tr("Guided lessons on each 2025 architecture idea"));
    connect(lessons, &QAction::triggered, this, [this] {
        auto* w = findChild<lessons::LessonsWindow*>();
        if (!w) w = new lessons::LessonsWindow(this);
        w->show();
        w->raise();
        w->activateWindow();
    });

    auto* demoMenu = new QMenu(tr("Demo models"), this);
    for (const auto& d : archlens::demo::demo_models()) {
        const QString source = QStringLiteral("demo:") + QString::fromStdString(d.name);
        QAction* a = demoMenu->addAction(QString::fromStdString(d.title) + QStringLiteral("  —  ") +
                                         QString::fromStdString(d.description));
        connect(a, &QAction::triggered, this, [this, source] { engine_->loadModel(source); });
    }

    // Where models run: automatic (the GPU when the model fits there), the CPU, or the GPU. A
    // change reloads the open model there; the conversation stays (the next answer recomputes it).
    auto* backendMenu = new QMenu(tr("Run models on"), this);
    backendMenu->setObjectName(QStringLiteral("backendMenu"));
    {
        auto* group = new QActionGroup(backendMenu);
        const QString gpuWhyNot = QString::fromStdString(archlens::gpu_unavailable_reason());
        auto add = [&](const QString& label, const QString& value, const QString& tip) {
            QAction* a = backendMenu->addAction(label);
            a->setObjectName(QStringLiteral("backend-") + value);
            a->setCheckable(true);
            a->setChecked(EngineController::backend() == value);
            a->setToolTip(tip);
            a->setStatusTip(tip);
            group->addAction(a);
            connect(a, &QAction::triggered, this, [this, value, label] { setBackend(value, label); });
            return a;
        };
        add(tr("Automatic"), QStringLiteral("auto"),
            gpuWhyNot.isEmpty() ? tr("The GPU when the model fits in its free memory, else the CPU")
                                : tr("The CPU here: %1").arg(gpuWhyNot));
        add(tr("CPU"), QStringLiteral("cpu"), tr("Always the CPU backend"));
        QAction* gpu = add(tr("GPU (CUDA)"), QStringLiteral("cuda"),
                           gpuWhyNot.isEmpty() ? tr("Always the CUDA backend (a model it cannot run is refused, with the reason)")
                                               : tr("Unavailable: %1").arg(gpuWhyNot));
        gpu->setEnabled(gpuWhyNot.isEmpty() || EngineController::backend() == QStringLiteral("cuda"));
        backendMenu->setToolTipsVisible(true);
    }

    QMenu* file = menuBar()->addMenu(tr("&File"));
    file->addAction(open);
    file->addAction(openFolder);
    file->addAction(openCatalog);
    file->addMenu(demoMenu);
    file->addMenu(backendMenu);
    file->addSeparator();
    file->addAction(newChat);
    file->addAction(exportView);
    file->addSeparator();
    file->addAction(quit);
    QMenu* chatMenu = menuBar()->addMenu(tr("&Chat"));
    chatMenu->addAction(newChat);
    chatMenu->addAction(stop);
    QMenu* view = menuBar()->addMenu(tr("&View"));
    for (QDockWidget* d : docks_) view->addAction(d->toggleViewAction());
    view->addSeparator();
    view->addAction(compare);
    view->addAction(lessons);
    view->addSeparator();
    view->addAction(reset);
    view->addAction(present);

    QToolBar* tb = addToolBar(tr("Main"));
    tb->setObjectName(QStringLiteral("toolbar-main"));
    tb->setMovable(false);
    tb->addAction(open);
    auto* demoButton = new QToolButton(tb);
    demoButton->setText(tr("Demo models"));
    demoButton->setToolTip(
        tr("Tiny built-in models of every supported architecture. Random weights: they show the "
           "machinery, not meaning."));
    demoButton->setMenu(demoMenu);
    demoButton->setPopupMode(QToolButton::InstantPopup);
    tb->addWidget(demoButton);
    // Gemma 3n MatFormer: the sizes nested in the loaded model (shown only when it has some).
    sliceButton_ = new QToolButton(tb);
    sliceButton_->setObjectName(QStringLiteral("matformerSize"));
    sliceButton_->setText(tr("MatFormer size"));
    sliceButton_->setToolTip(tr("Run a smaller model nested in this one (MatFormer slice): fewer layers and "
                                "narrower FFNs read from the same file."));
    sliceButton_->setPopupMode(QToolButton::InstantPopup);
    sliceButton_->setMenu(new QMenu(sliceButton_));
    sliceAction_ = tb->addWidget(sliceButton_);
    sliceAction_->setVisible(false);
    tb->addAction(compare);
    tb->addAction(lessons);
    tb->addSeparator();
    tb->addAction(newChat);
    tb->addAction(stop);
    auto* spacer = new QWidget(tb);
    spacer->setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Preferred);
    tb->addWidget(spacer);
    modelLabel_ = new QLabel(tr("no model loaded"), tb);
    modelLabel_->setObjectName(QStringLiteral("modelLabel"));
    modelLabel_->setContentsMargins(8, 0, 8, 0);
    tb->addWidget(modelLabel_);
}

void MainWindow::buildStatusBar() {
    statusModel_ = new QLabel(this);
    statusModel_->setObjectName(QStringLiteral("statusModel"));
    statusMemory_ = new QLabel(this);
    statusMemory_->setToolTip(
        tr("Weights as mapped from the file, the KV cache as allocated by the engine (measured), "
           "and an estimate for working buffers."));
    loadLabel_ = new QLabel(this);
    loadProgress_ = new QProgressBar(this);
    loadProgress_->setMaximumWidth(200);
    loadCancel_ = new QPushButton(tr("Cancel"), this);
    loadCancel_->setFlat(true);
    statusBar()->addWidget(statusModel_, 1);
    statusBar()->addPermanentWidget(loadLabel_);
    statusBar()->addPermanentWidget(loadProgress_);
    statusBar()->addPermanentWidget(loadCancel_);
    statusBar()->addPermanentWidget(statusMemory_);
    loadLabel_->hide();
    loadProgress_->hide();
    loadCancel_->hide();
    connect(loadCancel_, &QPushButton::clicked, engine_, &EngineController::cancelLoad);
    connect(engine_, &EngineController::loadStarted, this, [this](const QString& source) {
        loadLabel_->setText(tr("Loading %1…").arg(source));
        loadProgress_->setRange(0, 0);
        loadLabel_->show();
        loadProgress_->show();
        loadCancel_->show();
    });
    connect(engine_, &EngineController::loadProgress, this, [this](const QString& phase, int pct) {
        loadLabel_->setText(phase);
        if (pct < 0)
            loadProgress_->setRange(0, 0);
        else {
            loadProgress_->setRange(0, 100);
            loadProgress_->setValue(pct);
        }
    });
    connect(engine_, &EngineController::busyChanged, this, [this] {
        const bool loading = engine_->isLoading();
        loadLabel_->setVisible(loading);
        loadProgress_->setVisible(loading);
        loadCancel_->setVisible(loading);
    });
    // The KV cache grows per token; the status follows at a human rate, not per token.
    statusTimer_.setInterval(250);
    connect(&statusTimer_, &QTimer::timeout, this, &MainWindow::updateStatus);
    statusTimer_.start();
}

void MainWindow::setBackend(const QString& value, const QString& label) {
    if (value == EngineController::backend()) return;
    EngineController::setBackend(value);
    const ModelInfoPtr m = engine_->model();
    if (m && !m->architectureOnly) {
        statusBar()->showMessage(tr("Reloading %1 on: %2").arg(m->name, label), 5000);
        engine_->loadSlice(m->source, m->slice, false);
    } else {
        statusBar()->showMessage(tr("Models now load on: %1").arg(label), 5000);
    }
}

void MainWindow::onModelLoaded(const ModelInfoPtr& info) {
    setWindowTitle(tr("ArchLens — %1").arg(info->name));
    QString label =
        QStringLiteral("<b>%1</b> · %2 · %3")
            .arg(info->name.toHtmlEscaped(), info->weightTypes.section(u' ', 0, 0), info->backend);
    if (info->isDemo) label += tr(" · <span style='color:#8a6d00'>random weights</span>");
    modelLabel_->setText(label);
    modelLabel_->setToolTip(info->filePath);
    QMenu* sizes = sliceButton_->menu();
    sizes->clear();
    if (!info->slices.isEmpty()) {
        auto* group = new QActionGroup(sizes);
        auto add = [&](const QString& label, const QString& slice) {
            QAction* a = sizes->addAction(label);
            a->setCheckable(true);
            a->setChecked(slice == info->slice);
            group->addAction(a);
            const QString source = info->source;
            const bool archOnly = info->architectureOnly;
            connect(a, &QAction::triggered, this, [this, source, slice, archOnly] { engine_->loadSlice(source, slice, archOnly); });
        };
        add(tr("Whole model"), QString());
        sizes->addSeparator();
        for (int i = 0; i < info->slices.size(); ++i) add(info->sliceLabels[i], info->slices[i]);
        sliceButton_->setText(info->slice.isEmpty() ? tr("MatFormer size: whole") : tr("MatFormer size: %1").arg(info->slice));
    }
    sliceAction_->setVisible(!info->slices.isEmpty());
    if (!info->templateRecognized)
        statusBar()->showMessage(
            tr("The model's chat template is not one ArchLens knows; a generic format is used."),
            10000);
    updateStatus();
}

QString MainWindow::statusText() const {
    return statusModel_->text() + QStringLiteral(" | ") + statusMemory_->text();
}

void MainWindow::updateStatus() {
    const ModelInfoPtr m = engine_->model();
    if (!m) {
        statusModel_->setText(
            tr("No model loaded — open one (Ctrl+O), drop a file here, or pick a demo."));
        statusMemory_->clear();
        return;
    }
    const auto& s = *m->spec;
    if (m->architectureOnly) {
        statusModel_->setText(tr("%1 · %2 layers · trained context %3 · architecture only: read "
                                 "from its config, no weights, no chat")
                                  .arg(m->name)
                                  .arg(s.n_layers)
                                  .arg(m->contextSize));
        statusMemory_->setText(tr("memory: nothing loaded"));
        return;
    }
    statusModel_->setText(
        tr("%1 · %2 layers · context %3 · %4 (%5) · loaded in %6 ms")
            .arg(m->name)
            .arg(s.n_layers)
            .arg(m->contextSize)
            .arg(m->backend)
            .arg(m->threads == 1 ? tr("1 thread") : tr("%1 threads").arg(m->threads))
            .arg(m->loadMs, 0, 'f', 0));
    statusModel_->setToolTip(m->backendNote);
    if (m->onGpu) {  // the KV cache is allocated for the whole context on the device
        const quint64 total = m->deviceWeights + m->deviceKv + m->deviceBuffers;
        statusMemory_->setText(tr("GPU memory (%1): weights %2 + KV %3 + buffers %4 = %5 · %6 free")
                                   .arg(m->device, formatBytes(m->deviceWeights), formatBytes(m->deviceKv),
                                        formatBytes(m->deviceBuffers), formatBytes(total), formatBytes(m->deviceFree)));
        statusMemory_->setToolTip(m->backendNote);
        return;
    }
    const quint64 kv = engine_->kvBytes();
    statusMemory_->setText(tr("memory: weights %1 + KV %2%5 + buffers ~%3 = %4")
                               .arg(formatBytes(m->weightBytes), formatBytes(kv),
                                    formatBytes(m->memory.buffers),
                                    formatBytes(m->weightBytes + kv + m->memory.buffers),
                                    m->memory.kvF16 ? tr(" (f16 cache: f32 would not fit)") : QString()));
}

void MainWindow::showError(const QString& title, const QString& message) {
    lastErrorTitle_ = title;
    lastErrorText_ = message;
    // open(), not exec(): the event loop, the engine and the tests keep running behind it.
    auto* box = new QMessageBox(QMessageBox::Warning, title, message, QMessageBox::Ok, this);
    box->setAttribute(Qt::WA_DeleteOnClose);
    box->setObjectName(QStringLiteral("errorBox"));
    box->open();
    lastErrorBox_ = box;
    emit errorShown(title, message);
}

void MainWindow::resetLayout() {
    for (QDockWidget* d : docks_) {
        d->setFloating(false);
        d->show();
    }
    restoreState(defaultState_, kLayoutVersion);
    applyDefaultSizes();
}

void MainWindow::togglePresentation() {
    if (isFullScreen())
        showNormal();
    else
        showFullScreen();
}

void MainWindow::exportFocusedView() {
    QWidget* target = nullptr;
    QString key = QStringLiteral("window");
    for (auto it = docks_.cbegin(); it != docks_.cend(); ++it) {
        if (it.value()->isAncestorOf(QApplication::focusWidget())) {
            target = it.value()->widget();
            key = panelKey(it.key());
        }
    }
    const QPixmap pix = target ? target->grab() : grab();
    auto* dlg = new QFileDialog(this, tr("Export view"), QStringLiteral("archlens-%1.png").arg(key),
                                tr("PNG images (*.png)"));
    dlg->setAcceptMode(QFileDialog::AcceptSave);
    dlg->setAttribute(Qt::WA_DeleteOnClose);
    connect(dlg, &QFileDialog::fileSelected, this, [this, pix](const QString& file) {
        if (!pix.save(file, "PNG"))
            showError(tr("Export failed"), tr("Could not write %1").arg(file));
    });
    dlg->open();
}

void MainWindow::closeEvent(QCloseEvent* e) {
    QSettings settings;
    settings.setValue("window/geometry", saveGeometry());
    settings.setValue("window/state", saveState(kLayoutVersion));
    settings.setValue("window/layoutVersion", kLayoutVersion);
    // The engine controller's destructor stops and joins the worker (within one token).
    engine_->stop();
    chat_->flushSave();
    QMainWindow::closeEvent(e);
}

void MainWindow::dragEnterEvent(QDragEnterEvent* e) {
    if (ModelLibrary::acceptsDrop(e->mimeData())) e->acceptProposedAction();
}

void MainWindow::dropEvent(QDropEvent* e) {
    const QString path = ModelLibrary::droppedPath(e->mimeData());
    if (path.isEmpty()) return;
    e->acceptProposedAction();
    library_->loadPath(path);
}
