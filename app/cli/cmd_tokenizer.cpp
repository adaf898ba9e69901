// archlens-cli tokenize / detokenize / chat-template: the tokenizer and chat templates, headless.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <nlohmann/json.hpp>
#include <sstream>

#include "app/cli/command.h"
#include "engine/core/error.h"
#include "engine/tokenizer/chat_template.h"
#include "engine/tokenizer/load.h"
#include "engine/tokenizer/tokenizer.h"

namespace archlens::cli {
namespace {

std::string read_bytes(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(path, "cannot open file");
    return std::string(std::istreambuf_iterator<char>(f), std::istreambuf_iterator<char>());
}

const std::string& tokenizer_arg(const Args& args, const char* usage) {
    if (args.positional().size() != 1) throw Error(std::string("usage: archlens-cli ") + usage);
    return args.positional()[0];
}

void write(const std::string& s) { std::fwrite(s.data(), 1, s.size(), stdout); }

const char* kTokenizeUsage = "tokenize TOKENIZER (--text T | --file F) [--special] [--json]";
const char* kDetokenizeUsage = "detokenize TOKENIZER --ids 1,2,3 [--skip-special] [--json]";
const char* kChatUsage = "chat-template TOKENIZER --messages FILE.json [--generation-prompt] [--json]";

int run_tokenize(const std::vector<std::string>& argv) {
    Args args(argv, {"special", "json"});
    const std::string& path = tokenizer_arg(args, kTokenizeUsage);
    if (args.has("text") == args.has("file")) throw Error(std::string("usage: archlens-cli ") + kTokenizeUsage);
    std::string text = args.has("text") ? args.require("text") : read_bytes(args.require("file"));
    auto tok = load_tokenizer(path);
    std::vector<int> ids = tok->encode(text, args.has("special"));
    if (args.has("json")) {
        write(nlohmann::json({{"ids", ids}}).dump() + "\n");
    } else {
        std::string out;
        for (size_t i = 0; i < ids.size(); ++i) out += (i ? " " : "") + std::to_string(ids[i]);
        write(out + "\n");
    }
    return 0;
}

int run_detokenize(const std::vector<std::string>& argv) {
    Args args(argv, {"json", "skip-special"});
    const std::string& path = tokenizer_arg(args, kDetokenizeUsage);
    std::vector<int> ids = parse_id_list(args.require("ids"));
    auto tok = load_tokenizer(path);
    for (int id : ids)
        if (id >= tok->vocab_size())
            throw Error("token id " + std::to_string(id) + " is outside the vocabulary (size " +
                        std::to_string(tok->vocab_size()) + ")");
    std::string text = tok->decode(ids, args.has("skip-special"));
    if (args.has("json")) write(nlohmann::json({{"text", text}}).dump() + "\n");
    else write(text);
    return 0;
}

int run_chat_template(const std::vector<std::string>& argv) {
    Args args(argv, {"generation-prompt", "json"});
    const std::string& path = tokenizer_arg(args, kChatUsage);
    std::string messages_path = args.require("messages");
    nlohmann::json doc;
    try {
        doc = nlohmann::json::parse(read_bytes(messages_path));
    } catch (const nlohmann::json::exception& e) {
        fail(messages_path, std::string("invalid JSON: ") + e.what());
    }
    if (!doc.is_object() || !doc.contains("messages") || !doc["messages"].is_array())
        fail(messages_path, "expected {\"messages\": [{\"role\": ..., \"content\": ...}, ...]}");
    std::vector<ChatMessage> msgs;
    for (const auto& m : doc["messages"]) {
        if (!m.is_object() || !m.contains("role") || !m["role"].is_string() || !m.contains("content") ||
            !m["content"].is_string())
            fail(messages_path, "every message needs string \"role\" and \"content\"");
        msgs.push_back({m["role"].get<std::string>(), m["content"].get<std::string>()});
    }
    auto tok = load_tokenizer(path);
    ChatTemplate tpl = ChatTemplate::for_tokenizer(*tok);
    if (!tpl.recognized())
        std::fprintf(stderr, "warning: chat template not recognized; using a generic \"Role: text\" format\n");
    std::string text = tpl.render(msgs, args.has("generation-prompt"));
    if (args.has("json")) {
        nlohmann::ordered_json out;
        out["text"] = text;
        out["ids"] = tok->encode(text, false);
        write(out.dump() + "\n");
    } else {
        write(text);
    }
    return 0;
}

}  // namespace

static Register reg_tokenize({"tokenize", kTokenizeUsage, run_tokenize});
static Register reg_detokenize({"detokenize", kDetokenizeUsage, run_detokenize});
static Register reg_chat_template({"chat-template", kChatUsage, run_chat_template});

}  // namespace archlens::cli
