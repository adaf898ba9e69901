// The architecture diagram, checked on its computed layout (texts, frames, where norms sit) and on
// what it renders offscreen. Models come from the built-in catalog: no fixtures needed.
#include <QFile>
#include <QImage>
#include <QTemporaryDir>
#include <QtTest>

#include "engine/model/model.h"
#include "widgets/diagram_layout.h"
#include "widgets/diagram_view.h"

using namespace archlens;

namespace {

DiagramLayout layoutOf(const char* name) { return layoutDiagram(Model::load_spec(std::string("catalog:") + name), name); }

bool anyContains(const QStringList& texts, const QString& needle) {
    for (auto& t : texts)
        if (t.contains(needle)) return true;
    return false;
}

const DiagramGroup* groupNamed(const DiagramLayout& l, const QString& name) {
    for (auto& g : l.groups)
        if (g.name == name) return &g;
    return nullptr;
}

// Rows stack bottom to top: "above" means a smaller y.
bool above(const DiagramBox* upper, const DiagramBox* lower) { return upper && lower && upper->rect.bottom() <= lower->rect.top(); }

}  // namespace

class TestDiagram : public QObject {
    Q_OBJECT
private slots:
    void gemma3ShowsFiveToOneAndWindow() {
        auto l = layoutOf("gemma3-27b");
        QVERIFY2(anyContains(l.pattern, "5 × sliding-window (1024) + 1 × global"), qPrintable(l.pattern.join(" | ")));
        const DiagramGroup* sliding = groupNamed(l, "sliding-window (1024)");
        const DiagramGroup* global = groupNamed(l, "global");
        QVERIFY(sliding && global);
        QCOMPARE(sliding->repeat, QString("× 52"));
        QCOMPARE(global->repeat, QString("× 10"));
        QVERIFY(l.box("g0.attn")->lines.contains("sliding window 1024 tokens"));
        // Gemma 3 normalises before and after each sub-block.
        QVERIFY(above(l.box("g0.attn"), l.box("g0.attn_pre_norm")));
        QVERIFY(above(l.box("g0.attn_post_norm"), l.box("g0.attn")));
        QVERIFY(above(l.box("g0.ffn_post_norm"), l.box("g0.ffn")));
        QVERIFY(anyContains(l.box("g0.attn")->tags, "QK-norm"));
        QVERIFY(l.box("embed")->tags.contains("× √dim"));
    }

    void deepseekShowsMlaAndMoe() {
        auto l = layoutOf("deepseek-v3");
        const DiagramBox* attn = l.box("g0.attn");
        QCOMPARE(attn->title, QString("Multi-head latent attention"));
        QVERIFY(anyContains(attn->lines, "q rank 1536 · kv rank 512"));
        QVERIFY(anyContains(l.pattern, "3 × dense + 58 × MoE"));
        const DiagramGroup* dense = groupNamed(l, "dense");
        const DiagramGroup* moe = groupNamed(l, "MoE");
        QVERIFY(dense && moe);
        QCOMPARE(dense->repeat, QString("× 3"));
        QCOMPARE(moe->repeat, QString("× 58"));
        QCOMPARE(dense->layers, QString("layers 0–2"));
        const int g = int(moe - &l.groups[0]);
        const DiagramBox* moeBox = l.box(QString("g%1.ffn").arg(g));
        QVERIFY(moeBox && moeBox->kind == BoxKind::Moe);
        QVERIFY2(moeBox->lines.contains("256 routed experts · 8 active · hidden 2,048"), qPrintable(moeBox->lines.join("|")));
        const DiagramBox* shared = l.box(QString("g%1.ffn.shared").arg(g));
        QVERIFY(shared);
        QCOMPARE(shared->title, QString("Shared expert"));
        QVERIFY(l.box(QString("g%1.ffn.router").arg(g))->title.contains("top-8 of 256"));
        QVERIFY(l.boxesOfKind(BoxKind::Expert).size() >= 4);
        QVERIFY(anyContains(l.header, "KV cache 68.6 KiB per token"));  // 61 × (512 + 64) × 2 bytes
    }

    void olmo2ShowsPostNorms() {
        auto l = layoutOf("olmo2-7b");
        QVERIFY(!l.box("g0.attn_pre_norm"));
        QVERIFY(!l.box("g0.ffn_pre_norm"));
        QVERIFY(above(l.box("g0.attn_post_norm"), l.box("g0.attn")));
        QVERIFY(above(l.box("g0.attn_add"), l.box("g0.attn_post_norm")));  // inside the residual
        QVERIFY(above(l.box("g0.ffn_post_norm"), l.box("g0.ffn")));
        QVERIFY(l.box("g0.attn")->tags.contains("QK-norm (full width)"));
        // Llama 3, for contrast: norms before the sub-blocks only.
        auto ll = layoutOf("llama3.1-8b");
        QVERIFY(above(ll.box("g0.attn"), ll.box("g0.attn_pre_norm")));
        QVERIFY(!ll.box("g0.attn_post_norm"));
        QVERIFY(ll.box("g0.attn")->lines.contains("32 heads · 8 KV heads (group 4) · head dim 128"));
    }

