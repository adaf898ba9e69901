#include "app/gui/engine_types.h"

#include <QObject>

QJsonObject SamplingSettings::toJson() const {
    return {{"temperature", temperature},
            {"top_k", topK},
            {"top_p", topP},
            {"min_p", minP},
            {"repetition_penalty", repetitionPenalty},
            {"fixed_seed", fixedSeed},
            {"seed", QString::number(seed)},  // JSON numbers lose 64-bit precision
            {"max_tokens", maxTokens}};
}

SamplingSettings SamplingSettings::fromJson(const QJsonObject& o) {
    SamplingSettings s;
    s.temperature = o.value("temperature").toDouble(s.temperature);
    s.topK = o.value("top_k").toInt(s.topK);
    s.topP = o.value("top_p").toDouble(s.topP);
    s.minP = o.value("min_p").toDouble(s.minP);
    s.repetitionPenalty = o.value("repetition_penalty").toDouble(s.repetitionPenalty);
    s.fixedSeed = o.value("fixed_seed").toBool(s.fixedSeed);
    s.seed = o.value("seed").toString().toULongLong();
    s.maxTokens = o.value("max_tokens").toInt(s.maxTokens);
    return s;
}

QString GenerationResult::reasonText() const {
    switch (reason) {
        case FinishReason::EndOfTurn:
            return QObject::tr("end of turn");
        case FinishReason::MaxTokens:
            return QObject::tr("token limit");
        case FinishReason::ContextFull:
            return QObject::tr("context full");
        case FinishReason::Stopped:
            return QObject::tr("stopped");
        case FinishReason::Error:
            return QObject::tr("error");
    }
    return {};
}

InternalsModelPtr internalsModelOf(const ModelInfo& info) {
    auto m = std::make_shared<InternalsModel>();
    m->name = info.name;
    m->spec = info.spec;
    m->weightBytes = info.weightBytes;
    m->bufferBytes = info.memory.buffers;
    m->contextSize = info.contextSize;
    m->kvBytesPerValue = info.memory.kvF16 ? 2.0 : 4.0;  // the cache the session was given
    return m;
}

void registerEngineMetaTypes() {
    qRegisterMetaType<SamplingSettings>();
    qRegisterMetaType<GenerationRequest>();
    qRegisterMetaType<GenerationResult>();
    qRegisterMetaType<ModelInfoPtr>();
    qRegisterMetaType<LoadRequest>();
    qRegisterMetaType<LoadFailure>();
    qRegisterMetaType<TokenSnapshotPtr>();
    qRegisterMetaType<ContextSnapshotPtr>();
}
