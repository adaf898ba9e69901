#include "widgets/gauge_bar.h"

#include <QPainter>
#include <QPainterPath>
#include <algorithm>

GaugeBar::GaugeBar(QWidget* parent) : QWidget(parent) {
    setSizePolicy(QSizePolicy::Expanding, QSizePolicy::Fixed);
}

void GaugeBar::setValues(qint64 used, qint64 total) {
    if (used == used_ && total == total_) return;
    used_ = used;
    total_ = total;
    setToolTip(tr("Context: %1 of %2 %3 used").arg(used_).arg(total_).arg(unit_));
    update();
}

QString GaugeBar::compactNumber(qint64 n) {
    if (n < 1000) return QString::number(n);
    if (n < 10000) return QString::number(n / 1000.0, 'f', 1) + u'k';
    if (n < 1000000) return QString::number(qRound64(n / 1000.0)) + u'k';
    return QString::number(n / 1e6, 'f', 1) + u'M';
}

QString GaugeBar::caption() const {
    const QString body =
        QStringLiteral("%1 / %2 %3").arg(compactNumber(used_), compactNumber(total_), unit_);
    return prefix_.isEmpty() ? body : prefix_ + u' ' + body;
}

QSize GaugeBar::sizeHint() const {
    return {220, fontMetrics().height() + 8};
}

QSize GaugeBar::minimumSizeHint() const {
    return {120, fontMetrics().height() + 8};
}

void GaugeBar::paintEvent(QPaintEvent*) {
    QPainter p(this);
    p.setRenderHint(QPainter::Antialiasing);
    const QRectF r = QRectF(rect()).adjusted(0.5, 0.5, -0.5, -0.5);
    const double frac = total_ > 0 ? std::clamp(double(used_) / double(total_), 0.0, 1.0) : 0.0;
    QPainterPath frame;
    frame.addRoundedRect(r, 4, 4);
    p.fillPath(frame, palette().color(QPalette::Base));
    QColor fill = frac > 0.95  ? QColor(215, 48, 39)
                  : frac > 0.8 ? QColor(244, 165, 60)
                               : QColor(69, 117, 180);
    p.save();
    p.setClipPath(frame);
    p.fillRect(QRectF(r.left(), r.top(), r.width() * frac, r.height()), fill);
    p.restore();
    p.setPen(palette().color(QPalette::Mid));
    p.drawPath(frame);
    // The caption is centred: once the fill passes the middle it sits on the fill colour.
    const QString text = caption();
    p.setPen(frac > 0.5 ? Qt::white : palette().color(QPalette::Text));
    p.drawText(rect(), Qt::AlignCenter, text);
}
