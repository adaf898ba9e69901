#include "app/gui/engine_worker.h"

#include <QDir>
#include <QElapsedTimer>
#include <QFileInfo>
#include <QRandomGenerator>
#include <QTimer>
#include <algorithm>
#include <cmath>

#ifdef __linux__
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include "app/gui/lens_budget.h"
#include "app/gui/model_discovery.h"
#include "app/gui/model_tokenizer.h"
#include "engine/core/error.h"
#include "engine/demo.h"
#include "engine/backend.h"
#include "engine/formats/gguf.h"
#include "engine/model/catalog.h"
#include "engine/model/model.h"
#include "engine/model/spec_summary.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"

using namespace archlens;

namespace {

// The status bar's tooltip for the backend: on the GPU what the model holds there; on the CPU why
// the GPU is not used (no CUDA in this build, no device, a feature it does not run, no room).
QString backendNote(BackendSession& s) {
    if (s.on_gpu()) {
        const DeviceMemory d = s.device_memory();
        return QObject::tr("%1 · GPU memory: weights %2 + KV cache %3 + buffers %4 · %5 free of %6 · decode: %7")
            .arg(QString::fromStdString(d.device), formatBytes(d.weights), formatBytes(d.kv), formatBytes(d.buffers),
                 formatBytes(d.free_after), formatBytes(d.total))
            .arg(s.decode_mode().empty() ? QObject::tr("not run yet") : QString::fromStdString(s.decode_mode()));
    }
    if (s.note().empty()) return QObject::tr("CPU backend (chosen)");
    return QObject::tr("CPU backend · the GPU is not used: %1").arg(QString::fromStdString(s.note()));
}

QString g_backend = QStringLiteral("auto");

constexpr int kChatTopK = 8;            // alternatives shown in the chat's token tooltips
constexpr int64_t kPrefillChunk = 256;  // stop is polled between chunks of a long prompt

double msSince(const QElapsedTimer& t) {
    return double(t.nsecsElapsed()) / 1e6;
}

QString weightTypesText(const Model& m) {
    // Most tensors first: "Q4_K ×120, F32 ×65".
    const auto byType = m.weight_types();  // returned by value
    std::vector<std::pair<std::string, uint64_t>> types(byType.begin(), byType.end());
    std::sort(types.begin(), types.end(), [](auto& a, auto& b) { return a.second > b.second; });
    QStringList parts;
    for (auto& [name, n] : types)
        parts << QStringLiteral("%1 ×%2").arg(QString::fromStdString(name)).arg(n);
    return parts.join(QStringLiteral(", "));
}

// Reads one byte per page of the mapped weights so the first answer does not stall on page
// faults, and so a long load has a real progress bar and a real cancel.
bool prefault(const uint8_t* data, uint64_t size, const std::function<bool(int)>& onProgress) {
    constexpr uint64_t kPage = 4096, kStep = 64ull << 20;
    volatile uint8_t sink = 0;
    for (uint64_t off = 0; off < size; off += kStep) {
        const uint64_t end = std::min(size, off + kStep);
        uint8_t acc = 0;
        for (uint64_t p = off; p < end; p += kPage) acc ^= data[p];
        sink = sink ^ acc;
        if (!onProgress(int(100.0 * double(end) / double(size)))) return false;
    }
    (void)sink;
    return true;
}

}  // namespace

struct EngineWorker::Loaded {
    std::unique_ptr<Model> model;
    std::unique_ptr<Tokenizer> tokenizer;
    std::unique_ptr<ChatTemplate> tmpl;
    std::vector<int> stopIds;
    std::unique_ptr<BackendSession> session;  // declared last: destroyed first (it references the model)
    ModelInfoPtr info;
};

EngineWorker::EngineWorker() = default;
EngineWorker::~EngineWorker() = default;

void EngineWorker::raise(std::atomic<quint64>& a, quint64 v) {
    quint64 cur = a.load();
    while (cur < v && !a.compare_exchange_weak(cur, v)) {
    }
}

