// The live internals views (attention, routing, KV cache, next token) placed in the main window's
// dock slots and fed from the engine controller's snapshots. It also decides what the engine
// captures: the merged needs of the views whose docks are visible, so a closed or tabbed-away
// view costs nothing (ARCHITECTURE.md: "capture only what a visible view needs").
#pragma once
#include <QObject>
#include <QPointer>
#include <vector>

#include "app/gui/engine_types.h"

class AttentionView;
class ChatView;
class KvCacheView;
class MainWindow;
class NextTokenView;
class RoutingView;

class InternalsPanels : public QObject {
    Q_OBJECT
  public:
    explicit InternalsPanels(MainWindow* window);

    AttentionView* attention() const { return attention_; }
    RoutingView* routing() const { return routing_; }
    KvCacheView* kvCache() const { return kv_; }
    NextTokenView* nextToken() const { return next_; }
    archlens::ProbeConfig currentProbes() const { return probes_; }

  private:
    void onModelLoaded(const ModelInfoPtr& info);
    void onStarted(const ContextSnapshotPtr& c);
    void onToken(const TokenSnapshotPtr& t);
    void updateProbes();

    MainWindow* window_;
    AttentionView* attention_;
    RoutingView* routing_;
    KvCacheView* kv_;
    NextTokenView* next_;
    QPointer<ChatView> chatView_;
    // Chat clicks on the answer being shown select its attention row: token index -> position.
    int answerTurn_ = -1;
    std::vector<qint64> answerPositions_;
    archlens::ProbeConfig probes_;
};
