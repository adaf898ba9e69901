// Hand-made semantic cases and unit checks: sampler, RoPE scalings, constructed routing, the
// shared expert, synthetic models round-tripping through the loader.
#include <set>
#include <fcntl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <QJsonArray>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <map>
#include <random>

#include "engine/core/error.h"
#include "engine/cpu/ops.h"
#include "engine/demo.h"
#include "engine/model/hf_writer.h"
#include "engine/model/model.h"
#include "engine/model/spec_parse.h"
#include "engine/model/synth.h"
#include "engine/quant/quant.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "tests/common/fixtures.h"

using namespace archlens;

namespace {

// A Qwen3-MoE-shaped model whose router is built so that a token's class decides its expert.
// Tokens are grouped in 4 classes (id % 4); the embedding of a class-c token is large on dim c,
// attention output is zero so the FFN input is the embedding itself, and router row e reads dim e.
const char* kMoeConfig = R"({"model_type":"qwen3_moe","vocab_size":320,"hidden_size":64,"intermediate_size":128,
    "moe_intermediate_size":32,"num_hidden_layers":2,"num_attention_heads":4,"num_key_value_heads":2,"head_dim":16,
    "num_experts":4,"num_experts_per_tok":1,"norm_topk_prob":true,"rms_norm_eps":1e-6,"rope_theta":10000.0})";

void class_router(const std::string& name, int64_t row, float* v, int64_t n) {
    if (name == "token_embd.weight") {
        for (int64_t i = 0; i < n; ++i) v[i] *= 0.05f;
        v[row % 4] = 4.f;
    } else if (name.find("attn_output") != std::string::npos) {
        for (int64_t i = 0; i < n; ++i) v[i] = 0.f;
    } else if (name.find("ffn_norm") != std::string::npos) {
        for (int64_t i = 0; i < n; ++i) v[i] = 1.f;
    } else if (name.find("ffn_gate_inp") != std::string::npos) {
        for (int64_t i = 0; i < n; ++i) v[i] = 0.f;
        v[row] = 8.f;  // expert `row` listens to dim `row`
    }
}

}  // namespace

class TestUnits : public QObject {
    Q_OBJECT
    QTemporaryDir tmp;
private slots:
    void sampler_greedy_and_seeded();
    void sampler_filters();
    void sampler_repetition_penalty();
    void sampler_top_k_orders_like_full_sort();
    void rope_freq_factors_equal_llama3_formula();
    void rope_neox_equals_norm_on_permuted_layout();
    void constructed_router_sends_each_class_to_its_expert();
    void shared_expert_contributes_for_every_token();
    void synthetic_models_roundtrip_every_family();
    void synthetic_file_same_for_any_thread_count();
    void hf_twin_matches_gguf_for_every_family();
    void quantized_synthetic_close_to_f32();
    void demo_models_are_deterministic();
    void probes_off_record_nothing();
    void logit_lens_last_layer_is_the_prediction();
    void gemma3n_kv_sharing_decode_equals_full_forward();
    void gemma3n_ple_rows_stream_from_the_map();
    void f16_kv_cache_decodes_like_its_batched_forward();
    void context_overflow_is_an_error();
    void matmul_many_equals_separate_products();
    void attention_dots_and_sums_are_exact();
};

// Top-k orders only its k candidates (a partial sort): the same order as the full sort, ties to the
// lower id, so the same draws; checked with k = the vocabulary against no top-k, on logits with ties.
void TestUnits::sampler_top_k_orders_like_full_sort() {
    std::vector<float> l(5000);
    uint64_t z = 7;
    for (auto& v : l) {
        z = z * 6364136223846793005ull + 1442695040888963407ull;
        v = float(int((z >> 33) % 400)) / 100.f;  // 400 distinct values: many ties
    }
    for (float top_p : {1.f, 0.9f})
        for (float min_p : {0.f, 0.05f}) {
            SamplerParams p;
            p.temperature = 0.7f;
            p.top_p = top_p;
            p.min_p = min_p;
            p.seed = 11;
            SamplerParams k = p;
            k.top_k = int(l.size());
            Sampler full(p), part(k);
            for (int i = 0; i < 200; ++i) QCOMPARE(part.sample(l, {}), full.sample(l, {}));
        }
    // k = 2 over a three-way tie at the top: the two lower ids only
    SamplerParams p;
    p.temperature = 1.f;
    p.top_k = 2;
    p.seed = 3;
    Sampler s(p);
    std::set<int> seen;
    for (int i = 0; i < 100; ++i) seen.insert(s.sample(std::vector<float>{1.f, 3.f, 3.f, 3.f}, {}));
    QCOMPARE(seen, (std::set<int>{1, 2}));
}

