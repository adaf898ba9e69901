#include "app/gui/internals_panels.h"

#include <QDockWidget>

#include "app/gui/chat_panel.h"
#include "app/gui/engine_worker.h"
#include "app/gui/main_window.h"
#include "widgets/attention_view.h"
#include "widgets/chat_view.h"
#include "widgets/kv_cache_view.h"
#include "widgets/next_token_view.h"
#include "widgets/routing_view.h"

InternalsPanels::InternalsPanels(MainWindow* window)
    : QObject(window),
      window_(window),
      attention_(new AttentionView),
      routing_(new RoutingView),
      kv_(new KvCacheView),
      next_(new NextTokenView) {
    window->setPanelWidget(MainWindow::Panel::Attention, attention_);
    window->setPanelWidget(MainWindow::Panel::Routing, routing_);
    window->setPanelWidget(MainWindow::Panel::KvCache, kv_);
    window->setPanelWidget(MainWindow::Panel::TopK, next_);

    EngineController* engine = window->engine();
    connect(engine, &EngineController::modelLoaded, this, &InternalsPanels::onModelLoaded);
    connect(engine, &EngineController::generationStarted, this, &InternalsPanels::onStarted);
    connect(engine, &EngineController::tokenGenerated, this, &InternalsPanels::onToken);
    connect(attention_, &AttentionView::probeNeedsChanged, this, &InternalsPanels::updateProbes);
    connect(routing_, &RoutingView::probeNeedsChanged, this, &InternalsPanels::updateProbes);
    connect(next_, &NextTokenView::probeNeedsChanged, this, &InternalsPanels::updateProbes);
    for (auto p :
         {MainWindow::Panel::Attention, MainWindow::Panel::Routing, MainWindow::Panel::TopK})
        if (QDockWidget* d = window->dock(p))
            connect(d, &QDockWidget::visibilityChanged, this, &InternalsPanels::updateProbes);

    if (window->chatPanel()) chatView_ = window->chatPanel()->findChild<ChatView*>();
    if (chatView_) {
        connect(chatView_, &ChatView::tokenClicked, this, [this](int turn, int index) {
            if (turn != answerTurn_ || index < 0 || index >= int(answerPositions_.size())) return;
            attention_->selectQuery(answerPositions_[size_t(index)]);
        });
    }
    if (engine->model()) onModelLoaded(engine->model());
    updateProbes();
}

void InternalsPanels::onModelLoaded(const ModelInfoPtr& info) {
    const InternalsModelPtr m = internalsModelOf(*info);
    attention_->setModel(m);
    routing_->setModel(m);
    kv_->setModel(m);
    next_->setModel(m);
    answerTurn_ = -1;
    answerPositions_.clear();
    updateProbes();
}

void InternalsPanels::onStarted(const ContextSnapshotPtr& c) {
    attention_->setContext(c);
    routing_->setContext(c);
    kv_->setContext(c);
    next_->setContext(c);
    // The chat appends the answer's turn when it sends the request, before this arrives.
    answerTurn_ = chatView_ ? chatView_->turnCount() - 1 : -1;
    answerPositions_.clear();
}

void InternalsPanels::onToken(const TokenSnapshotPtr& t) {
    attention_->addToken(t);
    routing_->addToken(t);
    kv_->addToken(t);
    next_->addToken(t);
    if (t->index == int(answerPositions_.size())) answerPositions_.push_back(t->position);
}

void InternalsPanels::updateProbes() {
    auto visible = [this](MainWindow::Panel p) {
        QDockWidget* d = window_->dock(p);
        return d && d->isVisible();  // a tabbed-away dock is hidden too
    };
    std::vector<archlens::ProbeConfig> needs;
    if (visible(MainWindow::Panel::Attention)) needs.push_back(attention_->probeNeeds());
    if (visible(MainWindow::Panel::Routing)) needs.push_back(routing_->probeNeeds());
    if (visible(MainWindow::Panel::TopK)) needs.push_back(next_->probeNeeds());
    probes_ = mergeProbeNeeds(needs);
    window_->engine()->setProbeConfig(probes_);
}
