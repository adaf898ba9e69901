// Values that cross between the UI thread and the engine worker. All plain, all copyable or
// shared as pointers to const: nothing sent across threads is mutated after it is sent.
#pragma once
#include <QJsonObject>
#include <QMetaType>
#include <QString>
#include <memory>
#include <vector>

#include "app/gui/memory_fit.h"
#include "engine/model/spec.h"
#include "widgets/internals_snapshot.h"
#include "widgets/token_snapshot.h"

struct SamplingSettings {
    double temperature = 0.8;        // 0: greedy
    int topK = 40;                   // 0: off
    double topP = 0.95;              // 1: off
    double minP = 0.05;              // 0: off
    double repetitionPenalty = 1.1;  // 1: off
    bool fixedSeed = false;          // false: a fresh seed per answer
    quint64 seed = 0;
    int maxTokens = 512;

    QJsonObject toJson() const;
    static SamplingSettings fromJson(const QJsonObject& o);
    bool operator==(const SamplingSettings&) const = default;
};

struct ChatMessageInput {
    QString role;  // "system", "user", "assistant"
    QString text;
};

struct GenerationRequest {
    quint64 id = 0;
    std::vector<ChatMessageInput> messages;  // the whole conversation; the answer follows it
    SamplingSettings sampling;
};

enum class FinishReason { EndOfTurn, MaxTokens, ContextFull, Stopped, Error };

struct GenerationResult {
    quint64 id = 0;
    FinishReason reason = FinishReason::EndOfTurn;
    int tokens = 0;              // answer tokens emitted
    qint64 promptTokens = 0;     // the whole rendered prompt
    qint64 reusedTokens = 0;     // prompt tokens taken from the KV cache instead of recomputed
    double ttftMs = 0;           // request received -> first token sampled (includes prefill)
    double tokensPerSecond = 0;  // decode speed after the first token
    double totalMs = 0;
    quint64 seed = 0;  // the seed used (so an answer can be reproduced)
    QString tailText;  // text the stream decoder held back until the end (split UTF-8)
    QString error;

    QString reasonText() const;
};

// One tensor of the loaded weights (Model::tensors()), for the architecture diagram's block list.
struct ModelTensorRow {
    QString name;      // canonical, "blk.3.attn_q"
    QString fileName;  // as stored in the file
    QString type;      // "Q4_K"
    QString shape;     // "[4096, 4096]"
    quint64 bytes = 0;
};

struct ModelInfo {
    QString source;    // what was asked for: a path or "demo:NAME"
    QString filePath;  // resolved file or folder
    QString name;      // for titles: the demo title or the file/folder name
    bool isDemo = false;
    std::shared_ptr<const archlens::ModelSpec> spec;
    quint64 fileBytes = 0, weightBytes = 0;
    QString weightTypes;  // "Q4_K ×120, F32 ×65"
    QString chatFamily;   // template family ("chatml", "llama3", ... "generic")
    bool templateRecognized = true;
    qint64 contextSize = 0;
    QString backend = QStringLiteral("CPU");
    QString backendNote;  // the GPU's memory, or why the GPU is not used (the status bar's tooltip)
    // On the GPU: the device and what the model holds there.
    bool onGpu = false;
    QString device;
    quint64 deviceWeights = 0, deviceKv = 0, deviceBuffers = 0, deviceFree = 0, deviceTotal = 0;
    int threads = 1;
    MemoryEstimate memory;
    double loadMs = 0;
    // Opened from a config only (catalog:NAME, a config.json, or a GGUF header): the spec is
    // there for the diagram and the math, but no weights and no session: it cannot chat.
    bool architectureOnly = false;
    std::vector<ModelTensorRow> tensors;  // empty when architecture only
    // Gemma 3n MatFormer: the slices the model offers ("name — N layers, X.XXB effective"
    // labels beside their names) and the one running ("" = the whole model).
    QStringList slices, sliceLabels;
    QString slice;
};
using ModelInfoPtr = std::shared_ptr<const ModelInfo>;

enum class LoadFailure { Error, Refused, Cancelled };

struct LoadRequest {
    quint64 id = 0;
    QString source;
    qint64 contextCap = 4096;
    quint64 memoryBudget = 0;  // bytes the model may use; 0: unknown (no refusal)
    int threads = 0;
    bool architectureOnly = false;  // read the spec only (forced for catalog: and *.json)
    QString slice;                  // Gemma 3n MatFormer slice to run ("" = the whole model)
    QString backend = QStringLiteral("auto");  // auto | cpu | cuda
};

Q_DECLARE_METATYPE(SamplingSettings)
Q_DECLARE_METATYPE(GenerationRequest)
Q_DECLARE_METATYPE(GenerationResult)
Q_DECLARE_METATYPE(ModelInfoPtr)
Q_DECLARE_METATYPE(LoadRequest)
Q_DECLARE_METATYPE(LoadFailure)

void registerEngineMetaTypes();

// What the live views need to know of a loaded model (the main window's docks and the comparison
// window's panels are fed the same way).
InternalsModelPtr internalsModelOf(const ModelInfo& info);