void EngineWorker::setProbeConfig(const ProbeConfig& cfg) {
    QMutexLocker lock(&probeMutex_);
    probeConfig_ = cfg;
}

bool EngineWorker::applyProbeConfig(bool lensAllowed) {
    ProbeConfig cfg;
    {
        QMutexLocker lock(&probeMutex_);
        cfg = probeConfig_;
    }
    cfg.top_k = std::max(cfg.top_k, kChatTopK);
    cfg.logit_lens = cfg.logit_lens && lensAllowed;
    m_->session->probe_config() = cfg;
    return cfg.logit_lens;
}

void EngineWorker::unloadModel() {
    m_.reset();
    cached_.clear();
}

namespace {

// MatFormer slices for the UI: names and "name — 30 layers, 1.91B effective" labels.
void fillSlices(ModelInfo& info, const Model& m) {
    for (const auto& sl : m.slices()) {
        QString label = QString::fromStdString(sl.name);
        try {
            const auto plan = plan_matformer_slice(m.full_spec(), sl, m.path());
            label += QObject::tr(" — %1 layers, %2 effective")
                         .arg(plan.spec.n_layers)
                         .arg(QString::fromStdString(human_count2(count_params(plan.spec).active)));
        } catch (const std::exception&) {
            continue;  // listed in the file, but it does not fit this model
        }
        info.slices << QString::fromStdString(sl.name);
        info.sliceLabels << label;
    }
    info.slice = QString::fromStdString(m.slice_name());
}

}  // namespace

