// tokenizer.json loading and the encode/decode pipeline.
// ref: HF tokenizers src/tokenizer/mod.rs (encode_single_sequence, decode),
//      src/tokenizer/added_vocabulary.rs (extract_and_normalize, find_matches)
#include "engine/tokenizer/tokenizer.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>

#include "engine/core/error.h"
#include "engine/tokenizer/bpe.h"
#include "engine/tokenizer/pipeline.h"
#include "engine/tokenizer/tokenizer_impl.h"
#include "engine/tokenizer/unicode.h"

namespace archlens {

using json = nlohmann::json;
using namespace tok;

bool sanitize_utf8(std::string_view text, std::string& out) {
    out.clear();
    return unicode::append_sanitized(out, text);
}

// ---------------------------------------------------------------------------------------------
// Added tokens: byte trie, leftmost-longest matching (HF uses aho-corasick LeftmostLongest).

void TokenTrie::insert(std::string_view s, int value) {
    if (s.empty()) return;
    if (nodes_.empty()) nodes_.emplace_back();
    int n = 0;
    for (unsigned char c : s) {
        first_byte_[c] = true;
        auto& ch = nodes_[size_t(n)].children;
        auto it = std::lower_bound(ch.begin(), ch.end(), c,
                                   [](const std::pair<unsigned char, int>& a, unsigned char b) { return a.first < b; });
        if (it != ch.end() && it->first == c) {
            n = it->second;
        } else {
            int next = int(nodes_.size());
            ch.insert(it, {c, next});
            nodes_.emplace_back();
            n = next;
        }
    }
    nodes_[size_t(n)].value = value;
}

std::pair<size_t, int> TokenTrie::longest_at(std::string_view s, size_t pos) const {
    size_t best_len = 0;
    int best = -1;
    int n = 0;
    for (size_t i = pos; i < s.size(); ++i) {
        unsigned char c = (unsigned char)s[i];
        const auto& ch = nodes_[size_t(n)].children;
        auto it = std::lower_bound(ch.begin(), ch.end(), c,
                                   [](const std::pair<unsigned char, int>& a, unsigned char b) { return a.first < b; });
        if (it == ch.end() || it->first != c) break;
        n = it->second;
        if (nodes_[size_t(n)].value >= 0) {
            best = nodes_[size_t(n)].value;
            best_len = i + 1 - pos;
        }
    }
    return {best_len, best};
}

static bool ends_with_word(std::string_view s) {
    if (s.empty()) return false;
    size_t i = s.size() - 1;
    while (i > 0 && ((unsigned char)s[i] & 0xC0) == 0x80) --i;
    return unicode::is_word_char(unicode::next_codepoint(s, i));
}
static bool starts_with_word(std::string_view s) {
    if (s.empty()) return false;
    size_t i = 0;
    return unicode::is_word_char(unicode::next_codepoint(s, i));
}

// ref: HF added_vocabulary.rs find_matches (single_word, lstrip, rstrip handling)
void Tokenizer::Impl::split_added(std::string_view s, const TokenTrie& trie,
                                  std::vector<Segment>& out) const {
    if (trie.empty()) {
        if (!s.empty()) out.push_back({0, s.size(), -1});
        return;
    }
    size_t start_offset = 0;
    size_t i = 0;
    while (i < s.size()) {
        if (!trie.may_start((unsigned char)s[i])) {
            ++i;
            continue;
        }
        auto [len, idx] = trie.longest_at(s, i);
        if (idx < 0) {
            ++i;
            continue;
        }
        const AddedToken& t = added[size_t(idx)];
        size_t start = i, stop = i + len;
        if (t.single_word) {
            bool start_space = start == 0 || !ends_with_word(s.substr(0, start));
            bool stop_space = stop == s.size() || !starts_with_word(s.substr(stop));
            if (!start_space || !stop_space) {
                ++i;
                continue;
            }
        }
        if (t.lstrip) {
            size_t b = start;
            while (b > 0) {
                size_t k = b - 1;
                while (k > 0 && ((unsigned char)s[k] & 0xC0) == 0x80) --k;
                size_t j = k;
                if (!unicode::is_whitespace(unicode::next_codepoint(s, j))) break;
                b = k;
            }
            start = std::max(b, start_offset);
        }
        if (t.rstrip) {
            while (stop < s.size()) {
                size_t j = stop;
                if (!unicode::is_whitespace(unicode::next_codepoint(s, j))) break;
                stop = j;
            }
        }
        if (start_offset < start) out.push_back({start_offset, start, -1});
        out.push_back({start, stop, idx});
        start_offset = stop;
        i = stop;
    }
    if (start_offset < s.size()) out.push_back({start_offset, s.size(), -1});
}

std::vector<int> Tokenizer::Impl::encode(std::string_view input, bool add_special) const {
    std::string text;
    unicode::append_sanitized(text, input);
    std::vector<int> ids;
    ids.reserve(text.size() / 3 + 8);
    if (add_special) ids.insert(ids.end(), post_prefix.begin(), post_prefix.end());

    std::vector<Segment> raw, norm;
    std::string normalized;
    split_added(text, raw_trie, raw);
    for (const Segment& seg : raw) {
        if (seg.token >= 0) {
            ids.push_back(added[size_t(seg.token)].id);
            continue;
        }
        normalized.assign(text, seg.begin, seg.end - seg.begin);
        if (normalizer) normalizer->apply(normalized);
        norm.clear();
        split_added(normalized, normalized_trie, norm);
        for (const Segment& s2 : norm) {
            if (s2.token >= 0) {
                ids.push_back(added[size_t(s2.token)].id);
                continue;
            }
            std::string_view piece(normalized.data() + s2.begin, s2.end - s2.begin);
            auto to_model = [&](std::string_view word, bool) { model->tokenize(word, ids); };
            if (pre_tokenizer) pre_tokenizer->run(piece, seg.begin == 0 && s2.begin == 0, to_model);
            else model->tokenize(piece, ids);
        }
    }
    if (add_special) ids.insert(ids.end(), post_suffix.begin(), post_suffix.end());
    return ids;
}

std::string Tokenizer::Impl::decode(const std::vector<int>& ids, bool skip_special) const {
    std::vector<std::string> tokens;
    tokens.reserve(ids.size());
    for (int id : ids) {
        if (id < 0 || id >= int(id_to_token.size())) continue;  // HF skips unknown ids
        if (skip_special && special[size_t(id)]) continue;
        tokens.push_back(id_to_token[size_t(id)]);
    }
    std::string out;
    if (decoder) {
        decoder->decode_chain(tokens);
        for (const std::string& t : tokens) out += t;
    } else {
        for (size_t k = 0; k < tokens.size(); ++k) {
            if (k) out += ' ';
            out += tokens[k];
        }
    }
    if (clean_up_spaces) out = clean_up_tokenization(out);
    return out;
}

// ref: transformers tokenization_utils_base.py clean_up_tokenization (sequential replaces).
std::string clean_up_tokenization(std::string s) {
    static const std::pair<const char*, const char*> rules[] = {
        {" .", "."},   {" ?", "?"},     {" !", "!"},   {" ,", ","},     {" ' ", "'"},
        {" n't", "n't"}, {" 'm", "'m"}, {" 's", "'s"}, {" 've", "'ve"}, {" 're", "'re"}};
    for (auto [from, to] : rules) {
        std::string_view f(from);
        if (s.find(f) == std::string::npos) continue;
        std::string out;
        out.reserve(s.size());
        size_t prev = 0, pos;
        while ((pos = s.find(f, prev)) != std::string::npos) {
            out.append(s, prev, pos - prev);
            out += to;
            prev = pos + f.size();
        }
        out.append(s, prev, std::string::npos);
        s.swap(out);
    }
    return s;
}

// ---------------------------------------------------------------------------------------------
// Loading tokenizer.json

namespace {

struct Loader {
    const std::string& origin;

