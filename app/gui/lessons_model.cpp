#include "app/gui/lessons_model.h"

#include <QCryptographicHash>
#include <QDir>
#include <QFile>
#include <QJsonArray>
#include <QJsonDocument>
#include <QRegularExpression>
#include <algorithm>
#include <functional>
#include <map>
#include <random>

#include "engine/core/error.h"
#include "engine/model/catalog.h"
#include "engine/model/model.h"
#include "engine/model/spec_parse.h"
#include "engine/model/spec_summary.h"
#include "engine/teaching_models.h"

using namespace archlens;

namespace lessons {

namespace {

QString qs(const std::string& s) { return QString::fromStdString(s); }

std::vector<int> intList(const QJsonValue& v) {
    std::vector<int> out;
    for (const QJsonValue& x : v.toArray()) out.push_back(x.toInt());
    return out;
}

// The tiny demo configs a control edits (the built-in demos' own shapes, see engine/demo.cpp).
const char* kSlidingDemo =
    R"({"model_type":"mistral","vocab_size":512,"hidden_size":128,"intermediate_size":384,"num_hidden_layers":2,
        "num_attention_heads":4,"num_key_value_heads":2,"head_dim":32,"max_position_embeddings":2048,
        "rms_norm_eps":1e-5,"rope_theta":10000.0})";

// The character-class router (teaching_models.h) in a DeepSeek-V3 shape, so that a shared expert
// can be switched on: 8 routed experts (0–3 listen to digits, letters, punctuation, spaces; 4–7
// to nothing), sigmoid scores, no groups.
QString routerDemoConfig(int topK, int shared) {
    return QStringLiteral(
               R"({"model_type":"deepseek_v3","vocab_size":512,"hidden_size":64,"intermediate_size":128,"moe_intermediate_size":32,)"
               R"("num_hidden_layers":3,"num_attention_heads":4,"num_key_value_heads":4,"n_shared_experts":%1,"n_routed_experts":8,)"
               R"("routed_scaling_factor":1.0,"kv_lora_rank":32,"q_lora_rank":48,"qk_rope_head_dim":8,"v_head_dim":16,)"
               R"("qk_nope_head_dim":16,"topk_method":"noaux_tc","n_group":1,"topk_group":1,"num_experts_per_tok":%2,)"
               R"("first_k_dense_replace":0,"norm_topk_prob":true,"scoring_func":"sigmoid","max_position_embeddings":2048,)"
               R"("rms_norm_eps":1e-6,"rope_theta":10000.0})")
        .arg(shared)
        .arg(topK);
}

QString withCommas(quint64 n) { return qs(with_commas(n)); }

int countLayers(const ModelSpec& s, const std::function<bool(const LayerSpec&)>& f) {
    return int(std::count_if(s.layers.begin(), s.layers.end(), f));
}

// Plain multi-head attention with the same query heads and head sizes: the KV cache before GQA,
// MLA or windows (the outline the KV cache view draws too).
ModelSpec plainMha(ModelSpec s) {
    for (auto& l : s.layers) {
        if (l.attn.kind == AttnKind::MLA) {
            l.attn.kind = AttnKind::Standard;
            l.attn.head_dim = l.attn.qk_nope_head_dim + l.attn.qk_rope_head_dim;
        }
        l.attn.n_kv_heads = l.attn.n_heads;
        l.attn.scope = AttnScope::Global;
        l.attn.window = 0;
        l.kv_source = -1;
    }
    return s;
}

ModelSpec allGlobal(ModelSpec s) {
    for (auto& l : s.layers) {
        l.attn.scope = AttnScope::Global;
        l.attn.window = 0;
    }
    return s;
}

NumberRow bytesRow(const QString& key, const QString& label, quint64 b) { return {label, b, bytesText(b), key}; }
NumberRow countRow(const QString& key, const QString& label, quint64 n) { return {label, n, countText(n), key}; }
NumberRow plainRow(const QString& key, const QString& label, quint64 n) { return {label, n, withCommas(n), key}; }

