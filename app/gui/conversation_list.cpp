#include "app/gui/conversation_list.h"

#include <QHBoxLayout>
#include <QListWidget>
#include <QPushButton>
#include <QVBoxLayout>

namespace {
constexpr int kIdRole = Qt::UserRole;
}

ConversationList::ConversationList(ConversationStore* store, QWidget* parent)
    : QWidget(parent), store_(store) {
    setObjectName(QStringLiteral("conversationList"));
    auto* layout = new QVBoxLayout(this);
    layout->setContentsMargins(6, 6, 6, 6);
    list_ = new QListWidget(this);
    list_->setObjectName(QStringLiteral("conversations"));
    list_->setWordWrap(true);
    layout->addWidget(list_, 1);
    auto* buttons = new QHBoxLayout;
    auto* newButton = new QPushButton(tr("New chat"), this);
    auto* deleteButton = new QPushButton(tr("Delete"), this);
    buttons->addWidget(newButton);
    buttons->addStretch(1);
    buttons->addWidget(deleteButton);
    layout->addLayout(buttons);

    connect(list_, &QListWidget::itemClicked, this, [this](QListWidgetItem* item) {
        const QString id = item->data(kIdRole).toString();
        if (id != current_) emit openRequested(id);
    });
    connect(newButton, &QPushButton::clicked, this, &ConversationList::newRequested);
    connect(deleteButton, &QPushButton::clicked, this, [this] {
        QListWidgetItem* item = list_->currentItem();
        if (!item) return;
        const QString id = item->data(kIdRole).toString();
        if (store_->remove(id)) emit deleted(id);
    });
    connect(store_, &ConversationStore::saved, this, &ConversationList::update);
    connect(store_, &ConversationStore::removed, this, [this](const QString& id) {
        for (int i = 0; i < list_->count(); ++i)
            if (list_->item(i)->data(kIdRole).toString() == id) delete list_->takeItem(i--);
    });
    refresh();
}

void ConversationList::refresh() {
    list_->clear();
    for (const ConversationSummary& s : store_->list()) fill(new QListWidgetItem(list_), s);
    setCurrent(current_);
}

void ConversationList::setCurrent(const QString& id) {
    current_ = id;
    const QSignalBlocker block(list_);
    list_->clearSelection();
    for (int i = 0; i < list_->count(); ++i)
        if (list_->item(i)->data(kIdRole).toString() == id) list_->setCurrentRow(i);
}

void ConversationList::fill(QListWidgetItem* item, const ConversationSummary& s) {
    item->setData(kIdRole, s.id);
    const QString when = s.updated.toLocalTime().toString(QStringLiteral("yyyy-MM-dd hh:mm"));
    item->setText(s.title + u'\n' + when +
                  (s.modelName.isEmpty() ? QString() : QStringLiteral(" · ") + s.modelName));
    item->setToolTip(tr("%1 turns · %2").arg(s.turns).arg(s.modelName));
}

void ConversationList::update(const ConversationSummary& s) {
    // Saves arrive after every token: update the row in place, move it to the top only once.
    for (int i = 0; i < list_->count(); ++i) {
        QListWidgetItem* item = list_->item(i);
        if (item->data(kIdRole).toString() != s.id) continue;
        fill(item, s);
        if (i != 0) {
            list_->takeItem(i);
            list_->insertItem(0, item);
            setCurrent(current_);
        }
        return;
    }
    auto* item = new QListWidgetItem;
    fill(item, s);
    list_->insertItem(0, item);
    setCurrent(current_);
}