    [[noreturn]] void error(const std::string& msg) const { fail(origin, msg); }

    const json& need(const json& j, const char* key, const std::string& where) const {
        if (!j.is_object() || !j.contains(key)) error(where + ": missing \"" + key + "\"");
        return j.at(key);
    }
    std::string str(const json& j, const char* key, const std::string& where) const {
        const json& v = need(j, key, where);
        if (!v.is_string()) error(where + ": \"" + key + "\" must be a string");
        return v.get<std::string>();
    }
    static bool flag(const json& j, const char* key, bool fallback) {
        if (!j.is_object()) return fallback;
        auto it = j.find(key);
        if (it == j.end() || !it->is_boolean()) return fallback;
        return it->get<bool>();
    }

    Pattern pattern(const json& j, const std::string& where) const {
        Pattern p;
        if (j.is_object() && j.contains("String") && j["String"].is_string()) {
            p.literal = j["String"].get<std::string>();
        } else if (j.is_object() && j.contains("Regex") && j["Regex"].is_string()) {
            p.regex = std::make_shared<Regex>(j["Regex"].get<std::string>(), origin + ": " + where);
        } else {
            error(where + ": pattern must be {\"String\": ...} or {\"Regex\": ...}");
        }
        return p;
    }

    std::unique_ptr<Normalizer> normalizer(const json& j) const {
        if (j.is_null()) return nullptr;
        auto n = std::make_unique<Normalizer>();
        *n = normalizer_value(j);
        return n;
    }
    Normalizer normalizer_value(const json& j) const {
        std::string type = str(j, "type", "normalizer");
        Normalizer n;
        using K = Normalizer::Kind;
        if (type == "NFC") n.kind = K::NFC;
        else if (type == "NFD") n.kind = K::NFD;
        else if (type == "NFKC") n.kind = K::NFKC;
        else if (type == "NFKD") n.kind = K::NFKD;
        else if (type == "Lowercase") n.kind = K::Lowercase;
        else if (type == "Replace") {
            n.kind = K::Replace;
            n.pattern = pattern(need(j, "pattern", "Replace normalizer"), "Replace normalizer");
            n.content = str(j, "content", "Replace normalizer");
        } else if (type == "Prepend") {
            n.kind = K::Prepend;
            n.content = str(j, "prepend", "Prepend normalizer");
        } else if (type == "Strip") {
            n.kind = K::Strip;
            n.strip_left = flag(j, "strip_left", false);
            n.strip_right = flag(j, "strip_right", false);
        } else if (type == "Sequence") {
            n.kind = K::Sequence;
            for (const json& c : need(j, "normalizers", "Sequence normalizer")) n.children.push_back(normalizer_value(c));
        } else {
            error("unsupported normalizer type '" + type + "'");
        }
        return n;
    }

