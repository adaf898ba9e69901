#include "app/gui/lessons_runner.h"

#include <QtConcurrent/QtConcurrentRun>
#include <filesystem>
#include <cstring>
#include <mutex>

#include "engine/core/error.h"
#include "engine/demo.h"
#include "engine/model/model.h"
#include "engine/model/spec_parse.h"
#include "engine/model/synth.h"
#include "engine/session.h"
#include "engine/teaching_models.h"

using namespace archlens;

namespace lessons {

namespace {
std::mutex g_buildMutex;  // two runs never write the same variant file at once

QString tokenLabel(int id) {
    if (id >= 0 && id < 256) {
        const QChar c(id);
        if (c.isPrint() && id < 128) return QString(c);
        if (id == ' ') return QStringLiteral(" ");
        if (id == '\n') return QStringLiteral("\n");
        return QStringLiteral("<%1>").arg(id);
    }
    return QStringLiteral("t%1").arg(id);
}
}  // namespace

std::string ensureDemoVariant(const DemoVariant& v) {
    if (v.config.isEmpty()) return demo::ensure_demo_model(v.name.toStdString(), demo::default_demo_dir());
    namespace fs = std::filesystem;
    const fs::path dir = fs::path(demo::default_demo_dir()) / "lessons";
    const fs::path path = dir / (v.key().toStdString() + ".gguf");
    std::lock_guard<std::mutex> lock(g_buildMutex);
    std::error_code ec;
    if (fs::exists(path, ec)) return path.string();
    fs::create_directories(dir, ec);
    const ModelSpec spec = spec_from_hf_config_text(v.config.toStdString(), "demo:" + v.name.toStdString());
    SynthOptions o;
    o.seed = 20250101;
    o.name = "ArchLens lesson demo " + v.name.toStdString();
    if (v.classRouter) {
        teaching::configure_class_router(o, spec.vocab);
        auto base = o.edit_row;
        o.edit_row = [base](const std::string& name, int64_t row, float* x, int64_t n) {
            base(name, row, x, n);
            auto ends = [&](const char* suf) { return name.size() >= std::strlen(suf) && name.compare(name.size() - std::strlen(suf), std::strlen(suf), suf) == 0; };
            if (ends("exp_probs_b.bias")) std::fill(x, x + n, 0.f);  // no selection bias: the scores decide
            if (ends("ffn_down_shexp.weight"))
                for (int64_t i = 0; i < n; ++i) x[i] *= 0.1f;  // a small always-on update, as for the routed experts
        };
    }
    const fs::path tmp = path.string() + ".tmp";
    write_synthetic_gguf(spec, o, tmp.string());
    fs::rename(tmp, path, ec);
    if (ec) throw Error(path.string() + ": " + ec.message());
    return path.string();
}

DemoRun runDemo(quint64 id, const DemoVariant& v, const std::vector<int>& prompt, const ProbeConfig& probes) {
    DemoRun r;
    r.id = id;
    try {
        auto model = Model::load(ensureDemoVariant(v));
        Session session(*model, SessionOptions{std::max<int64_t>(256, int64_t(prompt.size()) + 8), 2});
        session.probe_config() = probes;
        session.probe_config().top_k = std::max(probes.top_k, 10);
        const ModelSpec& spec = model->spec();
        std::vector<int> ids;
        for (int t : prompt) ids.push_back(std::clamp(t, 0, spec.vocab - 1));
        auto info = std::make_shared<InternalsModel>();
        info->name = v.name;
        info->spec = std::make_shared<const ModelSpec>(spec);
        info->weightBytes = model->weight_bytes();
        info->bufferBytes = 1 << 20;
        info->contextSize = session.n_ctx();
        r.model = info;
        auto ctx = std::make_shared<ContextSnapshot>();
        ctx->generationId = id;
        ctx->ids = ids;
        for (int t : ids) ctx->pieces << tokenLabel(t);
        ctx->contextSize = session.n_ctx();
        r.context = ctx;

        const std::vector<float> logits = session.forward(ids);
        const int next = int(std::max_element(logits.begin(), logits.end()) - logits.begin());
        ProbeData& pd = session.probes();
        auto snap = std::make_shared<TokenSnapshot>();
        snap->generationId = id;
        snap->position = session.position();
        snap->token.id = next;
        snap->token.text = tokenLabel(next);
        snap->piece = snap->token.text;
        for (const TokenProb& tp : pd.top_k) snap->token.topK.push_back({tp.id, tokenLabel(tp.id), tp.prob});
        if (!pd.top_k.empty() && pd.top_k.front().id == next) snap->token.prob = pd.top_k.front().prob;
        snap->probes = pd;
        for (const auto& e : pd.logit_lens) snap->logitLens.push_back({e.token, tokenLabel(e.token), e.prob});
        for (const LayerKv& kv : session.kv()) snap->kvBytesPerLayer.push_back(kv.bytes());
        snap->kvBytesTotal = session.kv_bytes();
        snap->contextUsed = session.position();
        snap->contextSize = session.n_ctx();
        r.token = snap;
    } catch (const std::exception& e) {
        r.error = QString::fromStdString(e.what());
    }
    return r;
}

LessonRunner::LessonRunner(QObject* parent) : QObject(parent) { qRegisterMetaType<lessons::DemoRun>("lessons::DemoRun"); }

LessonRunner::~LessonRunner() {
    for (auto* w : watchers_) w->waitForFinished();
}

quint64 LessonRunner::start(const DemoVariant& v, const std::vector<int>& prompt, const ProbeConfig& probes) {
    const quint64 id = ++next_;
    latest_ = id;
    auto* w = new QFutureWatcher<DemoRun>(this);
    watchers_ << w;
    connect(w, &QFutureWatcher<DemoRun>::finished, this, [this, w] {
        watchers_.removeOne(w);
        const DemoRun r = w->result();
        w->deleteLater();
        if (r.id == latest_) emit finished(r);
    });
    w->setFuture(QtConcurrent::run([id, v, prompt, probes] { return runDemo(id, v, prompt, probes); }));
    return id;
}

bool LessonRunner::busy() const { return !watchers_.isEmpty(); }

}  // namespace lessons
