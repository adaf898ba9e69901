// Probes: typed records the forward pass fills when asked. Off by default; when off the forward
// pass does no extra work. Plain data, shared with the widgets.
#pragma once
#include <cstdint>
#include <vector>

namespace archlens {

struct ProbeConfig {
    bool attention = false;
    std::vector<int> attn_layers;  // empty: every layer
    std::vector<int> attn_heads;   // empty: every head
    bool routing = false;
    int top_k = 0;  // next-token top-k probabilities after each forward call (0: off)
    bool logit_lens = false;  // each layer's residual (last position) through the final norm + LM head

    bool wants_attention(int layer, int head) const;
};

struct AttentionRow {
    int layer = 0, head = 0;
    int64_t query_pos = 0;
    int64_t key_begin = 0;     // probs[i] is the key at position key_begin + i
    std::vector<float> probs;  // softmax over keys [key_begin, query_pos]; masked keys absent
};

struct RoutingRecord {
    int layer = 0;
    int64_t pos = 0;
    std::vector<int> experts;          // selected, descending selection score
    std::vector<float> weights;        // final weights (after normalisation and routed scaling)
    std::vector<float> router_probs;   // softmax/sigmoid over every expert, before the selection bias
};

struct TokenProb {
    int id;
    float prob;
};

struct LogitLensEntry {
    int layer = 0;
    int token = 0;     // top prediction of this layer's residual stream
    float prob = 0;    // its probability
};

struct ProbeData {
    std::vector<AttentionRow> attention;
    std::vector<RoutingRecord> routing;
    std::vector<std::vector<uint64_t>> expert_load;  // [layer][expert] selections this session
    std::vector<TokenProb> top_k;                    // for the last position of the last forward call
    std::vector<LogitLensEntry> logit_lens;          // one per layer, last position of the last forward call

    void clear_records() {
        attention.clear();
        routing.clear();
        top_k.clear();
        logit_lens.clear();
    }
};

}  // namespace archlens
