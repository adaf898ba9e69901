// Expert routing: for a chosen MoE layer, tokens × experts (colour = the gate weight the engine
// applied, each selected expert outlined; or the router's probability over every expert), the
// shared expert(s) drawn apart as always on; below, the layers × experts load map of the whole
// conversation and the chosen layer's load histogram with its imbalance (max / mean). Everything
// is the engine's routing probe and its per-session expert counts, as recorded.
#pragma once
#include <QWidget>
#include <vector>

#include "widgets/internals_snapshot.h"
#include "widgets/view_export.h"

class QCPAxisRect;
class QCPBars;
class QCPColorMap;
class QCPColorScale;
class QCPGraph;
class QCPItemRect;
class QCPItemStraightLine;
class QCPItemText;
class QCPLayoutGrid;
class QCPTextElement;
class QComboBox;
class QCustomPlot;
class QLabel;
class QTimer;

class RoutingView : public QWidget, public ExportableView {
    Q_OBJECT
  public:
    enum class Colour { GateWeight, RouterProbability };

    explicit RoutingView(QWidget* parent = nullptr);
    ~RoutingView() override;

    void setModel(const InternalsModelPtr& model);
    void clearHistory();
    void setContext(const ContextSnapshotPtr& context);
    void addToken(const TokenSnapshotPtr& token);
    archlens::ProbeConfig probeNeeds() const;  // routing on when the model has MoE layers

    void setLayer(int layer);  // a MoE layer; others are ignored
    void setColour(Colour c);
    int layer() const { return layer_; }
    std::vector<int> moeLayers() const;

    // As drawn (rebuilding first if a token is pending): the experts outlined for the token at
    // `pos` in the chosen layer, ascending; the heatmap cell; the histogram; max/mean imbalance.
    std::vector<int> markedExperts(qint64 pos) const;
    double cellValue(qint64 pos, int expert) const;
    std::vector<double> loadHistogram() const;
    double imbalance() const;
    QString tokenText(qint64 pos) const;  // the per-token tooltip
    void refresh();

    QString exportName() const override;
    QCustomPlot* exportPlot() const override { return plot_; }
    QString toCsv() const override;
    QJsonDocument toJson() const override;

  signals:
    void probeNeedsChanged();

  protected:
    bool eventFilter(QObject* o, QEvent* e) override;

private:
    struct Choice {
        std::vector<int> experts;
        std::vector<float> weights;
        std::vector<float> probs;
    };
    void schedule();
    void ensureBuilt() const;
    void rebuild();
    void rebuildControls();
    void onHover(QMouseEvent* e);
    int nExperts(int layer) const;
    int nShared(int layer) const;

    InternalsModelPtr model_;
    ContextTokens tokens_;
    std::vector<std::vector<Choice>> choices_;  // [layer][position]
    std::vector<std::vector<uint64_t>> load_;   // [layer][expert]: the engine's session counts
    int layer_ = -1;
    Colour colour_ = Colour::GateWeight;
    qint64 nPos_ = 0;
    bool dirty_ = false, keepView_ = false, updatingControls_ = false;

    QComboBox *layerBox_, *colourBox_;
    QCustomPlot* plot_;
    QCPTextElement* title_;
    QCPAxisRect *tokRect_, *loadRect_, *histRect_;
    QCPColorMap *tokMap_, *loadMap_;
    QCPColorScale *tokScale_, *loadScale_;
    QCPGraph* marks_;
    QCPItemRect* sharedBand_;
    QCPItemText* sharedText_;
    QCPBars* hist_;
    QCPItemStraightLine* meanLine_;
    QLabel* status_;
    QTimer* timer_;
    QCPLayoutGrid* bottom_;  // load map + histogram, out of the layout while the plot is short
    bool bottomShown_ = true;
    int shownCols_ = 0;  // heatmap width at the last rebuild
};
