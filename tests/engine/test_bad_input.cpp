// Bad input: every corrupt or inconsistent model gives one clear error naming the file and the
// problem — no crash, no huge allocation. Runs under ASan/UBSan in CI (label "sanitize").
#include <QTemporaryDir>
#include <QtTest>
#include <cstring>
#include <fstream>

#include "engine/core/error.h"
#include "engine/formats/gguf.h"
#include "engine/formats/gguf_writer.h"
#include "engine/formats/safetensors.h"
#include "engine/model/model.h"
#include "engine/model/spec_parse.h"
#include "tests/common/fixtures.h"

using namespace archlens;

namespace {

std::string error_of(const std::function<void()>& fn) {
    try {
        fn();
    } catch (const Error& e) {
        return e.what();
    }
    return "(no error)";
}

void write_bytes(const QString& path, const std::vector<uint8_t>& b) {
    std::ofstream o(path.toStdString(), std::ios::binary);
    o.write(reinterpret_cast<const char*>(b.data()), std::streamsize(b.size()));
}

template <class T>
void put(std::vector<uint8_t>& b, T v) {
    uint8_t t[sizeof(T)];
    std::memcpy(t, &v, sizeof(T));
    b.insert(b.end(), t, t + sizeof(T));
}
void put_str(std::vector<uint8_t>& b, const std::string& s) {
    put<uint64_t>(b, s.size());
    b.insert(b.end(), s.begin(), s.end());
}

// A raw GGUF with one tensor whose header fields we choose.
std::vector<uint8_t> raw_gguf(uint32_t n_dims, std::vector<uint64_t> ne, uint64_t offset, size_t data_bytes) {
    std::vector<uint8_t> b;
    for (char c : {'G', 'G', 'U', 'F'}) b.push_back(uint8_t(c));
    put<uint32_t>(b, 3);
    put<uint64_t>(b, 1);  // tensors
    put<uint64_t>(b, 0);  // kv
    put_str(b, "w");
    put<uint32_t>(b, n_dims);
    for (auto x : ne) put<uint64_t>(b, x);
    put<uint32_t>(b, 0);  // F32
    put<uint64_t>(b, offset);
    while (b.size() % 32) b.push_back(0);
    b.resize(b.size() + data_bytes, 0);
    return b;
}

std::vector<uint8_t> safetensors(const std::string& header, size_t data_bytes) {
    std::vector<uint8_t> b;
    put<uint64_t>(b, header.size());
    b.insert(b.end(), header.begin(), header.end());
    b.resize(b.size() + data_bytes, 0);
    return b;
}

QString copy_config(const QString& dir, const QString& name, const std::function<void(QJsonObject&)>& edit) {
    QJsonObject cfg = testutil::read_json(testutil::fixtures_dir() + "/" + name + "/config.json");
    edit(cfg);
    QFile f(dir + "/config.json");
    f.open(QIODevice::WriteOnly);
    f.write(QJsonDocument(cfg).toJson());
    f.close();
    return dir + "/config.json";
}

}  // namespace

class TestBadInput : public QObject {
    Q_OBJECT
    QTemporaryDir tmp;
    QString p(const char* n) { return tmp.path() + "/" + n; }
private slots:
    void gguf_truncated();
    void gguf_truncated_in_tensor_data();
    void gguf_wrong_magic();
    void gguf_tensor_offset_past_end();
    void gguf_absurd_dimension_count();
    void gguf_shape_overflow();
    void gguf_huge_metadata_count();
    void safetensors_header_length_past_file();
    void safetensors_overlapping_offsets();
    void safetensors_out_of_order_offsets();
    void safetensors_dtype_size_mismatch();
    void safetensors_not_json();
    void config_missing_field();
    void unknown_architecture_lists_supported();
    void moe_top_k_exceeds_experts();
    void moe_group_does_not_divide();
    void moe_topk_group_exceeds_groups();
    void moe_missing_expert_tensor();
    void missing_path();
    void cli_reports_one_line();
};

void TestBadInput::gguf_truncated() {
    std::vector<uint8_t> b = {'G', 'G', 'U', 'F', 3, 0, 0, 0, 1, 0};
    write_bytes(p("t.gguf"), b);
    QCOMPARE(error_of([&] { GgufFile g(p("t.gguf").toStdString()); }),
             p("t.gguf").toStdString() + ": truncated: file ends while reading tensor count at offset 8 (file is 10 bytes)");
}

void TestBadInput::gguf_truncated_in_tensor_data() {
    const QString src = testutil::fixtures_dir() + "/llama/model.gguf";
    REQUIRE_FIXTURE(src);
    QFile f(src);
    f.open(QIODevice::ReadOnly);
    QByteArray all = f.readAll();
    std::vector<uint8_t> half(all.begin(), all.begin() + all.size() / 2);
    write_bytes(p("half.gguf"), half);
    std::string e = error_of([&] { Model::load(p("half.gguf").toStdString()); });
    QVERIFY2(e.rfind(p("half.gguf").toStdString() + ": tensor '", 0) == 0, e.c_str());
    QVERIFY2(e.find("runs past the end of the file (1725968 bytes); the file is truncated or corrupt") != std::string::npos, e.c_str());
}