    void llama4MaverickAlternates() {
        auto l = layoutOf("llama4-maverick");
        QVERIFY2(anyContains(l.pattern, "feed-forward: alternating dense / MoE"), qPrintable(l.pattern.join(" | ")));
        QVERIFY(anyContains(l.pattern, "3 × chunked (8192) + 1 × global, NoPE"));
        QCOMPARE(l.groups.size(), 3);
        const DiagramGroup* dense = groupNamed(l, "dense · chunked (8192)");
        const DiagramGroup* nope = groupNamed(l, "MoE · global, NoPE");
        QVERIFY(dense && nope);
        QCOMPARE(dense->repeat, QString("× 24"));
        QCOMPARE(nope->repeat, QString("× 12"));
        bool nopeTag = false;
        for (auto* b : l.boxesOfKind(BoxKind::Attention)) nopeTag |= b->tags.contains("NoPE");
        QVERIFY(nopeTag);
        QCOMPARE(l.groupOfLayer(3), int(nope - &l.groups[0]));
        QCOMPARE(l.groupOfLayer(0), int(dense - &l.groups[0]));
    }

    void gpt2ShowsLayerNormPositionsGelu() {
        auto l = layoutOf("gpt2");
        QCOMPARE(l.box("g0.attn_pre_norm")->title, QString("LayerNorm"));
        QCOMPARE(l.box("final_norm")->title, QString("Final LayerNorm"));
        QVERIFY(l.box("pos_embed"));
        QCOMPARE(l.box("pos_embed")->title, QString("Learned positional embedding"));
        QVERIFY(above(l.box("pos_embed"), l.box("embed")));
        QCOMPARE(l.box("g0.ffn")->title, QString("MLP (GELU(tanh))"));
        QCOMPARE(l.box("g0.attn")->title, QString("Masked multi-head attention"));
        QVERIFY(!anyContains(l.box("g0.attn")->tags, "RoPE"));
        QVERIFY(!l.box("g0.attn")->tags.contains("NoPE"));  // positions come from the embedding
        QCOMPARE(l.groups.size(), 1);
        QCOMPARE(l.groups[0].repeat, QString("× 12"));
        QVERIFY(l.box("lm_head")->tags.contains("tied to token embedding"));
    }

    void rendersPngAndSvg() {
        QTemporaryDir dir;
        auto l = layoutOf("deepseek-v3");
        const QString png = dir.filePath("d.png"), svg = dir.filePath("d.svg");
        QString err;
        QVERIFY2(exportDiagram(l, png, &err), qPrintable(err));
        QVERIFY2(exportDiagram(l, svg, &err), qPrintable(err));
        QImage img(png);
        QVERIFY(!img.isNull());
        QVERIFY(img.width() > 400 && img.height() > 800);
        int dark = 0;  // something was drawn, not a blank page
        for (int y = 0; y < img.height(); y += 4)
            for (int x = 0; x < img.width(); x += 4) dark += qGray(img.pixel(x, y)) < 128;
        QVERIFY(dark > 200);
        QFile f(svg);
        QVERIFY(f.open(QIODevice::ReadOnly));
        const QByteArray s = f.readAll();
        QVERIFY(s.contains("<svg"));
        QVERIFY(s.contains("Multi-head latent attention"));
        QVERIFY(!exportDiagram(l, dir.filePath("d.bmpx"), &err));
        QVERIFY(err.contains("unknown picture type"));
    }

