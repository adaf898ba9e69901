// The conversation as a reader sees it: one framed block per turn, assistant tokens tinted by
// their probability, hovering a token shows its id and top-k alternatives. Fed with plain turns;
// it owns no conversation and talks to no engine.
#pragma once
#include <QHash>
#include <QTextEdit>
#include <vector>

#include "widgets/token_snapshot.h"

class QTextFrame;

struct ChatViewTurn {
    QString role;                   // "system", "user", "assistant"
    QString text;                   // shown as plain text when `tokens` is empty
    std::vector<ChatToken> tokens;  // assistant answers: one tinted span per token
    QString note;                   // small footer, e.g. "stopped · 42 tokens · 31 tok/s"
};

class ChatView : public QTextEdit {
    Q_OBJECT
  public:
    explicit ChatView(QWidget* parent = nullptr);

    void setTurns(const std::vector<ChatViewTurn>& turns);  // full rebuild
    void clearTurns();
    void appendTurn(const ChatViewTurn& turn);
    void appendToken(const ChatToken& token);     // to the last turn
    void appendToLastToken(const QString& text);  // late text of the last token (held-back UTF-8)
    void setLastTurnNote(const QString& note);
    void setColorTokens(bool on);

    int turnCount() const { return int(turns_.size()); }
    const ChatViewTurn& turn(int i) const { return turns_[size_t(i)]; }
    QString turnPlainText(int i) const;  // the text as displayed (tokens concatenated)

    // The token under a viewport point: false when the point is not on an assistant token.
    bool tokenAt(const QPoint& viewportPos, int* turn, int* index) const;
    int turnAt(const QPoint& viewportPos) const;  // -1 outside every turn
    QString tooltipAt(const QPoint& viewportPos) const;

  signals:
    void editRequested(int turn);  // double-click or context menu on a user turn
    void tokenClicked(int turn, int index);

  protected:
    bool viewportEvent(QEvent* e) override;
    void mouseDoubleClickEvent(QMouseEvent* e) override;
    void mouseReleaseEvent(QMouseEvent* e) override;
    void contextMenuEvent(QContextMenuEvent* e) override;

  private:
    void insertTurn(int index);
    void insertToken(QTextFrame* frame, int turn, int index);
    void insertNote(QTextFrame* frame, const QString& note);
    int documentPosAt(const QPoint& viewportPos) const;
    bool atBottom() const;
    void scrollToBottom();

    std::vector<ChatViewTurn> turns_;
    std::vector<QTextFrame*> frames_;
    QTextFrame* noteOwner_ =
        nullptr;  // frame whose footer block is present (appendToken goes before it)
    bool colorTokens_ = true;
};