void EngineWorker::loadModel(const LoadRequest& req) {
    const quint64 id = req.id;
    QElapsedTimer timer;
    timer.start();
    auto cancelled = [&] {
        if (!cancelRequested(id)) return false;
        emit loadFailed(id, tr("Loading %1 was cancelled.").arg(req.source),
                        LoadFailure::Cancelled);
        return true;
    };
    try {
        const std::string source = req.source.toStdString();
        const bool isDemo = req.source.startsWith(QStringLiteral("demo:"));
        emit loadProgress(id,
                          isDemo ? tr("Preparing the demo model (random weights)…")
                                 : tr("Reading the model header…"),
                          -1);
        const std::string path = resolveModelSource(source);
        if (cancelled()) return;

        // Refuse before mapping anything: the spec and the file sizes are enough to know.
        LoadOptions opts;
        opts.slice = req.slice.toStdString();
        // The whole model's spec sizes the memory estimate (a slice needs less; the refusal errs
        // on the safe side).
        const ModelSpec spec = Model::load_spec(path);
        const quint64 diskBytes = modelBytesOnDisk(QString::fromStdString(path));
        const qint64 nCtx = defaultContext(spec, req.contextCap);
        const MemoryEstimate est = chooseKvCache(spec, diskBytes, nCtx, req.memoryBudget);
        QString name = QFileInfo(req.source).fileName();
        if (isDemo) {
            for (const auto& d : demo::demo_models())
                if ("demo:" + d.name == source) name = QString::fromStdString(d.title);
        } else if (QFileInfo(req.source).isDir()) {
            name = QFileInfo(req.source).absoluteDir().dirName() + u'/' +
                   QFileInfo(req.source).fileName();
        }
        const bool archOnly = req.architectureOnly ||
                              req.source.startsWith(QString::fromLatin1(kCatalogPrefix)) ||
                              (QFileInfo(QString::fromStdString(path)).isFile() &&
                               req.source.endsWith(QStringLiteral(".json"), Qt::CaseInsensitive));
        if (archOnly) {
            // The spec is all there is: no weights mapped, no session, nothing to refuse.
            if (auto ref = catalog_ref(source))
                name = QString::fromStdString(*ref);
            else if (name == QStringLiteral("config.json"))
                name = QFileInfo(req.source).absoluteDir().dirName();
            auto info = std::make_shared<ModelInfo>();
            info->source = req.source;
            info->filePath = QString::fromStdString(path);
            info->name = name;
            info->spec = std::make_shared<const ModelSpec>(spec);
            if (spec.family == Family::Gemma3n) {  // the slices it offers, and the one asked for
                const auto cfg = Model::load(catalog_ref(source) ? source : path, opts);
                info->spec = std::make_shared<const ModelSpec>(cfg->spec());
                fillSlices(*info, *cfg);
                if (!info->slice.isEmpty()) info->name += QStringLiteral(" [%1]").arg(info->slice);
            } else if (!req.slice.isEmpty()) {
                throw Error(path + ": MatFormer slices exist only for Gemma 3n models");
            }
            info->fileBytes = diskBytes;
            info->weightTypes = tr("config-only");
            info->templateRecognized = true;
            info->contextSize = spec.max_positions;
            info->threads = 0;
            info->memory = est;
            info->loadMs = msSince(timer);
            info->architectureOnly = true;
            info->backend = tr("architecture only");
            m_.reset();
            cached_.clear();
            emit modelLoaded(id, info);
            return;
        }
        if (est.fit == MemoryFit::TooLarge) {
            emit loadFailed(
                id,
                tr("%1 does not fit in memory and was not loaded: it %2. Close other programs, "
                   "pick a smaller quantization, or a smaller model.")
                    .arg(name, est.summary()),
                LoadFailure::Refused);
            return;
        }

        emit loadProgress(id, tr("Mapping the weights…"), 0);
        auto next = std::make_unique<Loaded>();
        next->model = Model::load(path, opts);
        if (cancelled()) return;
        if (const GgufFile* g = next->model->gguf()) {
            auto mapping = g->mapping();
            const bool done = prefault(mapping->data(), mapping->size(), [&](int pct) {
                emit loadProgress(id, tr("Reading the weights…"), std::min(95, pct * 95 / 100));
                return !cancelRequested(id);
            });
            if (!done && cancelled()) return;
        }

        emit loadProgress(id, tr("Loading the tokenizer…"), 96);
        next->tokenizer = loadModelTokenizer(*next->model);
        next->tmpl = std::make_unique<ChatTemplate>(ChatTemplate::for_tokenizer(*next->tokenizer));
        next->stopIds = next->tmpl->stop_token_ids(*next->tokenizer);
        if (cancelled()) return;

        // Every core on a small machine, one left for the window on a larger one: on the 2-vCPU
        // dev VM a Qwen3-0.6B Q4_K_M chat ran at 26 tokens/s on one thread and 35.5 on two, with
        // the event loop's 98th-percentile delay still ~12 ms (eventLoopStaysResponsiveWhileGenerating).
        const int cores = std::max(1, QThread::idealThreadCount());
        const int threads = req.threads > 0 ? req.threads : (cores <= 4 ? cores : cores - 1);
        // The previous session goes first: it may hold a large KV cache.
        if (m_) m_->session.reset();
        next->session = std::make_unique<BackendSession>(*next->model, SessionOptions{nCtx, threads, est.kvF16},
                                                         parse_backend(req.backend.toStdString()));

        auto info = std::make_shared<ModelInfo>();
        info->source = req.source;
        info->filePath = QString::fromStdString(path);
        info->name = name;
        info->isDemo = isDemo;
        info->spec = std::make_shared<const ModelSpec>(next->model->spec());
        info->fileBytes = next->model->file_bytes();
        info->weightBytes = next->model->weight_bytes();
        info->weightTypes = weightTypesText(*next->model);
        info->chatFamily = QString::fromUtf8(next->tmpl->family_name().data(),
                                             qsizetype(next->tmpl->family_name().size()));
        info->templateRecognized = next->tmpl->recognized();
        info->contextSize = next->session->n_ctx();
        info->threads = threads;
        info->memory = est;
        info->loadMs = msSince(timer);
        info->onGpu = next->session->on_gpu();
        info->backend = info->onGpu ? tr("CUDA") : tr("CPU");
        info->backendNote = backendNote(*next->session);
        if (info->onGpu) {
            const DeviceMemory d = next->session->device_memory();
            info->device = QString::fromStdString(d.device);
            info->deviceWeights = d.weights;
            info->deviceKv = d.kv;
            info->deviceBuffers = d.buffers;
            info->deviceFree = d.free_after;
            info->deviceTotal = d.total;
        }
        fillSlices(*info, *next->model);
        if (!info->slice.isEmpty()) info->name += QStringLiteral(" [%1]").arg(info->slice);
        for (const TensorInfo& t : next->model->tensors()) {
            QStringList dims;
            for (int64_t d : t.shape) dims << QString::number(d);
            info->tensors.push_back(
                {QString::fromStdString(t.name), QString::fromStdString(t.file_name),
                 QString::fromLatin1(dtype_name(t.type)),
                 QStringLiteral("[%1]").arg(dims.join(QStringLiteral(", "))), t.nbytes});
        }
        next->info = info;

        m_ = std::move(next);
        cached_.clear();
        emit modelLoaded(id, info);
    } catch (const std::exception& e) {
        // A failed load keeps the model loaded before. If its session was dropped to make room
        // (the new one was refused: the backend cannot run the model, memory), it is made again as
        // it was, its cache empty (the next answer recomputes the conversation); only if that
        // fails too is the model gone.
        if (m_ && !m_->session) {
            try {
                const ModelInfo& was = *m_->info;
                m_->session = std::make_unique<BackendSession>(
                    *m_->model, SessionOptions{was.contextSize, was.threads, was.memory.kvF16},
                    was.onGpu ? BackendChoice::Cuda : BackendChoice::Cpu);
                cached_.clear();
            } catch (const std::exception&) {
                m_.reset();
                cached_.clear();
            }
        }
        emit loadFailed(id, QString::fromUtf8(e.what()), LoadFailure::Error);
    }
}

