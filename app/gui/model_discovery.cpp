#include "app/gui/model_discovery.h"

#include <QDir>
#include <QDirIterator>
#include <QFile>
#include <QFileInfo>
#include <QJsonArray>
#include <QJsonDocument>
#include <QJsonObject>
#include <QMutex>
#include <map>

#include "engine/demo.h"
#include "engine/formats/gguf.h"
#include "engine/model/model.h"

using namespace archlens;

namespace {

bool hasSafetensors(const QDir& d) {
    return !d.entryList({QStringLiteral("*.safetensors")}, QDir::Files).isEmpty();
}

QJsonObject readJson(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly) || f.size() > (16 << 20)) return {};
    return QJsonDocument::fromJson(f.readAll()).object();
}

}  // namespace

DiscoveryRoots DiscoveryRoots::fromEnvironment() {
    DiscoveryRoots r;
    const QString home = QDir::homePath();
    if (const QString hub = qEnvironmentVariable("HF_HUB_CACHE"); !hub.isEmpty())
        r.huggingFace << hub;
    else if (const QString hf = qEnvironmentVariable("HF_HOME"); !hf.isEmpty())
        r.huggingFace << hf + QStringLiteral("/hub");
    else
        r.huggingFace << home + QStringLiteral("/.cache/huggingface/hub");
    if (const QString o = qEnvironmentVariable("OLLAMA_MODELS"); !o.isEmpty()) r.ollama << o;
    r.ollama << home + QStringLiteral("/.ollama/models")
             << QStringLiteral("/usr/share/ollama/.ollama/models");
    r.lmStudio << home + QStringLiteral("/.lmstudio/models")
               << home + QStringLiteral("/.cache/lm-studio/models");
    return r;
}

std::vector<ModelEntry> discoverHuggingFace(const QString& hubDir) {
    // Layout: models--ORG--NAME/{refs/main, snapshots/<revision>/<files as symlinks to blobs>}.
    std::vector<ModelEntry> out;
    const QDir hub(hubDir);
    for (const QString& repo :
         hub.entryList({QStringLiteral("models--*")}, QDir::Dirs | QDir::NoDotAndDotDot)) {
        const QString repoName = repo.mid(8).replace(QStringLiteral("--"), QStringLiteral("/"));
        const QDir snapshots(hub.filePath(repo + QStringLiteral("/snapshots")));
        QString revision;
        QFile ref(hub.filePath(repo + QStringLiteral("/refs/main")));
        if (ref.open(QIODevice::ReadOnly)) revision = QString::fromUtf8(ref.readAll()).trimmed();
        if (revision.isEmpty() || !snapshots.exists(revision)) {
            const QStringList revs =
                snapshots.entryList(QDir::Dirs | QDir::NoDotAndDotDot, QDir::Time);
            if (revs.isEmpty()) continue;
            revision = revs.first();
        }
        const QDir snap(snapshots.filePath(revision));
        if (snap.exists(QStringLiteral("config.json")) && hasSafetensors(snap))
            out.push_back({snap.absolutePath(), repoName, QStringLiteral("huggingface"), {}});
        QDirIterator it(snap.absolutePath(), {QStringLiteral("*.gguf")}, QDir::Files,
                        QDirIterator::Subdirectories);
        while (it.hasNext()) {
            const QString file = it.next();
            if (it.fileName().startsWith(QStringLiteral("mmproj")))
                continue;  // vision projector, not a model
            out.push_back({file,
                           repoName + u'/' + snap.relativeFilePath(file),
                           QStringLiteral("huggingface"),
                           {}});
        }
    }
    return out;
}

std::vector<ModelEntry> discoverOllama(const QString& modelsDir) {
    // Layout: manifests/<registry>/<namespace>/<model>/<tag> (OCI manifest JSON); the layer with
    // mediaType application/vnd.ollama.image.model is the GGUF, stored as blobs/sha256-<hex>.
    std::vector<ModelEntry> out;
    const QDir root(modelsDir);
    const QString manifests = root.filePath(QStringLiteral("manifests"));
    QDirIterator it(manifests, QDir::Files, QDirIterator::Subdirectories);
    while (it.hasNext()) {
        const QString file = it.next();
        const QStringList parts = QDir(manifests).relativeFilePath(file).split(u'/');
        if (parts.size() < 4) continue;
        const QJsonObject m = readJson(file);
        for (const QJsonValue& v : m.value("layers").toArray()) {
            const QJsonObject layer = v.toObject();
            if (layer.value("mediaType").toString() != u"application/vnd.ollama.image.model")
                continue;
            QString digest = layer.value("digest").toString();
            digest.replace(u':', u'-');
            const QString blob = root.filePath(QStringLiteral("blobs/") + digest);
            if (!QFileInfo::exists(blob)) continue;
            const QString& registry = parts[parts.size() - 4];
            const QString& ns = parts[parts.size() - 3];
            QString name = parts[parts.size() - 2] + u':' + parts.last();
            if (ns != u"library") name = ns + u'/' + name;
            if (registry != u"registry.ollama.ai") name = registry + u'/' + name;
            out.push_back({blob, name, QStringLiteral("ollama"), {}});
        }
    }
    return out;
}

