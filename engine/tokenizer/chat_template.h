// Chat templates rendered natively (no Jinja engine): the family is recognized from the Jinja
// source (tokenizer_config.json "chat_template" or GGUF tokenizer.chat_template) and rendered
// with the same output the reference template gives for system/user/assistant turns.
#pragma once
#include <string>
#include <string_view>
#include <vector>

namespace archlens {

class Tokenizer;

enum class ChatFamily {
    None,        // no template (GPT-2): plain continuation
    ChatML,      // <|im_start|>role\n...<|im_end|> (Qwen2/2.5 and others)
    Qwen3,       // ChatML with <think> handling
    Llama3,      // <|start_header_id|>role<|end_header_id|>\n\n...<|eot_id|>
    Llama4,      // <|header_start|>role<|header_end|>\n\n...<|eot|>
    Gemma3,      // <start_of_turn>user|model\n...<end_of_turn>\n
    Mistral,     // [INST] ... [/INST]
    DeepSeekV3,  // <｜User｜>...<｜Assistant｜>...<｜end▁of▁sentence｜>
    OLMo2,       // <|user|>\n...<|assistant|>\n...
    Generic,     // unrecognized template: a plain "Role: text" format (recognized() == false)
};

struct ChatMessage {
    std::string role;  // "system", "user", "assistant" (others are rendered like user turns)
    std::string content;
};

struct ChatOptions {
    bool enable_thinking = true;  // Qwen3: false appends an empty <think></think> to the prompt
};

class ChatTemplate {
public:
    // bos/eos: the tokenizer's token strings (templates print them).
    static ChatTemplate detect(std::string_view jinja, std::string bos_token, std::string eos_token);
    static ChatTemplate for_tokenizer(const Tokenizer& tokenizer);

    ChatFamily family() const { return family_; }
    std::string_view family_name() const;
    // False when the template was not one we know: render() then uses a generic format, and the
    // app must say so.
    bool recognized() const { return family_ != ChatFamily::Generic; }

    std::string render(const std::vector<ChatMessage>& messages, bool add_generation_prompt,
                       const ChatOptions& options = {}) const;

    // Strings that end an assistant turn for this family, EOS included.
    std::vector<std::string> stop_strings() const;
    // Those of stop_strings() that are single tokens of `tokenizer`, plus its EOS id.
    std::vector<int> stop_token_ids(const Tokenizer& tokenizer) const;

private:
    ChatFamily family_ = ChatFamily::Generic;
    std::string bos_, eos_;
    // Per-family variants seen in released templates.
    bool llama3_always_header_ = false;   // first Llama 3 release: header even without the prompt flag
    bool llama3_knowledge_date_ = false;  // Llama 3.1+: system block with the knowledge cut-off
    bool llama3_today_ = false;           // Llama 3.2+: "Today Date" from the clock (strftime_now)
    std::string chatml_default_system_;   // Qwen2.5: system prompt used when none is given
    bool mistral_system_prompt_tags_ = false;  // [SYSTEM_PROMPT] ... [/SYSTEM_PROMPT] (v7)
    bool deepseek_think_prompt_ = false;       // R1-style: generation prompt opens <think>\n
};

}  // namespace archlens