std::vector<int> EngineWorker::renderPrompt(const std::vector<ChatMessageInput>& messages) const {
    std::vector<ChatMessage> msgs;
    for (const auto& m : messages) {
        if (m.role == u"system" && m.text.trimmed().isEmpty()) continue;
        msgs.push_back({m.role.toStdString(), m.text.toStdString()});
    }
    if (m_->tmpl->family() == ChatFamily::None) {
        // No template (GPT-2): the conversation is plain text the model continues.
        std::string text;
        for (const auto& m : msgs) text += (text.empty() ? "" : "\n") + m.content;
        return m_->tokenizer->encode(text, true);
    }
    // Templates print BOS themselves; the post-processor must not add a second one.
    return m_->tokenizer->encode(m_->tmpl->render(msgs, true), false);
}

void EngineWorker::generate(const GenerationRequest& req) {
    QElapsedTimer timer;
    timer.start();
    GenerationResult res;
    res.id = req.id;
    std::unique_ptr<StreamDecoder> stream;
    auto finish = [&](FinishReason r, const QString& err = {}) {
        if (stream && r != FinishReason::Error)
            res.tailText = QString::fromStdString(stream->finish());
        res.reason = r;
        res.error = err;
        res.totalMs = msSince(timer);
        emit generationFinished(res);
    };
    if (!m_) return finish(FinishReason::Error, tr("No model is loaded."));
    if (stopRequested(req.id)) return finish(FinishReason::Stopped);

    BackendSession& session = *m_->session;
    const Tokenizer& tok = *m_->tokenizer;
    try {
        const std::vector<int> ids = renderPrompt(req.messages);
        res.promptTokens = qint64(ids.size());
        if (ids.empty()) return finish(FinishReason::Error, tr("The prompt is empty."));
        if (int64_t(ids.size()) >= session.n_ctx())
            return finish(FinishReason::ContextFull,
                          tr("The conversation (%1 tokens) no longer fits the context of %2 "
                             "tokens; start a new chat.")
                              .arg(ids.size())
                              .arg(session.n_ctx()));

        // Reuse the cached prefix; the engine cannot truncate its cache, so any divergence
        // (an edited or regenerated turn) resets it and the kept prefix is recomputed.
        size_t common = 0;
        while (common < cached_.size() && common + 1 < ids.size() && cached_[common] == ids[common])
            ++common;
        if (common < cached_.size()) {
            session.reset();
            cached_.clear();
            common = 0;
        }
        res.reusedTokens = qint64(common);

        auto ctx = std::make_shared<ContextSnapshot>();
        ctx->generationId = req.id;
        ctx->ids = ids;
        for (int id : ids) ctx->pieces << QString::fromStdString(tok.token_text(id));
        ctx->reusedTokens = qint64(common);
        ctx->contextSize = session.n_ctx();
        emit generationStarted(ctx);

        SamplerParams sp;
        sp.temperature = float(req.sampling.temperature);
        sp.top_k = req.sampling.topK;
        sp.top_p = float(req.sampling.topP);
        sp.min_p = float(req.sampling.minP);
        sp.repetition_penalty = float(req.sampling.repetitionPenalty);
        sp.seed =
            req.sampling.fixedSeed ? req.sampling.seed : QRandomGenerator::global()->generate64();
        res.seed = sp.seed;
        Sampler sampler(sp);

        session.probes().clear_records();
        std::vector<float> logits;
        for (size_t at = common; at < ids.size(); at += size_t(kPrefillChunk)) {
            if (stopRequested(req.id)) return finish(FinishReason::Stopped);
            const size_t n = std::min(ids.size() - at, size_t(kPrefillChunk));
            applyProbeConfig(at + n == ids.size());  // the lens of the prompt's last position only
            logits = session.forward(std::span<const int>(ids.data() + at, n));
            cached_.insert(cached_.end(), ids.begin() + int64_t(at), ids.begin() + int64_t(at + n));
        }

        std::vector<int> history = ids;
        stream = std::make_unique<StreamDecoder>(tok);
        LensBudget lens;  // the lens on decode steps while it costs at most a share of their time
        double firstMs = 0, lastMs = 0;
        const int maxTokens = req.sampling.maxTokens > 0 ? req.sampling.maxTokens : INT32_MAX;
        for (int i = 0;; ++i) {
            if (stopRequested(req.id)) return finish(FinishReason::Stopped);
            const int id = sampler.sample(logits, history);
            if (std::find(m_->stopIds.begin(), m_->stopIds.end(), id) != m_->stopIds.end())
                return finish(FinishReason::EndOfTurn);
            history.push_back(id);

            auto snap = std::make_shared<TokenSnapshot>();
            snap->generationId = req.id;
            snap->index = i;
            snap->position = session.position();
            snap->token.id = id;
            snap->token.text = QString::fromStdString(stream->feed(id));
            snap->piece = QString::fromStdString(tok.token_text(id));
            // The model's own probability (plain softmax of the logits), not the sampler's
            // reshaped distribution: the colour should say how sure the model was.
            const float mx = *std::max_element(logits.begin(), logits.end());
            double sum = 0;
            for (float l : logits) sum += std::exp(double(l - mx));
            snap->token.prob = float(std::exp(double(logits[size_t(id)] - mx)) / sum);
            ProbeData& probes = session.probes();
            for (const TokenProb& tp : probes.top_k)
                snap->token.topK.push_back(
                    {tp.id, QString::fromStdString(tok.decode({tp.id})), tp.prob});
            // Moving the records out leaves them cleared for the next forward call.
            snap->probes.attention = std::move(probes.attention);
            snap->probes.routing = std::move(probes.routing);
            snap->probes.top_k = probes.top_k;
            snap->probes.expert_load = probes.expert_load;
            snap->probes.logit_lens = probes.logit_lens;
            for (const LogitLensEntry& e : probes.logit_lens)
                snap->logitLens.push_back(
                    {e.token, QString::fromStdString(tok.decode({e.token})), e.prob});
            probes.clear_records();
            for (uint64_t b : session.kv_bytes_per_layer()) snap->kvBytesPerLayer.push_back(b);
            snap->kvBytesTotal = session.kv_bytes();
            snap->contextUsed = session.position() + 1;
            snap->contextSize = session.n_ctx();
            snap->msSinceStart = msSince(timer);
            if (i == 0) firstMs = snap->msSinceStart;
            lastMs = snap->msSinceStart;
            res.tokens = i + 1;
            res.ttftMs = firstMs;
            res.tokensPerSecond =
                res.tokens > 1 ? (res.tokens - 1) * 1000.0 / std::max(lastMs - firstMs, 1e-3) : 0;
            emit tokenGenerated(snap);

            if (res.tokens >= maxTokens) return finish(FinishReason::MaxTokens);
            if (session.position() + 1 >= session.n_ctx()) return finish(FinishReason::ContextFull);
            if (stopRequested(req.id)) return finish(FinishReason::Stopped);
            // A view opened or closed, or another head picked, takes effect from the next token.
            const bool withLens = applyProbeConfig(lens.wanted());
            QElapsedTimer step;
            step.start();
            logits = session.forward(std::span<const int>(&id, 1));
            lens.record(double(step.nsecsElapsed()) / 1e6, withLens);
            cached_.push_back(id);
        }
    } catch (const std::exception& e) {
        // The cache may hold a half-run step: start from a clean session next time.
        session.reset();
        cached_.clear();
        return finish(FinishReason::Error, QString::fromUtf8(e.what()));
    }
}