void TestUnits::sampler_greedy_and_seeded() {
    std::vector<float> l = {0.1f, 2.0f, 1.9f, -1.f};
    Sampler g(SamplerParams{});
    QCOMPARE(g.sample(l, {}), 1);
    SamplerParams p;
    p.temperature = 1.0f;
    p.seed = 42;
    Sampler a(p), b(p);
    std::vector<int> sa, sb;
    for (int i = 0; i < 50; ++i) {
        sa.push_back(a.sample(l, {}));
        sb.push_back(b.sample(l, {}));
    }
    QCOMPARE(sa, sb);
    // With temperature 1 both top tokens must appear in 50 draws (p ≈ 0.47 each).
    QVERIFY(std::count(sa.begin(), sa.end(), 1) > 5 && std::count(sa.begin(), sa.end(), 2) > 5);
    p.seed = 43;
    Sampler c(p);
    std::vector<int> sc;
    for (int i = 0; i < 50; ++i) sc.push_back(c.sample(l, {}));
    QVERIFY(sc != sa);
}

void TestUnits::sampler_filters() {
    std::vector<float> l = {3.f, 2.9f, 0.f, -5.f};
    SamplerParams p;
    p.temperature = 1.f;
    p.top_k = 1;
    Sampler k1(p);
    for (int i = 0; i < 20; ++i) QCOMPARE(k1.sample(l, {}), 0);
    p.top_k = 0;
    p.min_p = 0.5f;  // token 2 has p/p_max = e^-3 < 0.5: never drawn
    Sampler mp(p);
    for (int i = 0; i < 200; ++i) QVERIFY(mp.sample(l, {}) < 2);
    p.min_p = 0;
    p.top_p = 0.5f;  // the top token alone carries > 0.5
    Sampler tp(p);
    for (int i = 0; i < 50; ++i) QCOMPARE(tp.sample(l, {}), 0);
}

void TestUnits::sampler_repetition_penalty() {
    std::vector<float> l = {2.0f, 1.9f};
    SamplerParams p;
    p.repetition_penalty = 1.2f;
    Sampler s(p);
    std::vector<int> hist = {0};
    QCOMPARE(s.sample(l, hist), 1);  // 2.0/1.2 < 1.9
}

void TestUnits::rope_freq_factors_equal_llama3_formula() {
    RopeSpec r;
    r.theta = 500000.f;
    r.n_rot = 64;
    r.scaling = RopeScaling::Llama3;
    r.factor = 32.f;
    r.low_freq_factor = 1.f;
    r.high_freq_factor = 4.f;
    r.original_max_pos = 8192;
    // The factors the GGUF converter writes (1 / HF's ratio), computed independently here.
    std::vector<float> f;
    for (int i = 0; i < 32; ++i) {
        double inv = 1.0 / std::pow(500000.0, 2.0 * i / 64), wl = 2 * M_PI / inv;
        double fac = 1;
        if (wl > 8192) fac = 32;
        else if (wl >= 2048) {
            double sm = (8192 / wl - 1) / 3;
            fac = 1 / ((1 - sm) / 32 + sm);
        }
        f.push_back(float(fac));
    }
    std::vector<float> a(64), b(64);
    for (int64_t pos : {1, 17, 1000, 100000}) {
        cpu::rope_cos_sin(r, pos, a.data());
        cpu::rope_cos_sin(r, pos, b.data(), f.data());
        for (int i = 0; i < 64; ++i) QVERIFY2(std::fabs(a[size_t(i)] - b[size_t(i)]) < 2e-4, qPrintable(QString("pos %1 i %2").arg(pos).arg(i)));
    }
    // and scaling is real: low frequencies differ from the unscaled rotation
    RopeSpec plain = r;
    plain.scaling = RopeScaling::None;
    cpu::rope_cos_sin(plain, 100000, b.data());
    QVERIFY(std::fabs(a[62] - b[62]) > 1e-3);
}

