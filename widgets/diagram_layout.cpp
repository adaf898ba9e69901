#include "widgets/diagram_layout.h"

#include <algorithm>
#include <cmath>

#include <QHash>

#include "engine/model/spec_summary.h"

namespace archlens {

namespace {

// Geometry of one column, in scene units (1 unit = 1 px at scale 1).
constexpr qreal kWidth = 620;
constexpr qreal kCx = 330;          // centre of the main column
constexpr qreal kBoxW = 330;        // norm / attention / FFN boxes
constexpr qreal kMoeW = 400;
constexpr qreal kResidualX = 112;   // the residual line runs left of the boxes
constexpr qreal kFrameLeft = 24, kFrameRight = kWidth - 16;
constexpr qreal kGap = 16;          // vertical gap inside a row, above its box
constexpr qreal kBottom = 24;

QString qs(const std::string& s) { return QString::fromStdString(s); }
QString num(uint64_t n) { return qs(with_commas(n)); }

QString thetaTag(float t) {
    if (t >= 1e9f && std::fmod(t, 1e9f) == 0) return QStringLiteral("RoPE θ %1e9").arg(double(t) / 1e9);
    if (t >= 1e6f && std::fmod(t, 1e6f) == 0) return QStringLiteral("RoPE θ %1M").arg(double(t) / 1e6);
    if (t >= 1e3f && std::fmod(t, 1e3f) == 0) return QStringLiteral("RoPE θ %1k").arg(double(t) / 1e3);
    return QStringLiteral("RoPE θ %1").arg(double(t));
}

QString normName(const ModelSpec& s) { return s.norm == NormKind::RMSNorm ? QStringLiteral("RMSNorm") : QStringLiteral("LayerNorm"); }

DiagramBox centred(const QString& id, BoxKind kind, qreal w, qreal h, const QString& title, int group = -1) {
    DiagramBox b;
    b.id = id;
    b.kind = kind;
    b.rect = QRectF(kCx - w / 2, kGap, w, h);
    b.title = title;
    b.group = group;
    b.accent = QColor(0x9e, 0x9e, 0x9e);
    return b;
}

DiagramRow row(const QString& id, const DiagramBox& b) { return {id, b.rect.bottom(), {b}}; }

QString attentionTitle(const AttentionSpec& a) {
    if (a.kind == AttnKind::MLA) return QStringLiteral("Multi-head latent attention");
    if (a.n_kv_heads == a.n_heads) return QStringLiteral("Masked multi-head attention");
    if (a.n_kv_heads == 1) return QStringLiteral("Multi-query attention");
    return QStringLiteral("Grouped-query attention");
}

DiagramBox attentionBox(const ModelSpec& s, const LayerSpec& l, int g) {
    const AttentionSpec& a = l.attn;
    DiagramBox b = centred(QStringLiteral("g%1.attn").arg(g), BoxKind::Attention, kBoxW, 92, attentionTitle(a), g);
    if (a.kind == AttnKind::MLA) {
        b.lines << QStringLiteral("%1 heads · q rank %2 · kv rank %3").arg(a.n_heads).arg(a.q_lora_rank).arg(a.kv_lora_rank)
                << QStringLiteral("head dim %1 nope + %2 rope · v %3").arg(a.qk_nope_head_dim).arg(a.qk_rope_head_dim).arg(a.v_head_dim);
    } else if (a.n_kv_heads == a.n_heads) {
        b.lines << QStringLiteral("%1 heads · head dim %2").arg(a.n_heads).arg(a.head_dim);
    } else {
        b.lines << QStringLiteral("%1 heads · %2 KV heads (group %3) · head dim %4")
                       .arg(a.n_heads).arg(a.n_kv_heads).arg(a.n_heads / a.n_kv_heads).arg(a.head_dim);
    }
    switch (a.scope) {
        case AttnScope::Sliding: b.lines << QStringLiteral("sliding window %1 tokens").arg(a.window); break;
        case AttnScope::Chunked: b.lines << QStringLiteral("chunked: %1-token chunks").arg(a.window); break;
        case AttnScope::Global: b.lines << QStringLiteral("global (full causal)"); break;
    }
    if (a.rope.enabled) {
        QString t = thetaTag(a.rope.theta);
        switch (a.rope.scaling) {
            case RopeScaling::None: break;
            case RopeScaling::Linear: t += QStringLiteral(" · linear ×%1").arg(double(a.rope.factor)); break;
            case RopeScaling::Llama3: t += QStringLiteral(" · llama3 ×%1").arg(double(a.rope.factor)); break;
            case RopeScaling::Yarn: t += QStringLiteral(" · YaRN ×%1").arg(double(a.rope.factor)); break;
        }
        b.tags << t;
    }
    else if (!s.learned_positions) b.tags << QStringLiteral("NoPE");
    switch (a.qk_norm) {
        case QkNorm::None: break;
        case QkNorm::PerHead: b.tags << QStringLiteral("QK-norm (per head)"); break;
        case QkNorm::Full: b.tags << QStringLiteral("QK-norm (full width)"); break;
        case QkNorm::L2: b.tags << QStringLiteral("QK-norm (L2)"); break;
    }
    if (a.softcap > 0) b.tags << QStringLiteral("softcap %1").arg(double(a.softcap));
    if (a.temperature_tuning) b.tags << QStringLiteral("temperature tuning");
    if (a.qkv_bias) b.tags << QStringLiteral("bias");
    if (l.kv_source >= 0) b.tags << QStringLiteral("KV shared from an earlier layer");
    b.accent = layerKindColor(layerKind(a, s.learned_positions));
    return b;
}

QString ffnTitle(const FfnSpec& f) {
    if (!f.gated) return QStringLiteral("MLP (%1)").arg(activation_name(f.act));
    return f.act == Activation::SiLU ? QStringLiteral("SwiGLU feed-forward") : QStringLiteral("GeGLU feed-forward");
}

DiagramRow ffnRow(const ModelSpec& s, const LayerSpec& l, int g) {
    const FfnSpec& f = l.ffn;
    const QString id = QStringLiteral("g%1.ffn").arg(g);
    if (!f.moe) {
        DiagramBox b = centred(id, BoxKind::Ffn, kBoxW, 66, ffnTitle(f), g);
        b.lines << QStringLiteral("%1 → %2 → %1").arg(num(uint64_t(s.dim)), num(uint64_t(f.ffn_dim)));
        b.lines << (f.gated ? QStringLiteral("%1, gated: (gate · up) → down").arg(activation_name(f.act))
                            : QStringLiteral("%1: up → down%2").arg(activation_name(f.act), f.bias ? QStringLiteral(", with bias") : QString()));
        if (l.sparsity_std_mult > 0) b.tags << QStringLiteral("Gaussian top-k activation sparsity");
        if (!b.tags.isEmpty()) b.rect.setHeight(86);
        b.accent = QColor(0x99, 0x99, 0x99);
        return row(id, b);
    }
    // MoE: outer box, router at its bottom, a few drawn experts, the shared expert set apart.
    DiagramRow r{id, 0, {}};
    DiagramBox moe = centred(id, BoxKind::Moe, kMoeW, 176, QStringLiteral("Mixture of experts"), g);
    moe.lines << QStringLiteral("%1 routed experts · %2 active · hidden %3").arg(f.n_experts).arg(f.top_k).arg(num(uint64_t(f.expert_ffn_dim)));
    moe.accent = QColor(0xcc, 0x79, 0xa7);
    const qreal x0 = moe.rect.left(), top = moe.rect.top();
    DiagramBox router;
    router.id = id + QStringLiteral(".router");
    router.kind = BoxKind::Router;
    router.group = g;
    router.rect = QRectF(x0 + 14, top + 130, (f.n_shared ? 250 : kMoeW - 28), 34);
    router.title = QStringLiteral("Router: %1, top-%2 of %3")
                       .arg(f.scoring == Scoring::Sigmoid ? QStringLiteral("sigmoid") : QStringLiteral("softmax"))
                       .arg(f.top_k).arg(f.n_experts);
    if (f.n_group > 1) router.lines << QStringLiteral("%1 groups, best %2").arg(f.n_group).arg(f.topk_group);
    if (f.selection_bias) router.lines << QStringLiteral("bias-corrected selection");
    if (f.weight_on_input) router.lines << QStringLiteral("gate weight scales the expert input");
    if (f.routed_scale != 1.f) router.lines << QStringLiteral("× %1").arg(double(f.routed_scale));
    router.accent = moe.accent;
    r.boxes << moe << router;
    const int drawn = std::min(f.n_experts, 4);
    const qreal ew = 46, eh = 40, ey = top + 62;
    for (int e = 0; e < drawn; ++e) {
        DiagramBox ex;
        ex.id = id + QStringLiteral(".expert%1").arg(e);
        ex.kind = BoxKind::Expert;
        ex.group = g;
        // the last drawn expert stands apart: "…" between says the rest are not drawn
        const qreal extra = e == drawn - 1 && f.n_experts > drawn ? 14 : 0;
        ex.rect = QRectF(x0 + 14 + e * (ew + 8) + extra, ey, ew, eh);
        ex.title = e == drawn - 1 && f.n_experts > drawn ? QStringLiteral("E%1").arg(f.n_experts) : QStringLiteral("E%1").arg(e + 1);
        ex.accent = moe.accent;
        r.boxes << ex;
    }
    if (f.n_shared) {
        DiagramBox sh;
        sh.id = id + QStringLiteral(".shared");
        sh.kind = BoxKind::SharedExpert;
        sh.group = g;
        sh.rect = QRectF(moe.rect.right() - 128, top + 62, 116, 102);
        sh.title = f.n_shared == 1 ? QStringLiteral("Shared expert") : QStringLiteral("%1 shared experts").arg(f.n_shared);
        sh.lines << QStringLiteral("always on") << QStringLiteral("hidden %1").arg(num(uint64_t(f.shared_ffn_dim)));
        sh.accent = QColor(0x00, 0x9e, 0x73);
        r.boxes << sh;
    }
    r.height = moe.rect.bottom();
    return r;
}

DiagramBox addBox(const QString& id, int g) {
    DiagramBox b = centred(id, BoxKind::Add, 26, 26, QStringLiteral("+"), g);
    b.rect.moveTop(10);
    return b;
}

// "layers 0–2" / "layers 3–60" / "layers 0–4, 6–10, … (52)"
QString layerList(const std::vector<int>& v) {
    QList<QPair<int, int>> ranges;
    for (int i : v) {
        if (!ranges.isEmpty() && ranges.back().second + 1 == i) ranges.back().second = i;
        else ranges.append({i, i});
    }
    auto fmtRange = [](QPair<int, int> r) { return r.first == r.second ? QString::number(r.first) : QStringLiteral("%1–%2").arg(r.first).arg(r.second); };
    QStringList parts;
    for (int i = 0; i < ranges.size() && i < 3; ++i) parts << fmtRange(ranges[i]);
    QString s = QStringLiteral("layers ") + parts.join(QStringLiteral(", "));
    if (ranges.size() > 3) s += QStringLiteral(", … %1").arg(fmtRange(ranges.back()));
    return s;
}

}  // namespace

LayerKind layerKind(const AttentionSpec& a, bool learnedPositions) {
    if (a.kind == AttnKind::MLA) return LayerKind::Mla;
    if (a.scope == AttnScope::Sliding) return LayerKind::Sliding;
    if (a.scope == AttnScope::Chunked) return LayerKind::Chunked;
    if (!a.rope.enabled && !learnedPositions) return LayerKind::Nope;
    return LayerKind::Global;
}

QColor layerKindColor(LayerKind k) {
    switch (k) {  // Okabe–Ito
        case LayerKind::Global: return QColor(0x00, 0x72, 0xb2);   // blue
        case LayerKind::Sliding: return QColor(0xe6, 0x9f, 0x00);  // orange
        case LayerKind::Chunked: return QColor(0x56, 0xb4, 0xe9);  // sky blue
        case LayerKind::Mla: return QColor(0x00, 0x9e, 0x73);      // bluish green
        case LayerKind::Nope: return QColor(0xd5, 0x5e, 0x00);     // vermillion
    }
    return Qt::gray;
}

QString layerKindName(LayerKind k) {
    switch (k) {
        case LayerKind::Global: return QStringLiteral("global attention");
        case LayerKind::Sliding: return QStringLiteral("sliding-window attention");
        case LayerKind::Chunked: return QStringLiteral("chunked attention");
        case LayerKind::Mla: return QStringLiteral("MLA (latent KV)");
        case LayerKind::Nope: return QStringLiteral("NoPE (global)");
    }
    return {};
}

const DiagramBox* DiagramLayout::box(const QString& id) const {
    for (auto& b : boxes)
        if (b.id == id) return &b;
    return nullptr;
}

QList<const DiagramBox*> DiagramLayout::boxesOfKind(BoxKind k) const {
    QList<const DiagramBox*> out;
    for (auto& b : boxes)
        if (b.kind == k) out << &b;
    return out;
}

int DiagramLayout::groupOfLayer(int layer) const {
    for (int g = 0; g < groups.size(); ++g)
        if (groups[g].layerIndices.contains(layer)) return g;
    return -1;
}

QStringList DiagramLayout::allText() const {
    QStringList t;
    t << title << header << pattern;
    for (auto& g : groups) t << g.repeat << g.name << g.layers;
    for (auto& b : boxes) t << b.title << b.lines << b.tags;
    return t;
}

qreal headerHeightFor(const DiagramLayout& l) { return 44 + 18 * l.header.size() + 17 * l.pattern.size() + 12; }

void placeRows(DiagramLayout& l, const QList<QPair<QString, qreal>>& seq, qreal headerHeight) {
    qreal total = 0;
    for (auto& [id, h] : seq) total += h;
    const qreal height = headerHeight + total + kBottom;
    l.size = QSizeF(kWidth, height);
    l.boxes.clear();
    l.edges.clear();
    qreal bottom = height - kBottom;
    QHash<QString, QRectF> rowRect;
    for (auto& [id, h] : seq) {
        const qreal top = bottom - h;
        rowRect[id] = QRectF(0, top, kWidth, h);
        for (auto& r : l.rows)
            if (r.id == id)
                for (DiagramBox b : r.boxes) {
                    // Boxes keep their distance from the row's bottom, so a taller shared row
                    // leaves its extra space above the box and the spine stays continuous.
                    b.rect.moveTop(top + (h - r.height) + b.rect.top());
                    l.boxes << b;
                }
        bottom = top;
    }
    // Frames: everything a group's rows cover, its spacer rows included.
    for (int g = 0; g < l.groups.size(); ++g) {
        QRectF f;
        const QString prefix = QStringLiteral("g%1.").arg(g);
        for (auto it = rowRect.begin(); it != rowRect.end(); ++it)
            if (it.key().startsWith(prefix)) f = f.isNull() ? it.value() : f.united(it.value());
        l.groups[g].frame = QRectF(kFrameLeft, f.top() + 4, kFrameRight - kFrameLeft, f.height() - 8);
    }
    // The spine: consecutive boxes of the main column, bottom to top.
    QList<const DiagramBox*> spine;
    for (auto& b : l.boxes)
        if (b.kind != BoxKind::Router && b.kind != BoxKind::Expert && b.kind != BoxKind::SharedExpert && b.kind != BoxKind::Laurel) spine << &b;
    std::sort(spine.begin(), spine.end(), [](auto* a, auto* b) { return a->rect.top() > b->rect.top(); });
    for (int i = 0; i + 1 < spine.size(); ++i)
        l.edges << DiagramEdge{QPolygonF({QPointF(kCx, spine[i]->rect.top()), QPointF(kCx, spine[i + 1]->rect.bottom())}), false};
    // Residuals: from the input of each sub-block, around it on the left, into its ⊕.
    for (int g = 0; g < l.groups.size(); ++g)
        for (auto [from, to] : {QPair<QString, QString>{QStringLiteral("g%1.attn_in").arg(g), QStringLiteral("g%1.attn_add").arg(g)},
                                QPair<QString, QString>{QStringLiteral("g%1.ffn_in").arg(g), QStringLiteral("g%1.ffn_add").arg(g)}}) {
            const DiagramBox* add = l.box(to);
            if (!rowRect.contains(from) || !add) continue;
            const qreal y0 = rowRect[from].bottom() - 2;
            const qreal y1 = add->rect.center().y();
            l.edges << DiagramEdge{QPolygonF({QPointF(kCx, y0), QPointF(kResidualX, y0), QPointF(kResidualX, y1), QPointF(add->rect.left(), y1)}), true};
        }
    // LAuReL: from the attention input (the pre-norm) up its side path into the attention ⊕.
    for (int g = 0; g < l.groups.size(); ++g) {
        const DiagramBox* lr = l.box(QStringLiteral("g%1.laurel").arg(g));
        const DiagramBox* in = l.box(QStringLiteral("g%1.attn_pre_norm").arg(g));
        const DiagramBox* add = l.box(QStringLiteral("g%1.attn_add").arg(g));
        if (!lr || !in || !add) continue;
        const qreal x = lr->rect.center().x(), yIn = in->rect.top() + 4, yAdd = add->rect.center().y();
        l.edges << DiagramEdge{QPolygonF({QPointF(in->rect.right(), yIn), QPointF(x, yIn), QPointF(x, lr->rect.bottom())}), false};
        l.edges << DiagramEdge{QPolygonF({QPointF(x, lr->rect.top()), QPointF(x, yAdd), QPointF(add->rect.right(), yAdd)}), false};
    }
}

DiagramLayout layoutDiagram(const ModelSpec& s, const QString& title) {
    DiagramLayout l;
    l.title = title.isEmpty() ? QString::fromStdString(s.name.empty() ? s.model_type : s.name) : title;
    const ParamCounts pc = count_params(s);
    l.header << QStringLiteral("Parameters %1 total · %2 active per token").arg(qs(human_count(pc.total)), qs(human_count(pc.active)))
             << QStringLiteral("KV cache %1 per token (bf16) · context %2")
                    .arg(qs(human_bytes(double(kv_bytes_at(s, 1, 2.0)))), num(uint64_t(s.max_positions)))
             << QStringLiteral("%1 layers · dim %2 · vocab %3").arg(s.n_layers).arg(num(uint64_t(s.dim)), num(uint64_t(s.vocab)));

    std::vector<std::string> scope, ffn, kind;
    for (auto& L : s.layers) {
        scope.push_back(attention_scope_label(L.attn, s.learned_positions));
        ffn.push_back(ffn_kind_label(L.ffn));
        kind.push_back(attention_kind_label(L.attn));
    }
    if (auto p = describe_layer_pattern(scope); !p.empty()) l.pattern << QStringLiteral("attention: ") + qs(p);
    if (auto p = describe_layer_pattern(ffn); !p.empty()) l.pattern << QStringLiteral("feed-forward: ") + qs(p);
    if (auto p = describe_layer_pattern(kind); !p.empty()) l.pattern << QStringLiteral("attention kind: ") + qs(p);

    // ---- rows, bottom to top ----
    {
        DiagramBox e = centred(QStringLiteral("embed"), BoxKind::Embedding, kBoxW, 50, QStringLiteral("Token embedding"));
        e.lines << QStringLiteral("vocab %1 × dim %2").arg(num(uint64_t(s.vocab)), num(uint64_t(s.dim)));
        if (s.embed_scale != 1.f) {
            e.tags << QStringLiteral("× √dim");
            e.rect.setHeight(68);
        }
        e.accent = QColor(0x99, 0x99, 0x99);
        l.rows << row(e.id, e);
    }
    if (s.learned_positions) {
        DiagramBox p = centred(QStringLiteral("pos_embed"), BoxKind::PositionEmbedding, kBoxW, 50, QStringLiteral("Learned positional embedding"));
        p.lines << QStringLiteral("%1 positions × dim %2").arg(num(uint64_t(s.max_positions)), num(uint64_t(s.dim)));
        p.accent = QColor(0x99, 0x99, 0x99);
        l.rows << row(p.id, p) << row(QStringLiteral("pos_add"), addBox(QStringLiteral("pos_add"), -1));
    }

    if (s.ple_dim > 0) {  // Gemma 3n: every layer also reads its own small embedding of the token
        DiagramBox p = centred(QStringLiteral("ple"), BoxKind::PositionEmbedding, kBoxW, 68, QStringLiteral("Per-layer embeddings (PLE)"));
        p.lines << QStringLiteral("vocab %1 × %2 layers × %3").arg(num(uint64_t(s.ple_vocab))).arg(s.n_layers).arg(s.ple_dim);
        if (s.altup_inputs > 0) p.lines << QStringLiteral("AltUp %1 streams · LAuReL rank %2").arg(s.altup_inputs).arg(s.laurel_rank);
        p.tags << QStringLiteral("streamed from storage, fed to every layer");
        p.rect.setHeight(p.lines.size() > 1 ? 84 : 68);
        p.accent = QColor(0x56, 0xb4, 0xe9);
        l.rows << row(p.id, p);
    }
    const auto groups = group_layers(s);
    // Name each frame by the features that actually differ between frames.
    auto differs = [&](auto label) {
        for (auto& g : groups)
            if (label(s.layers[size_t(g.layers[0])]) != label(s.layers[size_t(groups[0].layers[0])])) return true;
        return false;
    };
    const bool scopeVaries = differs([&](const LayerSpec& L) { return attention_scope_label(L.attn, s.learned_positions); });
    const bool ffnVaries = differs([](const LayerSpec& L) { return ffn_kind_label(L.ffn); });
    const bool kindVaries = differs([](const LayerSpec& L) { return attention_kind_label(L.attn); });
    const bool sparseVaries = differs([](const LayerSpec& L) { return L.sparsity_std_mult > 0; });
    const bool kvShareVaries = differs([](const LayerSpec& L) { return L.kv_source >= 0; });
    for (int g = 0; g < int(groups.size()); ++g) {
        const LayerSpec& L = s.layers[size_t(groups[size_t(g)].layers[0])];
        DiagramGroup dg;
        dg.repeat = QStringLiteral("× %1").arg(groups[size_t(g)].layers.size());
        QStringList name;
        if (ffnVaries) name << qs(ffn_kind_label(L.ffn));
        if (kindVaries) name << qs(attention_kind_label(L.attn));
        if (scopeVaries) name << qs(attention_scope_label(L.attn, s.learned_positions));
        if (sparseVaries) name << (L.sparsity_std_mult > 0 ? QStringLiteral("sparse FFN") : QStringLiteral("dense FFN"));
        if (kvShareVaries) name << (L.kv_source >= 0 ? QStringLiteral("KV shared") : QStringLiteral("own KV"));
        if (name.isEmpty()) name << (groups.size() == 1 ? QStringLiteral("transformer block") : QStringLiteral("variant %1").arg(g + 1));
        dg.name = name.join(QStringLiteral(" · "));
        dg.layers = layerList(groups[size_t(g)].layers);
        for (int i : groups[size_t(g)].layers) dg.layerIndices << i;
        l.groups << dg;

        const QString G = QStringLiteral("g%1.").arg(g);
        l.rows << DiagramRow{G + QStringLiteral("bottom"), 18, {}};
        const bool altup = s.altup_inputs > 1;
        const int N = s.altup_inputs;
        auto box = [&](const QString& which, BoxKind kind, const QString& title, const QStringList& lines, const QColor& accent) {
            DiagramBox b = centred(G + which, kind, kBoxW, 28 + 15 * qreal(lines.size()) + 6, title, g);
            b.lines = lines;
            b.accent = accent;
            return row(b.id, b);
        };
        const QColor altupColor(0xcc, 0x79, 0xa7);  // reddish purple (Okabe–Ito)
        if (altup)
            l.rows << box(QStringLiteral("altup_predict"), BoxKind::AltUp, QStringLiteral("AltUp predict"),
                          {QStringLiteral("%1 residual streams, each predicted from all %1").arg(N),
                           QStringLiteral("router on stream %1 → %2×%2 coefficients").arg(s.altup_active).arg(N),
                           QStringLiteral("the block below runs on stream %1 only").arg(s.altup_active)},
                          altupColor);
        l.rows << DiagramRow{G + QStringLiteral("attn_in"), 14, {}};
        auto norm = [&](const QString& which) {
            DiagramBox n = centred(G + which, BoxKind::Norm, kBoxW * 0.62, 30, normName(s), g);
            n.accent = QColor(0xf0, 0xe4, 0x42);
            return row(n.id, n);
        };
        if (L.attn_pre_norm) l.rows << norm(QStringLiteral("attn_pre_norm"));
        if (s.laurel_rank > 0) {  // LAuReL runs beside attention on the same normed input
            DiagramRow r = row(G + QStringLiteral("attn"), attentionBox(s, L, g));
            DiagramBox lr;
            lr.id = G + QStringLiteral("laurel");
            lr.kind = BoxKind::Laurel;
            lr.group = g;
            lr.title = QStringLiteral("LAuReL");
            lr.lines << QStringLiteral("rank %1").arg(s.laurel_rank) << QStringLiteral("(attn+it)/√2");
            lr.rect = QRectF(kCx + kBoxW / 2 + 10, r.boxes[0].rect.top() + 14, kFrameRight - 8 - (kCx + kBoxW / 2 + 10), 64);
            lr.accent = altupColor;
            r.boxes << lr;
            l.rows << r;
        } else {
            l.rows << row(G + QStringLiteral("attn"), attentionBox(s, L, g));
        }
        if (L.attn_post_norm) l.rows << norm(QStringLiteral("attn_post_norm"));
        l.rows << row(G + QStringLiteral("attn_add"), addBox(G + QStringLiteral("attn_add"), g));
        l.rows << DiagramRow{G + QStringLiteral("ffn_in"), 14, {}};
        if (L.ffn_pre_norm) l.rows << norm(QStringLiteral("ffn_pre_norm"));
        l.rows << ffnRow(s, L, g);
        if (L.ffn_post_norm) l.rows << norm(QStringLiteral("ffn_post_norm"));
        l.rows << row(G + QStringLiteral("ffn_add"), addBox(G + QStringLiteral("ffn_add"), g));
        if (altup)
            l.rows << box(QStringLiteral("altup_correct"), BoxKind::AltUp, QStringLiteral("AltUp correct"),
                          {QStringLiteral("all %1 streams += coefficient × (output − prediction)").arg(N),
                           QStringLiteral("coefficients from a router on the block's output")},
                          altupColor);
        if (s.ple_dim > 0)
            l.rows << box(QStringLiteral("ple_in"), BoxKind::PerLayerInput, QStringLiteral("Per-layer input"),
                          {QStringLiteral("gate %1 → %2, GELU, × this layer's PLE row").arg(num(uint64_t(s.dim))).arg(s.ple_dim),
                           QStringLiteral("project %1 → %2, norm, add to streams 1–%3").arg(s.ple_dim).arg(num(uint64_t(s.dim))).arg(std::max(1, N - 1))},
                          QColor(0x56, 0xb4, 0xe9));
        l.rows << DiagramRow{G + QStringLiteral("top"), 44, {}};  // room for the frame's label
    }
    {
        DiagramBox n = centred(QStringLiteral("final_norm"), BoxKind::Norm, kBoxW * 0.62, 30, QStringLiteral("Final ") + normName(s));
        n.accent = QColor(0xf0, 0xe4, 0x42);
        l.rows << row(n.id, n);
        DiagramBox h = centred(QStringLiteral("lm_head"), BoxKind::LmHead, kBoxW, 50, QStringLiteral("Linear output layer"));
        h.lines << QStringLiteral("%1 → %2 logits").arg(num(uint64_t(s.dim)), num(uint64_t(s.vocab)));
        if (s.tied_embeddings) {
            h.tags << QStringLiteral("tied to token embedding");
            h.rect.setHeight(68);
        }
        h.accent = QColor(0x99, 0x99, 0x99);
        l.rows << row(h.id, h);
        if (s.final_softcap > 0) {
            DiagramBox c = centred(QStringLiteral("softcap"), BoxKind::Softcap, kBoxW * 0.62, 30,
                                   QStringLiteral("Logit softcap %1").arg(double(s.final_softcap)));
            c.accent = QColor(0xd5, 0x5e, 0x00);
            l.rows << row(c.id, c);
        }
    }
    QList<QPair<QString, qreal>> seq;
    for (auto& r : l.rows) seq.append({r.id, r.height});
    placeRows(l, seq, headerHeightFor(l));
    return l;
}

namespace {

// Longest common subsequence of row ids: the rows both sides share line up.
QList<QPair<QString, qreal>> mergeRows(const DiagramLayout& a, const DiagramLayout& b) {
    const int n = int(a.rows.size()), m = int(b.rows.size());
    std::vector<std::vector<int>> L(size_t(n + 1), std::vector<int>(size_t(m + 1), 0));
    for (int i = n - 1; i >= 0; --i)
        for (int j = m - 1; j >= 0; --j)
            L[size_t(i)][size_t(j)] = a.rows[i].id == b.rows[j].id ? L[size_t(i + 1)][size_t(j + 1)] + 1
                                                                    : std::max(L[size_t(i + 1)][size_t(j)], L[size_t(i)][size_t(j + 1)]);
    QList<QPair<QString, qreal>> seq;
    int i = 0, j = 0;
    while (i < n || j < m) {
        if (i < n && j < m && a.rows[i].id == b.rows[j].id) {
            seq.append({a.rows[i].id, std::max(a.rows[i].height, b.rows[j].height)});
            ++i, ++j;
        } else if (j >= m || (i < n && L[size_t(i + 1)][size_t(j)] >= L[size_t(i)][size_t(j + 1)])) {
            seq.append({a.rows[i].id, a.rows[i].height});
            ++i;
        } else {
            seq.append({b.rows[j].id, b.rows[j].height});
            ++j;
        }
    }
    return seq;
}

}  // namespace

void alignForComparison(DiagramLayout& a, DiagramLayout& b) {
    const auto seq = mergeRows(a, b);
    const qreal header = std::max(headerHeightFor(a), headerHeightFor(b));
    placeRows(a, seq, header);
    placeRows(b, seq, header);
    for (auto* side : {&a, &b}) {
        const DiagramLayout& other = side == &a ? b : a;
        // Structure, not size: a box differs when the other side lacks it, names it differently or
        // tags it differently (RoPE vs NoPE, QK-norm or not). Numbers differ between any two sizes;
        // the table lists them.
        auto tagKinds = [](const QStringList& tags) {
            QStringList k;
            for (auto& t : tags) k << t.section(QLatin1Char(' '), 0, 0);
            return k;
        };
        for (auto& box : side->boxes) {
            const DiagramBox* o = other.box(box.id);
            box.differs = !o || o->title != box.title || tagKinds(o->tags) != tagKinds(box.tags);
        }
    }
}

}  // namespace archlens