int pick(const std::vector<int>& values, int v, int fallback) {
    if (values.empty()) return v;
    return std::find(values.begin(), values.end(), v) != values.end() ? v : fallback;
}

}  // namespace

QString bytesText(quint64 b) { return QStringLiteral("%1 B (%2)").arg(withCommas(b), qs(human_bytes(double(b)))); }
QString countText(quint64 n) { return QStringLiteral("%1 (%2)").arg(withCommas(n), qs(human_count(n))); }

ViewKind viewKindFromName(const QString& n) {
    if (n == QLatin1String("routing")) return ViewKind::Routing;
    if (n == QLatin1String("kv-cache")) return ViewKind::KvCache;
    if (n == QLatin1String("next-token")) return ViewKind::NextToken;
    return ViewKind::Attention;
}

QString viewKindName(ViewKind k) {
    switch (k) {
        case ViewKind::Routing: return QStringLiteral("routing");
        case ViewKind::KvCache: return QStringLiteral("kv-cache");
        case ViewKind::NextToken: return QStringLiteral("next-token");
        case ViewKind::Attention: break;
    }
    return QStringLiteral("attention");
}

std::optional<Lesson> lessonFromJson(const QJsonObject& o, QString* error) {
    Lesson l;
    l.id = o.value(QStringLiteral("id")).toString();
    l.order = o.value(QStringLiteral("order")).toInt();
    l.title = o.value(QStringLiteral("title")).toString();
    l.summary = o.value(QStringLiteral("summary")).toString();
    const QJsonObject models = o.value(QStringLiteral("models")).toObject();
    l.catalog = models.value(QStringLiteral("catalog")).toString();
    for (const QJsonValue& v : models.value(QStringLiteral("compare")).toArray()) l.compare << v.toString();
    l.demo = models.value(QStringLiteral("demo")).toString();
    l.block = o.value(QStringLiteral("block")).toString();
    const QJsonObject view = o.value(QStringLiteral("view")).toObject();
    l.view = viewKindFromName(view.value(QStringLiteral("kind")).toString());
    l.viewLayer = view.value(QStringLiteral("layer")).toInt();
    l.viewHead = view.value(QStringLiteral("head")).toInt();
    const QJsonObject prompt = o.value(QStringLiteral("prompt")).toObject();
    l.prompt.kind = prompt.value(QStringLiteral("kind")).toString(QStringLiteral("bytes"));
    l.prompt.text = prompt.value(QStringLiteral("text")).toString();
    l.prompt.length = prompt.value(QStringLiteral("length")).toInt(12);
    l.prompt.seed = prompt.value(QStringLiteral("seed")).toInt(1);
    for (const QJsonValue& v : o.value(QStringLiteral("steps")).toArray()) {
        const QJsonObject s = v.toObject();
        l.steps << LessonStep{s.value(QStringLiteral("title")).toString(), s.value(QStringLiteral("text")).toString()};
    }
    const QJsonObject c = o.value(QStringLiteral("control")).toObject();
    l.control.kind = c.value(QStringLiteral("kind")).toString();
    l.control.label = c.value(QStringLiteral("label")).toString();
    l.control.help = c.value(QStringLiteral("help")).toString();
    l.control.values = intList(c.value(QStringLiteral("values")));
    l.control.defaultValue = c.value(QStringLiteral("default")).toInt();
    for (const QJsonValue& v : c.value(QStringLiteral("choices")).toArray()) {
        const QJsonObject ch = v.toObject();
        l.control.choices << ControlChoice{ch.value(QStringLiteral("label")).toString(), ch.value(QStringLiteral("catalog")).toString(),
                                           ch.value(QStringLiteral("block")).toString()};
    }
    l.control.defaultChoice = c.value(QStringLiteral("default_choice")).toInt();
    const QJsonObject second = c.value(QStringLiteral("second")).toObject();
    l.control.secondLabel = second.value(QStringLiteral("label")).toString();
    l.control.secondValues = intList(second.value(QStringLiteral("values")));
    l.control.secondDefault = second.value(QStringLiteral("default")).toInt();
    l.control.toggle = second.value(QStringLiteral("toggle")).toBool();
    l.control.toggleDefault = second.value(QStringLiteral("default")).toBool();
    const QJsonObject check = o.value(QStringLiteral("check")).toObject();
    l.question = check.value(QStringLiteral("question")).toString();
    l.answer = check.value(QStringLiteral("answer")).toString();

    QString why;
    if (l.id.isEmpty() || l.title.isEmpty()) why = QStringLiteral("id and title are required");
    else if (l.catalog.isEmpty() || l.demo.isEmpty()) why = QStringLiteral("models.catalog and models.demo are required");
    else if (l.steps.isEmpty()) why = QStringLiteral("at least one step is required");
    else if (l.control.kind.isEmpty()) why = QStringLiteral("a control is required");
    else if (l.control.values.empty() && l.control.choices.isEmpty()) why = QStringLiteral("the control needs values or choices");
    else if (l.question.isEmpty() || l.answer.isEmpty()) why = QStringLiteral("check.question and check.answer are required");
    if (!why.isEmpty()) {
        if (error) *error = l.id + QStringLiteral(": ") + why;
        return std::nullopt;
    }
    return l;
}