    static SplitBehavior behavior(const json& j, SplitBehavior fallback) {
        if (!j.is_object() || !j.contains("behavior") || !j["behavior"].is_string()) return fallback;
        std::string b = j["behavior"].get<std::string>();
        if (b == "Removed") return SplitBehavior::Removed;
        if (b == "Isolated") return SplitBehavior::Isolated;
        if (b == "MergedWithPrevious") return SplitBehavior::MergedWithPrevious;
        if (b == "MergedWithNext") return SplitBehavior::MergedWithNext;
        if (b == "Contiguous") return SplitBehavior::Contiguous;
        return fallback;
    }

    PreTokenizer pre_tokenizer_value(const json& j) const {
        std::string type = str(j, "type", "pre_tokenizer");
        PreTokenizer p;
        using K = PreTokenizer::Kind;
        if (type == "Split") {
            p.kind = K::Split;
            p.pattern = pattern(need(j, "pattern", "Split pre-tokenizer"), "Split pre-tokenizer");
            p.behavior = behavior(j, SplitBehavior::Isolated);
            p.invert = flag(j, "invert", false);
        } else if (type == "ByteLevel") {
            p.kind = K::ByteLevel;
            p.add_prefix_space = flag(j, "add_prefix_space", true);
            p.use_regex = flag(j, "use_regex", true);
        } else if (type == "Metaspace") {
            p.kind = K::Metaspace;
            metaspace(j, p.replacement, p.prepend);
            p.split = flag(j, "split", true);
        } else if (type == "Sequence") {
            p.kind = K::Sequence;
            for (const json& c : need(j, "pretokenizers", "Sequence pre-tokenizer"))
                p.children.push_back(pre_tokenizer_value(c));
        } else if (type == "Digits") {
            p.kind = K::Digits;
            p.individual_digits = flag(j, "individual_digits", false);
        } else if (type == "Whitespace") {
            p.kind = K::Whitespace;
        } else if (type == "WhitespaceSplit") {
            p.kind = K::WhitespaceSplit;
        } else if (type == "Punctuation") {
            p.kind = K::Punctuation;
            p.behavior = behavior(j, SplitBehavior::Isolated);
        } else {
            error("unsupported pre_tokenizer type '" + type + "'");
        }
        return p;
    }

