#include "app/gui/catalog_dialog.h"

#include <QDialogButtonBox>
#include <QHeaderView>
#include <QJsonDocument>
#include <QJsonObject>
#include <QLabel>
#include <QPushButton>
#include <QTreeWidget>
#include <QVBoxLayout>

#include "engine/model/catalog.h"
#include "engine/model/model.h"
#include "engine/model/spec_summary.h"

QList<CatalogEntryInfo> catalogEntries() {
    QList<CatalogEntryInfo> out;
    for (const std::string& n : archlens::catalog_names()) {
        CatalogEntryInfo e;
        e.name = QString::fromStdString(n);
        const auto text = archlens::catalog_config(n);
        if (text) {
            const QJsonObject pub = QJsonDocument::fromJson(QByteArray::fromStdString(*text)).object().value(QStringLiteral("_published")).toObject();
            const QString total = pub.value(QStringLiteral("total")).toString(), active = pub.value(QStringLiteral("active")).toString();
            e.published = total;
            if (!active.isEmpty() && active != total) e.published += QObject::tr(" (%1 active)").arg(active);
            e.source = pub.value(QStringLiteral("source")).toString();
        }
        try {
            const archlens::ModelSpec s = archlens::Model::load_spec(std::string(archlens::kCatalogPrefix) + n);
            QStringList traits;
            if (s.has_mla()) traits << QStringLiteral("MLA");
            else if (!s.layers.empty()) traits << QString::fromStdString(archlens::attention_kind_label(s.layers.back().attn)).section(u',', 0, 0);
            if (s.has_moe()) traits << QStringLiteral("MoE");
            e.family = QStringLiteral("%1 · %2 · %3 layers").arg(QString::fromLatin1(archlens::family_name(s.family)), traits.join(QStringLiteral(" + "))).arg(s.n_layers);
        } catch (const std::exception& ex) {
            e.family = QObject::tr("unreadable: %1").arg(QString::fromUtf8(ex.what()));
        }
        out << e;
    }
    return out;
}

CatalogDialog::CatalogDialog(QWidget* parent) : QDialog(parent) {
    setObjectName(QStringLiteral("catalogDialog"));
    setWindowTitle(tr("Open catalog model"));
    auto* layout = new QVBoxLayout(this);
    auto* intro = new QLabel(tr("The real configurations of well-known models, built into ArchLens. They open <b>architecture "
                                "only</b>: the diagram, parameter counts and KV-cache math — no weights, so no chat."),
                             this);
    intro->setWordWrap(true);
    layout->addWidget(intro);
    tree_ = new QTreeWidget(this);
    tree_->setObjectName(QStringLiteral("catalogTree"));
    tree_->setRootIsDecorated(false);
    tree_->setHeaderLabels({tr("Model"), tr("Family"), tr("Published size")});
    tree_->header()->setSectionResizeMode(QHeaderView::ResizeToContents);
    for (const CatalogEntryInfo& e : catalogEntries()) {
        auto* item = new QTreeWidgetItem(tree_, {e.name, e.family, e.published});
        item->setData(0, Qt::UserRole, e.name);
        item->setToolTip(2, e.source);
    }
    layout->addWidget(tree_, 1);
    auto* buttons = new QDialogButtonBox(QDialogButtonBox::Open | QDialogButtonBox::Cancel, this);
    layout->addWidget(buttons);
    auto accept = [this] {
        const QString n = selectedName();
        if (n.isEmpty()) return;
        emit catalogModelChosen(QString::fromLatin1(archlens::kCatalogPrefix) + n);
        QDialog::accept();
    };
    connect(buttons, &QDialogButtonBox::accepted, this, accept);
    connect(buttons, &QDialogButtonBox::rejected, this, &QDialog::reject);
    connect(tree_, &QTreeWidget::itemActivated, this, accept);
    resize(640, 560);
}

QString CatalogDialog::selectedName() const {
    const QTreeWidgetItem* it = tree_->currentItem();
    return it ? it->data(0, Qt::UserRole).toString() : QString();
}
