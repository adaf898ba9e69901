// The GGUF vocabulary path: a GgufVocab built from each fixture tokenizer.json (tokens, merges or
// SentencePiece-style scores, token types, BOS/EOS flags, tokenizer.ggml.pre) must tokenize every
// case exactly like the tokenizer.json itself.
#include <QJsonArray>
#include <cmath>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>

#include <QTemporaryDir>

#include "engine/core/error.h"
#include "engine/formats/gguf_writer.h"
#include "engine/tokenizer/load.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/common/fixtures.h"

using archlens::GgufVocab;
using archlens::Tokenizer;

namespace {

QString tok_dir(const QString& name) { return testutil::fixtures_dir() + "/tokenizers/" + name; }

// What convert_hf_to_gguf.py would store, reconstructed from tokenizer.json. (Parsed with
// nlohmann-json: QJsonDocument drops U+FEFF from object keys, and Mistral has a "\uFEFF" token.)
GgufVocab vocab_from_tokenizer_json(const QString& name) {
    std::ifstream f((tok_dir(name) + "/tokenizer.json").toStdString(), std::ios::binary);
    nlohmann::json root = nlohmann::json::parse(f);
    const nlohmann::json& model = root["model"];
    const nlohmann::json& vocab = model["vocab"];
    const nlohmann::json& added = root["added_tokens"];

    GgufVocab v;
    int n = 0;
    for (auto it = vocab.begin(); it != vocab.end(); ++it) n = std::max(n, it.value().get<int>() + 1);
    for (const auto& a : added) n = std::max(n, a["id"].get<int>() + 1);
    v.tokens.assign(size_t(n), std::string());
    v.token_types.assign(size_t(n), 1);
    for (auto it = vocab.begin(); it != vocab.end(); ++it) {
        size_t id = it.value().get<size_t>();
        v.tokens[id] = it.key();
        if (it.key().size() == 6 && it.key().rfind("<0x", 0) == 0) v.token_types[id] = 6;
    }
    for (const auto& a : added) {
        size_t id = a["id"].get<size_t>();
        v.tokens[id] = a["content"].get<std::string>();
        v.token_types[id] = a["special"].get<bool>() ? 3 : 4;
    }
    std::vector<std::string> merges;
    for (const auto& m : model["merges"]) {
        if (m.is_string()) merges.push_back(m.get<std::string>());
        else merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
    }
    const bool spm = model.value("byte_fallback", false);
    if (spm) {
        v.model = "llama";
        // Scores: the rank of the first merge producing a piece (higher = earlier); pieces no
        // merge produces get -inf.
        v.scores.assign(size_t(n), -std::numeric_limits<float>::infinity());
        for (size_t r = 0; r < merges.size(); ++r) {
            const std::string& m = merges[r];
            size_t sp = m.find(' ');
            auto it = vocab.find(m.substr(0, sp) + m.substr(sp + 1));
            if (it == vocab.end()) continue;
            float& s = v.scores[it.value().get<size_t>()];
            if (std::isinf(s)) s = -float(r);
        }
        std::string unk = model.value("unk_token", "");
        if (vocab.contains(unk)) {
            v.unk = vocab[unk].get<int>();
            v.token_types[size_t(v.unk)] = 2;
        }
        v.add_bos = true;
        v.add_space_prefix = name == "mistral_v01";  // Gemma 3 GGUFs say false
        v.bos = name == "gemma3" ? 2 : 1;
        v.eos = name == "gemma3" ? 1 : 2;
    } else {
        v.model = "gpt2";
        v.merges = merges;
        v.pre = name == "qwen3" ? "qwen2" : name == "llama3" ? "llama-bpe" : "deepseek-v3";
    }
    return v;
}

}  // namespace

class TestTokenizerGguf : public QObject {
    Q_OBJECT

private slots:
    void same_as_tokenizer_json_data() {
        QTest::addColumn<QString>("name");
        for (const char* n : {"qwen3", "llama3", "deepseek_v3", "mistral_v01", "gemma3"}) QTest::newRow(n) << QString(n);
    }
    void same_as_tokenizer_json() {
        QFETCH(QString, name);
        REQUIRE_FIXTURE(tok_dir(name) + "/tokenizer.json");
        auto gguf = Tokenizer::from_gguf_vocab(vocab_from_tokenizer_json(name), "fixture.gguf");
        auto hf = Tokenizer::from_hf_json((tok_dir(name) + "/tokenizer.json").toStdString());
        QFile f(tok_dir(name) + "/cases.jsonl");
        QVERIFY(f.open(QIODevice::ReadOnly));
        int total = 0, failures = 0;
        for (const QByteArray& line : f.readAll().split('\n')) {
            if (line.trimmed().isEmpty()) continue;
            QJsonObject o = QJsonDocument::fromJson(line).object();
            std::string text = o["text"].toString().toStdString();
            std::vector<int> ids, with;
            for (const QJsonValue& x : o["ids"].toArray()) ids.push_back(x.toInt());
            for (const QJsonValue& x : o["ids_with_special"].toArray()) with.push_back(x.toInt());
            ++total;
            bool ok = gguf->encode(text, false) == ids && gguf->encode(text, true) == with &&
                      gguf->decode(ids) == hf->decode(ids) && gguf->decode(with, true) == hf->decode(with, true);
            if (!ok && ++failures <= 3) {
                qWarning() << name << "case" << QString::fromStdString(text).left(60);
                QStringList a, b;
                for (int x : gguf->encode(text, false)) a << QString::number(x);
                for (int x : ids) b << QString::number(x);
                qWarning() << "  gguf" << a.join(",") << "\n  want" << b.join(",");
            }
        }
        qInfo("%s via GGUF vocabulary: %d/%d cases pass", qPrintable(name), total - failures, total);
        QCOMPARE(failures, 0);
    }

