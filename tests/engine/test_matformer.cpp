// MatFormer slices of Gemma 3n: the slicing CSV, the published E4B -> E2B slice, and a slice run
// from the whole model's file equal to the same slice exported as its own checkpoint (what the
// MatFormer Lab notebook writes).
#include <QJsonArray>
#include <QRegularExpression>
#include <QJsonDocument>
#include <QJsonObject>
#include <QTemporaryDir>
#include <QtTest>
#include <cmath>
#include <cstring>
#include <fstream>
#include <set>

#include "engine/core/error.h"
#include "engine/cpu/ops.h"
#include "engine/core/thread_pool.h"
#include "engine/formats/safetensors.h"
#include "engine/model/hf_writer.h"
#include "engine/model/matformer.h"
#include "engine/model/model.h"
#include "engine/model/spec_parse.h"
#include "engine/model/synth.h"
#include "engine/quant/quant.h"
#include "engine/session.h"
#include "tests/common/fixtures.h"

using namespace archlens;

namespace {

// 15 layers (4 local : 1 global), the last 10 share KV: layers 3 (local) and 4 (global) hold the
// caches they read. Sparsity on the first three layers. FFN 128 everywhere.
const char* kConfig = R"({"model_type":"gemma3n_text","vocab_size":320,"hidden_size":32,"hidden_size_per_layer_input":16,
    "intermediate_size":128,"num_hidden_layers":15,"num_attention_heads":2,"num_key_value_heads":1,"head_dim":16,
    "hidden_activation":"gelu_pytorch_tanh","rms_norm_eps":1e-6,"rope_theta":1000000.0,"rope_local_base_freq":10000.0,
    "sliding_window":6,"final_logit_softcapping":30.0,"laurel_rank":8,"num_kv_shared_layers":10,
    "activation_sparsity_pattern":[0.95,0.95,0.95,0,0,0,0,0,0,0,0,0,0,0,0]})";

std::string dims(std::initializer_list<std::pair<int, const char*>> runs) {
    std::string s = "\"[";
    bool first = true;
    for (auto& [n, d] : runs)
        for (int i = 0; i < n; ++i) {
            s += (first ? "" : ", ") + std::string(d);
            first = false;
        }
    return s + "]\"";
}

// Google's CSV layout (google/gemma3n-slicing-configs): quoted lists, "2_048 * 4" style entries.
std::string slicing_csv() {
    std::string csv = "name,# Layers,# Effective Params (B),MMLU PT accuracy,FFN Hidden Dims,Layers Skipped\n";
    csv += "Main model,15,0.01,n/a," + dims({{15, "1_28"}}) + ",\n";
    csv += "Block skip,10,,n/a," + dims({{4, "32 * 2"}, {1, "128"}, {2, "96"}, {3, "32 * 1"}}) + ",\"[5, 6, 7, 8, 9]\"\n";
    csv += "Mixed,13,,n/a," + dims({{3, "64"}, {1, "128"}, {5, "32"}, {4, "96"}}) + ",\"[12, 1]\"\n";
    return csv;
}

void write_text(const std::string& path, const std::string& text) {
    std::ofstream(path, std::ios::binary) << text;
}

float getf(const TensorRef& t, int64_t i) {
    float v;
    std::memcpy(&v, t.data + i * 4, 4);
    return v;
}

