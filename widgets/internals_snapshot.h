// What the live internals views (attention, routing, KV cache, next token) read. They are fed the
// worker's immutable per-token snapshots (widgets/token_snapshot.h, which carry the engine's plain
// probe records) and a description of the loaded model; no view sees a Session or a tensor.
//
// Each view keeps only what it needs from the stream (attention rows of the heads it shows, the
// routing records, the latest KV bytes), so a closed view holds nothing and costs nothing.
#pragma once
#include <QString>
#include <QStringList>
#include <memory>
#include <vector>

#include "engine/model/spec.h"
#include "engine/probes.h"
#include "widgets/token_snapshot.h"

// The loaded model as the views need it: the spec (layer kinds, heads, experts) and the sizes that
// make up the memory budget.
struct InternalsModel {
    QString name;
    std::shared_ptr<const archlens::ModelSpec> spec;
    quint64 weightBytes = 0;  // as mapped from the file (measured)
    quint64 bufferBytes = 0;  // working buffers (an estimate: the engine does not report them)
    qint64 contextSize = 0;   // positions the session may hold
    double kvBytesPerValue = 4.0;  // standard attention's cache: 4 (f32) or 2 (f16); MLA's is f32
};
using InternalsModelPtr = std::shared_ptr<const InternalsModel>;

// The context's tokens by position, as the views label them. Follows the stream: an answer's
// ContextSnapshot gives the prompt (positions 0..n-1), each TokenSnapshot the token it adds.
class ContextTokens {
  public:
    void clear();
    void setContext(const ContextSnapshot& c);
    void addToken(const TokenSnapshot& t);

    qint64 size() const { return qint64(ids_.size()); }
    int id(qint64 pos) const;
    QString text(qint64 pos) const;   // decoded text ("" outside the context)
    QString label(qint64 pos) const;  // whitespace made visible, for axes and tooltips

    // A vocabulary piece as text: byte-level BPE ("Ġ", "Ċ") and SentencePiece ("▁") markers
    // turned back into the spaces and newlines they stand for.
    static QString pieceText(const QString& piece);

  private:
    std::vector<int> ids_;
    QStringList texts_;
};

// What a view wants captured. Views report it; the app merges the visible views' needs into
// the engine's ProbeConfig, so a hidden view turns its capture off.
archlens::ProbeConfig mergeProbeNeeds(const std::vector<archlens::ProbeConfig>& needs);