void TestUnits::rope_neox_equals_norm_on_permuted_layout() {
    // llama.cpp's converter permutes q/k rows so interleaved RoPE on the GGUF equals rotate_half on HF.
    const int d = 8;
    std::vector<float> hf = {1, 2, 3, 4, 5, 6, 7, 8}, perm(d);
    for (int i = 0; i < d / 2; ++i) {
        perm[size_t(2 * i)] = hf[size_t(i)];
        perm[size_t(2 * i + 1)] = hf[size_t(i + d / 2)];
    }
    RopeSpec r;
    r.n_rot = d;
    std::vector<float> cs(d);
    cpu::rope_cos_sin(r, 7, cs.data());
    cpu::rope_apply(hf.data(), d, RopeStyle::Neox, cs.data());
    cpu::rope_apply(perm.data(), d, RopeStyle::Norm, cs.data());
    for (int i = 0; i < d / 2; ++i) {
        QVERIFY(std::fabs(perm[size_t(2 * i)] - hf[size_t(i)]) < 1e-6);
        QVERIFY(std::fabs(perm[size_t(2 * i + 1)] - hf[size_t(i + d / 2)]) < 1e-6);
    }
}

void TestUnits::constructed_router_sends_each_class_to_its_expert() {
    ModelSpec spec = spec_from_hf_config_text(kMoeConfig, "test");
    SynthOptions o;
    o.edit_row = class_router;
    const std::string path = (tmp.path() + "/router.gguf").toStdString();
    write_synthetic_gguf(spec, o, path);
    auto m = Model::load(path);
    Session s(*m);
    s.probe_config().routing = true;
    std::vector<int> ids;
    for (int i = 0; i < 40; ++i) ids.push_back((i * 37 + 5) % 300);
    s.forward(ids);
    int checked = 0;
    for (auto& r : s.probes().routing) {
        if (r.layer != 0) continue;  // layer 1's input has passed layer 0's FFN
        QCOMPARE(r.experts.size(), size_t(1));
        QCOMPARE(r.experts[0], ids[size_t(r.pos)] % 4);
        QVERIFY(std::fabs(r.weights[0] - 1.f) < 1e-6);  // top-1 renormalised
        ++checked;
    }
    QCOMPARE(checked, 40);
    for (int e = 0; e < 4; ++e) QCOMPARE(s.probes().expert_load[0][size_t(e)], uint64_t(10));
}

void TestUnits::shared_expert_contributes_for_every_token() {
    // DeepSeek-V3 shape; the same model twice, once with the shared expert's output zeroed.
    ModelSpec spec = Model::load_spec("demo:deepseek-v3");
    const std::string with = (tmp.path() + "/with.gguf").toStdString(), without = (tmp.path() + "/without.gguf").toStdString();
    write_synthetic_gguf(spec, {}, with);
    SynthOptions o;
    o.edit_row = [](const std::string& name, int64_t, float* v, int64_t n) {
        if (name.find("ffn_down_shexp") != std::string::npos) std::fill(v, v + n, 0.f);
    };
    write_synthetic_gguf(spec, o, without);
    auto a = Model::load(with), b = Model::load(without);
    std::vector<int> ids;
    for (int i = 0; i < 24; ++i) ids.push_back((i * 53 + 7) % spec.vocab);
    Session sa(*a), sb(*b);
    sa.probe_config().routing = sb.probe_config().routing = true;
    auto la = sa.forward(ids, true), lb = sb.forward(ids, true);
    const int V = spec.vocab;
    for (size_t t = 0; t < ids.size(); ++t) {
        double d = 0;
        for (int i = 0; i < V; ++i) d = std::max(d, double(std::fabs(la[t * size_t(V) + size_t(i)] - lb[t * size_t(V) + size_t(i)])));
        QVERIFY2(d > 1e-3, qPrintable(QString("position %1 unaffected by the shared expert").arg(t)));
    }
    // The first MoE layer sees identical inputs, so its routing is the same: the shared expert
    // is not routed, it runs beside the routed ones.
    for (size_t i = 0; i < sa.probes().routing.size(); ++i) {
        const auto &ra = sa.probes().routing[i], &rb = sb.probes().routing[i];
        if (ra.layer != 1) continue;
        QCOMPARE(ra.experts, rb.experts);
    }
}

void TestUnits::synthetic_models_roundtrip_every_family() {
    for (auto& d : demo::demo_models()) {
        ModelSpec spec = Model::load_spec("demo:" + d.name);
        const std::string path = (tmp.path() + "/" + QString::fromStdString(d.name) + ".gguf").toStdString();
        write_synthetic_gguf(spec, {}, path);
        auto m = Model::load(path);
        ModelSpec back = m->spec();
        back.name = spec.name;
        back.family = spec.family;
        back.model_type = spec.model_type;
        QVERIFY2(back == spec, d.name.c_str());
        Session s(*m);
        std::vector<int> ids = {1, 2, 3, 4, 5};
        auto l = s.forward(ids);
        for (float v : l) QVERIFY(std::isfinite(v));
    }
}

