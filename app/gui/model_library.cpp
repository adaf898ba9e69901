#include "app/gui/model_library.h"

#include <QDragEnterEvent>
#include <QFileDialog>
#include <QFileInfo>
#include <QHBoxLayout>
#include <QHeaderView>
#include <QLabel>
#include <QMimeData>
#include <QPushButton>
#include <QSettings>
#include <QTreeWidget>
#include <QVBoxLayout>
#include <QtConcurrent>

#include "app/gui/catalog_dialog.h"
#include "app/gui/engine_worker.h"
#include "engine/demo.h"

namespace {

// What decides a pick first (fits? how big? which quantization?), the architecture last.
enum Column { ColName, ColMemory, ColSize, ColWeights, ColParams, ColArch, ColCount };
constexpr int kEntryRole = Qt::UserRole + 1;  // index into entries_
constexpr int kMaxRecent = 10;

std::vector<ModelEntry> demoEntries() {
    std::vector<ModelEntry> v;
    for (const auto& d : archlens::demo::demo_models()) {
        ModelEntry e;
        e.path = QStringLiteral("demo:") + QString::fromStdString(d.name);
        e.name = QString::fromStdString(d.title);
        e.source = QStringLiteral("demo");
        e.description = QString::fromStdString(d.description);
        v.push_back(e);
    }
    return v;
}

}  // namespace

ModelLibrary::ModelLibrary(EngineController* engine, QWidget* parent)
    : QWidget(parent), engine_(engine), roots_(DiscoveryRoots::fromEnvironment()) {
    setObjectName(QStringLiteral("modelLibrary"));
    setAcceptDrops(true);
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(6, 6, 6, 6);

    auto* buttons = new QHBoxLayout;
    auto* openFile = new QPushButton(tr("Open file…"), this);
    openFile->setToolTip(tr("Open a GGUF file (Ctrl+O)"));
    auto* openFolder = new QPushButton(tr("Open folder…"), this);
    openFolder->setToolTip(tr("Open a Hugging Face model folder (config.json + *.safetensors)"));
    auto* openCatalog = new QPushButton(tr("Catalog…"), this);
    openCatalog->setObjectName(QStringLiteral("openCatalogButton"));
    openCatalog->setToolTip(
        tr("Open catalog model…: a well-known model's real configuration, architecture only (no "
           "chat)"));
    connect(openCatalog, &QPushButton::clicked, this, [this] {
        auto* dlg = new CatalogDialog(window());
        dlg->setAttribute(Qt::WA_DeleteOnClose);
        connect(dlg, &CatalogDialog::catalogModelChosen, engine_,
                &EngineController::loadArchitecture);
        dlg->open();
    });
    auto* rescanButton = new QPushButton(tr("Rescan"), this);
    rescanButton->setToolTip(
        tr("Look again in the Hugging Face cache, Ollama and LM Studio folders"));
    buttons->addWidget(openFile);
    buttons->addWidget(openFolder);
    buttons->addWidget(openCatalog);
    buttons->addStretch(1);
    buttons->addWidget(rescanButton);
    layout->addLayout(buttons);

    tree_ = new QTreeWidget(this);
    tree_->setObjectName(QStringLiteral("modelTree"));
    tree_->setColumnCount(ColCount);
    tree_->setHeaderLabels(
        {tr("Model"), tr("Memory"), tr("Size"), tr("Weights"), tr("Params"), tr("Architecture")});
    tree_->setRootIsDecorated(true);
    tree_->setUniformRowHeights(true);
    tree_->setAlternatingRowColors(true);
    tree_->header()->setStretchLastSection(false);
    // The name gets the room; the facts columns fit their contents and scroll if the dock is
    // narrow.
    tree_->header()->setSectionResizeMode(ColName, QHeaderView::Interactive);
    tree_->header()->resizeSection(ColName, 170);
    for (int c = ColName + 1; c < ColCount; ++c)
        tree_->header()->setSectionResizeMode(c, QHeaderView::ResizeToContents);
    demoGroup_ = new QTreeWidgetItem(
        tree_, {tr("Demo models — random weights: shows the machinery, not meaning")});
    recentGroup_ = new QTreeWidgetItem(tree_, {tr("Recent")});
    machineGroup_ = new QTreeWidgetItem(tree_, {tr("On this machine")});
    for (QTreeWidgetItem* g : {demoGroup_, recentGroup_, machineGroup_}) {
        g->setFirstColumnSpanned(true);
        g->setFlags(Qt::ItemIsEnabled);
        QFont f = g->font(0);
        f.setBold(true);
        g->setFont(0, f);
        g->setExpanded(true);
    }
    layout->addWidget(tree_, 1);

    details_ = new QLabel(this);
    details_->setObjectName(QStringLiteral("modelDetails"));
    details_->setWordWrap(true);
    details_->setTextInteractionFlags(Qt::TextSelectableByMouse);
    details_->setText(
        tr("Double-click a model to load it, or drop a GGUF file or a model folder here."));
    layout->addWidget(details_);

    connect(openFile, &QPushButton::clicked, this, &ModelLibrary::openFileDialog);
    connect(openFolder, &QPushButton::clicked, this, &ModelLibrary::openFolderDialog);
    connect(rescanButton, &QPushButton::clicked, this, &ModelLibrary::rescan);
    connect(tree_, &QTreeWidget::itemActivated, this, [this](QTreeWidgetItem* item) {
        const QVariant v = item->data(0, kEntryRole);
        if (v.isValid()) loadPath(entries_[size_t(v.toInt())].path);
    });
    connect(tree_, &QTreeWidget::currentItemChanged, this, &ModelLibrary::showDetails);
    connect(&watcher_, &QFutureWatcher<std::vector<ModelEntry>>::finished, this, [this] {
        entries_ = watcher_.result();
        populate();
        if (rescanPending_) {  // asked again while scanning: that answer is the one that counts
            rescanPending_ = false;
            rescan();
            return;
        }
        emit scanFinished();
    });
    connect(engine_, &EngineController::modelLoaded, this, [this](const ModelInfoPtr& info) {
        const bool known = recentModels().contains(info->source);
        addRecent(info->source);
        if (!known) rescan();
        markLoaded();
    });

    // Show the demos and recent entries at once; sizes and fit arrive with the scan.
    for (const ModelEntry& e : demoEntries()) entries_.push_back(e);
    populate();
}

