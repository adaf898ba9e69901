#include "app/gui/conversation_store.h"

#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QSaveFile>
#include <QStandardPaths>
#include <QUuid>
#include <algorithm>

namespace {

constexpr int kFormatVersion = 1;

// Tokens are stored compactly as arrays, [id, text, prob, [[id, text, prob], ...]]: a long answer
// is rewritten after every token, so its size matters.
QJsonArray tokenToJson(const ChatToken& t) {
    QJsonArray alts;
    for (const TokenAlternative& a : t.topK) alts.append(QJsonArray{a.id, a.text, double(a.prob)});
    return QJsonArray{t.id, t.text, double(t.prob), alts};
}

ChatToken tokenFromJson(const QJsonArray& a) {
    ChatToken t;
    t.id = a.at(0).toInt(-1);
    t.text = a.at(1).toString();
    t.prob = float(a.at(2).toDouble(-1));
    for (const QJsonValue& v : a.at(3).toArray()) {
        const QJsonArray alt = v.toArray();
        t.topK.push_back({alt.at(0).toInt(-1), alt.at(1).toString(), float(alt.at(2).toDouble())});
    }
    return t;
}

}  // namespace

Conversation Conversation::create() {
    Conversation c;
    c.id = QUuid::createUuid().toString(QUuid::WithoutBraces);
    c.created = c.updated = QDateTime::currentDateTimeUtc();
    return c;
}

QString Conversation::displayTitle() const {
    if (!title.trimmed().isEmpty()) return title.trimmed();
    for (const auto& t : turns) {
        if (t.role != u"user") continue;
        QString s = t.text.simplified();
        if (s.size() > 48) s = s.left(47) + QChar(0x2026);
        if (!s.isEmpty()) return s;
    }
    return QObject::tr("New chat");
}

std::vector<ChatMessageInput> Conversation::messages(int end) const {
    std::vector<ChatMessageInput> m;
    if (!systemPrompt.trimmed().isEmpty()) m.push_back({QStringLiteral("system"), systemPrompt});
    const int n = end < 0 ? int(turns.size()) : std::min(end, int(turns.size()));
    for (int i = 0; i < n; ++i) m.push_back({turns[size_t(i)].role, turns[size_t(i)].text});
    return m;
}

QJsonObject Conversation::toJson() const {
    QJsonArray ts;
    for (const auto& t : turns) {
        QJsonObject o{{"role", t.role}, {"text", t.text}};
        if (!t.tokens.empty()) {
            QJsonArray toks;
            for (const ChatToken& k : t.tokens) toks.append(tokenToJson(k));
            o["tokens"] = toks;
        }
        if (!t.model.isEmpty()) o["model"] = t.model;
        if (!t.finish.isEmpty()) o["finish"] = t.finish;
        if (t.tokensPerSecond > 0) o["tokens_per_second"] = t.tokensPerSecond;
        if (t.ttftMs > 0) o["ttft_ms"] = t.ttftMs;
        if (t.seed) o["seed"] = QString::number(t.seed);
        ts.append(o);
    }
    return {{"format", "archlens-conversation"},
            {"version", kFormatVersion},
            {"id", id},
            {"title", title},
            {"created", created.toString(Qt::ISODateWithMs)},
            {"updated", updated.toString(Qt::ISODateWithMs)},
            {"model_source", modelSource},
            {"model_name", modelName},
            {"system_prompt", systemPrompt},
            {"sampling", sampling.toJson()},
            {"turns", ts}};
}

Conversation Conversation::fromJson(const QJsonObject& o) {
    Conversation c;
    c.id = o.value("id").toString();
    c.title = o.value("title").toString();
    c.created = QDateTime::fromString(o.value("created").toString(), Qt::ISODateWithMs);
    c.updated = QDateTime::fromString(o.value("updated").toString(), Qt::ISODateWithMs);
    c.modelSource = o.value("model_source").toString();
    c.modelName = o.value("model_name").toString();
    c.systemPrompt = o.value("system_prompt").toString();
    c.sampling = SamplingSettings::fromJson(o.value("sampling").toObject());
    for (const QJsonValue& v : o.value("turns").toArray()) {
        const QJsonObject t = v.toObject();
        ConversationTurn turn;
        turn.role = t.value("role").toString();
        turn.text = t.value("text").toString();
        for (const QJsonValue& k : t.value("tokens").toArray())
            turn.tokens.push_back(tokenFromJson(k.toArray()));
        turn.model = t.value("model").toString();
        turn.finish = t.value("finish").toString();
        turn.tokensPerSecond = t.value("tokens_per_second").toDouble();
        turn.ttftMs = t.value("ttft_ms").toDouble();
        turn.seed = t.value("seed").toString().toULongLong();
        c.turns.push_back(std::move(turn));
    }
    return c;
}

