#include "engine/tokenizer/chat_template.h"

#include <cctype>
#include <ctime>

#include "engine/core/error.h"
#include "engine/tokenizer/tokenizer.h"

namespace archlens {

namespace {

bool has(std::string_view s, std::string_view needle) { return s.find(needle) != std::string_view::npos; }

// Jinja's trim / Python str.strip(): ASCII whitespace at both ends.
std::string trim(std::string_view s, std::string_view chars = " \t\n\r\f\v") {
    size_t b = s.find_first_not_of(chars);
    if (b == std::string_view::npos) return {};
    size_t e = s.find_last_not_of(chars);
    return std::string(s.substr(b, e - b + 1));
}
std::string lstrip(std::string_view s, std::string_view chars) {
    size_t b = s.find_first_not_of(chars);
    return b == std::string_view::npos ? std::string() : std::string(s.substr(b));
}
std::string rstrip(std::string_view s, std::string_view chars) {
    size_t e = s.find_last_not_of(chars);
    return e == std::string_view::npos ? std::string() : std::string(s.substr(0, e + 1));
}

const char* kDeepSeekUser = "<\xEF\xBD\x9CUser\xEF\xBD\x9C>";
const char* kDeepSeekAssistant = "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C>";
const char* kDeepSeekEos = "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>";

}  // namespace

ChatTemplate ChatTemplate::detect(std::string_view t, std::string bos, std::string eos) {
    ChatTemplate c;
    c.bos_ = std::move(bos);
    c.eos_ = std::move(eos);
    if (trim(t).empty()) {
        c.family_ = ChatFamily::None;
    } else if (has(t, "<|im_start|>")) {
        c.family_ = (has(t, "<think>") || has(t, "reasoning_content")) ? ChatFamily::Qwen3 : ChatFamily::ChatML;
        const char* qwen25 = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";
        if (c.family_ == ChatFamily::ChatML && has(t, qwen25)) c.chatml_default_system_ = qwen25;
    } else if (has(t, "<|start_header_id|>") && has(t, "<|eot_id|>")) {
        c.family_ = ChatFamily::Llama3;
        c.llama3_always_header_ = !has(t, "add_generation_prompt");
        c.llama3_knowledge_date_ = has(t, "Cutting Knowledge Date");
        c.llama3_today_ = has(t, "strftime_now");
    } else if (has(t, "<|header_start|>") && has(t, "<|eot|>")) {
        c.family_ = ChatFamily::Llama4;
    } else if (has(t, "<start_of_turn>")) {
        c.family_ = ChatFamily::Gemma3;
    } else if (has(t, kDeepSeekUser) && has(t, kDeepSeekAssistant)) {
        c.family_ = ChatFamily::DeepSeekV3;
        c.deepseek_think_prompt_ = has(t, "<\xEF\xBD\x9C" "Assistant\xEF\xBD\x9C><think>\\n");
    } else if (has(t, "[INST]")) {
        c.family_ = ChatFamily::Mistral;
        c.mistral_system_prompt_tags_ = has(t, "[SYSTEM_PROMPT]");
    } else if (has(t, "<|user|>") && has(t, "<|assistant|>")) {
        c.family_ = ChatFamily::OLMo2;
    } else {
        c.family_ = ChatFamily::Generic;
    }
    return c;
}

ChatTemplate ChatTemplate::for_tokenizer(const Tokenizer& tok) {
    return detect(tok.chat_template(), tok.bos_token(), tok.eos_token());
}

std::string_view ChatTemplate::family_name() const {
    switch (family_) {
        case ChatFamily::None: return "none";
        case ChatFamily::ChatML: return "chatml";
        case ChatFamily::Qwen3: return "qwen3";
        case ChatFamily::Llama3: return "llama3";
        case ChatFamily::Llama4: return "llama4";
        case ChatFamily::Gemma3: return "gemma3";
        case ChatFamily::Mistral: return "mistral";
        case ChatFamily::DeepSeekV3: return "deepseek-v3";
        case ChatFamily::OLMo2: return "olmo2";
        case ChatFamily::Generic: return "generic";
    }
    return "generic";
}

std::string ChatTemplate::render(const std::vector<ChatMessage>& msgs, bool gen,
                                 const ChatOptions& opt) const {
    std::string out;
    switch (family_) {
        case ChatFamily::None:
            // GPT-2 style models continue plain text.
            for (size_t i = 0; i < msgs.size(); ++i) {
                if (i) out += "\n";
                out += msgs[i].content;
            }
            return out;

        case ChatFamily::ChatML: {
            if (!chatml_default_system_.empty() && (msgs.empty() || msgs[0].role != "system"))
                out += "<|im_start|>system\n" + chatml_default_system_ + "<|im_end|>\n";
            for (const ChatMessage& m : msgs) out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
            if (gen) out += "<|im_start|>assistant\n";
            return out;
        }

        case ChatFamily::Qwen3: {
            // ref: Qwen3 tokenizer_config.json chat_template (no tools).
            if (!msgs.empty() && msgs[0].role == "system")
                out += "<|im_start|>system\n" + msgs[0].content + "<|im_end|>\n";
            // Index of the last real user query (tool responses wrapped as user turns do not count).
            long last_query = long(msgs.size()) - 1;
            for (long i = long(msgs.size()) - 1; i >= 0; --i) {
                const ChatMessage& m = msgs[size_t(i)];
                std::string_view c = m.content;
                bool tool_wrap = c.rfind("<tool_response>", 0) == 0 && c.size() >= 16 &&
                                 c.compare(c.size() - 16, 16, "</tool_response>") == 0;
                if (m.role == "user" && !tool_wrap) {
                    last_query = i;
                    break;
                }
            }
            for (size_t i = 0; i < msgs.size(); ++i) {
                const ChatMessage& m = msgs[i];
                if (m.role == "user" || (m.role == "system" && i != 0)) {
                    out += "<|im_start|>" + m.role + "\n" + m.content + "<|im_end|>\n";
                } else if (m.role == "assistant") {
                    std::string content = m.content, reasoning;
                    size_t end_think = content.rfind("</think>");
                    if (end_think != std::string::npos) {
                        // content.split('</think>')[-1].lstrip('\n'); reasoning from the first part.
                        std::string first = content.substr(0, content.find("</think>"));
                        content = lstrip(std::string_view(m.content).substr(end_think + 8), "\n");
                        first = rstrip(first, "\n");
                        size_t open = first.rfind("<think>");
                        reasoning = lstrip(open == std::string::npos ? first : first.substr(open + 7), "\n");
                    }
                    bool last = i + 1 == msgs.size();
                    if (long(i) > last_query && (last || !reasoning.empty()))
                        out += "<|im_start|>assistant\n<think>\n" + trim(reasoning, "\n") + "\n</think>\n\n" +
                               lstrip(content, "\n");
                    else
                        out += "<|im_start|>assistant\n" + content;
                    out += "<|im_end|>\n";
                } else if (m.role == "tool") {
                    if (i == 0 || msgs[i - 1].role != "tool") out += "<|im_start|>user";
                    out += "\n<tool_response>\n" + m.content + "\n</tool_response>";
                    if (i + 1 == msgs.size() || msgs[i + 1].role != "tool") out += "<|im_end|>\n";
                }
            }
            if (gen) {
                out += "<|im_start|>assistant\n";
                if (!opt.enable_thinking) out += "<think>\n\n</think>\n\n";
            }
            return out;
        }

        case ChatFamily::Llama3: {
            size_t first = 0;
            if (llama3_knowledge_date_) {
                // ref: Llama 3.1/3.2/3.3 templates: a system block always comes first.
                std::string system;
                if (!msgs.empty() && msgs[0].role == "system") {
                    system = trim(msgs[0].content);
                    first = 1;
                }
                std::string date = "26 Jul 2024";
                if (llama3_today_) {
                    char buf[32];
                    std::time_t now = std::time(nullptr);
                    std::tm tm{};
                    localtime_r(&now, &tm);
                    std::strftime(buf, sizeof buf, "%d %b %Y", &tm);
                    date = buf;
                }
                out += bos_ + "<|start_header_id|>system<|end_header_id|>\n\n";
                out += "Cutting Knowledge Date: December 2023\nToday Date: " + date + "\n\n";
                out += system + "<|eot_id|>";
            }
            for (size_t i = first; i < msgs.size(); ++i) {
                std::string turn = "<|start_header_id|>" + msgs[i].role + "<|end_header_id|>\n\n" +
                                   trim(msgs[i].content) + "<|eot_id|>";
                if (i == 0 && !llama3_knowledge_date_) turn = bos_ + turn;
                out += turn;
            }
            if (gen || llama3_always_header_) out += "<|start_header_id|>assistant<|end_header_id|>\n\n";
            return out;
        }

        case ChatFamily::Llama4: {
            out += bos_;
            for (const ChatMessage& m : msgs) {
                std::string content = m.role == "system" ? trim(m.content) : m.content;
                out += "<|header_start|>" + m.role + "<|header_end|>\n\n" + content + "<|eot|>";
            }
            if (gen) out += "<|header_start|>assistant<|header_end|>\n\n";
            return out;
        }

        case ChatFamily::Gemma3: {
            // ref: Gemma 3 chat_template: the system text opens the first user turn.
            out += bos_;
            size_t first = 0;
            std::string prefix;
            if (!msgs.empty() && msgs[0].role == "system") {
                prefix = msgs[0].content + "\n\n";
                first = 1;
            }
            for (size_t i = first; i < msgs.size(); ++i) {
                bool is_user = msgs[i].role == "user";
                if (is_user != ((i - first) % 2 == 0))
                    throw Error("gemma3 chat template: conversation roles must alternate user/assistant/user/assistant/...");
                std::string role = msgs[i].role == "assistant" ? "model" : msgs[i].role;
                out += "<start_of_turn>" + role + "\n" + (i == first ? prefix : std::string()) +
                       trim(msgs[i].content) + "<end_of_turn>\n";
            }
            if (gen) out += "<start_of_turn>model\n";
            return out;
        }

        case ChatFamily::Mistral: {
            out += bos_;
            size_t first = 0;
            std::string system;
            if (!msgs.empty() && msgs[0].role == "system") {
                system = msgs[0].content;
                first = 1;
            }
            if (mistral_system_prompt_tags_ && first == 1)
                out += "[SYSTEM_PROMPT]" + system + "[/SYSTEM_PROMPT]";
            for (size_t i = first; i < msgs.size(); ++i) {
                const ChatMessage& m = msgs[i];
                if (m.role == "user") {
                    std::string content = m.content;
                    if (!mistral_system_prompt_tags_ && i == first && !system.empty())
                        content = system + "\n\n" + content;
                    out += mistral_system_prompt_tags_ ? "[INST]" + content + "[/INST]"
                                                      : "[INST] " + content + " [/INST]";
                } else if (m.role == "assistant") {
                    out += m.content + eos_;
                }
            }
            return out;  // the prompt ends with [/INST]; there is no separate generation header
        }

        case ChatFamily::DeepSeekV3: {
            // ref: DeepSeek-V3 tokenizer_config.json chat_template (no tools).
            std::string system;
            bool first_sp = true;
            for (const ChatMessage& m : msgs) {
                if (m.role != "system") continue;
                system += (first_sp ? "" : "\n\n") + m.content;
                first_sp = false;
            }
            out += bos_ + system;
            for (const ChatMessage& m : msgs) {
                if (m.role == "user") {
                    out += std::string(kDeepSeekUser) + m.content;
                } else if (m.role == "assistant") {
                    std::string content = m.content;
                    if (deepseek_think_prompt_) {
                        size_t p = content.rfind("</think>");
                        if (p != std::string::npos) content = content.substr(p + 8);
                    }
                    out += std::string(kDeepSeekAssistant) + content + kDeepSeekEos;
                }
            }
            if (gen) {
                out += kDeepSeekAssistant;
                if (deepseek_think_prompt_) out += "<think>\n";
            }
            return out;
        }

        case ChatFamily::OLMo2: {
            // ref: allenai OLMo-2 Instruct chat_template.
            out += bos_;
            for (size_t i = 0; i < msgs.size(); ++i) {
                const ChatMessage& m = msgs[i];
                bool last = i + 1 == msgs.size();
                if (m.role == "system") out += "<|system|>\n" + m.content + "\n";
                else if (m.role == "user") out += "<|user|>\n" + m.content + "\n";
                else if (m.role == "assistant")
                    out += "<|assistant|>\n" + m.content + eos_ + (last ? "" : "\n");
                if (last && gen) out += "<|assistant|>\n";
            }
            return out;
        }

        case ChatFamily::Generic: {
            for (const ChatMessage& m : msgs) {
                std::string role = m.role;
                if (!role.empty()) role[0] = char(std::toupper((unsigned char)role[0]));
                out += role + ": " + m.content + "\n\n";
            }
            if (gen) out += "Assistant:";
            return out;
        }
    }
    return out;
}

std::vector<std::string> ChatTemplate::stop_strings() const {
    std::vector<std::string> s;
    switch (family_) {
        case ChatFamily::ChatML:
        case ChatFamily::Qwen3: s = {"<|im_end|>", "<|endoftext|>"}; break;
        case ChatFamily::Llama3: s = {"<|eot_id|>", "<|end_of_text|>", "<|eom_id|>"}; break;
        case ChatFamily::Llama4: s = {"<|eot|>", "<|end_of_text|>", "<|eom|>"}; break;
        case ChatFamily::Gemma3: s = {"<end_of_turn>", "<eos>"}; break;
        case ChatFamily::Mistral: s = {"</s>"}; break;
        case ChatFamily::DeepSeekV3: s = {kDeepSeekEos}; break;
        case ChatFamily::OLMo2: s = {"<|endoftext|>"}; break;
        case ChatFamily::None:
        case ChatFamily::Generic: break;
    }
    if (!eos_.empty()) {
        bool dup = false;
        for (auto& x : s) dup = dup || x == eos_;
        if (!dup) s.push_back(eos_);
    }
    return s;
}

std::vector<int> ChatTemplate::stop_token_ids(const Tokenizer& tok) const {
    std::vector<int> ids;
    auto add = [&](int id) {
        if (id < 0) return;
        for (int x : ids)
            if (x == id) return;
        ids.push_back(id);
    };
    for (const std::string& s : stop_strings())
        if (auto id = tok.token_id(s)) add(*id);
    add(tok.eos_id());
    return ids;
}

}  // namespace archlens