// ---- controller (UI thread) -------------------------------------------------------------------

EngineController::EngineController(QObject* parent) : QObject(parent), worker_(new EngineWorker) {
    registerEngineMetaTypes();
    thread_.setObjectName(QStringLiteral("archlens-engine"));
    worker_->moveToThread(&thread_);
    connect(&thread_, &QThread::finished, worker_, &QObject::deleteLater);
    // The engine yields to the UI when they compete for cores: nice +5 for the worker thread and,
    // inherited at creation, for the compute threads its sessions start.
    connect(
        &thread_, &QThread::started, worker_,
        [] {
#ifdef __linux__
            setpriority(PRIO_PROCESS, pid_t(syscall(SYS_gettid)), 5);
#endif
        },
        Qt::DirectConnection);

    connect(worker_, &EngineWorker::loadProgress, this,
            [this](quint64 id, const QString& phase, int pct) {
                if (id == loadingId_) emit loadProgress(phase, pct);
            });
    connect(worker_, &EngineWorker::modelLoaded, this,
            [this](quint64 id, const ModelInfoPtr& info) {
                if (id <= cancelledLoadUpTo_) {
                    const QString source = loadingSource_.isEmpty() ? info->source : loadingSource_;
                    if (id == loadingId_) {
                        loadingId_ = 0;
                        loadingSource_.clear();
                    }
                    QMetaObject::invokeMethod(worker_, [w = worker_] { w->unloadModel(); }, Qt::QueuedConnection);
                    model_.reset();
                    emit loadFailed(source, tr("Loading %1 was cancelled.").arg(source), LoadFailure::Cancelled);
                    emit busyChanged();
                    return;
                }
                model_ = info;
                kvBytes_ = 0;
                if (id == loadingId_) {
                    loadingId_ = 0;
                    loadingSource_.clear();
                }
                emit modelLoaded(info);
                emit busyChanged();
            });
    connect(worker_, &EngineWorker::loadFailed, this,
            [this](quint64 id, const QString& msg, LoadFailure kind) {
                const QString source = loadingSource_;
                if (id == loadingId_) {
                    loadingId_ = 0;
                    loadingSource_.clear();
                }
                emit loadFailed(source, msg, kind);
                emit busyChanged();
            });
    // Direct connections: these run on the worker thread and only queue the event.
    connect(
        worker_, &EngineWorker::generationStarted, this,
        [this](const ContextSnapshotPtr& c) {
            post({c, {}, {}});
        },
        Qt::DirectConnection);
    connect(
        worker_, &EngineWorker::tokenGenerated, this,
        [this](const TokenSnapshotPtr& t) {
            post({{}, t, {}});
        },
        Qt::DirectConnection);
    connect(
        worker_, &EngineWorker::generationFinished, this,
        [this](const GenerationResult& r) {
            post({{}, {}, r});
        },
        Qt::DirectConnection);
    thread_.start();
}

