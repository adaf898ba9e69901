#include "engine/sampler.h"

#include <algorithm>
#include <cmath>
#include <numeric>

namespace archlens {

int argmax(std::span<const float> v) {
    int best = 0;
    for (size_t i = 1; i < v.size(); ++i)
        if (v[i] > v[size_t(best)]) best = int(i);
    return best;
}

Sampler::Sampler(SamplerParams p) : p_(p), state_(p.seed ^ 0x9E3779B97F4A7C15ull) {}

// splitmix64: small, good enough for sampling, identical on every platform.
double Sampler::uniform() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    return double(z >> 11) * (1.0 / 9007199254740992.0);
}

int Sampler::sample(std::span<const float> logits, std::span<const int> history) {
    std::vector<float> l(logits.begin(), logits.end());
    if (p_.repetition_penalty != 1.f) {
        size_t start = history.size() > size_t(p_.repetition_window) ? history.size() - size_t(p_.repetition_window) : 0;
        std::vector<bool> seen(l.size(), false);
        for (size_t i = start; i < history.size(); ++i) {
            int id = history[i];
            if (id < 0 || size_t(id) >= l.size() || seen[size_t(id)]) continue;
            seen[size_t(id)] = true;
            float& x = l[size_t(id)];
            x = x > 0 ? x / p_.repetition_penalty : x * p_.repetition_penalty;
        }
    }
    if (p_.temperature <= 0.f) return argmax(l);

    std::vector<int> idx(l.size());
    std::iota(idx.begin(), idx.end(), 0);
    size_t n = idx.size();
    if (p_.top_k > 0) {
        // Only the k most probable are ordered (a full sort of Qwen3's 151,936 logits took ~10 ms a
        // token, half a decode step of Qwen3-0.6B on one core): ties to the lower id, the order the
        // stable sort below gives, so the draws are the same.
        n = std::min(n, size_t(p_.top_k));
        std::partial_sort(idx.begin(), idx.begin() + std::ptrdiff_t(n), idx.end(), [&](int a, int b) {
            const float x = l[size_t(a)], y = l[size_t(b)];
            return x > y || (x == y && a < b);
        });
    } else {
        std::stable_sort(idx.begin(), idx.end(), [&](int a, int b) { return l[size_t(a)] > l[size_t(b)]; });
    }
    std::vector<double> pr(n);
    const double mx = l[size_t(idx[0])];
    double sum = 0;
    for (size_t i = 0; i < n; ++i) {
        pr[i] = std::exp((double(l[size_t(idx[i])]) - mx) / p_.temperature);
        sum += pr[i];
    }
    for (auto& v : pr) v /= sum;
    if (p_.min_p > 0.f) {
        size_t keep = 1;
        while (keep < n && pr[keep] >= p_.min_p * pr[0]) ++keep;
        n = keep;
    }
    if (p_.top_p < 1.f) {
        double c = 0;
        size_t keep = 0;
        while (keep < n) {
            c += pr[keep++];
            if (c >= p_.top_p) break;
        }
        n = std::max<size_t>(1, keep);
    }
    double total = 0;
    for (size_t i = 0; i < n; ++i) total += pr[i];
    double r = uniform() * total;
    for (size_t i = 0; i < n; ++i) {
        r -= pr[i];
        if (r <= 0) return idx[i];
    }
    return idx[n - 1];
}

}  // namespace archlens