ConversationStore::ConversationStore(const QString& dir, QObject* parent)
    : QObject(parent), dir_(dir) {
    if (dir_.isEmpty())
        dir_ = QStandardPaths::writableLocation(QStandardPaths::AppDataLocation) +
               QStringLiteral("/conversations");
    QDir().mkpath(dir_);
    writer_ = std::thread([this] { writerLoop(); });
}

ConversationStore::~ConversationStore() {
    {
        std::lock_guard lock(mutex_);
        quit_ = true;
    }
    wake_.notify_all();
    writer_.join();  // the loop writes what is pending before it quits
}

QString ConversationStore::filePath(const QString& id) const {
    return dir_ + u'/' + id + QStringLiteral(".json");
}

ConversationSummary ConversationStore::summarize(const Conversation& c) {
    return {c.id, c.displayTitle(), c.modelName, c.updated, int(c.turns.size())};
}

bool ConversationStore::validId(const QString& id, QString* error) const {
    // Ids come from QUuid or from our own file names; anything else must not become a path.
    if (!id.isEmpty() && !id.contains(u'/') && !id.contains(u'\\') && !id.startsWith(u'.'))
        return true;
    if (error) *error = tr("invalid conversation id '%1'").arg(id);
    return false;
}

bool ConversationStore::write(const Conversation& c, QString* error) const {
    QDir().mkpath(dir_);
    QSaveFile f(filePath(c.id));
    if (!f.open(QIODevice::WriteOnly)) {
        if (error) *error = tr("%1: %2").arg(f.fileName(), f.errorString());
        return false;
    }
    f.write(QJsonDocument(c.toJson()).toJson(QJsonDocument::Compact));
    if (!f.commit()) {
        if (error) *error = tr("%1: %2").arg(f.fileName(), f.errorString());
        return false;
    }
    return true;
}

bool ConversationStore::save(const Conversation& c, QString* error) {
    if (!validId(c.id, error)) return false;
    {
        // A queued older state must not land after this one.
        std::unique_lock lock(mutex_);
        pending_.erase(c.id);
        idle_.wait(lock, [this] { return !writing_; });
        writing_ = true;
    }
    const bool ok = write(c, error);
    {
        std::lock_guard lock(mutex_);
        writing_ = false;
    }
    idle_.notify_all();
    wake_.notify_all();
    if (ok) emit saved(summarize(c));
    return ok;
}

void ConversationStore::saveAsync(const Conversation& c) {
    QString error;
    if (!validId(c.id, &error)) {
        emit writeFailed(error);
        return;
    }
    {
        std::lock_guard lock(mutex_);
        pending_[c.id] = c;
    }
    wake_.notify_all();
    emit saved(summarize(c));
}

void ConversationStore::flush() {
    std::unique_lock lock(mutex_);
    idle_.wait(lock, [this] { return pending_.empty() && !writing_; });
}

void ConversationStore::writerLoop() {
    std::unique_lock lock(mutex_);
    for (;;) {
        wake_.wait(lock, [this] { return quit_ || (!pending_.empty() && !writing_); });
        if (pending_.empty()) {
            if (quit_) return;
            continue;
        }
        Conversation c = std::move(pending_.begin()->second);
        pending_.erase(pending_.begin());
        writing_ = true;
        lock.unlock();
        QString error;
        const bool ok = write(c, &error);
        lock.lock();
        writing_ = false;
        idle_.notify_all();
        wake_.notify_all();
        if (!ok)
            QMetaObject::invokeMethod(
                this, [this, error] { emit writeFailed(error); }, Qt::QueuedConnection);
    }
}

std::optional<Conversation> ConversationStore::load(const QString& id, QString* error) const {
    QFile f(filePath(id));
    if (!f.open(QIODevice::ReadOnly)) {
        if (error) *error = tr("%1: %2").arg(f.fileName(), f.errorString());
        return std::nullopt;
    }
    QJsonParseError pe;
    const QJsonDocument doc = QJsonDocument::fromJson(f.readAll(), &pe);
    if (!doc.isObject() || doc.object().value("format").toString() != u"archlens-conversation") {
        if (error)
            *error = tr("%1: not an ArchLens conversation (%2)")
                         .arg(f.fileName(), pe.error ? pe.errorString() : tr("unexpected content"));
        return std::nullopt;
    }
    Conversation c = Conversation::fromJson(doc.object());
    c.id = id;  // the file name is authoritative
    return c;
}

std::vector<ConversationSummary> ConversationStore::list() const {
    std::vector<ConversationSummary> out;
    const QDir d(dir_);
    for (const QFileInfo& fi : d.entryInfoList({QStringLiteral("*.json")}, QDir::Files)) {
        if (auto c = load(fi.completeBaseName())) out.push_back(summarize(*c));
    }
    std::sort(out.begin(), out.end(),
              [](const auto& a, const auto& b) { return a.updated > b.updated; });
    return out;
}

bool ConversationStore::remove(const QString& id) {
    const bool ok = QFile::remove(filePath(id));
    if (ok) emit removed(id);
    return ok;
}
