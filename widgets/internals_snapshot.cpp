#include "widgets/internals_snapshot.h"

#include <algorithm>
#include <set>

#include "widgets/token_style.h"

void ContextTokens::clear() {
    ids_.clear();
    texts_.clear();
}

void ContextTokens::setContext(const ContextSnapshot& c) {
    ids_ = c.ids;
    texts_.clear();
    for (qsizetype i = 0; i < qsizetype(c.ids.size()); ++i) texts_ << pieceText(c.pieces.value(i));
}

void ContextTokens::addToken(const TokenSnapshot& t) {
    if (t.position < 0) return;
    const size_t at = size_t(t.position);
    if (ids_.size() <= at) {
        ids_.resize(at + 1, -1);
        while (texts_.size() <= qsizetype(at)) texts_ << QString();
    }
    ids_[at] = t.token.id;
    // The stream decoder may hold back half a UTF-8 character; the piece still names the token.
    texts_[qsizetype(at)] = t.token.text.isEmpty() ? pieceText(t.piece) : t.token.text;
}

int ContextTokens::id(qint64 pos) const {
    return pos >= 0 && pos < size() ? ids_[size_t(pos)] : -1;
}

QString ContextTokens::text(qint64 pos) const {
    return pos >= 0 && pos < size() ? texts_[qsizetype(pos)] : QString();
}

QString ContextTokens::label(qint64 pos) const {
    if (pos < 0 || pos >= size()) return QStringLiteral("?");
    const QString t = texts_[qsizetype(pos)];
    return t.isEmpty() ? QStringLiteral("#%1").arg(ids_[size_t(pos)]) : tokenStyle::visibleText(t);
}

QString ContextTokens::pieceText(const QString& piece) {
    QString s = piece;
    s.replace(QChar(0x0120), u' ');   // Ġ  (GPT-2 byte-level space)
    s.replace(QChar(0x010A), u'\n');  // Ċ  (byte-level newline)
    s.replace(QChar(0x2581), u' ');   // ▁  (SentencePiece space)
    return s;
}

archlens::ProbeConfig mergeProbeNeeds(const std::vector<archlens::ProbeConfig>& needs) {
    archlens::ProbeConfig out;
    bool allLayers = false, allHeads = false;
    std::set<int> layers, heads;
    for (const auto& n : needs) {
        out.routing = out.routing || n.routing;
        out.logit_lens = out.logit_lens || n.logit_lens;
        out.top_k = std::max(out.top_k, n.top_k);
        if (!n.attention) continue;
        out.attention = true;
        // An empty list means "every": one such view widens the merged capture to all of them.
        if (n.attn_layers.empty()) allLayers = true;
        if (n.attn_heads.empty()) allHeads = true;
        layers.insert(n.attn_layers.begin(), n.attn_layers.end());
        heads.insert(n.attn_heads.begin(), n.attn_heads.end());
    }
    if (out.attention) {
        if (!allLayers) out.attn_layers.assign(layers.begin(), layers.end());
        if (!allHeads) out.attn_heads.assign(heads.begin(), heads.end());
    }
    return out;
}
