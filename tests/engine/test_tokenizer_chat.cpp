// Chat templates (fixtures chat.json for every tokenizer that ships one) and hand-made renderings
// of the other supported families.
#include <QJsonArray>
#include <map>
#include <memory>

#include "engine/core/error.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/tokenizer.h"
#include "tests/common/fixtures.h"

using archlens::ChatFamily;
using archlens::ChatMessage;
using archlens::ChatTemplate;
using archlens::Tokenizer;

namespace {

QString tok_dir(const QString& name) { return testutil::fixtures_dir() + "/tokenizers/" + name; }

std::vector<ChatMessage> messages_of(const QJsonObject& o) {
    std::vector<ChatMessage> msgs;
    for (const QJsonValue& m : o["messages"].toArray())
        msgs.push_back({m["role"].toString().toStdString(), m["content"].toString().toStdString()});
    return msgs;
}

const std::vector<ChatMessage> kConversation = {
    {"system", "Be brief."}, {"user", "Hi there"}, {"assistant", "Hello!"}, {"user", "Bye"}};

}  // namespace

class TestTokenizerChat : public QObject {
    Q_OBJECT

private slots:
    void fixtures_data() {
        QTest::addColumn<QString>("name");
        QTest::addColumn<int>("family");
        QTest::newRow("qwen3") << "qwen3" << int(ChatFamily::Qwen3);
        QTest::newRow("llama3") << "llama3" << int(ChatFamily::Llama3);
        QTest::newRow("gemma3") << "gemma3" << int(ChatFamily::Gemma3);
        QTest::newRow("deepseek_v3") << "deepseek_v3" << int(ChatFamily::DeepSeekV3);
    }
    void fixtures() {
        QFETCH(QString, name);
        QFETCH(int, family);
        REQUIRE_FIXTURE(tok_dir(name) + "/chat.json");
        auto tok = Tokenizer::from_hf_path(tok_dir(name).toStdString());
        QJsonObject chat = testutil::read_json(tok_dir(name) + "/chat.json");
        ChatTemplate tpl = ChatTemplate::for_tokenizer(*tok);
        QCOMPARE(int(tpl.family()), family);
        QVERIFY(tpl.recognized());
        auto msgs = messages_of(chat);
        std::string text = tpl.render(msgs, true);
        QCOMPARE(QString::fromStdString(text), chat["text"].toString());
        QCOMPARE(QString::fromStdString(tpl.render(msgs, false)), chat["text_without_generation_prompt"].toString());
        std::vector<int> expected;
        for (const QJsonValue& v : chat["ids"].toArray()) expected.push_back(v.toInt());
        QCOMPARE(tok->encode(text, false), expected);
        QVERIFY(!tpl.stop_token_ids(*tok).empty());
    }

    void stop_tokens() {
        REQUIRE_FIXTURE(tok_dir("qwen3") + "/tokenizer.json");
        auto check = [](const QString& name, std::vector<std::string> must) {
            auto tok = Tokenizer::from_hf_path(tok_dir(name).toStdString());
            ChatTemplate tpl = ChatTemplate::for_tokenizer(*tok);
            auto ids = tpl.stop_token_ids(*tok);
            for (const std::string& s : must) {
                auto id = tok->token_id(s);
                QVERIFY2(id.has_value(), s.c_str());
                QVERIFY2(std::find(ids.begin(), ids.end(), *id) != ids.end(), s.c_str());
            }
        };
        check("qwen3", {"<|im_end|>", "<|endoftext|>"});
        check("llama3", {"<|eot_id|>", "<|end_of_text|>"});
        check("gemma3", {"<end_of_turn>", "<eos>"});
        check("deepseek_v3", {"<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"});
        check("mistral_v01", {"</s>"});
    }

    void qwen3_thinking() {
        ChatTemplate tpl = ChatTemplate::detect("{{ '<|im_start|>' }} <think> reasoning_content", "", "<|im_end|>");
        QCOMPARE(tpl.family(), ChatFamily::Qwen3);
        std::vector<ChatMessage> msgs = {{"user", "2+2?"}, {"assistant", "<think>\nadd\n</think>\n\n4"}};
        QCOMPARE(tpl.render(msgs, false),
                 std::string("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n<think>\nadd\n</think>\n\n4<|im_end|>\n"));
        // Earlier assistant turns lose their reasoning.
        msgs.push_back({"user", "3+3?"});
        QCOMPARE(tpl.render(msgs, true, {.enable_thinking = false}),
                 std::string("<|im_start|>user\n2+2?<|im_end|>\n<|im_start|>assistant\n4<|im_end|>\n"
                             "<|im_start|>user\n3+3?<|im_end|>\n<|im_start|>assistant\n<think>\n\n</think>\n\n"));
    }

