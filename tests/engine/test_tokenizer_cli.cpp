// archlens-cli tokenize / detokenize / chat-template against the fixtures.
#include <QJsonArray>
#include <QTemporaryDir>

#include "tests/common/fixtures.h"

namespace {
QString tok_dir(const QString& name) { return testutil::fixtures_dir() + "/tokenizers/" + name; }
}  // namespace

class TestTokenizerCli : public QObject {
    Q_OBJECT

private slots:
    void tokenize_json() {
        REQUIRE_FIXTURE(tok_dir("gemma3") + "/cases.jsonl");
        QFile f(tok_dir("gemma3") + "/cases.jsonl");
        QVERIFY(f.open(QIODevice::ReadOnly));
        QJsonObject c = QJsonDocument::fromJson(f.readAll().split('\n')[12]).object();
        auto r = testutil::run_cli({"tokenize", tok_dir("gemma3"), "--text", c["text"].toString(), "--json"});
        QCOMPARE(r.exit_code, 0);
        QCOMPARE(r.out.trimmed(), QJsonDocument(QJsonObject{{"ids", c["ids"]}}).toJson(QJsonDocument::Compact));
        r = testutil::run_cli({"tokenize", tok_dir("gemma3"), "--text", c["text"].toString(), "--special", "--json"});
        QCOMPARE(r.out.trimmed(), QJsonDocument(QJsonObject{{"ids", c["ids_with_special"]}}).toJson(QJsonDocument::Compact));
        r = testutil::run_cli({"tokenize", tok_dir("gemma3") + "/tokenizer.json", "--text", "Hello, world!"});
        QCOMPARE(r.exit_code, 0);
        QCOMPARE(r.out.trimmed(), QByteArray("9259 236764 1902 236888"));
    }

    // --file is read verbatim: a trailing newline is part of the text.
    void tokenize_file_verbatim() {
        REQUIRE_FIXTURE(tok_dir("qwen3") + "/tokenizer.json");
        QTemporaryDir dir;
        QFile f(dir.filePath("in.txt"));
        QVERIFY(f.open(QIODevice::WriteOnly));
        f.write("hi\n");
        f.close();
        auto with_nl = testutil::run_cli({"tokenize", tok_dir("qwen3"), "--file", dir.filePath("in.txt"), "--json"});
        auto without = testutil::run_cli({"tokenize", tok_dir("qwen3"), "--text", "hi", "--json"});
        QCOMPARE(with_nl.exit_code, 0);
        QVERIFY(with_nl.out != without.out);
        QCOMPARE(with_nl.out.trimmed(), QByteArray("{\"ids\":[6023,198]}"));
    }

    void detokenize() {
        REQUIRE_FIXTURE(tok_dir("llama3") + "/tokenizer.json");
        auto r = testutil::run_cli({"detokenize", tok_dir("qwen3"), "--ids", "151644,872,198,6023", "--json"});
        QCOMPARE(r.exit_code, 0);
        QCOMPARE(r.out.trimmed(), QByteArray("{\"text\":\"<|im_start|>user\\nhi\"}"));
        r = testutil::run_cli({"detokenize", tok_dir("qwen3"), "--ids", "6023,198"});
        QCOMPARE(r.out, QByteArray("hi\n"));
        r = testutil::run_cli({"detokenize", tok_dir("qwen3"), "--ids", "99999999"});
        QCOMPARE(r.exit_code, 1);
        QVERIFY(r.err.contains("outside the vocabulary"));
    }

    void chat_template_data() {
        QTest::addColumn<QString>("name");
        for (const char* n : {"qwen3", "llama3", "gemma3", "deepseek_v3"}) QTest::newRow(n) << QString(n);
    }
    void chat_template() {
        QFETCH(QString, name);
        REQUIRE_FIXTURE(tok_dir(name) + "/chat.json");
        QJsonObject chat = testutil::read_json(tok_dir(name) + "/chat.json");
        auto r = testutil::run_cli({"chat-template", tok_dir(name), "--messages", tok_dir(name) + "/chat.json",
                                    "--generation-prompt", "--json"});
        QCOMPARE(r.exit_code, 0);
        QJsonObject out = QJsonDocument::fromJson(r.out).object();
        QCOMPARE(out.keys().size(), 2);
        QVERIFY(r.out.startsWith("{\"text\":"));
        QCOMPARE(out["text"].toString(), chat["text"].toString());
        QCOMPARE(out["ids"].toArray(), chat["ids"].toArray());
        r = testutil::run_cli({"chat-template", tok_dir(name), "--messages", tok_dir(name) + "/chat.json"});
        QCOMPARE(QString::fromUtf8(r.out), chat["text_without_generation_prompt"].toString());
    }

    void errors() {
        auto r = testutil::run_cli({"tokenize", "/nonexistent", "--text", "x"});
        QCOMPARE(r.exit_code, 1);
        QVERIFY(r.err.contains("/nonexistent: no such file or folder"));
        r = testutil::run_cli({"tokenize", tok_dir("qwen3")});
        QCOMPARE(r.exit_code, 1);
        QVERIFY(r.err.contains("usage: archlens-cli tokenize"));
    }
};

QTEST_APPLESS_MAIN(TestTokenizerCli)
#include "test_tokenizer_cli.moc"
