#include "widgets/view_export.h"

#include <qcustomplot.h>

#include <QFile>
#include <QFileDialog>
#include <QFileInfo>
#include <QMenu>
#include <QSaveFile>
#include <QSvgGenerator>
#include <QToolButton>

bool ExportableView::exportTo(const QString& path, QString* error) const {
    const QString suffix = QFileInfo(path).suffix().toLower();
    if (suffix == u"png") return viewExport::savePng(exportPlot(), path, error);
    if (suffix == u"svg") return viewExport::saveSvg(exportPlot(), path, exportName(), error);
    if (suffix == u"csv") return viewExport::saveText(path, toCsv().toUtf8(), error);
    if (suffix == u"json")
        return viewExport::saveText(path, toJson().toJson(QJsonDocument::Indented), error);
    if (error)
        *error =
            QObject::tr("Unknown export format '%1': use .png, .svg, .csv or .json.").arg(suffix);
    return false;
}

namespace viewExport {

bool savePng(QCustomPlot* plot, const QString& path, QString* error) {
    // Twice the on-screen resolution: sharp in slides and papers.
    if (plot && plot->savePng(path, plot->width(), plot->height(), 2.0)) return true;
    if (error) *error = QObject::tr("Could not write %1.").arg(path);
    return false;
}

bool saveSvg(QCustomPlot* plot, const QString& path, const QString& title, QString* error) {
    if (!plot) return false;
    QSvgGenerator gen;
    gen.setFileName(path);
    gen.setSize(plot->size());
    gen.setViewBox(QRect(QPoint(0, 0), plot->size()));
    gen.setTitle(title);
    gen.setDescription(QStringLiteral("ArchLens export"));
    QCPPainter painter;
    if (!painter.begin(&gen)) {
        if (error) *error = QObject::tr("Could not write %1.").arg(path);
        return false;
    }
    plot->toPainter(&painter, plot->width(), plot->height());
    painter.end();
    if (QFileInfo(path).size() > 0) return true;
    if (error) *error = QObject::tr("Could not write %1.").arg(path);
    return false;
}

bool saveText(const QString& path, const QByteArray& bytes, QString* error) {
    QSaveFile f(path);
    if (f.open(QIODevice::WriteOnly) && f.write(bytes) == bytes.size() && f.commit()) return true;
    if (error) *error = QObject::tr("Could not write %1: %2").arg(path, f.errorString());
    return false;
}

QString csvField(const QString& s) {
    if (!s.contains(u',') && !s.contains(u'"') && !s.contains(u'\n') && !s.contains(u'\r'))
        return s;
    QString q = s;
    q.replace(u'"', QStringLiteral("\"\""));
    return u'"' + q + u'"';
}

QToolButton* makeExportButton(QWidget* parent, const ExportableView* view) {
    auto* b = new QToolButton(parent);
    b->setText(QObject::tr("Export"));
    b->setToolTip(QObject::tr("Save this view as PNG or SVG, or its data as CSV or JSON"));
    b->setPopupMode(QToolButton::InstantPopup);
    auto* menu = new QMenu(b);
    const struct {
        const char* label;
        const char* suffix;
        const char* filter;
    } kinds[] = {{"PNG image…", "png", "PNG images (*.png)"},
                 {"SVG figure…", "svg", "SVG figures (*.svg)"},
                 {"Data as CSV…", "csv", "CSV (*.csv)"},
                 {"Data as JSON…", "json", "JSON (*.json)"}};
    for (const auto& k : kinds) {
        QAction* a = menu->addAction(QObject::tr(k.label));
        const QString suffix = QString::fromLatin1(k.suffix), filter = QObject::tr(k.filter);
        QObject::connect(a, &QAction::triggered, b, [b, view, suffix, filter] {
            const QString file = QFileDialog::getSaveFileName(
                b, QObject::tr("Export"),
                QStringLiteral("archlens-%1.%2").arg(view->exportName(), suffix), filter);
            if (file.isEmpty()) return;
            QString err;
            if (!view->exportTo(file, &err))
                QMessageBox::warning(b, QObject::tr("Export failed"), err);
        });
    }
    b->setMenu(menu);
    return b;
}

QCPColorGradient viridis() {
    // ref: matplotlib _cm_listed.py viridis, every 32nd entry of the 256-entry table.
    static const unsigned kStops[] = {0x440154, 0x472c7a, 0x3b518b, 0x2c718e, 0x21908d,
                                      0x27ad81, 0x5cc863, 0xaadc32, 0xfde725};
    QCPColorGradient g;
    g.clearColorStops();
    const int n = int(std::size(kStops));
    for (int i = 0; i < n; ++i) g.setColorStopAt(double(i) / (n - 1), QColor::fromRgb(kStops[i]));
    g.setColorInterpolation(QCPColorGradient::ciRGB);
    g.setNanHandling(QCPColorGradient::nhNanColor);
    g.setNanColor(QColor(0xf2, 0xf2, 0xf2));
    return g;
}

}  // namespace viewExport