    void other_families() {
        ChatTemplate l4 = ChatTemplate::detect("<|header_start|> <|eot|>", "<|begin_of_text|>", "<|eot|>");
        QCOMPARE(l4.family(), ChatFamily::Llama4);
        QCOMPARE(l4.render(kConversation, true),
                 std::string("<|begin_of_text|><|header_start|>system<|header_end|>\n\nBe brief.<|eot|>"
                             "<|header_start|>user<|header_end|>\n\nHi there<|eot|>"
                             "<|header_start|>assistant<|header_end|>\n\nHello!<|eot|>"
                             "<|header_start|>user<|header_end|>\n\nBye<|eot|>"
                             "<|header_start|>assistant<|header_end|>\n\n"));

        ChatTemplate mi = ChatTemplate::detect("{{ bos_token }}{% ... '[INST] ' ... %}", "<s>", "</s>");
        QCOMPARE(mi.family(), ChatFamily::Mistral);
        QCOMPARE(mi.render(kConversation, true),
                 std::string("<s>[INST] Be brief.\n\nHi there [/INST]Hello!</s>[INST] Bye [/INST]"));

        ChatTemplate ol = ChatTemplate::detect("{{ bos_token }} <|user|> <|assistant|> <|system|>",
                                               "<|endoftext|>", "<|endoftext|>");
        QCOMPARE(ol.family(), ChatFamily::OLMo2);
        QCOMPARE(ol.render(kConversation, true),
                 std::string("<|endoftext|><|system|>\nBe brief.\n<|user|>\nHi there\n<|assistant|>\nHello!"
                             "<|endoftext|>\n<|user|>\nBye\n<|assistant|>\n"));

        ChatTemplate cm = ChatTemplate::detect("{% for m in messages %}<|im_start|>{% endfor %}", "", "<|im_end|>");
        QCOMPARE(cm.family(), ChatFamily::ChatML);
        QCOMPARE(cm.render({{"user", "Hi"}}, true), std::string("<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"));

        ChatTemplate l31 = ChatTemplate::detect(
            "<|start_header_id|> <|eot_id|> add_generation_prompt Cutting Knowledge Date", "<|begin_of_text|>",
            "<|eot_id|>");
        QCOMPARE(l31.family(), ChatFamily::Llama3);
        QCOMPARE(l31.render({{"user", " Hi "}}, true),
                 std::string("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\n"
                             "Cutting Knowledge Date: December 2023\nToday Date: 26 Jul 2024\n\n<|eot_id|>"
                             "<|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
                             "<|start_header_id|>assistant<|end_header_id|>\n\n"));

        // GPT-2: no template, plain continuation.
        ChatTemplate none = ChatTemplate::detect("", "<|endoftext|>", "<|endoftext|>");
        QCOMPARE(none.family(), ChatFamily::None);
        QVERIFY(none.recognized());
        QCOMPARE(none.render({{"user", "Once upon a time"}}, true), std::string("Once upon a time"));
    }

    void unrecognized_falls_back_visibly() {
        ChatTemplate g = ChatTemplate::detect("{% for m in messages %}<<{{ m.role }}>>{% endfor %}", "", "</s>");
        QCOMPARE(g.family(), ChatFamily::Generic);
        QVERIFY(!g.recognized());
        QCOMPARE(g.family_name(), std::string_view("generic"));
        QCOMPARE(g.render({{"system", "S"}, {"user", "U"}}, true), std::string("System: S\n\nUser: U\n\nAssistant:"));
        QCOMPARE(g.stop_strings(), std::vector<std::string>{"</s>"});
    }

    void mistral_fixture_has_no_template() {
        REQUIRE_FIXTURE(tok_dir("mistral_v01") + "/tokenizer.json");
        auto tok = Tokenizer::from_hf_path(tok_dir("mistral_v01").toStdString());
        QVERIFY(tok->chat_template().empty());
        QCOMPARE(ChatTemplate::for_tokenizer(*tok).family(), ChatFamily::None);
    }
};

QTEST_APPLESS_MAIN(TestTokenizerChat)
#include "test_tokenizer_chat.moc"
