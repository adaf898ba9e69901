#include "engine/tokenizer/bpe.h"

#include <algorithm>
#include <cstdio>

#include "engine/tokenizer/unicode.h"

namespace archlens {

void MergeMap::reserve(size_t n) {
    size_t cap = 16;
    while (cap < n * 2) cap <<= 1;
    if (cap <= slots_.size()) return;
    std::vector<Slot> old = std::move(slots_);
    slots_.assign(cap, Slot{});
    mask_ = cap - 1;
    size_ = 0;
    for (const Slot& s : old)
        if (s.key != kEmpty) set(int(s.key >> 32), int(uint32_t(s.key)), s.value);
}

void MergeMap::grow() { reserve(slots_.empty() ? 8 : slots_.size()); }

void MergeMap::set(int a, int b, Value v) {
    if ((size_ + 1) * 2 > slots_.size()) grow();
    uint64_t key = pack(a, b);
    size_t i = hash(key) & mask_;
    while (true) {
        Slot& s = slots_[i];
        if (s.key == key) {
            s.value = v;
            return;
        }
        if (s.key == kEmpty) {
            s.key = key;
            s.value = v;
            ++size_;
            return;
        }
        i = (i + 1) & mask_;
    }
}

BpeModel::BpeModel(VocabMap vocab, MergeMap merges, BpeConfig config)
    : vocab_(std::move(vocab)), merges_(std::move(merges)), config_(std::move(config)) {
    int max_id = -1;
    for (auto& [tok, id] : vocab_) max_id = std::max(max_id, id);
    id_to_token_.resize(size_t(max_id + 1));
    for (auto& [tok, id] : vocab_) id_to_token_[size_t(id)] = tok;
    if (config_.unk_token) {
        auto it = vocab_.find(*config_.unk_token);
        if (it != vocab_.end()) unk_id_ = it->second;
    }
    byte_ids_.fill(-1);
    for (int b = 0; b < 256; ++b) {
        char name[8];
        std::snprintf(name, sizeof name, "<0x%02X>", b);  // ref: HF bpe/model.rs format!("<{:#04X}>")
        auto it = vocab_.find(std::string_view(name));
        if (it != vocab_.end()) byte_ids_[size_t(b)] = it->second;
    }
    find_safe_boundaries();
    ascii_char_ids_.assign(128, -1);
    for (int c = 0; c < 128; ++c) {
        char s[1] = {char(c)};
        auto it = vocab_.find(std::string_view(s, 1));
        if (it != vocab_.end()) ascii_char_ids_[size_t(c)] = it->second;
    }
}

namespace {
struct Symbol {
    int id;
    int prev;
    int next;
    int len;  // bytes; 0 once merged into its left neighbour
};
struct QueuedMerge {
    int rank;
    int pos;
    int new_id;
};
// std heap is a max-heap: "less" means lower priority = higher rank, then further right.
struct MergeLess {
    bool operator()(const QueuedMerge& a, const QueuedMerge& b) const {
        if (a.rank != b.rank) return a.rank > b.rank;
        return a.pos > b.pos;
    }
};
struct Workspace {
    std::vector<Symbol> symbols;
    std::vector<QueuedMerge> heap;
    std::string tmp;
};
Workspace& workspace() {
    thread_local Workspace w;
    return w;
}
}  // namespace

void BpeModel::merge_word(std::string_view w, std::vector<int>& out) const {
    Workspace& ws = workspace();
    auto& symbols = ws.symbols;
    symbols.clear();
    symbols.reserve(w.size());
    auto add = [&](int id, int len) {
        int n = int(symbols.size());
        if (n > 0) symbols.back().next = n;
        symbols.push_back(Symbol{id, n - 1, -1, len});
    };
    const bool affixes = (config_.continuing_subword_prefix.has_value() &&
                          !config_.continuing_subword_prefix->empty()) ||
                         (config_.end_of_word_suffix.has_value() && !config_.end_of_word_suffix->empty());
    int unk_id = -1, unk_len = 0;  // pending (possibly fused) unknown run
    size_t i = 0;
    while (i < w.size()) {
        size_t len = size_t(unicode::utf8_len((unsigned char)w[i]));
        if (i + len > w.size()) len = w.size() - i;
        std::string_view s = w.substr(i, len);
        bool is_first = i == 0, is_last = i + len == w.size();
        if (affixes) {
            ws.tmp.clear();
            if (!is_first && config_.continuing_subword_prefix) ws.tmp += *config_.continuing_subword_prefix;
            ws.tmp += s;
            if (is_last && config_.end_of_word_suffix) ws.tmp += *config_.end_of_word_suffix;
            s = ws.tmp;
        }
        int id = -1;
        if (s.size() == 1 && (unsigned char)s[0] < 128) {
            id = ascii_char_ids_[(unsigned char)s[0]];
        } else {
            auto it = vocab_.find(s);
            if (it != vocab_.end()) id = it->second;
        }
        i += len;
        if (id >= 0) {
            if (unk_id >= 0) {
                add(unk_id, unk_len);
                unk_id = -1;
            }
            add(id, int(len));
            continue;
        }
        if (config_.byte_fallback) {
            bool all = true;
            for (unsigned char b : s) all = all && byte_ids_[b] >= 0;
            if (all) {
                // ref: HF word merge: pending unk is not flushed before byte tokens.
                for (unsigned char b : s) add(byte_ids_[b], 1);
                continue;
            }
        }
        if (unk_id_ >= 0) {
            if (unk_id >= 0 && config_.fuse_unk) {
                unk_len += int(len);
            } else {
                if (unk_id >= 0) add(unk_id, unk_len);
                unk_id = unk_id_;
                unk_len = int(len);
            }
        }
    }
    if (unk_id >= 0) add(unk_id, unk_len);

    // ref: HF tokenizers models/bpe/word.rs Word::merge_all
    auto& heap = ws.heap;
    heap.clear();
    for (size_t k = 0; k + 1 < symbols.size(); ++k) {
        if (const MergeMap::Value* m = merges_.find(symbols[k].id, symbols[k + 1].id))
            heap.push_back(QueuedMerge{m->rank, int(k), m->new_id});
    }
    std::make_heap(heap.begin(), heap.end(), MergeLess{});
    while (!heap.empty()) {
        std::pop_heap(heap.begin(), heap.end(), MergeLess{});
        QueuedMerge top = heap.back();
        heap.pop_back();
        Symbol& cur = symbols[size_t(top.pos)];
        if (cur.len == 0 || cur.next < 0) continue;
        const int right_index = cur.next;
        Symbol& right = symbols[size_t(right_index)];
        const MergeMap::Value* m = merges_.find(cur.id, right.id);
        if (!m || m->new_id != top.new_id) continue;  // stale queue entry
        cur.id = top.new_id;
        cur.len += right.len;
        cur.next = right.next;
        right.len = 0;
        if (right.next >= 0) symbols[size_t(right.next)].prev = top.pos;
        if (cur.prev >= 0) {
            if (const MergeMap::Value* p = merges_.find(symbols[size_t(cur.prev)].id, cur.id)) {
                heap.push_back(QueuedMerge{p->rank, cur.prev, p->new_id});
                std::push_heap(heap.begin(), heap.end(), MergeLess{});
            }
        }
        if (cur.next >= 0) {
            if (const MergeMap::Value* n = merges_.find(cur.id, symbols[size_t(cur.next)].id)) {
                heap.push_back(QueuedMerge{n->rank, top.pos, n->new_id});
                std::push_heap(heap.begin(), heap.end(), MergeLess{});
            }
        }
    }
    for (const Symbol& s : symbols)
        if (s.len != 0) out.push_back(s.id);
}

static constexpr std::string_view kMarker = "\xE2\x96\x81";  // U+2581 ▁

void BpeModel::find_safe_boundaries() {
    // ignore_merges looks whole words up in the vocabulary, so cutting words would change it.
    if (config_.ignore_merges) return;
    for (const auto& [tok, id] : vocab_) {
        size_t pos = tok.find(kMarker, 1);
        while (pos != std::string::npos) {
            size_t b = pos - 1;
            while (b > 0 && ((unsigned char)tok[b] & 0xC0) == 0x80) --b;
            std::string prev = tok.substr(b, pos - b);
            if (std::find(boundary_blockers_.begin(), boundary_blockers_.end(), prev) == boundary_blockers_.end())
                boundary_blockers_.push_back(prev);
            pos = tok.find(kMarker, pos + 1);
        }
        if (boundary_blockers_.size() > 64) {  // the cut would rarely apply; not worth the scan
            boundary_blockers_.clear();
            return;
        }
    }
    split_at_marker_ = vocab_.count(kMarker) > 0;
}

void BpeModel::tokenize(std::string_view word, std::vector<int>& out) const {
    if (word.empty()) return;
    if (config_.ignore_merges) {
        auto it = vocab_.find(word);
        if (it != vocab_.end()) {
            out.push_back(it->second);
            return;
        }
    }
    if (!split_at_marker_ || word.size() <= kMarker.size()) {
        tokenize_chunk(word, out);
        return;
    }
    size_t begin = 0;
    size_t pos = word.find(kMarker, 1);
    while (pos != std::string_view::npos) {
        size_t b = pos - 1;
        while (b > 0 && ((unsigned char)word[b] & 0xC0) == 0x80) --b;
        std::string_view prev = word.substr(b, pos - b);
        bool blocked = false;
        for (const std::string& x : boundary_blockers_) blocked = blocked || x == prev;
        if (!blocked) {
            tokenize_chunk(word.substr(begin, pos - begin), out);
            begin = pos;
        }
        pos = word.find(kMarker, pos + kMarker.size());
    }
    tokenize_chunk(word.substr(begin), out);
}

void BpeModel::clear_cache() const {
    std::lock_guard<std::mutex> lock(cache_mutex_);
    cache_.clear();
}

void BpeModel::tokenize_chunk(std::string_view word, std::vector<int>& out) const {
    const bool cacheable = word.size() <= kMaxCachedWordBytes;
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        auto it = cache_.find(word);
        if (it != cache_.end()) {
            out.insert(out.end(), it->second.begin(), it->second.end());
            return;
        }
    }
    size_t first = out.size();
    merge_word(word, out);
    if (cacheable) {
        std::lock_guard<std::mutex> lock(cache_mutex_);
        if (cache_.size() >= kCacheCapacity) cache_.clear();
        cache_.emplace(std::string(word), std::vector<int>(out.begin() + long(first), out.end()));
    }
}

}  // namespace archlens
