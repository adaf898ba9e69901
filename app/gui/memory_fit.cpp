#include "app/gui/memory_fit.h"

#include <QDir>
#include <QDirIterator>
#include <QFile>
#include <QFileInfo>
#include <algorithm>

#include "engine/core/error.h"

namespace {
std::optional<quint64> g_budgetOverride;
}

quint64 systemAvailableMemory() {
    QFile f(QStringLiteral("/proc/meminfo"));
    if (!f.open(QIODevice::ReadOnly)) return 0;
    // procfs files report size 0, so atEnd() is true at once: read them whole instead.
    for (const QByteArray& line : f.readAll().split('\n')) {
        if (!line.startsWith("MemAvailable:")) continue;
        const QList<QByteArray> parts = line.simplified().split(' ');
        if (parts.size() >= 2) return parts[1].toULongLong() * 1024ull;  // kB
    }
    return 0;
}

quint64 memoryBudget() {
    return g_budgetOverride ? *g_budgetOverride : systemAvailableMemory();
}

void setMemoryBudgetOverride(std::optional<quint64> bytes) {
    g_budgetOverride = bytes;
}

qint64 defaultContext(const archlens::ModelSpec& spec, qint64 cap) {
    const qint64 trained = spec.max_positions > 0 ? spec.max_positions : cap;
    return std::min(trained, cap);
}

MemoryEstimate chooseKvCache(const archlens::ModelSpec& spec, quint64 weightBytes, qint64 nCtx,
                             quint64 available) {
    const MemoryEstimate f32 = estimateMemory(spec, weightBytes, nCtx, available, false);
    if (f32.fit != MemoryFit::TooLarge) return f32;
    const MemoryEstimate f16 = estimateMemory(spec, weightBytes, nCtx, available, true);
    return f16.fit != MemoryFit::TooLarge ? f16 : f32;
}

MemoryEstimate estimateMemory(const archlens::ModelSpec& spec, quint64 weightBytes, qint64 nCtx,
                              quint64 available, bool kvF16) {
    MemoryEstimate e;
    e.kvF16 = kvF16;
    e.weights = weightBytes;
    // An f16 cache halves standard attention's bytes; MLA's latent cache stays f32.
    const quint64 n = quint64(std::max<qint64>(nCtx, 0));
    archlens::ModelSpec mla = spec;
    std::erase_if(mla.layers, [](const archlens::LayerSpec& l) { return l.attn.kind != archlens::AttnKind::MLA; });
    mla.n_layers = int(mla.layers.size());
    const quint64 mlaBytes = archlens::kv_bytes_at(mla, n, 4.0);
    e.kv = archlens::kv_bytes_at(spec, n, kvF16 ? 2.0 : 4.0) + (kvF16 ? mlaBytes / 2 : 0);
    // Working set of one forward pass over a prompt chunk (x, h, y, q/k/v, scores) plus logits,
    // and a fixed allowance for the process itself (Qt, the thread pool, the tokenizer).
    const quint64 dim = quint64(std::max(spec.dim, 1));
    const quint64 chunk = quint64(std::min<qint64>(std::max<qint64>(nCtx, 1), 512));
    e.buffers =
        chunk * dim * 4 * 8 + quint64(std::max(spec.vocab, 1)) * 4 * 4 + 64ull * 1024 * 1024;
    e.available = available;
    if (available == 0)
        e.fit = MemoryFit::Tight;  // unknown: let it load, but do not promise room
    else if (double(e.total()) <= 0.75 * double(available))
        e.fit = MemoryFit::Fits;
    else if (e.total() <= available)
        e.fit = MemoryFit::Tight;
    else
        e.fit = MemoryFit::TooLarge;
    return e;
}

QString MemoryEstimate::fitLabel() const {
    switch (fit) {
        case MemoryFit::Fits:
            return QObject::tr("fits");
        case MemoryFit::Tight:
            return QObject::tr("tight");
        case MemoryFit::TooLarge:
            return QObject::tr("too large");
    }
    return {};
}

QString MemoryEstimate::summary() const {
    const QString parts = QObject::tr("weights %1 + KV cache %2%3 + buffers %4")
                              .arg(formatBytes(weights), formatBytes(kv),
                                   kvF16 ? QObject::tr(" (f16: an f32 cache would not fit)") : QString(),
                                   formatBytes(buffers));
    if (available == 0)
        return QObject::tr("needs %1 (%2); free memory unknown").arg(formatBytes(total()), parts);
    return QObject::tr("needs %1 of %2 free (%3)")
        .arg(formatBytes(total()), formatBytes(available), parts);
}

quint64 modelBytesOnDisk(const QString& path) {
    const QFileInfo fi(path);
    if (fi.isFile()) {
        // A config.json alone carries no weights; a folder's weights are its safetensors shards.
        if (fi.fileName() == u"config.json") return modelBytesOnDisk(fi.absolutePath());
        return quint64(fi.size());
    }
    if (!fi.isDir()) return 0;
    quint64 total = 0;
    QDirIterator it(path, {QStringLiteral("*.safetensors")}, QDir::Files);
    while (it.hasNext()) {
        it.next();
        total += quint64(it.fileInfo().size());  // follows HF-cache symlinks to the blobs
    }
    if (total == 0) {
        QDirIterator g(path, {QStringLiteral("*.gguf")}, QDir::Files);
        while (g.hasNext()) {
            g.next();
            total = std::max<quint64>(total, quint64(g.fileInfo().size()));
        }
    }
    return total;
}

QColor fitColor(MemoryFit fit) {
    switch (fit) {
        case MemoryFit::Fits:
            return QColor(26, 152, 80);
        case MemoryFit::Tight:
            return QColor(230, 160, 20);
        case MemoryFit::TooLarge:
            return QColor(215, 48, 39);
    }
    return {};
}

QString formatBytes(quint64 bytes) {
    return QString::fromStdString(archlens::human_bytes(bytes));
}