    void metaspace(const json& j, std::string& replacement, PreTokenizer::Prepend& prepend) const {
        replacement = j.contains("replacement") && j["replacement"].is_string()
                          ? j["replacement"].get<std::string>()
                          : std::string("\xE2\x96\x81");
        prepend = PreTokenizer::Prepend::Always;
        if (j.contains("prepend_scheme") && j["prepend_scheme"].is_string()) {
            std::string s = j["prepend_scheme"].get<std::string>();
            if (s == "first") prepend = PreTokenizer::Prepend::First;
            else if (s == "never") prepend = PreTokenizer::Prepend::Never;
        } else if (j.contains("add_prefix_space") && j["add_prefix_space"].is_boolean()) {
            prepend = j["add_prefix_space"].get<bool>() ? PreTokenizer::Prepend::Always
                                                        : PreTokenizer::Prepend::Never;
        }
    }

    Decoder decoder_value(const json& j) const {
        std::string type = str(j, "type", "decoder");
        Decoder d;
        using K = Decoder::Kind;
        if (type == "ByteLevel") d.kind = K::ByteLevel;
        else if (type == "ByteFallback") d.kind = K::ByteFallback;
        else if (type == "Fuse") d.kind = K::Fuse;
        else if (type == "Strip") {
            d.kind = K::Strip;
            std::string c = str(j, "content", "Strip decoder");
            size_t i = 0;
            d.strip_char = c.empty() ? ' ' : unicode::next_codepoint(c, i);
            d.start = j.value("start", 0);
            d.stop = j.value("stop", 0);
        } else if (type == "Replace") {
            d.kind = K::Replace;
            d.pattern = pattern(need(j, "pattern", "Replace decoder"), "Replace decoder");
            d.content = str(j, "content", "Replace decoder");
        } else if (type == "Metaspace") {
            d.kind = K::Metaspace;
            PreTokenizer::Prepend pr;
            metaspace(j, d.replacement, pr);
            d.prepend = pr != PreTokenizer::Prepend::Never;
        } else if (type == "BPEDecoder") {
            d.kind = K::BPEDecoder;
            d.content = j.contains("suffix") && j["suffix"].is_string() ? j["suffix"].get<std::string>() : "</w>";
        } else if (type == "Sequence") {
            d.kind = K::Sequence;
            for (const json& c : need(j, "decoders", "Sequence decoder")) d.children.push_back(decoder_value(c));
        } else {
            error("unsupported decoder type '" + type + "'");
        }
        return d;
    }

    static std::optional<std::string> opt_str(const json& j, const char* key) {
        if (!j.is_object()) return std::nullopt;
        auto it = j.find(key);
        if (it == j.end() || !it->is_string()) return std::nullopt;
        return it->get<std::string>();
    }