void TestBadInput::gguf_wrong_magic() {
    write_bytes(p("m.gguf"), {'G', 'G', 'M', 'L', 3, 0, 0, 0, 0, 0, 0, 0});
    QCOMPARE(error_of([&] { GgufFile g(p("m.gguf").toStdString()); }),
             p("m.gguf").toStdString() + ": not a GGUF file: wrong magic 'GGML' (expected 'GGUF')");
}

void TestBadInput::gguf_tensor_offset_past_end() {
    write_bytes(p("o.gguf"), raw_gguf(1, {8}, 1 << 20, 32));
    std::string e = error_of([&] { GgufFile g(p("o.gguf").toStdString()); });
    QCOMPARE(e, p("o.gguf").toStdString() +
                    ": tensor 'w': data at offset 1048640 size 32 runs past the end of the file (96 bytes); the file is truncated or corrupt");
}

void TestBadInput::gguf_absurd_dimension_count() {
    write_bytes(p("d.gguf"), raw_gguf(9, {1, 1, 1, 1, 1, 1, 1, 1, 1}, 0, 32));
    QCOMPARE(error_of([&] { GgufFile g(p("d.gguf").toStdString()); }),
             p("d.gguf").toStdString() + ": tensor 'w': absurd dimension count 9 (1 to 4 allowed)");
}

void TestBadInput::gguf_shape_overflow() {
    const uint64_t big = uint64_t(1) << 40;
    write_bytes(p("s.gguf"), raw_gguf(4, {big, big, big, big}, 0, 32));
    QCOMPARE(error_of([&] { GgufFile g(p("s.gguf").toStdString()); }),
             p("s.gguf").toStdString() + ": tensor 'w': shape [1099511627776, 1099511627776, 1099511627776, 1099511627776] overflows");
}

void TestBadInput::gguf_huge_metadata_count() {
    std::vector<uint8_t> b = {'G', 'G', 'U', 'F'};
    put<uint32_t>(b, 3);
    put<uint64_t>(b, 0);
    put<uint64_t>(b, uint64_t(1) << 60);
    write_bytes(p("k.gguf"), b);
    QCOMPARE(error_of([&] { GgufFile g(p("k.gguf").toStdString()); }),
             p("k.gguf").toStdString() + ": corrupt header: metadata count 1152921504606846976 cannot fit in the file");
}

void TestBadInput::safetensors_header_length_past_file() {
    std::vector<uint8_t> b;
    put<uint64_t>(b, 1000);
    b.resize(40, ' ');
    write_bytes(p("h.safetensors"), b);
    QCOMPARE(error_of([&] { SafetensorsFile f(p("h.safetensors").toStdString()); }),
             p("h.safetensors").toStdString() + ": corrupt safetensors: header length 1000 runs past the end of the file (40 bytes)");
}

void TestBadInput::safetensors_overlapping_offsets() {
    write_bytes(p("ov.safetensors"),
                safetensors(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]},"b":{"dtype":"F32","shape":[4],"data_offsets":[8,24]}})", 24));
    QCOMPARE(error_of([&] { SafetensorsFile f(p("ov.safetensors").toStdString()); }),
             p("ov.safetensors").toStdString() + ": corrupt safetensors: tensor 'b' overlaps the previous tensor (offset 8 < 16)");
}

void TestBadInput::safetensors_out_of_order_offsets() {
    write_bytes(p("oo.safetensors"), safetensors(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}})", 16));
    QCOMPARE(error_of([&] { SafetensorsFile f(p("oo.safetensors").toStdString()); }),
             p("oo.safetensors").toStdString() + ": corrupt safetensors: tensor 'a' has out-of-order data_offsets [16, 0)");
}

void TestBadInput::safetensors_dtype_size_mismatch() {
    write_bytes(p("ds.safetensors"), safetensors(R"({"a":{"dtype":"BF16","shape":[2,4],"data_offsets":[0,32]}})", 32));
    QCOMPARE(error_of([&] { SafetensorsFile f(p("ds.safetensors").toStdString()); }),
             p("ds.safetensors").toStdString() + ": tensor 'a': dtype/size mismatch: BF16 [2, 4] needs 16 bytes but data_offsets span 32");
}

void TestBadInput::safetensors_not_json() {
    write_bytes(p("nj.safetensors"), safetensors("{not json", 0));
    std::string e = error_of([&] { SafetensorsFile f(p("nj.safetensors").toStdString()); });
    QVERIFY2(e.rfind(p("nj.safetensors").toStdString() + ": corrupt safetensors: header is not valid JSON", 0) == 0, e.c_str());
}