QList<Lesson> loadLessons(QStringList* errors) {
    QList<Lesson> out;
    QDir dir(QStringLiteral(":/lessons"));
    const QStringList files = dir.entryList({QStringLiteral("*.json")}, QDir::Files, QDir::Name);
    for (const QString& f : files) {
        QFile file(dir.filePath(f));
        if (!file.open(QIODevice::ReadOnly)) continue;
        QJsonParseError pe;
        const QJsonDocument doc = QJsonDocument::fromJson(file.readAll(), &pe);
        if (!doc.isObject()) {
            if (errors) *errors << f + QStringLiteral(": ") + pe.errorString();
            continue;
        }
        QString err;
        if (auto l = lessonFromJson(doc.object(), &err)) out << *l;
        else if (errors) *errors << f + QStringLiteral(": ") + err;
    }
    std::stable_sort(out.begin(), out.end(), [](const Lesson& a, const Lesson& b) { return a.order < b.order; });
    return out;
}

QString editedCatalogConfig(const QString& name, const QJsonObject& edits) {
    const std::string text = require_catalog_config(name.toStdString());
    if (edits.isEmpty()) return qs(text);
    QJsonObject root = QJsonDocument::fromJson(QByteArray::fromStdString(text)).object();
    const bool wrapped = root.value(QStringLiteral("text_config")).isObject();
    QJsonObject target = wrapped ? root.value(QStringLiteral("text_config")).toObject() : root;
    for (auto it = edits.begin(); it != edits.end(); ++it) {
        if (it.value().isNull()) target.remove(it.key());
        else target.insert(it.key(), it.value());
    }
    if (wrapped) root.insert(QStringLiteral("text_config"), target);
    else root = target;
    return QString::fromUtf8(QJsonDocument(root).toJson(QJsonDocument::Compact));
}

ModelSpec catalogSpec(const QString& name, const QJsonObject& edits) {
    if (edits.isEmpty()) return Model::load_spec(std::string(kCatalogPrefix) + name.toStdString());
    return spec_from_hf_config_text(editedCatalogConfig(name, edits).toStdString(), "catalog:" + name.toStdString());
}