    void viewSidePanelTensorsAndHighlight() {
        DiagramView v;
        v.resize(1200, 900);
        v.setSpec(Model::load_spec("catalog:gemma3-27b"), "gemma3-27b");
        QVERIFY(v.parameterSummary().contains("Total 27.0B"));
        v.setKvContext(32768);
        v.setKvType("bf16");
        QVERIFY2(v.kvSummary().contains("52 × sliding-window attention"), qPrintable(v.kvSummary()));
        v.setKvType("q8_0");
        QVERIFY(v.kvSummary().contains("(q8_0)"));
        v.setActiveLayer(5);
        QCOMPARE(v.canvas()->options().activeLayer, 5);
        // Architecture only: no tensors; with tensors, a block lists its own (first layer of its group).
        v.selectBox("g0.attn");
        QVERIFY(v.tensorsForBox("g0.attn").isEmpty());
        v.setTensors({{"blk.0.attn_q", "[4096, 5376]", "BF16", 44040192},
                      {"blk.0.attn_norm", "[5376]", "F32", 21504},
                      {"blk.5.attn_q", "[4096, 5376]", "BF16", 44040192},
                      {"blk.0.ffn_up", "[21504, 5376]", "BF16", 231211008},
                      {"token_embd", "[262208, 5376]", "BF16", 2819260416}});
        QCOMPARE(v.tensorsForBox("g0.attn").size(), 1);
        QCOMPARE(v.tensorsForBox("g0.attn_pre_norm").size(), 1);
        QCOMPARE(v.tensorsForBox("g1.attn").value(0).name, QString("blk.5.attn_q"));  // global group starts at layer 5
        QCOMPARE(v.tensorsForBox("embed").size(), 1);
        QSignalSpy spy(&v, &DiagramView::boxSelected);
        v.show();
        const DiagramBox* b = v.diagramLayout().box("g0.ffn");
        const qreal sc = v.canvas()->width() / v.diagramLayout().size.width();
        QTest::mouseClick(v.canvas(), Qt::LeftButton, {}, (b->rect.center() * sc).toPoint());
        QCOMPARE(spy.count(), 1);
        QCOMPARE(spy.at(0).at(0).toString(), QString("g0.ffn"));
        QVERIFY(!v.grab().isNull());
    }

    // Gemma 3n's block: AltUp predict below and correct above the block, LAuReL beside attention
    // with its own path into the attention ⊕, the per-layer input on top, shared-KV layers framed.
    void gemma3nShowsAltUpLaurelAndPerLayerInputs() {
        auto l = layoutOf("gemma3n-e4b");
        QVERIFY(l.box("ple"));
        QVERIFY(groupNamed(l, "sliding-window (512) · sparse FFN · own KV"));
        QVERIFY2(groupNamed(l, "global · dense FFN · KV shared"), qPrintable(l.allText().join(" | ")));
        for (int g = 0; g < l.groups.size(); ++g) {
            auto id = [&](const char* x) { return QStringLiteral("g%1.%2").arg(g).arg(x); };
            const DiagramBox *pred = l.box(id("altup_predict")), *corr = l.box(id("altup_correct")), *lr = l.box(id("laurel")),
                             *attn = l.box(id("attn")), *ffn = l.box(id("ffn")), *pin = l.box(id("ple_in")), *norm = l.box(id("attn_pre_norm"));
            QVERIFY(pred && corr && lr && attn && ffn && pin && norm);
            QCOMPARE(pred->kind, BoxKind::AltUp);
            QCOMPARE(lr->kind, BoxKind::Laurel);
            QCOMPARE(pin->kind, BoxKind::PerLayerInput);
            QVERIFY(above(norm, pred) && above(attn, norm) && above(ffn, attn) && above(corr, ffn) && above(pin, corr));
            QVERIFY(pred->lines.join(' ').contains("4 residual streams"));
            QVERIFY(lr->lines.contains("rank 64"));
            QVERIFY(pin->lines.join(' ').contains("gate 2,048 → 256"));
            // beside attention, inside the frame, not overlapping it
            QVERIFY(lr->rect.left() > attn->rect.right() && lr->rect.right() <= l.groups[g].frame.right());
            QVERIFY(lr->rect.top() < attn->rect.bottom() && lr->rect.bottom() > attn->rect.top());
            const DiagramBox* add = l.box(id("attn_add"));
            bool intoAdd = false;
            for (auto& e : l.edges) intoAdd |= !e.residual && e.path.last() == QPointF(add->rect.right(), add->rect.center().y());
            QVERIFY(intoAdd);
        }
        // a plain Gemma 3 block has none of them
        auto g3 = layoutOf("gemma3-1b");
        QVERIFY(g3.boxesOfKind(BoxKind::AltUp).isEmpty() && g3.boxesOfKind(BoxKind::Laurel).isEmpty() &&
                g3.boxesOfKind(BoxKind::PerLayerInput).isEmpty());
    }

    void everyCatalogModelLaysOut() {
        for (const char* n : {"deepseek-v3", "kimi-k2", "qwen3-0.6b", "qwen3-235b-a22b", "olmo2-32b", "gemma3-1b", "gemma3-4b",
                              "mistral-small-3.1-24b", "llama4-scout", "llama3.2-1b", "llama3.1-405b", "gpt2-xl", "gemma3n-e2b", "gemma3n-e4b"}) {
            auto l = layoutOf(n);
            QVERIFY2(l.box("embed") && l.box("lm_head") && l.box("final_norm"), n);
            QVERIFY2(l.size.height() > 500, n);
            for (auto& g : l.groups) QVERIFY2(!g.frame.isEmpty(), n);
        }
    }
};

QTEST_MAIN(TestDiagram)
#include "test_diagram.moc"
