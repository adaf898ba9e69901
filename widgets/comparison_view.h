// Two architectures side by side: diagrams aligned block to block with differences outlined, a
// hyperparameter table with differing rows highlighted, parameter and KV-per-token bars, and KV
// bytes against context length for both on one plot. Preset pairs are one click each.
#pragma once
#include <QList>
#include <QPointF>
#include <QVector>
#include <QWidget>
#include <functional>
#include <optional>

#include "engine/model/spec.h"
#include "widgets/diagram_layout.h"

class QComboBox;
class QTableWidget;
class QCustomPlot;

namespace archlens {

class DiagramCanvas;

struct ComparisonPreset {
    QString label;  // "DeepSeek-V3 vs Kimi K2"
    QString a, b;   // catalog names
};
QList<ComparisonPreset> comparisonPresets();

struct ComparisonRow {
    QString key, label, a, b;
    bool differs = false;
};
QList<ComparisonRow> comparisonRows(const ModelSpec& a, const ModelSpec& b);

// KV bytes (bf16) at context lengths from 256 to the larger trained context, doubling.
QVector<QPointF> kvCurve(const ModelSpec& s, quint64 maxContext, double bytesPerValue = 2.0);

// The picture `compare --out` writes: both diagrams aligned, bars, and the table.
bool exportComparison(const ModelSpec& a, const QString& nameA, const ModelSpec& b, const QString& nameB, const QString& path,
                      QString* error = nullptr, qreal pngScale = 1.25);

class ComparisonView : public QWidget {
    Q_OBJECT
public:
    explicit ComparisonView(QWidget* parent = nullptr);

    // Turns a catalog name into a spec for the preset box; without one the view emits presetRequested.
    using SpecLoader = std::function<std::optional<ModelSpec>(const QString& catalogName)>;
    void setSpecLoader(SpecLoader loader) { m_loader = std::move(loader); }

    void setModels(const ModelSpec& a, const QString& nameA, const ModelSpec& b, const QString& nameB);
    bool loadPreset(int index);  // via the loader; false when it cannot

    const DiagramLayout& leftLayout() const;
    const DiagramLayout& rightLayout() const;
    const QList<ComparisonRow>& rows() const { return m_rows; }
    int differingRows() const;
    QVector<QPointF> kvCurveData(int side) const { return side == 0 ? m_curveA : m_curveB; }
    int plottedCurves() const;
    bool exportTo(const QString& path, QString* error = nullptr) const;

signals:
    void presetRequested(const QString& a, const QString& b);

private:
    SpecLoader m_loader;
    ModelSpec m_a, m_b;
    QString m_nameA, m_nameB;
    bool m_has = false;
    QList<ComparisonRow> m_rows;
    QVector<QPointF> m_curveA, m_curveB;
    QComboBox* m_presets;
    DiagramCanvas* m_left;
    DiagramCanvas* m_right;
    QTableWidget* m_table;
    QCustomPlot* m_kvPlot;
    QCustomPlot* m_bars;
};

}  // namespace archlens
