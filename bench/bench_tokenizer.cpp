// Tokenizer encode throughput (MB/s, one thread) on ~1 MB of mixed-script text, for a byte-level
// BPE (Qwen3) and a SentencePiece-style BPE (Gemma 3). Target: >= 10 MB/s, the class of the Rust
// `tokenizers` library. Fixtures: $ARCHLENS_FIXTURES or ../shared/fixtures.
#include <benchmark/benchmark.h>

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/tokenizer/tokenizer.h"

namespace {

std::string fixtures_dir() {
    if (const char* env = std::getenv("ARCHLENS_FIXTURES"); env && *env) return env;
    for (const char* p : {"../shared/fixtures", "../../shared/fixtures", "../../../shared/fixtures"})
        if (std::filesystem::exists(p)) return p;
    return "../shared/fixtures";
}

// Deterministic mixed-script text: words drawn pseudo-randomly from several scripts, code,
// numbers, punctuation and emoji, so the per-word cache sees a realistic hit rate.
std::string mixed_text(size_t bytes) {
    static const char* words[] = {
        "the", "router", "picks", "two", "experts", "per", "token", "while", "attention", "heads",
        "sliding", "window", "cache", "memory", "bandwidth", "Quantization", "reduces", "weights",
        "inference", "throughput", "latency", "Mixture-of-Experts", "HTTPServerError", "snake_case",
        "don't", "it's", "we'll", "3.14159", "2025-03-14", "$1,234.56", "0x1F", "42", "1000000",
        "滑动窗口", "把注意力", "限制在", "最近的", "片段里", "混合专家模型", "通过门控网络",
        "カーネルを", "融合すると", "速くなる", "トークナイザー", "배치", "크기를", "늘리면",
        "처리량이", "오른다", "قياس", "الانتباه", "النموذج", "Привет", "проверка", "токенизатора",
        "यह", "परीक्षण", "वाक्य", "ทดสอบ", "การตัดคำ", "café", "naïve", "Ångström", "🚀", "🍕🍕",
        "👨‍👩‍👧", "∀x∈ℝ", "≈", "—", "«guillemets»", "{\"key\":", "[1, 2, 3]", "std::vector<int>",
        "return", "fib(n", "-", "1)", "+=", "->", "#include", "<think>", "</think>"};
    const size_t n = sizeof(words) / sizeof(words[0]);
    std::string s;
    s.reserve(bytes + 64);
    uint64_t state = 0x9E3779B97F4A7C15ull;
    size_t line = 0;
    while (s.size() < bytes) {
        state = state * 6364136223846793005ull + 1442695040888963407ull;
        s += words[(state >> 33) % n];
        uint64_t r = (state >> 20) & 63;
        if (r == 0) s += ".\n";
        else if (r == 1) s += ", ";
        else if (r == 2) s += "\n\n";
        else if (r == 3) s += "    ";
        else s += ' ';
        ++line;
    }
    return s;
}

const archlens::Tokenizer* load(const std::string& name) {
    static std::map<std::string, std::unique_ptr<archlens::Tokenizer>> cache;
    auto& slot = cache[name];
    if (!slot) {
        std::string dir = fixtures_dir() + "/tokenizers/" + name;
        if (!std::filesystem::exists(dir + "/tokenizer.json")) return nullptr;
        slot = archlens::Tokenizer::from_hf_path(dir);
    }
    return slot.get();
}

// warm: the per-word BPE memo persists across iterations (steady state of a long-lived
// tokenizer); cold: it is cleared before every pass (outside the timed region).
void encode_mb(benchmark::State& state, const std::string& name, bool cold) {
    const archlens::Tokenizer* tok = load(name);
    if (!tok) {
        state.SkipWithError(("fixtures missing: " + fixtures_dir() + "/tokenizers/" + name).c_str());
        return;
    }
    static const std::string text = mixed_text(1 << 20);
    size_t n_ids = 0;
    for (auto _ : state) {
        if (cold) {
            state.PauseTiming();
            tok->clear_cache();
            state.ResumeTiming();
        }
        auto ids = tok->encode(text, false);
        n_ids = ids.size();
        benchmark::DoNotOptimize(ids.data());
    }
    state.SetBytesProcessed(int64_t(state.iterations()) * int64_t(text.size()));
    state.counters["MB/s"] = benchmark::Counter(double(text.size()) / 1e6, benchmark::Counter::kIsIterationInvariantRate);
    state.counters["tokens"] = double(n_ids);
}

void BM_encode_qwen3_warm(benchmark::State& s) { encode_mb(s, "qwen3", false); }
void BM_encode_qwen3_cold(benchmark::State& s) { encode_mb(s, "qwen3", true); }
void BM_encode_gemma3_warm(benchmark::State& s) { encode_mb(s, "gemma3", false); }
void BM_encode_gemma3_cold(benchmark::State& s) { encode_mb(s, "gemma3", true); }
BENCHMARK(BM_encode_qwen3_warm)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_encode_qwen3_cold)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_encode_gemma3_warm)->Unit(benchmark::kMillisecond)->MinTime(2.0);
BENCHMARK(BM_encode_gemma3_cold)->Unit(benchmark::kMillisecond)->MinTime(2.0);

}  // namespace

BENCHMARK_MAIN();
