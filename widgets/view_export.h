// Export shared by the live views (UX.md: "every view exports PNG and SVG, with title, axes and
// legend, and its data as CSV/JSON"). A view names its main plot and serialises its data; the
// format follows the file suffix. SVG goes through QCustomPlot's own painter, so axes, labels and
// legends stay vectors (only colour-map cells are images, as in any heatmap figure).
#pragma once
#include <QJsonDocument>
#include <QString>

class QCPColorGradient;
class QCustomPlot;
class QToolButton;
class QWidget;

class ExportableView {
  public:
    virtual ~ExportableView() = default;
    virtual QString exportName() const = 0;       // file-name stem: "attention-L3-H1"
    virtual QCustomPlot* exportPlot() const = 0;  // the figure (with its title) PNG/SVG save
    virtual QString toCsv() const = 0;
    virtual QJsonDocument toJson() const = 0;

    // .png, .svg, .csv or .json; false with a message a user can act on otherwise.
    bool exportTo(const QString& path, QString* error = nullptr) const;
};

namespace viewExport {

bool savePng(QCustomPlot* plot, const QString& path, QString* error = nullptr);
bool saveSvg(QCustomPlot* plot, const QString& path, const QString& title,
             QString* error = nullptr);
bool saveText(const QString& path, const QByteArray& bytes, QString* error = nullptr);
QString csvField(const QString& s);  // quoted when it holds a comma, quote or newline

// An "Export ▾" button (PNG, SVG, CSV, JSON) that asks for a file and writes it.
QToolButton* makeExportButton(QWidget* parent, const ExportableView* view);

// Sequential, perceptually uniform (UX.md): viridis, sampled from matplotlib's table.
QCPColorGradient viridis();

}  // namespace viewExport