EngineController::~EngineController() {
    // Within one token the worker notices, returns to its event loop and the thread ends.
    worker_->requestStop(UINT64_MAX);
    worker_->requestCancelLoad(UINT64_MAX);
    thread_.quit();
    thread_.wait();
}

void EngineController::post(InboxEvent e) {
    QMutexLocker lock(&inboxMutex_);
    inbox_.push_back(std::move(e));
    if (drainScheduled_) return;
    drainScheduled_ = true;
    QMetaObject::invokeMethod(this, "drain", Qt::QueuedConnection);
}

void EngineController::drain() {
    constexpr qint64 kSliceNs = 8'000'000;  // leaves most of a 60 Hz frame to everything else
    QElapsedTimer slice;
    slice.start();
    for (;;) {
        InboxEvent e;
        {
            QMutexLocker lock(&inboxMutex_);
            if (inbox_.empty()) {
                drainScheduled_ = false;
                return;
            }
            if (slice.nsecsElapsed() > kSliceNs) {
                // A timer, not a posted event, and 2 ms away: pending timers, input and the views'
                // queued replots get their turn first (with 0 ms, slices and replots chained into
                // 30-50 ms without a timer firing, on the tiny demo models that outrun the UI).
                QTimer::singleShot(2, Qt::PreciseTimer, this, &EngineController::drain);
                return;
            }
            e = std::move(inbox_.front());
            inbox_.pop_front();
        }
        if (e.started) {
            emit generationStarted(e.started);
        } else if (e.token) {
            kvBytes_ = e.token->kvBytesTotal;
            emit tokenGenerated(e.token);
        } else if (e.finished) {
            if (e.finished->id == generatingId_) generatingId_ = 0;
            emit generationFinished(*e.finished);
            emit busyChanged();
        }
    }
}

