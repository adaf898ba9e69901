// What the engine worker sends to the views, one immutable value per generated token. Plain data:
// the worker fills it on its thread, the UI shares it (TokenSnapshotPtr) between every view that
// listens, nobody mutates it afterwards.
#pragma once
#include <QMetaType>
#include <QString>
#include <QStringList>
#include <cstdint>
#include <memory>
#include <vector>

#include "engine/probes.h"

struct TokenAlternative {
    int id = -1;
    QString text;  // decoded text of this id alone
    float prob = 0;
};

// One token as the chat shows and stores it.
struct ChatToken {
    int id = -1;
    QString text;  // what this token adds to the answer (may be empty while a UTF-8 char is split)
    float prob = -1;  // model probability of this id at its step; < 0: unknown (e.g. typed text)
    std::vector<TokenAlternative> topK;  // descending
};

struct TokenSnapshot {
    quint64 generationId = 0;  // which answer this token belongs to
    int index = 0;             // 0-based within the answer
    qint64 position = 0;       // context position the token occupies
    ChatToken token;
    QString piece;  // raw vocabulary string of the id (for labels and tooltips)
    // What the forward call that produced this token's logits recorded: for the first token the
    // prompt prefill (every prompt query row), afterwards the single previous token. Only what
    // the ProbeConfig asked for; records are cleared before each forward call.
    archlens::ProbeData probes;
    // probes.logit_lens with its ids decoded: per layer, the top token of the residual stream.
    std::vector<TokenAlternative> logitLens;
    std::vector<quint64> kvBytesPerLayer;  // the engine's allocations after this step
    quint64 kvBytesTotal = 0;
    qint64 contextUsed = 0, contextSize = 0;
    double msSinceStart = 0;  // since the request reached the worker (token 0: time to first token)
};
using TokenSnapshotPtr = std::shared_ptr<const TokenSnapshot>;

// Sent once per answer before its first token: the whole context the model sees.
struct ContextSnapshot {
    quint64 generationId = 0;
    std::vector<int> ids;     // prompt token ids, position 0 first
    QStringList pieces;       // their vocabulary strings
    qint64 reusedTokens = 0;  // prefix kept from the KV cache (not recomputed)
    qint64 contextSize = 0;
};
using ContextSnapshotPtr = std::shared_ptr<const ContextSnapshot>;

Q_DECLARE_METATYPE(TokenSnapshotPtr)
Q_DECLARE_METATYPE(ContextSnapshotPtr)