QString specField(const ModelSpec& s, const QString& f) {
    const ParamCounts c = count_params(s);
    const LayerSpec* first = s.layers.empty() ? nullptr : &s.layers.front();
    const LayerSpec* moe = nullptr;
    for (auto& l : s.layers)
        if (l.ffn.moe) {
            moe = &l;
            break;
        }
    auto hc = [](uint64_t n) { return qs(human_count(n)); };
    auto hb = [](uint64_t n) { return qs(human_bytes(double(n))); };
    if (f == QLatin1String("total")) return hc(c.total);
    if (f == QLatin1String("active")) return hc(c.active);
    if (f == QLatin1String("total_exact")) return withCommas(c.total);
    if (f == QLatin1String("active_exact")) return withCommas(c.active);
    if (f == QLatin1String("active_percent")) return QString::number(100.0 * double(c.active) / double(std::max<uint64_t>(c.total, 1)), 'f', 1);
    if (f == QLatin1String("layers")) return QString::number(s.n_layers);
    if (f == QLatin1String("dim")) return withCommas(uint64_t(s.dim));
    if (f == QLatin1String("vocab")) return withCommas(uint64_t(s.vocab));
    if (f == QLatin1String("context")) return withCommas(uint64_t(s.max_positions));
    if (f == QLatin1String("kv_token")) return hb(kv_bytes_at(s, 1, kBf16));
    if (f == QLatin1String("kv_token_exact")) return withCommas(kv_bytes_at(s, 1, kBf16));
    if (f == QLatin1String("kv_32k")) return hb(kv_bytes_at(s, kLongContext, kBf16));
    if (f == QLatin1String("kv_128k")) return hb(kv_bytes_at(s, 131072, kBf16));
    if (f == QLatin1String("kv_token_mha")) return hb(kv_bytes_at(plainMha(s), 1, kBf16));
    if (f == QLatin1String("kv_32k_mha")) return hb(kv_bytes_at(plainMha(s), kLongContext, kBf16));
    if (f == QLatin1String("kv_32k_global")) return hb(kv_bytes_at(allGlobal(s), kLongContext, kBf16));
    if (f == QLatin1String("norms")) return hc(c.norms);
    if (f == QLatin1String("ple")) return hc(c.per_layer_embedding);
    if (f == QLatin1String("without_ple")) return hc(c.total - c.per_layer_embedding);
    if (f == QLatin1String("experts_params")) return hc(c.experts);
    if (f == QLatin1String("pos_table")) return hc(s.learned_positions ? uint64_t(s.max_positions) * uint64_t(s.dim) : 0);
    if (f == QLatin1String("sliding_layers"))
        return QString::number(countLayers(s, [](const LayerSpec& l) { return l.attn.scope == AttnScope::Sliding; }));
    if (f == QLatin1String("global_layers"))
        return QString::number(countLayers(s, [](const LayerSpec& l) { return l.attn.scope == AttnScope::Global; }));
    if (f == QLatin1String("chunked_layers"))
        return QString::number(countLayers(s, [](const LayerSpec& l) { return l.attn.scope == AttnScope::Chunked; }));
    if (f == QLatin1String("nope_layers"))
        return QString::number(countLayers(s, [](const LayerSpec& l) { return !l.attn.rope.enabled; }));
    if (f == QLatin1String("kv_shared_layers"))
        return QString::number(countLayers(s, [](const LayerSpec& l) { return l.kv_source >= 0; }));
    if (f == QLatin1String("dense_layers")) return QString::number(countLayers(s, [](const LayerSpec& l) { return !l.ffn.moe; }));
    if (f == QLatin1String("moe_layers")) return QString::number(countLayers(s, [](const LayerSpec& l) { return l.ffn.moe; }));
    if (first) {
        const AttentionSpec& a = first->attn;
        if (f == QLatin1String("heads")) return QString::number(a.n_heads);
        if (f == QLatin1String("kv_heads")) return QString::number(a.n_kv_heads);
        if (f == QLatin1String("group")) return QString::number(a.n_kv_heads > 0 ? a.n_heads / a.n_kv_heads : 0);
        if (f == QLatin1String("head_dim")) return QString::number(a.head_dim);
        if (f == QLatin1String("v_head_dim")) return QString::number(a.v_head_dim);
        if (f == QLatin1String("kv_lora_rank")) return QString::number(a.kv_lora_rank);
        if (f == QLatin1String("q_lora_rank")) return QString::number(a.q_lora_rank);
        if (f == QLatin1String("rope_dim")) return QString::number(a.qk_rope_head_dim);
        if (f == QLatin1String("kv_values")) return withCommas(kv_values_per_token(a));
        if (f == QLatin1String("ffn_dim")) return withCommas(uint64_t(first->ffn.ffn_dim));
        if (f == QLatin1String("norm_placement")) return qs(norm_placement_label(*first));
    }
    for (auto& l : s.layers)
        if (l.attn.scope != AttnScope::Global && f == QLatin1String("window")) return withCommas(uint64_t(l.attn.window));
    if (moe) {
        const FfnSpec& m = moe->ffn;
        if (f == QLatin1String("experts")) return QString::number(m.n_experts);
        if (f == QLatin1String("top_k")) return QString::number(m.top_k);
        if (f == QLatin1String("shared")) return QString::number(m.n_shared);
        if (f == QLatin1String("expert_dim")) return withCommas(uint64_t(m.expert_ffn_dim));
    }
    return QStringLiteral("?");
}