// Tensors are generated ahead on worker threads and written in order: the bytes must not depend
// on how many threads made them, and progress must see every tensor once.
void TestUnits::synthetic_file_same_for_any_thread_count() {
    ModelSpec spec = Model::load_spec("demo:qwen3-moe");
    for (const char* dtype : {"f32", "q4_k_m"}) {
        std::vector<QByteArray> files;
        for (unsigned threads : {1u, 4u}) {
            SynthOptions o;
            parse_synth_dtype(dtype, o);
            o.threads = threads;
            o.edit_row = class_router;
            std::vector<int> seen;
            size_t count = 0;
            o.progress = [&](const std::string&, size_t index, size_t n) {
                seen.push_back(int(index));
                count = n;
            };
            const QString path = tmp.path() + QString("/threads-%1-%2.gguf").arg(dtype).arg(threads);
            write_synthetic_gguf(spec, o, path.toStdString());
            std::sort(seen.begin(), seen.end());
            QVERIFY(count > 10);
            QCOMPARE(seen.size(), count);
            for (size_t i = 0; i < seen.size(); ++i) QCOMPARE(seen[i], int(i));
            QFile f(path);
            QVERIFY(f.open(QIODevice::ReadOnly));
            files.push_back(f.readAll());
        }
        QVERIFY(files[0].size() > 100000);
        QVERIFY2(files[0] == files[1], dtype);
    }
}

// The GGUF and its Hugging Face twin (q/k permutation, (1+w) norms, Conv1D, split kv_b_proj,
// stacked/fused experts all undone) load to the same spec and the same logits.
void TestUnits::hf_twin_matches_gguf_for_every_family() {
    for (auto& d : demo::demo_models()) {
        if (d.name == "induction" || d.name == "moe-router") continue;  // constructed; same families as others
        ModelSpec spec = Model::load_spec("demo:" + d.name);
        const QString base = tmp.path() + "/twin-" + QString::fromStdString(d.name);
        write_synthetic_gguf(spec, {}, (base + ".gguf").toStdString());
        auto g = Model::load((base + ".gguf").toStdString());
        write_hf_twin(*g, base.toStdString());
        auto h = Model::load(base.toStdString());
        ModelSpec a = g->spec(), b = h->spec();
        b.name = a.name;
        b.family = a.family;
        b.model_type = a.model_type;
        QVERIFY2(a == b, d.name.c_str());
        std::vector<int> ids = {1, 5, 9, 33, 200, 7, 8, 9, 10, 11, 12, 13};
        Session sa(*g), sb(*h);
        auto la = sa.forward(ids, true), lb = sb.forward(ids, true);
        double md = 0;
        for (size_t i = 0; i < la.size(); ++i) md = std::max(md, double(std::fabs(la[i] - lb[i])));
        QVERIFY2(md < 1e-4, qPrintable(QString("%1: %2").arg(QString::fromStdString(d.name)).arg(md)));
    }
}

void TestUnits::quantized_synthetic_close_to_f32() {
    ModelSpec spec = Model::load_spec("demo:llama3");
    std::map<std::string, double> bound = {{"q8_0", 0.3}, {"bf16", 0.15}, {"f16", 0.01}, {"q4_k_m", 1.5}};
    const std::string ref_path = (tmp.path() + "/ref.gguf").toStdString();
    write_synthetic_gguf(spec, {}, ref_path);
    auto ref = Model::load(ref_path);
    std::vector<int> ids = {10, 20, 30, 40, 50, 60, 70, 80};
    Session rs(*ref);
    auto rl = rs.forward(ids, true);
    for (auto& [name, tol] : bound) {
        SynthOptions o;
        parse_synth_dtype(name, o);
        const std::string path = (tmp.path() + "/" + QString::fromStdString(name) + ".gguf").toStdString();
        write_synthetic_gguf(spec, o, path);
        auto m = Model::load(path);
        Session s(*m);
        auto l = s.forward(ids, true);
        double md = 0;
        for (size_t i = 0; i < l.size(); ++i) md = std::max(md, double(std::fabs(l[i] - rl[i])));
        qInfo("%s: max |logit - f32| = %.3g", name.c_str(), md);
        QVERIFY2(md < tol && md > 0, qPrintable(QString("%1: %2").arg(QString::fromStdString(name)).arg(md)));
    }
}

