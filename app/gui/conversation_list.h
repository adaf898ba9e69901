// The saved conversations, newest first; click to reopen, delete, or start a new one.
#pragma once
#include <QWidget>

#include "app/gui/conversation_store.h"

class QListWidget;
class QListWidgetItem;

class ConversationList : public QWidget {
    Q_OBJECT
  public:
    explicit ConversationList(ConversationStore* store, QWidget* parent = nullptr);

    QListWidget* list() const { return list_; }
    void refresh();
    void setCurrent(const QString& id);

  signals:
    void openRequested(const QString& id);
    void newRequested();
    void deleted(const QString& id);

  private:
    void update(const ConversationSummary& s);
    void fill(QListWidgetItem* item, const ConversationSummary& s);

    ConversationStore* store_;
    QListWidget* list_;
    QString current_;
};