QString fillPlaceholders(const QString& text) {
    static const QRegularExpression re(QStringLiteral(R"(\{([a-z0-9.\-]+):([a-z0-9_]+)\})"));
    std::map<QString, std::optional<ModelSpec>> cache;
    QString out;
    qsizetype last = 0;
    auto it = re.globalMatch(text);
    while (it.hasNext()) {
        const auto m = it.next();
        out += text.mid(last, m.capturedStart() - last);
        last = m.capturedEnd();
        const QString name = m.captured(1);
        auto& spec = cache[name];
        if (!spec && catalog_config(name.toStdString())) {
            try {
                spec = catalogSpec(name);
            } catch (const std::exception&) {
            }
        }
        out += spec ? specField(*spec, m.captured(2)) : QStringLiteral("?");
    }
    out += text.mid(last);
    return out;
}

QString DemoVariant::key() const {
    if (config.isEmpty()) return name;
    const QByteArray h = QCryptographicHash::hash((config + (classRouter ? "+router" : "")).toUtf8(), QCryptographicHash::Sha1).toHex();
    return name + QLatin1Char('-') + QString::fromLatin1(h.left(12));
}

ControlState defaultState(const Lesson& l) {
    ControlState s;
    s.value = l.control.choices.isEmpty() ? l.control.defaultValue : l.control.defaultChoice;
    s.second = l.control.toggle ? int(l.control.toggleDefault) : l.control.secondDefault;
    return s;
}