void TestBadInput::config_missing_field() {
    REQUIRE_FIXTURE(testutil::fixtures_dir() + "/qwen3");
    QString cfg = copy_config(tmp.path(), "qwen3", [](QJsonObject& c) { c.remove("hidden_size"); });
    QCOMPARE(error_of([&] { spec_from_hf_config_file(cfg.toStdString()); }),
             cfg.toStdString() + ": config.json is missing the required field 'hidden_size'");
}

void TestBadInput::unknown_architecture_lists_supported() {
    REQUIRE_FIXTURE(testutil::fixtures_dir() + "/qwen3");
    QString cfg = copy_config(tmp.path(), "qwen3", [](QJsonObject& c) { c["model_type"] = "mamba"; });
    QCOMPARE(error_of([&] { spec_from_hf_config_file(cfg.toStdString()); }),
             cfg.toStdString() + ": unsupported architecture 'mamba'; supported: " + supported_architectures());
}

void TestBadInput::moe_top_k_exceeds_experts() {
    REQUIRE_FIXTURE(testutil::fixtures_dir() + "/qwen3moe");
    QString cfg = copy_config(tmp.path(), "qwen3moe", [](QJsonObject& c) { c["num_experts_per_tok"] = 9; });
    QCOMPARE(error_of([&] { spec_from_hf_config_file(cfg.toStdString()); }),
             cfg.toStdString() + ": layer 0: num_experts_per_tok (top_k = 9) must be between 1 and the number of experts (8)");
}

void TestBadInput::moe_group_does_not_divide() {
    REQUIRE_FIXTURE(testutil::fixtures_dir() + "/deepseek2");
    QString cfg = copy_config(tmp.path(), "deepseek2", [](QJsonObject& c) { c["n_group"] = 3; });
    QCOMPARE(error_of([&] { spec_from_hf_config_file(cfg.toStdString()); }),
             cfg.toStdString() + ": layer 1: n_group (3) must divide the number of experts (8)");
}

void TestBadInput::moe_topk_group_exceeds_groups() {
    REQUIRE_FIXTURE(testutil::fixtures_dir() + "/deepseek2");
    QString cfg = copy_config(tmp.path(), "deepseek2", [](QJsonObject& c) { c["topk_group"] = 5; });
    QCOMPARE(error_of([&] { spec_from_hf_config_file(cfg.toStdString()); }),
             cfg.toStdString() + ": layer 1: topk_group (5) must be between 1 and n_group (4)");
}

void TestBadInput::moe_missing_expert_tensor() {
    const QString src = testutil::fixtures_dir() + "/qwen3moe";
    REQUIRE_FIXTURE(src);
    // Rewrite the safetensors file without one expert tensor.
    SafetensorsFile in((src + "/model.safetensors").toStdString());
    std::string header = "{";
    std::vector<uint8_t> data;
    for (auto& t : in.tensors()) {
        if (t.name == "model.layers.1.mlp.experts.3.up_proj.weight") continue;
        std::string shape;
        for (auto d : t.shape) shape += (shape.empty() ? "" : ",") + std::to_string(d);
        header += (header.size() > 1 ? "," : "") + std::string("\"") + t.name + "\":{\"dtype\":\"F32\",\"shape\":[" + shape +
                  "],\"data_offsets\":[" + std::to_string(data.size()) + "," + std::to_string(data.size() + t.nbytes) + "]}";
        data.insert(data.end(), t.data, t.data + t.nbytes);
    }
    header += "}";
    QDir().mkpath(tmp.path() + "/moe");
    auto b = safetensors(header, 0);
    b.insert(b.end(), data.begin(), data.end());
    write_bytes(tmp.path() + "/moe/model.safetensors", b);
    QFile::copy(src + "/config.json", tmp.path() + "/moe/config.json");
    QCOMPARE(error_of([&] { Model::load((tmp.path() + "/moe").toStdString()); }),
             (tmp.path() + "/moe").toStdString() + ": tensor 'model.layers.1.mlp.experts.3.up_proj.weight' is required but not found in the file");
}

void TestBadInput::missing_path() {
    QCOMPARE(error_of([&] { Model::load(p("nope.gguf").toStdString()); }), p("nope.gguf").toStdString() + ": no such file or folder");
}

void TestBadInput::cli_reports_one_line() {
    write_bytes(p("bad.gguf"), {'N', 'O', 'P', 'E', 0, 0, 0, 0});
    auto r = testutil::run_cli({"logits", p("bad.gguf"), "--tokens", "1,2", "--out", p("x.f32")});
    QVERIFY(r.exit_code != 0);
    QString err = QString::fromUtf8(r.err).trimmed();
    QCOMPARE(err.count('\n'), 0);
    QVERIFY2(err.contains(p("bad.gguf")) && err.contains("wrong magic"), qPrintable(err));
}

QTEST_APPLESS_MAIN(TestBadInput)
#include "test_bad_input.moc"