    std::unique_ptr<BpeModel> model(const json& root) const {
        if (!root.contains("model") || root["model"].is_null()) error("missing \"model\"");
        const json& m = root["model"];
        if (!m.is_object()) error("\"model\" must be an object");
        std::string type;
        if (m.contains("type")) {
            if (!m["type"].is_string()) error("model: \"type\" must be a string");
            type = m["type"].get<std::string>();
        } else if (m.contains("merges")) {
            type = "BPE";  // HF accepts untagged models and infers the type from their fields
        }
        if (type != "BPE")
            error("unsupported model type '" + type + "' (supported: BPE)");
        const json& v = need(m, "vocab", "model");
        if (!v.is_object()) error("model: \"vocab\" must be an object of token -> id");
        VocabMap vocab;
        vocab.reserve(v.size());
        for (auto it = v.begin(); it != v.end(); ++it) {
            if (!it.value().is_number_integer()) error("model.vocab: id of '" + it.key() + "' is not an integer");
            int id = it.value().get<int>();
            if (id < 0) error("model.vocab: negative id for '" + it.key() + "'");
            vocab[it.key()] = id;
        }
        BpeConfig cfg;
        cfg.unk_token = opt_str(m, "unk_token");
        cfg.continuing_subword_prefix = opt_str(m, "continuing_subword_prefix");
        cfg.end_of_word_suffix = opt_str(m, "end_of_word_suffix");
        cfg.fuse_unk = flag(m, "fuse_unk", false);
        cfg.byte_fallback = flag(m, "byte_fallback", false);
        cfg.ignore_merges = flag(m, "ignore_merges", false);

        MergeMap merges;
        const json empty = json::array();
        const json& ml = m.contains("merges") ? m["merges"] : empty;
        if (!ml.is_array()) error("model: \"merges\" must be an array");
        merges.reserve(ml.size());
        size_t prefix_len = cfg.continuing_subword_prefix ? cfg.continuing_subword_prefix->size() : 0;
        std::string a, b;
        for (size_t rank = 0; rank < ml.size(); ++rank) {
            const json& e = ml[rank];
            if (e.is_string()) {
                const std::string& line = e.get_ref<const std::string&>();
                size_t sp = line.find(' ');
                if (sp == std::string::npos || line.find(' ', sp + 1) != std::string::npos)
                    error("model.merges[" + std::to_string(rank) + "]: '" + line + "' is not two tokens separated by one space");
                a.assign(line, 0, sp);
                b.assign(line, sp + 1, std::string::npos);
            } else if (e.is_array() && e.size() == 2 && e[0].is_string() && e[1].is_string()) {
                a = e[0].get<std::string>();
                b = e[1].get<std::string>();
            } else {
                error("model.merges[" + std::to_string(rank) + "]: expected \"a b\" or [\"a\", \"b\"]");
            }
            auto ia = vocab.find(a), ib = vocab.find(b);
            const std::string& missing = ia == vocab.end() ? a : b;
            if (ia == vocab.end() || ib == vocab.end())
                error("model.merges[" + std::to_string(rank) + "] references token '" + missing +
                      "', which is not in the vocabulary");
            std::string merged = a + (b.size() >= prefix_len ? b.substr(prefix_len) : b);
            auto im = vocab.find(merged);
            if (im == vocab.end())
                error("model.merges[" + std::to_string(rank) + "] produces token '" + merged +
                      "', which is not in the vocabulary");
            merges.set(ia->second, ib->second, MergeMap::Value{int(rank), im->second});
        }
        return std::make_unique<BpeModel>(std::move(vocab), std::move(merges), std::move(cfg));
    }
};

std::string read_file(const std::string& path) {
    std::ifstream f(path, std::ios::binary);
    if (!f) fail(path, "cannot open file");
    std::ostringstream ss;
    ss << f.rdbuf();
    return ss.str();
}

// tokenizer_config.json writes tokens as "<s>" or {"content": "<s>", ...}.
std::optional<std::string> config_token(const json& cfg, const char* key) {
    if (!cfg.is_object() || !cfg.contains(key)) return std::nullopt;
    const json& v = cfg[key];
    if (v.is_string()) return v.get<std::string>();
    if (v.is_object() && v.contains("content") && v["content"].is_string()) return v["content"].get<std::string>();
    return std::nullopt;
}

}  // namespace

void Tokenizer::Impl::finish_setup() {
    int max_id = int(model->id_to_token().size()) - 1;
    for (const AddedToken& t : added) max_id = std::max(max_id, t.id);
    id_to_token.assign(size_t(max_id + 1), std::string());
    special.assign(size_t(max_id + 1), false);
    for (size_t i = 0; i < model->id_to_token().size(); ++i) id_to_token[i] = model->id_to_token()[i];
    raw_trie = TokenTrie();
    normalized_trie = TokenTrie();
    for (size_t k = 0; k < added.size(); ++k) {
        const AddedToken& t = added[k];
        id_to_token[size_t(t.id)] = t.content;
        added_by_content[t.content] = t.id;
        if (t.special) special[size_t(t.id)] = true;
        if (t.normalized) {
            // ref: HF added_vocabulary.rs refresh_added_tokens — normalized tokens are matched
            // in their normalized form.
            std::string c = t.content;
            if (normalizer) normalizer->apply(c);
            normalized_trie.insert(c, int(k));
        } else {
            raw_trie.insert(t.content, int(k));
        }
    }
}

std::optional<int> Tokenizer::Impl::lookup(std::string_view token) const {
    auto it = added_by_content.find(token);
    if (it != added_by_content.end()) return it->second;
    auto jt = model->vocab().find(token);
    if (jt != model->vocab().end()) return jt->second;
    return std::nullopt;
}

static std::unique_ptr<Tokenizer::Impl> build_impl(const json& root, const json& config,
                                                   const std::string& origin) {
    Loader L{origin};
    if (!root.is_object()) fail(origin, "tokenizer.json must hold a JSON object");
    auto impl = std::make_unique<Tokenizer::Impl>();
    impl->origin = origin;
    impl->model = L.model(root);
    if (root.contains("normalizer")) impl->normalizer = L.normalizer(root["normalizer"]);
    if (root.contains("pre_tokenizer") && !root["pre_tokenizer"].is_null())
        impl->pre_tokenizer = std::make_unique<PreTokenizer>(L.pre_tokenizer_value(root["pre_tokenizer"]));
    if (root.contains("decoder") && !root["decoder"].is_null())
        impl->decoder = std::make_unique<Decoder>(L.decoder_value(root["decoder"]));

    if (root.contains("added_tokens") && root["added_tokens"].is_array()) {
        for (const json& a : root["added_tokens"]) {
            AddedToken t;
            if (!a.contains("id") || !a["id"].is_number_integer()) fail(origin, "added_tokens: entry without integer \"id\"");
            t.id = a["id"].get<int>();
            if (t.id < 0) fail(origin, "added_tokens: negative id");
            t.content = L.str(a, "content", "added_tokens");
            t.special = Loader::flag(a, "special", false);
            t.lstrip = Loader::flag(a, "lstrip", false);
            t.rstrip = Loader::flag(a, "rstrip", false);
            t.single_word = Loader::flag(a, "single_word", false);
            t.normalized = Loader::flag(a, "normalized", !t.special);
            impl->added.push_back(std::move(t));
        }
    }
    impl->finish_setup();

    // Post-processor: only what it adds around a single sequence matters for ids.
    std::function<void(const json&)> post = [&](const json& p) {
        if (p.is_null()) return;
        std::string type = L.str(p, "type", "post_processor");
        if (type == "ByteLevel") return;
        if (type == "Sequence") {
            for (const json& c : L.need(p, "processors", "Sequence post_processor")) post(c);
            return;
        }
        if (type == "TemplateProcessing") {
            const json& single = L.need(p, "single", "TemplateProcessing");
            const json& specials = p.contains("special_tokens") ? p["special_tokens"] : json::object();
            impl->post_prefix.clear();
            impl->post_suffix.clear();
            bool seen_a = false;
            for (const json& item : single) {
                if (item.contains("Sequence")) {
                    seen_a = true;
                } else if (item.contains("SpecialToken")) {
                    std::string name = L.str(item["SpecialToken"], "id", "TemplateProcessing");
                    if (!specials.contains(name))
                        fail(origin, "TemplateProcessing: special token '" + name + "' is not in special_tokens");
                    for (const json& id : L.need(specials[name], "ids", "TemplateProcessing special token"))
                        (seen_a ? impl->post_suffix : impl->post_prefix).push_back(id.get<int>());
                }
            }
            return;
        }
        if (type == "RobertaProcessing" || type == "BertProcessing") {
            const json& cls = L.need(p, "cls", type);
            const json& sep = L.need(p, "sep", type);
            impl->post_prefix = {cls.at(1).get<int>()};
            impl->post_suffix = {sep.at(1).get<int>()};
            return;
        }
        fail(origin, "unsupported post_processor type '" + type + "'");
    };
    if (root.contains("post_processor")) post(root["post_processor"]);

    // tokenizer_config.json
    impl->bos_token = config_token(config, "bos_token").value_or("");
    impl->eos_token = config_token(config, "eos_token").value_or("");
    if (config.is_object()) {
        impl->clean_up_spaces = Loader::flag(config, "clean_up_tokenization_spaces", false);
        if (config.contains("chat_template")) {
            const json& ct = config["chat_template"];
            if (ct.is_string()) {
                impl->chat_template = ct.get<std::string>();
            } else if (ct.is_array()) {  // [{"name": "default", "template": ...}, ...]
                for (const json& e : ct)
                    if (e.value("name", "") == "default" && e.contains("template") && e["template"].is_string())
                        impl->chat_template = e["template"].get<std::string>();
            }
        }
        // ref: transformers LlamaTokenizerFast/GemmaTokenizerFast update_post_processor — when the
        // config says add_bos_token / add_eos_token, Python rebuilds the post-processor as
        // [bos] $A [eos] and ignores tokenizer.json's. (transformers.js keeps tokenizer.json's;
        // this differs for DeepSeek-V3, whose tokenizer.json adds nothing.)
        bool has_bos_flag = config.contains("add_bos_token") && config["add_bos_token"].is_boolean();
        bool has_eos_flag = config.contains("add_eos_token") && config["add_eos_token"].is_boolean();
        if (has_bos_flag || has_eos_flag) {
            bool add_bos = Loader::flag(config, "add_bos_token", false);
            bool add_eos = Loader::flag(config, "add_eos_token", false);
            impl->post_prefix.clear();
            impl->post_suffix.clear();
            if (add_bos) {
                auto id = impl->bos_token.empty() ? std::nullopt : impl->lookup(impl->bos_token);
                if (!id) fail(origin, "add_bos_token is true but bos_token is missing or not in the vocabulary");
                impl->post_prefix.push_back(*id);
            }
            if (add_eos) {
                auto id = impl->eos_token.empty() ? std::nullopt : impl->lookup(impl->eos_token);
                if (!id) fail(origin, "add_eos_token is true but eos_token is missing or not in the vocabulary");
                impl->post_suffix.push_back(*id);
            }
        }
    }
    if (!impl->bos_token.empty()) impl->bos = impl->lookup(impl->bos_token).value_or(-1);
    if (!impl->eos_token.empty()) impl->eos = impl->lookup(impl->eos_token).value_or(-1);
    if (impl->bos < 0 && !impl->post_prefix.empty()) {
        impl->bos = impl->post_prefix.front();
        impl->bos_token = impl->id_to_token[size_t(impl->bos)];
    }
    if (impl->eos < 0) {
        // Without a config, take the conventional end-of-text names.
        for (const char* name : {"<|endoftext|>", "</s>", "<eos>", "<|end_of_text|>",
                                 "<\xEF\xBD\x9C" "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>"}) {
            if (auto id = impl->lookup(name)) {
                impl->eos = *id;
                impl->eos_token = name;
                break;
            }
        }
    }
    return impl;
}

std::unique_ptr<Tokenizer::Impl> build_impl_from_json_value(const void* root, const void* config,
                                                            const std::string& origin) {
    return build_impl(*static_cast<const json*>(root), *static_cast<const json*>(config), origin);
}

// ---------------------------------------------------------------------------------------------
// Public API

Tokenizer::Tokenizer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Tokenizer::~Tokenizer() = default;

std::unique_ptr<Tokenizer> Tokenizer::from_impl(std::unique_ptr<Impl> impl) {
    return std::unique_ptr<Tokenizer>(new Tokenizer(std::move(impl)));
}

std::unique_ptr<Tokenizer> Tokenizer::from_hf_json_text(std::string_view tokenizer_json,
                                                        std::string_view tokenizer_config,
                                                        const std::string& origin) {
    json root, config;
    try {
        root = json::parse(tokenizer_json);
    } catch (const json::exception& e) {
        fail(origin, std::string("invalid JSON: ") + e.what());
    }
    if (!tokenizer_config.empty()) {
        try {
            config = json::parse(tokenizer_config);
        } catch (const json::exception& e) {
            fail(origin, std::string("invalid tokenizer_config.json: ") + e.what());
        }
    }
    try {
        return from_impl(build_impl(root, config, origin));
    } catch (const json::exception& e) {
        fail(origin, std::string("malformed tokenizer.json: ") + e.what());
    }
}

std::unique_ptr<Tokenizer> Tokenizer::from_hf_json(const std::string& tokenizer_json_path,
                                                   const std::string& tokenizer_config_path) {
    std::string text = read_file(tokenizer_json_path);
    std::string config;
    if (!tokenizer_config_path.empty()) config = read_file(tokenizer_config_path);
    return from_hf_json_text(text, config, tokenizer_json_path);
}

std::unique_ptr<Tokenizer> Tokenizer::from_hf_path(const std::string& path) {
    namespace fs = std::filesystem;
    if (fs::is_directory(path)) {
        fs::path dir(path);
        if (!fs::exists(dir / "tokenizer.json")) fail(path, "folder has no tokenizer.json");
        fs::path cfg = dir / "tokenizer_config.json";
        return from_hf_json((dir / "tokenizer.json").string(), fs::exists(cfg) ? cfg.string() : std::string());
    }
    // A tokenizer.json file: pick up its sibling tokenizer_config.json like an HF folder would.
    fs::path cfg = fs::path(path).parent_path() / "tokenizer_config.json";
    return from_hf_json(path, fs::exists(cfg) ? cfg.string() : std::string());
}

std::vector<int> Tokenizer::encode(std::string_view text, bool add_special) const {
    return impl_->encode(text, add_special);
}
std::string Tokenizer::decode(const std::vector<int>& ids, bool skip_special) const {
    return impl_->decode(ids, skip_special);
}
void Tokenizer::clear_cache() const { impl_->model->clear_cache(); }
int Tokenizer::vocab_size() const { return int(impl_->id_to_token.size()); }
std::string Tokenizer::token_text(int id) const {
    if (id < 0 || id >= vocab_size()) return {};
    return impl_->id_to_token[size_t(id)];
}
std::optional<int> Tokenizer::token_id(std::string_view token) const { return impl_->lookup(token); }
bool Tokenizer::is_special(int id) const {
    return id >= 0 && id < vocab_size() && impl_->special[size_t(id)];
}
int Tokenizer::bos_id() const { return impl_->bos; }
int Tokenizer::eos_id() const { return impl_->eos; }
const std::string& Tokenizer::bos_token() const { return impl_->bos_token; }
const std::string& Tokenizer::eos_token() const { return impl_->eos_token; }
const std::string& Tokenizer::chat_template() const { return impl_->chat_template; }
bool Tokenizer::clean_up_tokenization_spaces() const { return impl_->clean_up_spaces; }

// ---------------------------------------------------------------------------------------------
// StreamDecoder

StreamDecoder::StreamDecoder(const Tokenizer& tokenizer, bool skip_special)
    : tok_(tokenizer), skip_special_(skip_special) {}

static bool ends_with(const std::string& s, std::string_view suffix) {
    return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::string StreamDecoder::feed(int id) {
    ids_.push_back(id);
    std::string text = tok_.decode(ids_, skip_special_);
    if (text.size() <= prefix_.size() || ends_with(text, "\xEF\xBF\xBD")) return {};
    // clean_up_tokenization_spaces rewrites " ." -> "." etc.: a trailing space (or " '", " n",
    // " n'", " 'v", " 'r") may still vanish, so hold it back until the next token.
    if (tok_.clean_up_tokenization_spaces()) {
        for (std::string_view tail : {" ", " '", " n", " n'", " 'v", " 'r"})
            if (ends_with(text, tail)) return {};
    }
    if (text.compare(0, prefix_.size(), prefix_) != 0) return {};  // context changed the prefix
    std::string out = text.substr(prefix_.size());
    size_t keep_from = prefix_index_;
    std::vector<int> kept(ids_.begin() + long(keep_from), ids_.end());
    ids_.swap(kept);
    prefix_ = tok_.decode(ids_, skip_special_);
    prefix_index_ = ids_.size();
    return out;
}

std::string StreamDecoder::finish() {
    std::string text = tok_.decode(ids_, skip_special_);
    std::string out;
    if (text.size() > prefix_.size() && text.compare(0, prefix_.size(), prefix_) == 0)
        out = text.substr(prefix_.size());
    ids_.clear();
    prefix_.clear();
    prefix_index_ = 0;
    return out;
}

}  // namespace archlens
