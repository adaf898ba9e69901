#include "widgets/chat_view.h"

#include <QAbstractTextDocumentLayout>
#include <QContextMenuEvent>
#include <QMenu>
#include <QScrollBar>
#include <QTextBlock>
#include <QTextFrame>
#include <QToolTip>
#include <memory>

#include "widgets/token_style.h"

namespace {

// Char-format properties that tie a span of text back to its token.
constexpr int kTurnProp = QTextFormat::UserProperty;
constexpr int kTokenProp = QTextFormat::UserProperty + 1;

QString roleTitle(const QString& role) {
    if (role == u"user") return ChatView::tr("You");
    if (role == u"assistant") return ChatView::tr("Assistant");
    if (role == u"system") return ChatView::tr("System prompt");
    return role;
}

QColor roleColor(const QString& role) {
    if (role == u"user") return QColor(33, 102, 172);
    if (role == u"assistant") return QColor(27, 120, 55);
    return QColor(110, 110, 110);
}

QColor frameBackground(const QString& role) {
    if (role == u"user") return QColor(238, 244, 251);
    if (role == u"system") return QColor(244, 244, 244);
    return QColor(255, 255, 255);
}

}  // namespace

ChatView::ChatView(QWidget* parent) : QTextEdit(parent) {
    setReadOnly(true);
    setTextInteractionFlags(Qt::TextSelectableByMouse | Qt::TextSelectableByKeyboard);
    setUndoRedoEnabled(false);  // streaming appends would otherwise pile up undo records
    document()->setDocumentMargin(8);
    setPlaceholderText(tr("Type a message below and press Ctrl+Enter."));
}

void ChatView::clearTurns() {
    turns_.clear();
    frames_.clear();
    noteOwner_ = nullptr;
    document()->clear();
}

void ChatView::setTurns(const std::vector<ChatViewTurn>& turns) {
    const bool stick = atBottom();
    std::vector<ChatViewTurn> copy = turns;  // `turns` may be turns_ itself
    clearTurns();
    turns_ = std::move(copy);
    for (int i = 0; i < int(turns_.size()); ++i) insertTurn(i);
    if (stick) scrollToBottom();
}

void ChatView::appendTurn(const ChatViewTurn& turn) {
    const bool stick = atBottom();
    turns_.push_back(turn);
    insertTurn(int(turns_.size()) - 1);
    if (stick) scrollToBottom();
}

void ChatView::appendToken(const ChatToken& token) {
    if (turns_.empty()) return;
    turns_.back().tokens.push_back(token);
    // A footer sits at the end of the frame; a token arriving after it is rare (a note set
    // mid-answer), and a rebuild keeps the insertion logic simple.
    if (noteOwner_ == frames_.back()) {
        setTurns(turns_);
        return;
    }
    const bool stick = atBottom();
    insertToken(frames_.back(), int(turns_.size()) - 1, int(turns_.back().tokens.size()) - 1);
    if (stick) scrollToBottom();
}

void ChatView::appendToLastToken(const QString& text) {
    if (turns_.empty() || turns_.back().tokens.empty() || text.isEmpty()) return;
    ChatToken& last = turns_.back().tokens.back();
    last.text += text;
    if (noteOwner_ == frames_.back()) {
        setTurns(turns_);  // rare: keeps the insertion logic in one place
        return;
    }
    const int turn = int(turns_.size()) - 1, index = int(turns_.back().tokens.size()) - 1;
    QTextCursor c(frames_.back()->lastCursorPosition());
    QTextCharFormat f;
    f.setProperty(kTurnProp, turn);
    f.setProperty(kTokenProp, index);
    if (colorTokens_ && last.prob >= 0) f.setBackground(tokenStyle::probabilityColor(last.prob));
    c.insertText(text, f);
}

void ChatView::setLastTurnNote(const QString& note) {
    if (turns_.empty()) return;
    turns_.back().note = note;
    if (noteOwner_ == frames_.back()) {
        setTurns(turns_);
        return;
    }
    const bool stick = atBottom();
    insertNote(frames_.back(), note);
    if (stick) scrollToBottom();
}

void ChatView::setColorTokens(bool on) {
    if (on == colorTokens_) return;
    colorTokens_ = on;
    setTurns(turns_);
}

QString ChatView::turnPlainText(int i) const {
    const ChatViewTurn& t = turns_[size_t(i)];
    if (t.tokens.empty()) return t.text;
    QString s;
    for (const ChatToken& tok : t.tokens) s += tok.text;
    return s;
}

void ChatView::insertTurn(int index) {
    const ChatViewTurn& t = turns_[size_t(index)];
    QTextCursor c(document()->rootFrame()->lastCursorPosition());

    QTextFrameFormat ff;
    ff.setBackground(frameBackground(t.role));
    ff.setBorder(1);
    ff.setBorderBrush(QColor(220, 224, 230));
    ff.setBorderStyle(QTextFrameFormat::BorderStyle_Solid);
    ff.setPadding(8);
    ff.setTopMargin(index == 0 ? 0 : 6);
    ff.setWidth(QTextLength(QTextLength::PercentageLength, 100));
    QTextFrame* frame = c.insertFrame(ff);
    frames_.push_back(frame);

    QTextCharFormat head;
    head.setFontWeight(QFont::DemiBold);
    head.setForeground(roleColor(t.role));
    head.setFontPointSize(font().pointSizeF() * 0.9);
    c.insertText(roleTitle(t.role), head);

    QTextCharFormat body;
    c.insertBlock(QTextBlockFormat(), body);
    if (t.tokens.empty()) {
        body.setProperty(kTurnProp, index);
        c.insertText(t.text, body);
    } else {
        for (int k = 0; k < int(t.tokens.size()); ++k) insertToken(frame, index, k);
    }
    if (!t.note.isEmpty()) insertNote(frame, t.note);
}