    // A real GGUF file (tokenizer keys only) through the GGUF reader, load_tokenizer and the CLI.
    void gguf_file_data() {
        QTest::addColumn<QString>("name");
        QTest::newRow("qwen3") << "qwen3";
        QTest::newRow("mistral_v01") << "mistral_v01";
    }
    void gguf_file() {
        QFETCH(QString, name);
        REQUIRE_FIXTURE(tok_dir(name) + "/tokenizer.json");
        GgufVocab v = vocab_from_tokenizer_json(name);
        archlens::GgufWriter w;
        w.set_string("general.architecture", "llama");
        w.set_string("tokenizer.ggml.model", v.model);
        if (!v.pre.empty()) w.set_string("tokenizer.ggml.pre", v.pre);
        w.set_strings("tokenizer.ggml.tokens", v.tokens);
        w.set_i32s("tokenizer.ggml.token_type", std::vector<int32_t>(v.token_types.begin(), v.token_types.end()));
        if (!v.merges.empty()) w.set_strings("tokenizer.ggml.merges", v.merges);
        if (!v.scores.empty()) w.set_f32s("tokenizer.ggml.scores", v.scores);
        if (v.bos >= 0) w.set_u32("tokenizer.ggml.bos_token_id", uint32_t(v.bos));
        if (v.eos >= 0) w.set_u32("tokenizer.ggml.eos_token_id", uint32_t(v.eos));
        if (v.unk >= 0) w.set_u32("tokenizer.ggml.unknown_token_id", uint32_t(v.unk));
        w.set_bool("tokenizer.ggml.add_bos_token", v.add_bos);
        if (v.add_space_prefix) w.set_bool("tokenizer.ggml.add_space_prefix", *v.add_space_prefix);
        QTemporaryDir dir;
        std::string path = dir.filePath("tok.gguf").toStdString();
        w.write(path);

        auto tok = archlens::load_tokenizer(path);
        QFile f(tok_dir(name) + "/cases.jsonl");
        QVERIFY(f.open(QIODevice::ReadOnly));
        QList<QByteArray> lines = f.readAll().split('\n');
        int checked = 0;
        for (const QByteArray& line : lines) {
            if (line.trimmed().isEmpty()) continue;
            QJsonObject o = QJsonDocument::fromJson(line).object();
            std::vector<int> with;
            for (const QJsonValue& x : o["ids_with_special"].toArray()) with.push_back(x.toInt());
            QCOMPARE(tok->encode(o["text"].toString().toStdString(), true), with);
            ++checked;
        }
        QCOMPARE(checked, 65);
        if (testutil::cli_path().isEmpty() || !QFileInfo::exists(testutil::cli_path())) return;
        QJsonObject o = QJsonDocument::fromJson(lines[13]).object();
        auto r = testutil::run_cli({"tokenize", QString::fromStdString(path), "--text", o["text"].toString(),
                                    "--special", "--json"});
        QCOMPARE(r.exit_code, 0);
        QCOMPARE(r.out.trimmed(), QJsonDocument(QJsonObject{{"ids", o["ids_with_special"]}}).toJson(QJsonDocument::Compact));
    }

    void errors() {
        GgufVocab v;
        v.model = "gpt2";
        auto message = [](const GgufVocab& v) {
            try {
                Tokenizer::from_gguf_vocab(v, "m.gguf");
            } catch (const archlens::Error& e) {
                return std::string(e.what());
            }
            return std::string();
        };
        QCOMPARE(message(v), std::string("m.gguf: tokenizer.ggml.tokens is missing or empty"));
        v.tokens = {"a", "b"};
        v.model = "rwkv";
        QCOMPARE(message(v), std::string("m.gguf: unsupported tokenizer.ggml.model 'rwkv' (supported: gpt2, llama)"));
        v.model = "gpt2";
        v.pre = "mystery";
        QVERIFY(message(v).rfind("m.gguf: unsupported tokenizer.ggml.pre 'mystery'", 0) == 0);
        v.pre = "qwen2";
        v.merges = {"a c"};
        QCOMPARE(message(v), std::string("m.gguf: model.merges[0] references token 'c', which is not in the vocabulary"));
    }
};

QTEST_APPLESS_MAIN(TestTokenizerGguf)
#include "test_tokenizer_gguf.moc"