ModelLibrary::~ModelLibrary() {
    watcher_.waitForFinished();
}

QStringList ModelLibrary::recentModels() const {
    return QSettings().value("library/recent").toStringList();
}

void ModelLibrary::addRecent(const QString& path) {
    if (path.startsWith(QStringLiteral("demo:"))) return;  // demos have their own group
    QStringList r = recentModels();
    r.removeAll(path);
    r.prepend(path);
    while (r.size() > kMaxRecent) r.removeLast();
    QSettings().setValue("library/recent", r);
}

void ModelLibrary::rescan() {
    if (watcher_.isRunning()) {
        rescanPending_ = true;
        return;
    }
    const DiscoveryRoots roots = roots_;
    const QStringList recent = recentModels();
    const quint64 budget = memoryBudget();
    const qint64 cap = engine_->contextCap();
    watcher_.setFuture(QtConcurrent::run([roots, recent, budget, cap] {
        std::vector<ModelEntry> all = demoEntries();
        for (const QString& p : recent)
            all.push_back({p, QFileInfo(p).fileName().isEmpty() ? p : QFileInfo(p).fileName(),
                           QStringLiteral("recent"), p});
        for (ModelEntry& e : discoverModels(roots)) all.push_back(std::move(e));
        for (ModelEntry& e : all) e = inspectModel(std::move(e), budget, cap);
        return all;
    }));
}

void ModelLibrary::populate() {
    const QString current =
        tree_->currentItem() ? tree_->currentItem()->data(0, Qt::UserRole).toString() : QString();
    for (QTreeWidgetItem* g : {demoGroup_, recentGroup_, machineGroup_})
        qDeleteAll(g->takeChildren());
    for (int i = 0; i < int(entries_.size()); ++i) {
        const ModelEntry& e = entries_[size_t(i)];
        QTreeWidgetItem* group = e.source == u"demo"     ? demoGroup_
                                 : e.source == u"recent" ? recentGroup_
                                                         : machineGroup_;
        auto* item = new QTreeWidgetItem(group);
        item->setData(0, kEntryRole, i);
        item->setData(0, Qt::UserRole, e.path);
        fillItem(item, e);
        if (e.path == current) tree_->setCurrentItem(item);
    }
    machineGroup_->setText(
        0, machineGroup_->childCount()
               ? tr("On this machine")
               : tr("On this machine (none found in the Hugging Face cache, Ollama or LM Studio)"));
    recentGroup_->setHidden(recentGroup_->childCount() == 0);
    markLoaded();
}