void ChatView::insertToken(QTextFrame* frame, int turn, int index) {
    const ChatToken& tok = turns_[size_t(turn)].tokens[size_t(index)];
    if (tok.text.isEmpty()) return;
    QTextCursor c(frame->lastCursorPosition());
    QTextCharFormat f;
    f.setProperty(kTurnProp, turn);
    f.setProperty(kTokenProp, index);
    if (colorTokens_ && tok.prob >= 0) f.setBackground(tokenStyle::probabilityColor(tok.prob));
    c.insertText(tok.text, f);
}

void ChatView::insertNote(QTextFrame* frame, const QString& note) {
    QTextCursor c(frame->lastCursorPosition());
    QTextBlockFormat bf;
    bf.setTopMargin(4);
    QTextCharFormat f;
    f.setForeground(QColor(120, 120, 120));
    f.setFontPointSize(font().pointSizeF() * 0.85);
    c.insertBlock(bf, f);
    c.insertText(note, f);
    noteOwner_ = frame;
}

int ChatView::documentPosAt(const QPoint& viewportPos) const {
    const QPointF p = QPointF(viewportPos) +
                      QPointF(horizontalScrollBar()->value(), verticalScrollBar()->value());
    return document()->documentLayout()->hitTest(p, Qt::ExactHit);
}

bool ChatView::tokenAt(const QPoint& viewportPos, int* turn, int* index) const {
    const int pos = documentPosAt(viewportPos);
    if (pos < 0) return false;
    const QTextBlock b = document()->findBlock(pos);
    for (auto it = b.begin(); !it.atEnd(); ++it) {
        const QTextFragment f = it.fragment();
        if (!f.contains(pos)) continue;
        const QTextCharFormat fmt = f.charFormat();
        if (!fmt.hasProperty(kTokenProp)) return false;
        const int t = fmt.intProperty(kTurnProp), k = fmt.intProperty(kTokenProp);
        if (t < 0 || t >= int(turns_.size()) || k < 0 || k >= int(turns_[size_t(t)].tokens.size()))
            return false;
        if (turn) *turn = t;
        if (index) *index = k;
        return true;
    }
    return false;
}

int ChatView::turnAt(const QPoint& viewportPos) const {
    const QPointF p = QPointF(viewportPos) +
                      QPointF(horizontalScrollBar()->value(), verticalScrollBar()->value());
    const int pos = document()->documentLayout()->hitTest(p, Qt::FuzzyHit);
    if (pos < 0) return -1;
    QTextCursor c(document());
    c.setPosition(pos);
    QTextFrame* f = c.currentFrame();
    while (f && f->parentFrame() && f->parentFrame() != document()->rootFrame())
        f = f->parentFrame();
    for (int i = 0; i < int(frames_.size()); ++i)
        if (frames_[size_t(i)] == f) return i;
    return -1;
}

QString ChatView::tooltipAt(const QPoint& viewportPos) const {
    int t = 0, k = 0;
    if (!tokenAt(viewportPos, &t, &k)) return {};
    return tokenStyle::tokenTooltip(turns_[size_t(t)].tokens[size_t(k)]);
}

bool ChatView::viewportEvent(QEvent* e) {
    if (e->type() == QEvent::ToolTip) {
        auto* he = static_cast<QHelpEvent*>(e);
        const QString tip = tooltipAt(he->pos());
        if (tip.isEmpty())
            QToolTip::hideText();
        else
            QToolTip::showText(he->globalPos(), tip, viewport());
        return true;
    }
    return QTextEdit::viewportEvent(e);
}

void ChatView::mouseDoubleClickEvent(QMouseEvent* e) {
    const int t = turnAt(e->position().toPoint());
    if (t >= 0 && turns_[size_t(t)].role == u"user") {
        emit editRequested(t);
        return;
    }
    QTextEdit::mouseDoubleClickEvent(e);
}

void ChatView::mouseReleaseEvent(QMouseEvent* e) {
    QTextEdit::mouseReleaseEvent(e);
    int t = 0, k = 0;
    if (e->button() == Qt::LeftButton && !textCursor().hasSelection() &&
        tokenAt(e->position().toPoint(), &t, &k))
        emit tokenClicked(t, k);
}

void ChatView::contextMenuEvent(QContextMenuEvent* e) {
    std::unique_ptr<QMenu> menu(createStandardContextMenu(e->pos()));
    const int t = turnAt(viewport()->mapFrom(this, e->pos()));
    if (t >= 0 && turns_[size_t(t)].role == u"user") {
        menu->addSeparator();
        menu->addAction(tr("Edit and resend"), this, [this, t] { emit editRequested(t); });
    }
    menu->exec(e->globalPos());
}

bool ChatView::atBottom() const {
    const QScrollBar* sb = verticalScrollBar();
    return sb->value() >= sb->maximum() - 4;
}

void ChatView::scrollToBottom() {
    verticalScrollBar()->setValue(verticalScrollBar()->maximum());
}
