// KV cache: bytes per layer as the engine allocated them, coloured by layer kind (global,
// sliding window, chunked, MLA latent, NoPE; shared-KV layers store nothing), live as the
// context grows; beside each bar the outline of what plain multi-head attention would hold for
// the same positions (derived from the spec: the saving GQA, MLA and windows buy); the context
// capacity gauge; and the memory budget weights + KV + buffers. Measured and derived numbers are
// labelled as such.
#pragma once
#include <QWidget>
#include <vector>

#include "widgets/internals_snapshot.h"
#include "widgets/view_export.h"

class GaugeBar;
class QCPAxisRect;
class QCPBars;
class QCPLegend;
class QCPTextElement;
class QCustomPlot;
class QLabel;

class KvCacheView : public QWidget, public ExportableView {
    Q_OBJECT
  public:
    explicit KvCacheView(QWidget* parent = nullptr);
    ~KvCacheView() override;

    void setModel(const InternalsModelPtr& model);
    void clearHistory();
    void setContext(const ContextSnapshotPtr& context);
    void addToken(const TokenSnapshotPtr& token);
    archlens::ProbeConfig probeNeeds() const { return {}; }  // KV bytes come with every snapshot

    // As drawn: the bars' sum (the engine's allocation), per layer, and the MHA outline's sum.
    quint64 totalBytes() const;
    std::vector<quint64> layerBytes() const;
    quint64 mhaEquivalentBytes() const;
    qint64 contextUsed() const { return contextUsed_; }
    QString summary() const;       // the full sentence (tooltip)
    QString shortSummary() const;  // what the status line shows

    QString exportName() const override { return QStringLiteral("kv-cache"); }
    QCustomPlot* exportPlot() const override { return plot_; }
    QString toCsv() const override;
    QJsonDocument toJson() const override;

  protected:
    void resizeEvent(QResizeEvent* e) override;

  private:
    void rebuild();
    std::vector<quint64> mhaPerLayer() const;

    InternalsModelPtr model_;
    std::vector<quint64> bytes_;  // per layer, the engine's allocation
    quint64 engineTotal_ = 0;
    qint64 contextUsed_ = 0, contextSize_ = 0;

    QCustomPlot* plot_;
    QCPTextElement* title_;
    QCPAxisRect *barsRect_, *budgetRect_;
    std::vector<QCPBars*> kindBars_;  // one series per layer kind (legend entry + colour)
    QCPBars* mhaBars_;
    QCPLegend* legend_;
    QCPBars *budgetWeights_, *budgetKv_, *budgetBuffers_;
    GaugeBar* gauge_;
    QLabel* status_;
};