// The notebook's export: drop skipped layers (renumbering the rest), keep the first d rows of
// gate/up and first d columns of down, the kept layers' blocks of the per-layer tables, and the
// config edits (layers, per-layer FFN sizes, KV-sharing count, sparsity, layer types).
void export_slice(const std::string& full_dir, const std::string& out_dir, const std::vector<int>& skip, const std::vector<int>& ffn) {
    QFile cf(QString::fromStdString(full_dir + "/config.json"));
    QVERIFY(cf.open(QIODevice::ReadOnly));
    QJsonObject cfg = QJsonDocument::fromJson(cf.readAll()).object();
    const int L = cfg["num_hidden_layers"].toInt(), P = cfg["hidden_size_per_layer_input"].toInt();
    const int first_shared = L - cfg["num_kv_shared_layers"].toInt();
    std::vector<int> kept;
    for (int i = 0; i < L; ++i)
        if (std::find(skip.begin(), skip.end(), i) == skip.end()) kept.push_back(i);
    int skipped_shared = 0;
    for (int i : skip) skipped_shared += i >= first_shared;
    QJsonArray types, sparsity, inter;
    for (size_t k = 0; k < kept.size(); ++k) {
        types.append(cfg["layer_types"].toArray()[kept[k]]);
        sparsity.append(cfg["activation_sparsity_pattern"].toArray()[kept[k]]);
        inter.append(ffn[k]);
    }
    cfg["num_hidden_layers"] = int(kept.size());
    cfg["num_kv_shared_layers"] = cfg["num_kv_shared_layers"].toInt() - skipped_shared;
    cfg["layer_types"] = types;
    cfg["activation_sparsity_pattern"] = sparsity;
    cfg["intermediate_size"] = inter;
    QDir().mkpath(QString::fromStdString(out_dir));
    write_text(out_dir + "/config.json", QJsonDocument(cfg).toJson().toStdString());

    SafetensorsModel st(full_dir);
    struct T {
        std::string name;
        std::vector<int64_t> shape;
        std::vector<float> v;
    };
    std::vector<T> out;
    const QRegularExpression layer_re("^model\\.layers\\.(\\d+)\\.(.*)$");
    for (auto& [name, t] : st.tensors()) {
        QVERIFY(t.type == DType::F32);
        T o{name, t.shape, {}};
        auto m = layer_re.match(QString::fromStdString(name));
        if (m.hasMatch()) {
            const int old = m.captured(1).toInt();
            auto it = std::find(kept.begin(), kept.end(), old);
            if (it == kept.end()) continue;
            const int nu = int(it - kept.begin()), d = ffn[size_t(nu)];
            const std::string rest = m.captured(2).toStdString();
            o.name = "model.layers." + std::to_string(nu) + "." + rest;
            if (rest == "mlp.gate_proj.weight" || rest == "mlp.up_proj.weight") {
                o.shape = {d, t.shape[1]};
                for (int64_t i = 0; i < d * t.shape[1]; ++i) o.v.push_back(getf(t, i));
            } else if (rest == "mlp.down_proj.weight") {
                o.shape = {t.shape[0], d};
                for (int64_t r = 0; r < t.shape[0]; ++r)
                    for (int64_t c = 0; c < d; ++c) o.v.push_back(getf(t, r * t.shape[1] + c));
            }
        } else if (name == "model.per_layer_model_projection.weight") {
            const int64_t D = t.shape[1];
            o.shape = {int64_t(kept.size()) * P, D};
            for (int k : kept)
                for (int64_t i = 0; i < P * D; ++i) o.v.push_back(getf(t, int64_t(k) * P * D + i));
        } else if (name == "model.embed_tokens_per_layer.weight") {
            o.shape = {t.shape[0], int64_t(kept.size()) * P};
            for (int64_t r = 0; r < t.shape[0]; ++r)
                for (int k : kept)
                    for (int64_t i = 0; i < P; ++i) o.v.push_back(getf(t, r * t.shape[1] + int64_t(k) * P + i));
        }
        if (o.v.empty())
            for (int64_t i = 0; i < t.numel(); ++i) o.v.push_back(getf(t, i));
        out.push_back(std::move(o));
    }
    QJsonObject header;
    uint64_t off = 0;
    for (auto& o : out) {
        QJsonArray shape;
        for (auto d : o.shape) shape.append(qint64(d));
        header[QString::fromStdString(o.name)] =
            QJsonObject{{"dtype", "F32"}, {"shape", shape}, {"data_offsets", QJsonArray{qint64(off), qint64(off + o.v.size() * 4)}}};
        off += o.v.size() * 4;
    }
    std::string h = QJsonDocument(header).toJson(QJsonDocument::Compact).toStdString();
    while (h.size() % 8) h += ' ';
    std::ofstream f(out_dir + "/model.safetensors", std::ios::binary);
    const uint64_t n = h.size();
    f.write(reinterpret_cast<const char*>(&n), 8);
    f.write(h.data(), std::streamsize(h.size()));
    for (auto& o : out) f.write(reinterpret_cast<const char*>(o.v.data()), std::streamsize(o.v.size() * 4));
}