void ModelLibrary::fillItem(QTreeWidgetItem* item, const ModelEntry& e) {
    item->setText(ColName, e.name);
    QString tip = e.path;
    if (!e.description.isEmpty() && e.description != e.path) tip = e.description + u'\n' + e.path;
    if (e.source == u"ollama") tip += tr("\n(Ollama store)");
    if (e.source == u"lmstudio") tip += tr("\n(LM Studio)");
    if (e.source == u"huggingface") tip += tr("\n(Hugging Face cache)");
    item->setToolTip(ColName, tip);
    if (!e.inspected) {
        item->setText(ColMemory, tr("…"));
        return;
    }
    if (!e.error.isEmpty()) {
        item->setText(ColMemory, tr("unreadable"));
        item->setForeground(ColMemory, QColor(160, 40, 40));
        item->setToolTip(ColMemory, e.error);
        return;
    }
    item->setText(ColArch, e.architecture);
    item->setText(ColParams, e.parameters);
    item->setText(ColSize, formatBytes(e.bytes));
    item->setText(ColWeights, e.weightType);
    item->setText(ColMemory, QStringLiteral("● ") + e.memory.fitLabel());
    item->setForeground(ColMemory, fitColor(e.memory.fit));
    item->setToolTip(ColMemory, e.memory.summary());
}

void ModelLibrary::markLoaded() {
    const ModelInfoPtr m = engine_->model();
    for (QTreeWidgetItem* g : {demoGroup_, recentGroup_, machineGroup_}) {
        for (int i = 0; i < g->childCount(); ++i) {
            QTreeWidgetItem* item = g->child(i);
            QFont f = item->font(ColName);
            f.setBold(m && item->data(0, Qt::UserRole).toString() == m->source);
            item->setFont(ColName, f);
        }
    }
}

void ModelLibrary::showDetails() {
    QTreeWidgetItem* item = tree_->currentItem();
    if (!item || !item->data(0, kEntryRole).isValid()) return;
    const ModelEntry& e = entries_[size_t(item->data(0, kEntryRole).toInt())];
    QStringList lines;
    lines << QStringLiteral("<b>%1</b>").arg(e.name.toHtmlEscaped());
    if (!e.description.isEmpty() && e.description != e.path) lines << e.description.toHtmlEscaped();
    if (e.source == u"demo")
        lines << tr("<i>Random weights: shows the machinery, not meaning.</i>");
    else
        lines << QStringLiteral("<span style='color:#666'>%1</span>").arg(e.path.toHtmlEscaped());
    if (!e.error.isEmpty())
        lines
            << QStringLiteral("<span style='color:#a02828'>%1</span>").arg(e.error.toHtmlEscaped());
    else if (e.inspected)
        lines << QStringLiteral("<span style='color:%1'>●</span> %2")
                     .arg(fitColor(e.memory.fit).name(), e.memory.summary().toHtmlEscaped());
    details_->setText(lines.join(QStringLiteral("<br>")));
}

void ModelLibrary::openFileDialog() {
    auto* dlg = new QFileDialog(window(), tr("Open a model"), QString(),
                                tr("GGUF models (*.gguf);;All files (*)"));
    dlg->setAttribute(Qt::WA_DeleteOnClose);
    dlg->setFileMode(QFileDialog::ExistingFile);
    connect(dlg, &QFileDialog::fileSelected, this, &ModelLibrary::loadPath);
    dlg->open();
}

void ModelLibrary::openFolderDialog() {
    auto* dlg = new QFileDialog(window(), tr("Open a Hugging Face model folder"));
    dlg->setAttribute(Qt::WA_DeleteOnClose);
    dlg->setFileMode(QFileDialog::Directory);
    dlg->setOption(QFileDialog::ShowDirsOnly);
    connect(dlg, &QFileDialog::fileSelected, this, &ModelLibrary::loadPath);
    dlg->open();
}

void ModelLibrary::loadPath(const QString& path) {
    if (path.isEmpty()) return;
    engine_->loadModel(path);
}

bool ModelLibrary::acceptsDrop(const QMimeData* mime) {
    return !droppedPath(mime).isEmpty();
}

QString ModelLibrary::droppedPath(const QMimeData* mime) {
    if (!mime || !mime->hasUrls()) return {};
    for (const QUrl& u : mime->urls()) {
        if (!u.isLocalFile()) continue;
        const QFileInfo fi(u.toLocalFile());
        if (fi.isDir() || fi.isFile()) return fi.absoluteFilePath();
    }
    return {};
}

void ModelLibrary::dragEnterEvent(QDragEnterEvent* e) {
    if (acceptsDrop(e->mimeData())) e->acceptProposedAction();
}

void ModelLibrary::dropEvent(QDropEvent* e) {
    const QString path = droppedPath(e->mimeData());
    if (path.isEmpty()) return;
    e->acceptProposedAction();
    loadPath(path);
}
