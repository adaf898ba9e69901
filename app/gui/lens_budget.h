// When the chat asks for the logit lens. The lens runs the final norm and the LM head once per
// layer; with a large vocabulary that is many times a decode step's own cost (Qwen3-0.6B, Q4_K_M,
// one CPU thread: the chat ran at 3.6 tokens/s with the lens on every token, where the CLI decodes
// the same file at 47). The worker therefore asks for the lens on a token only while the time the lens has
// cost so far stays within a share of the generation's time: where it is cheap (small vocabularies,
// the demo models) every token has it, where it is dear it refreshes every few tokens and the chat
// keeps its speed. Each token's snapshot carries its own lens or none; the view shows the latest
// one and says at which position it was taken.
#pragma once
#include <algorithm>

class LensBudget {
  public:
    explicit LensBudget(double share = 0.25) : share_(share) {}

    // Whether the next forward call should run the lens.
    bool wanted() const { return lensMs_ <= share_ * totalMs_; }

    // A forward call's wall time, and whether it ran the lens. The lens's cost is the call's time
    // over the running mean of calls without it (the whole call while there is none yet).
    void record(double ms, bool withLens) {
        ms = std::max(ms, 0.0);
        totalMs_ += ms;
        if (withLens) {
            lensMs_ += std::max(0.0, ms - std::max(plainMs_, 0.0));
        } else {
            plainMs_ = plainMs_ < 0 ? ms : 0.8 * plainMs_ + 0.2 * ms;
        }
    }

    double lensMs() const { return lensMs_; }
    double totalMs() const { return totalMs_; }

  private:
    double share_;
    double totalMs_ = 0, lensMs_ = 0;
    double plainMs_ = -1;  // mean time of a call without the lens (-1: none yet)
};