double max_diff(const std::vector<float>& a, const std::vector<float>& b) {
    if (a.size() != b.size()) return INFINITY;
    double m = 0;
    for (size_t i = 0; i < a.size(); ++i) m = std::max(m, double(std::fabs(a[i] - b[i])));
    return m;
}

std::vector<int> prompt() {
    std::vector<int> ids;
    for (int i = 0; i < 14; ++i) ids.push_back((i * 37 + 5) % 300);
    return ids;
}

}  // namespace

class TestMatformer : public QObject {
    Q_OBJECT
    QTemporaryDir tmp;
    std::string gguf, gguf_q8, hf;

private slots:
    void initTestCase() {
        ModelSpec spec = spec_from_hf_config_text(kConfig, "test");
        QCOMPARE(spec.layers[5].kv_source, 3);
        QCOMPARE(spec.layers[9].kv_source, 4);
        const std::string d = tmp.path().toStdString();
        gguf = d + "/full/g3n.gguf";
        gguf_q8 = d + "/q8/g3n.gguf";
        hf = d + "/full-hf";
        QDir().mkpath(QString::fromStdString(d + "/full"));
        QDir().mkpath(QString::fromStdString(d + "/q8"));
        write_synthetic_gguf(spec, {}, gguf);
        SynthOptions q;
        q.dtype = DType::Q8_0;
        write_synthetic_gguf(spec, q, gguf_q8);
        write_hf_twin(*Model::load(gguf), hf);
        for (auto& dir : {d + "/full", d + "/q8", hf}) write_text(dir + "/slices.csv", slicing_csv());
    }

    void csv_is_parsed_as_google_writes_it() {
        auto v = parse_matformer_csv_text(slicing_csv(), "x.csv");
        QCOMPARE(int(v.size()), 3);
        QCOMPARE(v[0].name, std::string("Main model"));
        QCOMPARE(int(v[0].ffn_dims.size()), 15);
        QCOMPARE(v[0].ffn_dims[0], 128);  // "1_28": underscores are digit separators
        QVERIFY(v[0].layers_skipped.empty());
        QCOMPARE(v[0].published_effective_b, 0.01);
        QCOMPARE(v[1].ffn_dims, (std::vector<int>{64, 64, 64, 64, 128, 96, 96, 32, 32, 32}));
        QCOMPARE(v[1].layers_skipped, (std::vector<int>{5, 6, 7, 8, 9}));
        QCOMPARE(v[2].layers_skipped, (std::vector<int>{1, 12}));  // sorted
        // Errors name the file, the row and the slice.
        auto err = [](const std::string& text) -> std::string {
            try {
                parse_matformer_csv_text(text, "bad.csv");
            } catch (const Error& e) {
                return e.what();
            }
            return "";
        };
        const std::string head = "name,# Layers,FFN Hidden Dims,Layers Skipped\n";
        QVERIFY(err("a,b\n1,2\n").find("bad.csv: not a MatFormer slicing configuration") == 0);
        std::string e = err(head + "S,2,\"[64, sixty]\",\n");
        QVERIFY2(e.find("bad.csv: row 2 ('S'): FFN Hidden Dims: 'sixty' is not a number") == 0, e.c_str());
        e = err(head + "S,3,\"[64, 64]\",\n");
        QVERIFY2(e.find("'# Layers' says 3 but 'FFN Hidden Dims' lists 2") != std::string::npos, e.c_str());
        e = err(head + "S,2,\"[64, 64]\",\"20, 21\"\n");
        QVERIFY2(e.find("Layers Skipped: expected a list in brackets") != std::string::npos, e.c_str());
        e = err(head + "S,2,\"[64, 64]\",\nS,2,\"[64, 64]\",\n");
        QVERIFY2(e.find("appears twice") != std::string::npos, e.c_str());
        QVERIFY(err(head + "S,2,\"[64, 64\n").find("unterminated quoted field") != std::string::npos);
    }