LessonOutcome evaluate(const Lesson& l, const ControlState& st) {
    LessonOutcome o;
    const LessonControl& c = l.control;
    const QString k = c.kind;
    o.block = l.block;
    o.demo.name = l.demo;
    o.viewLayer = l.viewLayer;
    o.viewHead = l.viewHead;
    QString model = l.catalog;
    QJsonObject edits;
    int choice = std::clamp(st.value, 0, std::max(0, int(c.choices.size()) - 1));
    if (!c.choices.isEmpty()) {
        model = c.choices[choice].catalog;
        if (!c.choices[choice].block.isEmpty()) o.block = c.choices[choice].block;
    }
    const int v = pick(c.values, st.value, c.defaultValue);
    if (k == QLatin1String("positions")) edits.insert(QStringLiteral("n_positions"), v);
    else if (k == QLatin1String("kv_heads")) edits.insert(QStringLiteral("num_key_value_heads"), v);
    else if (k == QLatin1String("kv_lora_rank")) edits.insert(QStringLiteral("kv_lora_rank"), v);
    else if (k == QLatin1String("moe_topk")) {
        edits.insert(QStringLiteral("num_experts_per_tok"), v);
        edits.insert(QStringLiteral("n_shared_experts"), st.second ? 1 : 0);
    } else if (k == QLatin1String("window")) {
        edits.insert(QStringLiteral("sliding_window"), v);
        edits.insert(QStringLiteral("sliding_window_pattern"), st.second + 1);
    } else if (k == QLatin1String("nope_interval")) {
        edits.insert(QStringLiteral("no_rope_layers"), QJsonValue::Null);
        edits.insert(QStringLiteral("no_rope_layer_interval"), v);
    } else if (k == QLatin1String("experts")) edits.insert(QStringLiteral("n_routed_experts"), v);

    o.spec = catalogSpec(model, edits);
    const ModelSpec& s = o.spec;
    const ParamCounts pc = count_params(s);
    o.diagramTitle = qs(s.name.empty() ? model.toStdString() : s.name);
    if (!edits.isEmpty()) o.diagramTitle += QStringLiteral(" (%1 = %2)").arg(c.label).arg(v);

    if (k == QLatin1String("positions")) {
        const quint64 table = s.learned_positions ? quint64(s.max_positions) * quint64(s.dim) : 0;
        o.rows << plainRow(QStringLiteral("positions"), QStringLiteral("positions the model can see"), quint64(s.max_positions));
        o.rows << countRow(QStringLiteral("pos_table"), QStringLiteral("learned position table (positions × %1)").arg(s.dim), table);
        o.rows << countRow(QStringLiteral("total"), QStringLiteral("total parameters"), pc.total);
        o.rows << countRow(QStringLiteral("rope_params"), QStringLiteral("parameters RoPE needs for the same positions"), 0);
        o.note = QStringLiteral("Every extra position is another %1 learned numbers; RoPE rotates q and k instead and stores none.").arg(s.dim);
    } else if (k == QLatin1String("kv_heads")) {
        const ModelSpec mha = plainMha(s);
        o.rows << plainRow(QStringLiteral("group"), QStringLiteral("query heads per KV head"), quint64(s.layers[0].attn.n_heads / v));
        o.rows << bytesRow(QStringLiteral("kv_token"), QStringLiteral("KV bytes per token (bf16)"), kv_bytes_at(s, 1, kBf16));
        o.rows << bytesRow(QStringLiteral("kv_32k"), QStringLiteral("KV cache at 32,768 tokens"), kv_bytes_at(s, kLongContext, kBf16));
        o.rows << bytesRow(QStringLiteral("kv_32k_mha"), QStringLiteral("same with one KV head per query head (MHA)"), kv_bytes_at(mha, kLongContext, kBf16));
        o.rows << countRow(QStringLiteral("attention"), QStringLiteral("attention parameters"), pc.attention);
        o.note = QStringLiteral("%1 query heads share each K/V head: the cache is 1/%1 of MHA's.").arg(s.layers[0].attn.n_heads / v);
    } else if (k == QLatin1String("kv_lora_rank")) {
        const ModelSpec mha = plainMha(s);
        o.rows << plainRow(QStringLiteral("kv_values"), QStringLiteral("values cached per token per layer (latent + RoPE key)"),
                           kv_values_per_token(s.layers[0].attn));
        o.rows << bytesRow(QStringLiteral("kv_token"), QStringLiteral("KV bytes per token (bf16)"), kv_bytes_at(s, 1, kBf16));
        o.rows << bytesRow(QStringLiteral("kv_32k"), QStringLiteral("KV cache at 32,768 tokens"), kv_bytes_at(s, kLongContext, kBf16));
        o.rows << bytesRow(QStringLiteral("kv_token_mha"), QStringLiteral("plain MHA with the same heads, per token"), kv_bytes_at(mha, 1, kBf16));
        o.rows << bytesRow(QStringLiteral("kv_32k_mha"), QStringLiteral("plain MHA at 32,768 tokens"), kv_bytes_at(mha, kLongContext, kBf16));
        o.rows << countRow(QStringLiteral("attention"), QStringLiteral("attention parameters"), pc.attention);
        o.note = QStringLiteral("The cache holds a %1-value latent per token instead of every head's keys and values.").arg(v);
    } else if (k == QLatin1String("moe_topk")) {
        o.rows << countRow(QStringLiteral("total"), QStringLiteral("total parameters"), pc.total);
        o.rows << countRow(QStringLiteral("active"), QStringLiteral("active parameters per token"), pc.active);
        o.rows << countRow(QStringLiteral("shared_params"), QStringLiteral("shared-expert parameters (always on)"), pc.shared_experts);
        const int demoK = std::min(v, 8);
        o.demo.name = QStringLiteral("moe-router");
        o.demo.config = routerDemoConfig(demoK, st.second ? 1 : 0);
        o.demo.classRouter = true;
        const ModelSpec ds = spec_from_hf_config_text(o.demo.config.toStdString(), "demo:moe-router");
        const ParamCounts dc = count_params(ds);
        o.rows << countRow(QStringLiteral("demo_total"), QStringLiteral("demo router model: total"), dc.total);
        o.rows << countRow(QStringLiteral("demo_active"), QStringLiteral("demo router model: active per token (top-%1)").arg(demoK), dc.active);
        o.note = QStringLiteral("Each token runs %1 of %2 routed experts%3.")
                     .arg(v)
                     .arg(s.layers.back().ffn.n_experts)
                     .arg(st.second ? QStringLiteral(" plus the shared expert") : QString());
    } else if (k == QLatin1String("norm_placement")) {
        const LayerSpec& L = s.layers[0];
        const quint64 perBlock = quint64(L.attn_pre_norm) + L.attn_post_norm + L.ffn_pre_norm + L.ffn_post_norm;
        o.rows << plainRow(QStringLiteral("norms_per_block"), QStringLiteral("norms per block (around attention and FFN)"), perBlock);
        o.rows << plainRow(QStringLiteral("qk_norm"), QStringLiteral("QK-norm (1 = yes)"), quint64(L.attn.qk_norm != QkNorm::None));
        o.rows << countRow(QStringLiteral("norms"), QStringLiteral("norm parameters in the whole model"), pc.norms);
        o.note = QStringLiteral("%1: %2.").arg(c.choices[choice].label, qs(norm_placement_label(L)));
    } else if (k == QLatin1String("window")) {
        const ModelSpec g = allGlobal(s);
        o.rows << plainRow(QStringLiteral("sliding_layers"), QStringLiteral("sliding-window layers"),
                           quint64(countLayers(s, [](const LayerSpec& x) { return x.attn.scope == AttnScope::Sliding; })));
        o.rows << plainRow(QStringLiteral("global_layers"), QStringLiteral("global layers"),
                           quint64(countLayers(s, [](const LayerSpec& x) { return x.attn.scope == AttnScope::Global; })));
        o.rows << bytesRow(QStringLiteral("kv_32k"), QStringLiteral("KV cache at 32,768 tokens"), kv_bytes_at(s, kLongContext, kBf16));
        o.rows << bytesRow(QStringLiteral("kv_128k"), QStringLiteral("KV cache at 131,072 tokens"), kv_bytes_at(s, 131072, kBf16));
        o.rows << bytesRow(QStringLiteral("kv_32k_global"), QStringLiteral("every layer global, at 32,768 tokens"), kv_bytes_at(g, kLongContext, kBf16));
        for (quint64 n = 0; n <= 131072; n += 2048) o.curve.push_back({n, kv_bytes_at(s, n, kBf16), kv_bytes_at(g, n, kBf16)});
        o.curveLabel = QStringLiteral("window %1, %2:1").arg(v).arg(st.second);
        o.baselineLabel = QStringLiteral("all layers global");
        // The demo: the sliding-window twin with this window (the band in the attention view).
        QJsonObject demo = QJsonDocument::fromJson(kSlidingDemo).object();
        demo.insert(QStringLiteral("sliding_window"), v);
        o.demo.name = QStringLiteral("sliding-window");
        o.demo.config = QString::fromUtf8(QJsonDocument(demo).toJson(QJsonDocument::Compact));
        o.note = QStringLiteral("Past %1 tokens a local layer's cache stops growing; only the global layers keep growing.").arg(v);
    } else if (k == QLatin1String("nope_interval")) {
        o.rows << plainRow(QStringLiteral("nope_layers"), QStringLiteral("NoPE layers (no rotation, global)"),
                           quint64(countLayers(s, [](const LayerSpec& x) { return !x.attn.rope.enabled; })));
        o.rows << plainRow(QStringLiteral("rope_layers"), QStringLiteral("RoPE layers"),
                           quint64(countLayers(s, [](const LayerSpec& x) { return x.attn.rope.enabled; })));
        o.rows << bytesRow(QStringLiteral("kv_32k"), QStringLiteral("KV cache at 32,768 tokens"), kv_bytes_at(s, kLongContext, kBf16));
        o.rows << bytesRow(QStringLiteral("kv_128k"), QStringLiteral("KV cache at 131,072 tokens"), kv_bytes_at(s, 131072, kBf16));
        o.note = QStringLiteral("Every %1th layer skips RoPE and sees the whole context.").arg(v);
    } else if (k == QLatin1String("gemma3n_slice")) {
        const bool stream = st.second != 0;
        const quint64 onDevice = stream ? pc.total - pc.per_layer_embedding : pc.total;
        o.rows << countRow(QStringLiteral("total"), QStringLiteral("total parameters"), pc.total);
        o.rows << countRow(QStringLiteral("ple"), QStringLiteral("per-layer embedding table"), pc.per_layer_embedding);
        o.rows << countRow(QStringLiteral("on_device"), QStringLiteral("parameters held in accelerator memory"), onDevice);
        o.rows << bytesRow(QStringLiteral("on_device_bytes"), QStringLiteral("their bytes at bf16"), quint64(double(onDevice) * kBf16));
        o.rows << bytesRow(QStringLiteral("kv_32k"), QStringLiteral("KV cache at 32,768 tokens"), kv_bytes_at(s, kLongContext, kBf16));
        o.note = stream ? QStringLiteral("The PLE table stays in CPU memory; each token fetches only its own rows.")
                        : QStringLiteral("Everything, the PLE table included, sits in accelerator memory.");
    } else if (k == QLatin1String("experts")) {
        o.rows << countRow(QStringLiteral("total"), QStringLiteral("total parameters"), pc.total);
        o.rows << countRow(QStringLiteral("active"), QStringLiteral("active parameters per token"), pc.active);
        o.rows << countRow(QStringLiteral("experts_params"), QStringLiteral("routed-expert parameters"), pc.experts);
        for (const QString& other : l.compare) {
            const ParamCounts oc = count_params(catalogSpec(other));
            o.rows << countRow(other + QStringLiteral(":total"), other + QStringLiteral(": total"), oc.total);
            o.rows << countRow(other + QStringLiteral(":active"), other + QStringLiteral(": active"), oc.active);
        }
        o.note = QStringLiteral("More experts grow the total; the active count barely moves (still top-%1).").arg(s.layers.back().ffn.top_k);
    } else if (k == QLatin1String("qwen3_family")) {
        o.rows << countRow(QStringLiteral("total"), QStringLiteral("total parameters"), pc.total);
        o.rows << countRow(QStringLiteral("active"), QStringLiteral("active parameters per token"), pc.active);
        o.rows << bytesRow(QStringLiteral("kv_token"), QStringLiteral("KV bytes per token (bf16)"), kv_bytes_at(s, 1, kBf16));
        o.rows << bytesRow(QStringLiteral("kv_32k"), QStringLiteral("KV cache at 32,768 tokens"), kv_bytes_at(s, kLongContext, kBf16));
        o.note = s.has_moe() ? QStringLiteral("MoE: %1% of the weights work on each token.").arg(100.0 * double(pc.active) / double(pc.total), 0, 'f', 1)
                             : QStringLiteral("Dense: every weight works on every token.");
    }
    return o;
}

std::vector<int> promptIds(const PromptSpec& p) {
    std::vector<int> ids;
    if (p.kind == QLatin1String("repeat")) {
        std::string pool = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
        std::mt19937 rng(uint32_t(p.seed));
        std::shuffle(pool.begin(), pool.end(), rng);
        const int n = std::clamp(p.length, 2, int(pool.size()));
        for (int r = 0; r < 2; ++r)
            for (int i = 0; i < n; ++i) ids.push_back(static_cast<unsigned char>(pool[size_t(i)]));
        return ids;
    }
    for (unsigned char ch : p.text.toUtf8()) ids.push_back(ch);
    return ids;
}

}  // namespace lessons