quint64 EngineController::loadModel(const QString& source) {
    return startLoad(source, false);
}

void EngineController::setBackend(const QString& b) { g_backend = b; }
QString EngineController::backend() { return g_backend; }

quint64 EngineController::loadArchitecture(const QString& source) {
    return startLoad(source, true);
}

quint64 EngineController::loadSlice(const QString& source, const QString& slice, bool architectureOnly) {
    return startLoad(source, architectureOnly, slice);
}

quint64 EngineController::startLoad(const QString& source, bool architectureOnly, const QString& slice) {
    stop();
    if (loadingId_) worker_->requestCancelLoad(loadingId_);
    LoadRequest req;
    req.id = ++nextLoad_;
    req.source = source;
    req.contextCap = contextCap_;
    req.memoryBudget = memoryBudget();
    req.backend = g_backend;
    req.architectureOnly = architectureOnly;
    req.slice = slice;
    loadingId_ = req.id;
    loadingSource_ = source;
    emit loadStarted(source);
    emit busyChanged();
    QMetaObject::invokeMethod(worker_, "loadModel", Qt::QueuedConnection, Q_ARG(LoadRequest, req));
    return req.id;
}

void EngineController::cancelLoad() {
    if (!loadingId_) return;
    worker_->requestCancelLoad(loadingId_);
    cancelledLoadUpTo_ = loadingId_;
}

quint64 EngineController::generate(const std::vector<ChatMessageInput>& messages,
                                   const SamplingSettings& sampling) {
    stop();
    GenerationRequest req;
    req.id = ++nextGeneration_;
    req.messages = messages;
    req.sampling = sampling;
    generatingId_ = req.id;
    emit busyChanged();
    QMetaObject::invokeMethod(worker_, "generate", Qt::QueuedConnection,
                              Q_ARG(GenerationRequest, req));
    return req.id;
}

void EngineController::stop() {
    if (generatingId_) worker_->requestStop(generatingId_);
}