void TestUnits::demo_models_are_deterministic() {
    const std::string a = demo::ensure_demo_model("qwen3-moe", (tmp.path() + "/a").toStdString());
    const std::string b = demo::ensure_demo_model("qwen3-moe", (tmp.path() + "/b").toStdString());
    QFile fa(QString::fromStdString(a)), fb(QString::fromStdString(b));
    QVERIFY(fa.open(QIODevice::ReadOnly) && fb.open(QIODevice::ReadOnly));
    QVERIFY(fa.readAll() == fb.readAll());
    QVERIFY_THROWS_EXCEPTION(Error, demo::ensure_demo_model("nope", tmp.path().toStdString()));
}

void TestUnits::probes_off_record_nothing() {
    auto m = Model::load("demo:qwen3-moe");
    Session s(*m);
    std::vector<int> ids = {1, 2, 3};
    s.forward(ids);
    QVERIFY(s.probes().attention.empty());
    QVERIFY(s.probes().routing.empty());
    QVERIFY(s.probes().top_k.empty());
}

void TestUnits::context_overflow_is_an_error() {
    auto m = Model::load("demo:gpt2");
    Session s(*m, {.n_ctx = 4});
    std::vector<int> ids = {1, 2, 3, 4, 5};
    QVERIFY_THROWS_EXCEPTION(Error, s.forward(ids));
    std::vector<int> bad = {100000};
    QVERIFY_THROWS_EXCEPTION(Error, s.forward(bad));
}

void TestUnits::logit_lens_last_layer_is_the_prediction() {
    for (const char* name : {"demo:llama3", "demo:gemma3", "demo:deepseek-v3"}) {
        auto m = Model::load(name);
        Session s(*m);
        s.probe_config().logit_lens = true;
        s.probe_config().top_k = 5;
        std::vector<int> ids = {3, 1, 4, 1, 5, 9, 2, 6};
        auto logits = s.forward(ids);
        const auto& lens = s.probes().logit_lens;
        QCOMPARE(int(lens.size()), m->spec().n_layers);
        for (int i = 0; i < int(lens.size()); ++i) QCOMPARE(lens[size_t(i)].layer, i);
        QCOMPARE(lens.back().token, argmax(logits));
        QCOMPARE(s.probes().top_k.front().id, argmax(logits));
        QVERIFY(std::fabs(lens.back().prob - s.probes().top_k.front().prob) < 1e-5);
    }
}

// 24 layers, the last 6 reuse earlier caches (layer >= 18: local layers read 16's, global 14's…):
// the fixture is too small to reach KV sharing, so this model of our own exercises it.
void TestUnits::gemma3n_kv_sharing_decode_equals_full_forward() {
    QJsonObject cfg = QJsonDocument::fromJson(R"({"model_type":"gemma3n_text","vocab_size":320,"hidden_size":32,
        "hidden_size_per_layer_input":16,"intermediate_size":128,"num_hidden_layers":24,"num_attention_heads":2,
        "num_key_value_heads":1,"head_dim":16,"hidden_activation":"gelu_pytorch_tanh","rms_norm_eps":1e-6,
        "rope_theta":1000000.0,"rope_local_base_freq":10000.0,"sliding_window":6,"final_logit_softcapping":30.0,
        "laurel_rank":8,"num_kv_shared_layers":6,"activation_sparsity_pattern":0.95})").object();
    QJsonArray types;
    for (int i = 0; i < 24; ++i) types.append((i + 1) % 5 == 0 ? "full_attention" : "sliding_attention");
    cfg["layer_types"] = types;
    ModelSpec spec = spec_from_hf_config_text(QJsonDocument(cfg).toJson().toStdString(), "test");
    QCOMPARE(spec.layers[18].kv_source, 17);  // 17 is the last local layer before 18
    QCOMPARE(spec.layers[19].kv_source, 14);  // 19 is global: last global before 18 is 14
    QCOMPARE(spec.layers[23].kv_source, 17);
    QCOMPARE(spec.layers[17].kv_source, -1);
    const std::string path = (tmp.path() + "/g3n.gguf").toStdString();
    write_synthetic_gguf(spec, {}, path);
    auto m = Model::load(path);
    ModelSpec back = m->spec();
    back.name = spec.name;
    back.model_type = spec.model_type;
    back.bos = spec.bos;  // the synthetic vocabulary brings its own BOS/EOS
    back.eos = spec.eos;
    QVERIFY(back == spec);
    std::vector<int> ids;
    for (int i = 0; i < 20; ++i) ids.push_back((i * 31 + 3) % 300);
    Session full(*m);
    auto all = full.forward(ids, true);
    Session step(*m);
    const int V = spec.vocab;
    double md = 0;
    auto first = step.forward(std::span<const int>(ids.data(), 9), true);  // batch longer than the window
    for (size_t i = 0; i < first.size(); ++i) md = std::max(md, double(std::fabs(first[i] - all[i])));
    for (size_t t = 9; t < ids.size(); ++t) {
        auto l = step.forward(std::span<const int>(&ids[t], 1));
        for (int i = 0; i < V; ++i) md = std::max(md, double(std::fabs(l[size_t(i)] - all[t * size_t(V) + size_t(i)])));
    }
    QVERIFY2(md < 1e-3, qPrintable(QString("decode vs full: %1").arg(md)));
    // Shared layers allocate no cache of their own.
    for (int il = 18; il < 24; ++il) QCOMPARE(step.kv()[size_t(il)].bytes(), uint64_t(0));
    QVERIFY(step.kv()[17].bytes() > 0);
}

