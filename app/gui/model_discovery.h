// Models already on this machine: the Hugging Face cache, Ollama's store and LM Studio's folders,
// found by their documented layouts; and a cheap look at each (header and config only, no weights
// mapped for use) so the library can show architecture, size, weight type and memory fit before
// anything is loaded. Runs off the UI thread; plain values in and out.
#pragma once
#include <QString>
#include <QStringList>
#include <vector>

#include "app/gui/memory_fit.h"

struct ModelEntry {
    QString path;    // what the engine opens: a file, a folder or "demo:NAME"
    QString name;    // for display
    QString source;  // "demo", "recent", "huggingface", "ollama", "lmstudio"
    QString description;

    // Filled by inspectModel().
    bool inspected = false;
    QString error;
    QString architecture;  // "qwen3_moe · Qwen3Moe"
    QString parameters;    // "30.5B (3.3B active)"
    QString weightType;    // dominant type by bytes: "Q4_K", "BF16"
    quint64 bytes = 0;
    MemoryEstimate memory;
};

struct DiscoveryRoots {
    QStringList huggingFace;  // hub folders holding models--ORG--NAME
    QStringList ollama;       // folders holding manifests/ and blobs/
    QStringList lmStudio;     // publisher/repo/*.gguf trees
    // $HF_HUB_CACHE or $HF_HOME/hub or ~/.cache/huggingface/hub; $OLLAMA_MODELS or ~/.ollama/models
    // (and the Linux service's /usr/share/ollama/.ollama/models); ~/.lmstudio/models and
    // ~/.cache/lm-studio/models.
    static DiscoveryRoots fromEnvironment();
};

std::vector<ModelEntry> discoverModels(const DiscoveryRoots& roots);
std::vector<ModelEntry> discoverHuggingFace(const QString& hubDir);
std::vector<ModelEntry> discoverOllama(const QString& modelsDir);
std::vector<ModelEntry> discoverLmStudio(const QString& modelsDir);

// Reads the header/config of e.path. Never throws; sets e.error on failure.
ModelEntry inspectModel(ModelEntry e, quint64 memoryBudget, qint64 contextCap);

QString formatParams(quint64 n);  // 7.6B, 350M

// demo::resolve_model_path, one call at a time in this process: the library's scan and the engine
// worker may both create the same demo file on first launch, and the writer's temporary file
// name is shared. Throws archlens::Error like the engine.
std::string resolveModelSource(const std::string& source);
