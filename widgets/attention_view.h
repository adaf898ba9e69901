// Attention map: query × key heatmap of one layer's head (or the mean / max over its heads), fed
// with the engine's captured attention rows as the answer streams, plus a layer × head grid of
// thumbnails to pick from. Rows are the engine's softmax probabilities as captured, never
// recomputed; masked keys (future, outside a sliding/chunked window) are blank, and a window's
// edge is drawn. Long contexts stay readable: zoom and pan, key blocks summed into one cell, log
// colour scale, and the first-token "attention sink" can be hidden so the rest gets the colours.
#pragma once
#include <QElapsedTimer>
#include <QWidget>
#include <limits>
#include <vector>

#include "widgets/internals_snapshot.h"
#include "widgets/view_export.h"

class QCheckBox;
class QComboBox;
class QCPColorMap;
class QCPColorScale;
class QCPCurve;
class QCPItemRect;
class QCPTextElement;
class QCustomPlot;
class QLabel;
class QScrollArea;
class QTimer;
class AttentionThumbnails;

class AttentionView : public QWidget, public ExportableView {
    Q_OBJECT
  public:
    enum class Aggregate { Head, Mean, Max };

    explicit AttentionView(QWidget* parent = nullptr);
    ~AttentionView() override;

    void setModel(const InternalsModelPtr& model);       // forgets every captured row
    void clearHistory();                                 // a new conversation
    void setContext(const ContextSnapshotPtr& context);  // an answer starts (may reuse a prefix)
    void addToken(const TokenSnapshotPtr& token);
    // Only the layer/head on screen, or every layer and head while the thumbnail grid shows.
    archlens::ProbeConfig probeNeeds() const;

    void setLayer(int layer);
    void setHead(int head);  // switches the aggregate back to a single head
    void setAggregate(Aggregate a);
    void setHideSink(bool on);
    void setLogScale(bool on);
    void setKeyBlock(int keys);  // 0: automatic (one cell per key up to 512 keys)
    void setThumbnailsVisible(bool on);
    int layer() const { return layer_; }
    int head() const { return head_; }
    Aggregate aggregate() const { return aggregate_; }
    bool thumbnailsVisible() const;

    // The map as drawn: the value of cell (query, key), summed over the key's block; NaN where
    // nothing is drawn (masked, hidden sink, not captured). Rebuilds first if a token is pending.
    double cellValue(qint64 query, qint64 key) const;
    int keyBlock() const { return block_; }
    double maxShown() const { ensureBuilt(); return maxShown_; }  // the largest cell drawn
    int fullRebuilds() const { return fullRebuilds_; }  // whole-map rebuilds so far (tests)
    qint64 selectedQuery() const { return selectedQuery_; }
    QString cellText(qint64 query, qint64 key) const;  // the hover text
    QCustomPlot* plot() const { return plot_; }
    void refresh();  // rebuild now (normally coalesced to a few per second)

    QString exportName() const override;
    QCustomPlot* exportPlot() const override { return plot_; }
    QString toCsv() const override;
    QJsonDocument toJson() const override;

  public slots:
    void selectQuery(qint64 pos);  // highlights the row and scrolls it into view

  signals:
    void probeNeedsChanged();
    void querySelected(qint64 pos);  // a row was clicked

  private:
    struct Row {
        qint64 keyBegin = 0;
        int block =
            0;  // keys per stored value: 1 = as captured, >1 = summed to save memory; 0 = absent
        std::vector<float> v;
    };
    void schedule();
    void rebuildControls();
    void rebuildMap();
    void updateTicks();
    void updateStatus();
    void storeRow(const archlens::AttentionRow& r);
    void enforceBudget();
    std::vector<float> combinedRow(qint64 q, qint64* keyBegin, int* block) const;
    void ensureBuilt() const;
    void onHover(QMouseEvent* e);
    void onClick(QMouseEvent* e);
    int nHeads(int layer) const;
    qint64 windowBegin(qint64 q) const;  // first key the layer lets query q see
    void invalidateMap() { mapValid_ = false; }
    void fillMapRows();  // sums the rows not drawn yet that have arrived into their cells

    InternalsModelPtr model_;
    ContextTokens tokens_;
    std::vector<std::vector<std::vector<Row>>> rows_;  // [layer][head][query position]
    size_t storedFloats_ = 0, budgetRetryAt_ = 0;
    int layer_ = 0, head_ = 0;
    Aggregate aggregate_ = Aggregate::Head;
    bool hideSink_ = false, logScale_ = false;
    int keyBlockSetting_ = 0, block_ = 1;
    qint64 nQueries_ = 0, nKeys_ = 0;
    qint64 selectedQuery_ = -1;
    bool dirty_ = false, keepView_ = false;
    double maxShown_ = 0;

    QComboBox *layerBox_, *headBox_, *blockBox_;
    QCheckBox *sinkBox_, *logBox_, *gridBox_;
    QCustomPlot* plot_;
    QCPColorMap* map_;
    QCPColorScale* scale_;
    QCPCurve* windowEdge_;
    QCPItemRect* rowMark_;
    QCPTextElement* title_;
    QLabel* status_;
    QScrollArea* thumbScroll_;
    AttentionThumbnails* thumbs_;
    QTimer* timer_;
    bool updatingControls_ = false;
    QElapsedTimer thumbClock_;
    QSize lastAxisSize_;
    double shownRows_ = 0, shownKeys_ = 0;  // the map's extent at the last rebuild
    // The map grows with the stream: rows already drawn stay, each refresh adds the new ones.
    // The data is allocated with headroom (the extra cells stay NaN, outside the shown range);
    // any change of what is drawn (layer, head, aggregate, sink, key block, a rewritten row,
    // a new context) rebuilds it whole.
    // A row is drawn once, when it arrives (the newest position's row comes with the next token).
    bool mapValid_ = false;
    std::vector<char> rowDrawn_;  // [query position]
    qint64 firstUndrawn_ = 0, edgeRows_ = 0;
    int fullRebuilds_ = 0;
    int capRows_ = 0, capCols_ = 0, mapBlock_ = 0;
    double mapMax_ = 0, mapMin_ = 1;
    bool thumbsStale_ = true, thumbPending_ = false;
};