// Per-layer embedding rows are read from the mapped file as tokens arrive: after running a few
// tokens, only the pages holding their rows (and neighbours the kernel read ahead) are resident.
void TestUnits::gemma3n_ple_rows_stream_from_the_map() {
    ModelSpec spec = Model::load_spec("demo:gemma3n");
    // 32768 rows × 320 floats = 40 MiB: the kernel maps file pages in up to 2 MiB folios, so the
    // table must be much larger than a few of those for residency to tell anything.
    spec.ple_vocab = spec.vocab = 32768;
    const std::string path = (tmp.path() + "/ple.gguf").toStdString();
    write_synthetic_gguf(spec, {}, path);
    auto m = Model::load(path);
    const Linear& table = m->weights().ple_table;
    const uint64_t row_bytes = uint64_t(table.n_in) * 4, table_bytes = row_bytes * uint64_t(table.n_out);
    Session s(*m);
    std::vector<int> ids = {5, 900, 2000};
    s.forward(ids);
    // RSS of our mapping of the file (pages faulted into this process), from /proc/self/smaps.
    const uintptr_t addr = reinterpret_cast<uintptr_t>(table.data);
    QFile smaps("/proc/self/smaps");
    QVERIFY(smaps.open(QIODevice::ReadOnly));
    const QList<QByteArray> lines = smaps.readAll().split('\n');
    qint64 rss_kb = -1;
    bool inside = false;
    for (const QByteArray& line : lines) {
        const QList<QByteArray> range = line.split(' ').first().split('-');
        bool ok_lo = false, ok_hi = false;
        const uintptr_t lo = range.size() == 2 ? range[0].toULongLong(&ok_lo, 16) : 0;
        const uintptr_t hi = range.size() == 2 ? range[1].toULongLong(&ok_hi, 16) : 0;
        if (ok_lo && ok_hi) {
            inside = addr >= lo && addr < hi;
        } else if (inside && line.startsWith("Rss:")) {
            rss_kb = line.mid(4).trimmed().split(' ').first().toLongLong();
            break;
        }
    }
    QVERIFY2(rss_kb >= 0, "mapping of the model file not found in /proc/self/smaps");
    qInfo("PLE table %llu KiB; resident part of the whole mapped file after 3 tokens: %lld KiB",
          (unsigned long long)(table_bytes / 1024), rss_kb);
    QVERIFY2(uint64_t(rss_kb) * 1024 < table_bytes / 2, "the per-layer table became resident as a whole");
}

