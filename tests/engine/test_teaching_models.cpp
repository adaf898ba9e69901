// The constructed teaching models do what the lessons say they do.
#include <QtTest>
#include <random>

#include "engine/model/model.h"
#include "engine/sampler.h"
#include "engine/session.h"
#include "engine/teaching_models.h"

using namespace archlens;

class TestTeachingModels : public QObject {
    Q_OBJECT
private slots:
    // On random sequences repeated twice, the induction head attends from each second-half
    // position to the token after that token's earlier occurrence, and the model predicts it.
    void induction_head_continues_repeated_sequences() {
        auto m = Model::load("demo:induction");
        const int n = 20, runs = 30;
        std::mt19937 rng(7);
        int attn_ok = 0, attn_total = 0, pred_ok = 0, pred_total = 0, prev_ok = 0, prev_total = 0;
        for (int r = 0; r < runs; ++r) {
            std::vector<int> pool(290);
            std::iota(pool.begin(), pool.end(), 0);
            std::shuffle(pool.begin(), pool.end(), rng);
            std::vector<int> seq(pool.begin(), pool.begin() + n);
            std::vector<int> ids = seq;
            ids.insert(ids.end(), seq.begin(), seq.end());
            Session s(*m);
            s.probe_config().attention = true;
            s.probe_config().attn_heads = {0};
            auto logits = s.forward(ids, true);
            const int V = m->spec().vocab;
            for (auto& row : s.probes().attention) {
                const int64_t p = row.query_pos;
                const int64_t best = row.key_begin + int64_t(std::max_element(row.probs.begin(), row.probs.end()) - row.probs.begin());
                if (row.layer == 0 && p > 0) {
                    prev_ok += best == p - 1;
                    ++prev_total;
                }
                if (row.layer == 1 && p >= n) {
                    attn_ok += best == p - n + 1;
                    ++attn_total;
                }
            }
            for (int p = n; p < 2 * n - 1; ++p) {
                std::span<const float> l(logits.data() + size_t(p) * size_t(V), size_t(V));
                pred_ok += argmax(l) == ids[size_t(p + 1)];
                ++pred_total;
            }
        }
        qInfo("previous-token head %d/%d, induction head %d/%d, predictions %d/%d", prev_ok, prev_total, attn_ok, attn_total, pred_ok,
              pred_total);
        QCOMPARE(prev_ok, prev_total);
        QVERIFY(attn_ok >= 0.95 * attn_total);
        QVERIFY(pred_ok >= 0.95 * pred_total);
    }

    void router_sends_every_digit_to_the_digit_expert() {
        auto m = Model::load("demo:moe-router");
        const int V = m->spec().vocab;
        std::vector<int> ids;
        const std::string text = "Call 555-0199 at 10:30, or 42 times!";
        for (unsigned char c : text) ids.push_back(c);  // byte tokens of the synthetic vocabulary
        Session s(*m);
        s.probe_config().routing = true;
        s.forward(ids);
        int digits = 0;
        for (auto& r : s.probes().routing) {
            const int cls = teaching::char_class(ids[size_t(r.pos)], V);
            QCOMPARE(r.experts.front(), cls);
            digits += cls == 0;
        }
        QCOMPARE(digits, 13 * m->spec().n_layers);  // 13 digits, every MoE layer
    }
};

QTEST_APPLESS_MAIN(TestTeachingModels)
#include "test_teaching_models.moc"