std::vector<ModelEntry> discoverLmStudio(const QString& modelsDir) {
    // Layout: <publisher>/<repo>/<file>.gguf, or an MLX/safetensors folder with config.json.
    std::vector<ModelEntry> out;
    const QDir root(modelsDir);
    if (!root.exists()) return out;
    QDirIterator it(modelsDir, QDir::Files,
                    QDirIterator::Subdirectories | QDirIterator::FollowSymlinks);
    QStringList folders;
    while (it.hasNext()) {
        const QString file = it.next();
        const QString fn = it.fileName();
        if (fn.endsWith(QStringLiteral(".gguf"), Qt::CaseInsensitive) &&
            !fn.startsWith(QStringLiteral("mmproj")))
            out.push_back({file, root.relativeFilePath(file), QStringLiteral("lmstudio"), {}});
        else if (fn == u"config.json" && hasSafetensors(QFileInfo(file).dir()))
            folders << QFileInfo(file).absolutePath();
    }
    for (const QString& f : folders)
        out.push_back({f, root.relativeFilePath(f), QStringLiteral("lmstudio"), {}});
    return out;
}

std::vector<ModelEntry> discoverModels(const DiscoveryRoots& roots) {
    std::vector<ModelEntry> all;
    auto append = [&](std::vector<ModelEntry> v) {
        for (auto& e : v) {
            bool dup = false;
            for (const auto& a : all)
                dup |=
                    QFileInfo(a.path).canonicalFilePath() == QFileInfo(e.path).canonicalFilePath();
            if (!dup) all.push_back(std::move(e));
        }
    };
    for (const QString& r : roots.huggingFace) append(discoverHuggingFace(r));
    for (const QString& r : roots.ollama) append(discoverOllama(r));
    for (const QString& r : roots.lmStudio) append(discoverLmStudio(r));
    return all;
}

QString formatParams(quint64 n) {
    if (n >= 1000000000ull)
        return QString::number(double(n) / 1e9, 'f', n >= 10000000000ull ? 0 : 1) + u'B';
    if (n >= 1000000ull)
        return QString::number(double(n) / 1e6, 'f', n >= 10000000ull ? 0 : 1) + u'M';
    if (n >= 1000ull) return QString::number(double(n) / 1e3, 'f', 0) + u'K';
    return QString::number(n);
}

std::string resolveModelSource(const std::string& source) {
    static QMutex mutex;
    if (source.rfind("demo:", 0) != 0) return source;
    QMutexLocker lock(&mutex);
    return demo::resolve_model_path(source);
}

ModelEntry inspectModel(ModelEntry e, quint64 budget, qint64 contextCap) {
    try {
        const std::string path =
            resolveModelSource(e.path.toStdString());  // demos: created on first use
        const ModelSpec spec = Model::load_spec(path);
        const QString type = QString::fromStdString(spec.model_type),
                      family = QString::fromLatin1(family_name(spec.family));
        e.architecture = type.compare(family, Qt::CaseInsensitive) == 0 || family.isEmpty()
                             ? type
                             : type + QStringLiteral(" · ") + family;
        const ParamCounts pc = count_params(spec);
        e.parameters = formatParams(pc.total);
        if (pc.active && pc.active < pc.total)
            e.parameters += QObject::tr(" (%1 active)").arg(formatParams(pc.active));
        const QString resolved = QString::fromStdString(path);
        e.bytes = modelBytesOnDisk(resolved);
        if (QFileInfo(resolved).isFile() && !resolved.endsWith(QStringLiteral(".json"))) {
            // The type holding the most bytes names the quantization ("Q4_K" for a Q4_K_M file).
            const GgufFile g(resolved.toStdString());
            std::map<std::string, uint64_t> bytesByType;
            for (const TensorRef& t : g.tensors()) bytesByType[dtype_name(t.type)] += t.nbytes;
            uint64_t best = 0;
            for (auto& [name, b] : bytesByType)
                if (b > best) best = b, e.weightType = QString::fromStdString(name);
        } else {
            const QJsonObject cfg =
                readJson(QDir(resolved).filePath(QStringLiteral("config.json")));
            QString dtype = cfg.value("torch_dtype").toString(cfg.value("dtype").toString());
            e.weightType = dtype.isEmpty() ? QObject::tr("safetensors")
                                           : dtype.toUpper().replace(QStringLiteral("FLOAT"),
                                                                     QStringLiteral("F"));
        }
        e.memory = chooseKvCache(spec, e.bytes, defaultContext(spec, contextCap), budget);
    } catch (const std::exception& ex) {
        e.error = QString::fromUtf8(ex.what());
    }
    e.inspected = true;
    return e;
}