// The f16 KV cache: half the bytes for standard attention (MLA's latent cache stays f32);
// decoding one token at a time equals the batched forward pass in the same mode (the batch's own
// keys are rounded like the cached ones), through sliding-window rings, Gemma 3n KV sharing and
// the head-major cache growing under its data (256 -> 512 positions); and the logits stay close to
// the f32 cache's.
void TestUnits::f16_kv_cache_decodes_like_its_batched_forward() {
    for (const char* name : {"demo:llama3", "demo:gemma3", "demo:qwen3-moe", "demo:gemma3n", "demo:deepseek-v3"}) {
        auto m = Model::load(name);
        std::vector<int> ids;
        for (int i = 0; i < 300; ++i) ids.push_back((i * 37 + 5) % 250);  // past Gemma 3's window of 32
        SessionOptions o16{512, 2, true}, o32{512, 2, false};
        Session full16(*m, o16), full32(*m, o32), step(*m, o16);
        QVERIFY(step.kv_f16());
        const auto a16 = full16.forward(ids, true), a32 = full32.forward(ids, true);
        const size_t V = size_t(m->spec().vocab);
        double md = 0, d32 = 0;
        auto first = step.forward(std::span<const int>(ids.data(), 10), true);
        for (size_t i = 0; i < first.size(); ++i) md = std::max(md, double(std::fabs(first[i] - a16[i])));
        for (size_t t = 10; t < ids.size(); ++t) {
            auto l = step.forward(std::span<const int>(&ids[t], 1));
            for (size_t i = 0; i < V; ++i) md = std::max(md, double(std::fabs(l[i] - a16[t * V + i])));
        }
        // (over the first 48 positions: further on, a near-tie of the MoE router can flip on the
        // f16 rounding and take a different expert, as quantization does)
        for (size_t i = 0; i < 48 * V; ++i) d32 = std::max(d32, double(std::fabs(a16[i] - a32[i])));
        qInfo("%s: f16 cache decode vs batched %.2g; f16 vs f32 cache %.2g", name, md, d32);
        QVERIFY2(md < 1e-4, name);
        // the f32 cache grown the same way: decode = batched as well
        Session step32(*m, o32);
        double md32 = 0;
        auto f32first = step32.forward(std::span<const int>(ids.data(), 10), true);
        for (size_t i = 0; i < f32first.size(); ++i) md32 = std::max(md32, double(std::fabs(f32first[i] - a32[i])));
        for (size_t t = 10; t < ids.size(); ++t) {
            auto l = step32.forward(std::span<const int>(&ids[t], 1));
            for (size_t i = 0; i < V; ++i) md32 = std::max(md32, double(std::fabs(l[i] - a32[t * V + i])));
        }
        QVERIFY2(md32 < 1e-4, name);
        QVERIFY2(d32 < 0.05, name);
        QCOMPARE(d32 > 0, !m->spec().has_mla());  // MLA's cache stays f32: nothing changes
        // bytes: every standard layer's cache is half; MLA's is unchanged
        for (size_t il = 0; il < step.kv().size(); ++il) {
            const LayerKv& a = step.kv()[il];
            const LayerKv& b = full32.kv()[il];
            if (b.bytes() == 0) continue;
            if (m->spec().layers[il].attn.kind == AttnKind::MLA)
                QCOMPARE(a.bytes(), b.bytes());
            else
                QCOMPARE(a.bytes() * 2, b.bytes());
        }
    }
}

QTEST_APPLESS_MAIN(TestUnits)
// q/k/v and gate/up share one activation conversion and one dispatch; every output equals its own
// matmul bit for bit, whether the weights share their activation format (Q4_K with Q6_K on the
// k-quant path) or not (Q8_0 with F32: one matmul each), with biases, decode and prefill sizes.
void TestUnits::matmul_many_equals_separate_products() {
    std::mt19937 rng(9);
    std::normal_distribution<float> nd(0.f, 1.f);
    const int64_t n_in = 512;
    auto make = [&](DType t, int64_t n_out, std::vector<uint8_t>& store) {
        std::vector<float> row(static_cast<size_t>(n_in));
        const uint64_t rb = *dtype_row_bytes(t, uint64_t(n_in));
        store.assign(size_t(rb * uint64_t(n_out)), 0);
        for (int64_t r = 0; r < n_out; ++r) {
            for (auto& v : row) v = nd(rng);
            quant::quantize_row_ref(t, row.data(), store.data() + uint64_t(r) * rb, n_in);
        }
        Linear l;
        l.type = t;
        l.n_in = n_in;
        l.n_out = n_out;
        l.data = store.data();
        for (int64_t o = 0; o < n_out; ++o) l.bias.push_back(0.01f * float(o % 7));
        return l;
    };
    ThreadPool pool(2);
    const std::pair<DType, DType> mixes[] = {{DType::Q4_K, DType::Q6_K}, {DType::Q8_0, DType::F32}, {DType::BF16, DType::BF16}};
    for (auto [ta, tb] : mixes)
        for (int64_t T : {1, 70}) {
            std::vector<uint8_t> sa, sb, sc;
            const Linear a = make(ta, 96, sa), b = make(tb, 40, sb), c = make(ta, 300, sc);
            std::vector<float> x(size_t(T * n_in));
            for (auto& v : x) v = nd(rng);
            std::vector<float> ya(size_t(T * 96)), yb(size_t(T * 40)), yc(size_t(T * 300));
            std::vector<float> wa = ya, wb = yb, wc = yc;
            cpu::matmul_many(pool, {{&a, ya.data()}, {&b, yb.data()}, {&c, yc.data()}}, x.data(), T);
            cpu::matmul(pool, a, x.data(), T, wa.data());
            cpu::matmul(pool, b, x.data(), T, wb.data());
            cpu::matmul(pool, c, x.data(), T, wc.data());
            QVERIFY2(ya == wa && yb == wb && yc == wc, qPrintable(QString("%1+%2 T=%3").arg(dtype_name(ta)).arg(dtype_name(tb)).arg(T)));
        }
}