    // The published "official E2B" slice of E4B is exactly the E2B configuration Google released
    // (30 layers, FFN 8192, 10 KV-sharing layers), and each published slice's effective size is
    // what Google states for it.
    void e4b_official_slice_is_e2b() {
        const ModelSpec e4b = Model::load_spec("catalog:gemma3n-e4b"), e2b = Model::load_spec("catalog:gemma3n-e2b");
        auto slices = builtin_matformer_slices(e4b);
        QCOMPARE(int(slices.size()), 4);
        QVERIFY(builtin_matformer_slices(e2b).empty());  // E2B is not E4B-shaped
        const MatformerSlice* official = nullptr;
        for (auto& s : slices) {
            auto plan = plan_matformer_slice(e4b, s, "catalog:gemma3n-e4b");
            const double eff = double(count_params(plan.spec).active) / 1e9;
            qInfo("%-34s %2d layers: %.3fB effective (published %.2fB)", s.name.c_str(), plan.spec.n_layers, eff, s.published_effective_b);
            QVERIFY2(std::fabs(eff - s.published_effective_b) < 0.03, qPrintable(QString::fromStdString(s.name)));
            if (s.name == "Config for official E2B Model") official = &s;
        }
        QVERIFY(official);
        auto plan = plan_matformer_slice(e4b, *official, "catalog:gemma3n-e4b");
        QCOMPARE(plan.spec.n_layers, e2b.n_layers);
        for (int i = 0; i < e2b.n_layers; ++i) QVERIFY2(plan.spec.layers[size_t(i)] == e2b.layers[size_t(i)], qPrintable(QString::number(i)));
        QCOMPARE(count_params(plan.spec).total, count_params(e2b).total);
        QCOMPARE(plan.kept.size(), size_t(30));
        QCOMPARE(plan.kept[20], 25);
    }

    // Running a slice from the whole model's file = running the exported slice, in both formats.
    void slice_equals_the_exported_slice() {
        const std::string d = tmp.path().toStdString();
        struct Case {
            const char* name;
            std::vector<int> skip, ffn;
        } cases[] = {{"Block skip", {5, 6, 7, 8, 9}, {64, 64, 64, 64, 128, 96, 96, 32, 32, 32}},
                     {"Mixed", {1, 12}, {64, 64, 64, 128, 32, 32, 32, 32, 32, 96, 96, 96, 96}}};
        const auto ids = prompt();
        for (auto& c : cases) {
            const std::string out = d + "/export-" + std::to_string(c.skip.size());
            export_slice(hf, out, c.skip, c.ffn);
            auto ref_model = Model::load(out);
            Session rs(*ref_model);
            const auto ref = rs.forward(ids, true);
            for (const std::string& src : {gguf, hf}) {
                LoadOptions o;
                o.slice = c.name;
                auto m = Model::load(src, o);
                QCOMPARE(m->slice_name(), std::string(c.name));
                QCOMPARE(m->spec().n_layers, ref_model->spec().n_layers);
                for (int i = 0; i < m->spec().n_layers; ++i)
                    QVERIFY2(m->spec().layers[size_t(i)] == ref_model->spec().layers[size_t(i)], qPrintable(QString("layer %1").arg(i)));
                QCOMPARE(count_params(m->spec()).total, count_params(ref_model->spec()).total);
                Session s(*m);
                const auto got = s.forward(ids, true);
                const double md = max_diff(got, ref);
                qInfo("%s from %s: max |Δlogit| vs the exported slice %.3g", c.name, src.c_str(), md);
                QVERIFY2(md < 1e-4, qPrintable(QString("%1 from %2: %3").arg(c.name).arg(QString::fromStdString(src)).arg(md)));
            }
            // the slice really is a different model from the whole one
            auto whole_model = Model::load(gguf);
            Session whole(*whole_model);
            QVERIFY(max_diff(whole.forward(ids, true), ref) > 1e-2);
        }
    }

