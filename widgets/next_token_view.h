// Next token: the top-k probabilities the model gave for the token just generated (the chosen one
// highlighted), and the logit lens of that step: each layer's residual stream (last position)
// through the final norm and LM head, its top token and probability — where in depth the answer
// forms. Both are the engine's probes (plain softmax of the logits, before any sampler shaping).
#pragma once
#include <QWidget>
#include <vector>

#include "widgets/internals_snapshot.h"
#include "widgets/view_export.h"

class QCheckBox;
class QCPAxisRect;
class QCPBars;
class QCPTextElement;
class QCustomPlot;
class QLabel;

class NextTokenView : public QWidget, public ExportableView {
    Q_OBJECT
  public:
    static constexpr int kTopK = 10;

    explicit NextTokenView(QWidget* parent = nullptr);
    ~NextTokenView() override;

    void setModel(const InternalsModelPtr& model);
    void clearHistory();
    void setContext(const ContextSnapshotPtr& context);
    void addToken(const TokenSnapshotPtr& token);
    archlens::ProbeConfig probeNeeds() const;  // top-k always; the logit lens while it shows
    void setLensVisible(bool on);
    bool lensVisible() const;

    // As drawn: ids of the top-k bars (most probable first) and their probabilities; the lens's
    // token per layer (-1 where not captured). The lens shown is the latest token's that carried
    // one (the chat computes it only while it is cheap enough, app/gui/lens_budget.h);
    // lensPosition() is its position (-1: none yet).
    std::vector<int> shownIds() const { return ids_; }
    std::vector<float> shownProbs() const { return probs_; }
    int topTokenId() const { return ids_.empty() ? -1 : ids_.front(); }
    int chosenTokenId() const { return chosen_; }
    std::vector<int> lensTokens() const;
    qint64 lensPosition() const { return lensSnap_ ? lensSnap_->position : -1; }

    QString exportName() const override { return QStringLiteral("next-token"); }
    QCustomPlot* exportPlot() const override { return plot_; }
    QString toCsv() const override;
    QJsonDocument toJson() const override;

  signals:
    void probeNeedsChanged();

  protected:
    void resizeEvent(QResizeEvent* e) override;

  private:
    void rebuild();

    InternalsModelPtr model_;
    TokenSnapshotPtr last_;
    TokenSnapshotPtr lensSnap_;  // the latest token whose probes hold a logit lens
    std::vector<int> ids_;
    std::vector<float> probs_;
    QStringList texts_;
    int chosen_ = -1;
    qint64 position_ = -1;

    QCheckBox* lensBox_;
    QCustomPlot* plot_;
    QCPTextElement* title_;
    QCPAxisRect *topRect_, *lensRect_;
    QCPBars *topBars_, *chosenBar_, *lensBars_, *lensFinal_;
    QLabel* status_;
};