// The attention kernels give exactly the scalar-path results whatever the number of queries sharing
// a key (1, 2, 4 and mixes) or keys per block: dot_keys = dot_f32, weighted_sum = zeroing and
// axpy_f32 key by key, and a weighted_sum continued with `accumulate` = one call over all keys.
void TestUnits::attention_dots_and_sums_are_exact() {
    std::mt19937 rng(12);
    std::normal_distribution<float> nd(0.f, 1.f);
    for (int64_t n : {64, 128, 256})
        for (int nq : {1, 2, 3, 4, 5, 8})
            for (int nk : {1, 3, 4, 7, 8, 13, 40, 70}) {
                const auto rows = [](int count, int64_t len) { return std::vector<std::vector<float>>(static_cast<size_t>(count), std::vector<float>(static_cast<size_t>(len))); };
                std::vector<std::vector<float>> q = rows(nq, n), k = rows(nk, n);
                std::vector<std::vector<uint16_t>> k16(static_cast<size_t>(nk), std::vector<uint16_t>(static_cast<size_t>(n)));
                for (auto& r : q)
                    for (auto& v : r) v = nd(rng);
                for (int j = 0; j < nk; ++j) {
                    for (auto& v : k[size_t(j)]) v = nd(rng);
                    cpu::to_f16(k[size_t(j)].data(), n, k16[size_t(j)].data());  // k now holds the f16 values
                }
                std::vector<const float*> qp, kp;
                std::vector<const uint16_t*> kp16;
                for (auto& r : q) qp.push_back(r.data());
                for (int j = 0; j < nk; ++j) kp.push_back(k[size_t(j)].data()), kp16.push_back(k16[size_t(j)].data());
                std::vector<float> s(size_t(nq * nk)), s16(size_t(nq * nk));
                cpu::dot_keys(qp.data(), nq, kp.data(), nk, n, s.data(), nk);
                cpu::dot_keys(qp.data(), nq, kp16.data(), nk, n, s16.data(), nk);
                for (int a = 0; a < nq; ++a)
                    for (int j = 0; j < nk; ++j) {
                        const float want = cpu::dot_f32(q[size_t(a)].data(), k[size_t(j)].data(), n);
                        QCOMPARE(s[size_t(a * nk + j)], want);
                        QCOMPARE(s16[size_t(a * nk + j)], want);
                    }
                // weighted sums over the same keys as values, probabilities s
                std::vector<std::vector<float>> o = rows(nq, n), o2 = o, want = o;
                std::vector<float*> op, op2;
                for (auto& r : o) op.push_back(r.data());
                for (auto& r : o2) op2.push_back(r.data());
                cpu::weighted_sum(s.data(), nk, nq, kp.data(), nk, n, op.data());
                const int split = nk / 2;  // the first keys, then the rest continued
                cpu::weighted_sum(s.data(), nk, nq, kp.data(), split, n, op2.data());
                cpu::weighted_sum(s.data() + split, nk, nq, kp.data() + split, nk - split, n, op2.data(), true);
                for (int a = 0; a < nq; ++a) {
                    for (int j = 0; j < nk; ++j) cpu::axpy_f32(s[size_t(a * nk + j)], k[size_t(j)].data(), want[size_t(a)].data(), n);
                    QVERIFY(o[size_t(a)] == want[size_t(a)]);
                    QVERIFY(o2[size_t(a)] == want[size_t(a)]);
                }
            }
}

#include "test_units.moc"