    void sliced_decode_equals_full_forward() {
        for (const std::string& src : {gguf, gguf_q8}) {
            LoadOptions o;
            o.slice = "Mixed";
            auto m = Model::load(src, o);
            const auto ids = prompt();
            Session full(*m);
            const auto all = full.forward(ids, true);
            Session step(*m);
            const int V = m->spec().vocab;
            double md = max_diff(step.forward(std::span<const int>(ids.data(), 7), true), std::vector<float>(all.begin(), all.begin() + 7 * V));
            for (size_t t = 7; t < ids.size(); ++t) {
                auto l = step.forward(std::span<const int>(&ids[t], 1));
                md = std::max(md, max_diff(l, std::vector<float>(all.begin() + long(t) * V, all.begin() + long(t + 1) * V)));
            }
            QVERIFY2(md < 1e-3, qPrintable(QString("%1: %2").arg(QString::fromStdString(src)).arg(md)));
            // KV-sharing layers of the slice allocate nothing; they read the kept sources.
            int shared = 0;
            for (int il = 0; il < m->spec().n_layers; ++il)
                if (m->spec().layers[size_t(il)].kv_source >= 0) {
                    ++shared;
                    QCOMPARE(step.kv()[size_t(il)].bytes(), uint64_t(0));
                }
            QCOMPARE(shared, 9);  // 10 sharing layers, one of them (12) skipped
        }
    }

    // A quantized down projection's column prefix (row stride = the full row) gives exactly what a
    // packed copy of those columns gives.
    void quantized_column_prefix_matmul_is_exact() {
        ThreadPool pool(2);
        for (DType t : {DType::Q8_0, DType::Q4_0, DType::Q4_K, DType::Q6_K, DType::BF16}) {
            const int64_t rows = 40, full = 1024, d = 512;
            std::vector<float> w(size_t(rows * full));
            for (size_t i = 0; i < w.size(); ++i) w[i] = std::sin(float(i) * 0.37f) * 0.5f;
            const uint64_t rb_full = *dtype_row_bytes(t, uint64_t(full)), rb_d = *dtype_row_bytes(t, uint64_t(d));
            std::vector<uint8_t> qfull(size_t(rb_full * rows)), qd(size_t(rb_d * rows));
            for (int64_t r = 0; r < rows; ++r) {
                quant::quantize_row_ref(t, w.data() + r * full, qfull.data() + r * rb_full, full);
                std::memcpy(qd.data() + r * rb_d, qfull.data() + r * rb_full, size_t(rb_d));  // blocks are self-contained
            }
            Linear strided, packed;
            strided.data = qfull.data();
            packed.data = qd.data();
            for (Linear* l : {&strided, &packed}) {
                l->type = t;
                l->n_out = rows;
                l->n_in = d;
            }
            strided.row_stride = rb_full;
            for (int64_t T : {1, 5}) {
                std::vector<float> x(size_t(T * d)), y1(size_t(T * rows)), y2(size_t(T * rows));
                for (size_t i = 0; i < x.size(); ++i) x[i] = std::cos(float(i) * 0.11f);
                cpu::matmul(pool, strided, x.data(), T, y1.data());
                cpu::matmul(pool, packed, x.data(), T, y2.data());
                QVERIFY2(y1 == y2, dtype_name(t));
            }
            std::vector<float> r1(static_cast<size_t>(d)), r2(static_cast<size_t>(d));
            cpu::read_row(strided, 7, r1.data());
            cpu::read_row(packed, 7, r2.data());
            QVERIFY(r1 == r2);
        }
    }

