// Conversations on disk: one JSON file per conversation under the user's data folder, replaced
// atomically (QSaveFile: write a temporary, fsync, rename) on every change, so a crash or a kill
// loses at most the token being generated and never leaves a half-written file. Streaming saves
// go through a writer thread: the fsync (~10 ms) never stalls the UI, and when tokens come faster
// than the disk, the newest state of each conversation replaces any older one still waiting.
#pragma once
#include <QDateTime>
#include <QJsonObject>
#include <QObject>
#include <QString>
#include <condition_variable>
#include <map>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "app/gui/engine_types.h"
#include "widgets/token_snapshot.h"

struct ConversationTurn {
    QString role;  // "user", "assistant"
    QString text;
    std::vector<ChatToken> tokens;  // assistant turns: the tokens as generated
    QString model;                  // assistant turns: the model that wrote it
    QString finish;                 // assistant turns: why it ended ("end of turn", "stopped", ...)
    double tokensPerSecond = 0, ttftMs = 0;
    quint64 seed = 0;
};

struct Conversation {
    QString id;  // file name without .json
    QString title;
    QDateTime created, updated;
    QString modelSource, modelName;  // the model it was last used with
    QString systemPrompt;
    SamplingSettings sampling;
    std::vector<ConversationTurn> turns;

    static Conversation create();
    QString displayTitle() const;  // the title, else the first user words, else "New chat"
    // Messages for the engine: the system prompt, then turns [0, end).
    std::vector<ChatMessageInput> messages(int end = -1) const;
    QJsonObject toJson() const;
    static Conversation fromJson(const QJsonObject& o);
};

struct ConversationSummary {
    QString id, title, modelName;
    QDateTime updated;
    int turns = 0;
};

class ConversationStore : public QObject {
    Q_OBJECT
  public:
    // dir empty: <AppDataLocation>/conversations.
    explicit ConversationStore(const QString& dir = {}, QObject* parent = nullptr);

    QString directory() const { return dir_; }
    QString filePath(const QString& id) const;
    bool save(const Conversation& c, QString* error = nullptr);  // synchronous
    void saveAsync(const Conversation& c);  // queued to the writer thread; failures: writeFailed
    void flush();                           // returns once every queued save is on disk
    std::optional<Conversation> load(const QString& id, QString* error = nullptr) const;
    std::vector<ConversationSummary> list() const;  // newest first; unreadable files skipped
    bool remove(const QString& id);

    static ConversationSummary summarize(const Conversation& c);

    ~ConversationStore() override;

  signals:
    void saved(const ConversationSummary& summary);  // on request (the file follows for saveAsync)
    void removed(const QString& id);
    void writeFailed(const QString& message);

  private:
    bool validId(const QString& id, QString* error) const;
    bool write(const Conversation& c, QString* error) const;
    void writerLoop();

    QString dir_;
    std::mutex mutex_;
    std::condition_variable wake_, idle_;
    std::map<QString, Conversation> pending_;  // newest state per conversation id
    bool writing_ = false, quit_ = false;
    std::thread writer_;
};