    void bad_slices_get_clear_errors() {
        auto err = [](const std::string& path, const LoadOptions& o) -> std::string {
            try {
                Model::load(path, o);
            } catch (const Error& e) {
                return e.what();
            }
            return "";
        };
        LoadOptions o;
        o.slice = "No such";
        std::string e = err(gguf, o);
        QVERIFY2(e.find("no MatFormer slice named 'No such'; available: 'Main model', 'Block skip', 'Mixed'") != std::string::npos, e.c_str());
        const std::string d = tmp.path().toStdString();
        const std::string head = "name,# Layers,FFN Hidden Dims,Layers Skipped\n";
        write_text(d + "/src.csv", head + "Source,14," + dims({{14, "64"}}) + ",\"[3]\"\n");
        write_text(d + "/count.csv", head + "Count,14," + dims({{14, "64"}}) + ",\"[2, 3]\"\n");
        write_text(d + "/wide.csv", head + "Wide,15," + dims({{14, "64"}, {1, "256"}}) + ",\n");
        write_text(d + "/odd.csv", head + "Odd,15," + dims({{14, "64"}, {1, "48"}}) + ",\n");
        write_text(d + "/range.csv", head + "Range,14," + dims({{14, "64"}}) + ",\"[15]\"\n");
        auto with = [&](const std::string& csv, const char* name, const std::string& model) {
            LoadOptions x;
            x.slicing_config = d + "/" + csv;
            x.slice = name;
            return err(model, x);
        };
        e = with("src.csv", "Source", gguf);
        QVERIFY2(e.find("layer 3 holds the KV cache that later layers reuse; it cannot be skipped") != std::string::npos, e.c_str());
        e = with("count.csv", "Count", gguf);
        QVERIFY2(e.find("'FFN Hidden Dims' has 14 entries, but 15 layers minus 2 skipped leaves 13") != std::string::npos, e.c_str());
        e = with("wide.csv", "Wide", gguf);
        QVERIFY2(e.find("FFN width 256 must be between 1 and the layer's 128") != std::string::npos, e.c_str());
        QVERIFY(with("odd.csv", "Odd", gguf).empty());  // f32: any width
        e = with("odd.csv", "Odd", gguf_q8);
        QVERIFY2(e.find("FFN width 48 is not a multiple of 32, the block size of this file's quantized down projection") != std::string::npos, e.c_str());
        e = with("range.csv", "Range", gguf);
        QVERIFY2(e.find("skipped layer 15 is outside 0..14") != std::string::npos, e.c_str());
        // an explicit config that cannot be read fails; a broken one found beside the model is reported, not fatal
        LoadOptions missing;
        missing.slicing_config = d + "/nope.csv";
        QVERIFY(err(gguf, missing).find("nope.csv: cannot open the slicing configuration") != std::string::npos);
        write_text(d + "/q8/broken.csv", "name,FFN Hidden Dims\nX,\"[1, two]\"\n");
        auto m = Model::load(gguf_q8);
        QVERIFY(m->slicing_error().find("broken.csv: row 2 ('X')") != std::string::npos);
        QCOMPARE(int(m->slices().size()), 3);
        std::remove((d + "/q8/broken.csv").c_str());
        LoadOptions on_llama;
        on_llama.slice = "x";
        e = err("demo:llama3", on_llama);
        QVERIFY2(e.find("MatFormer slices exist only for Gemma 3n models") != std::string::npos, e.c_str());
    }

    void cli_lists_and_runs_slices() {
        auto r = testutil::run_cli({"info", QString::fromStdString(gguf), "--json"});
        QCOMPARE(r.exit_code, 0);
        QJsonObject j = QJsonDocument::fromJson(r.out).object();
        QJsonArray sl = j["matformer"].toObject()["slices"].toArray();
        QCOMPARE(sl.size(), 3);
        QCOMPARE(sl[1].toObject()["name"].toString(), QString("Block skip"));
        QCOMPARE(sl[1].toObject()["layers"].toInt(), 10);
        QVERIFY(sl[1].toObject()["params_effective"].toDouble() < j["params_effective"].toDouble());
        r = testutil::run_cli({"info", QString::fromStdString(gguf), "--slice", "Block skip", "--json"});
        QCOMPARE(r.exit_code, 0);
        j = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(j["n_layers"].toInt(), 10);
        QCOMPARE(j["matformer"].toObject()["running"].toString(), QString("Block skip"));
        QCOMPARE(j["matformer"].toObject()["kept_layers"].toArray()[5].toInt(), 10);
        // the catalog's E4B offers the published slices
        r = testutil::run_cli({"info", "catalog:gemma3n-e4b"});
        QCOMPARE(r.exit_code, 0);
        QVERIFY2(r.out.contains("Config for official E2B Model") && r.out.contains("30 layers, 1.9"), r.out.constData());
        const QString out = tmp.path() + "/sl.f32";
        r = testutil::run_cli({"logits", QString::fromStdString(hf), "--slice", "Mixed", "--tokens", "1,2,3", "--out", out});
        QCOMPARE(r.exit_code, 0);
        QCOMPARE(testutil::read_f32(out).size(), size_t(3 * 320));
        r = testutil::run_cli({"logits", QString::fromStdString(hf), "--slice", "Nope", "--tokens", "1,2,3", "--out", out});
        QVERIFY(r.exit_code != 0);
        QVERIFY(r.err.contains("no MatFormer slice named 'Nope'"));
    }
};

QTEST_APPLESS_MAIN(TestMatformer)
#include "test_matformer.moc"
