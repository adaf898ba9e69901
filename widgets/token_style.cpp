#include "widgets/token_style.h"

#include <algorithm>
#include <cmath>

namespace tokenStyle {

QColor probabilityColor(float p) {
    if (p < 0) return QColor(Qt::transparent);
    // t = 0 at p = 1, t = 1 at p <= 1e-3.
    const double t = std::clamp(-std::log10(std::max<double>(p, 1e-6)) / 3.0, 0.0, 1.0);
    // Single-hue ramp (white -> orange -> red-orange): readable under black text and safe for
    // the common colour-vision deficiencies, because only lightness carries the value.
    struct Stop {
        double t;
        int r, g, b;
    };
    static const Stop stops[] = {
        {0.0, 255, 255, 255}, {0.35, 254, 232, 200}, {0.7, 253, 187, 132}, {1.0, 239, 118, 82}};
    for (size_t i = 1; i < std::size(stops); ++i) {
        if (t <= stops[i].t) {
            const Stop& a = stops[i - 1];
            const Stop& b = stops[i];
            const double u = (t - a.t) / (b.t - a.t);
            return QColor(int(a.r + u * (b.r - a.r)), int(a.g + u * (b.g - a.g)),
                          int(a.b + u * (b.b - a.b)));
        }
    }
    return QColor(stops[3].r, stops[3].g, stops[3].b);
}

QString visibleText(const QString& text) {
    QString out;
    out.reserve(text.size());
    for (QChar c : text) {
        if (c == u' ')
            out += QChar(0x00B7);
        else if (c == u'\n')
            out += QChar(0x23CE);
        else if (c == u'\t')
            out += QChar(0x2192);
        else if (c == u'\r')
            out += QStringLiteral("\\r");
        else if (c.category() == QChar::Other_Control)
            out += QStringLiteral("\\x%1").arg(c.unicode(), 2, 16, QChar(u'0'));
        else
            out += c;
    }
    return out;
}

QString percent(float p) {
    if (p < 0) return QStringLiteral("?");
    const double v = double(p) * 100.0;
    if (v < 0.01) return QStringLiteral("<0.01%");
    if (v < 1) return QString::number(v, 'f', 2) + u'%';
    return QString::number(v, 'f', 1) + u'%';
}

QString tokenTooltip(const ChatToken& t) {
    QString html = QStringLiteral("<b>%1</b> &nbsp;<span style='color:#666'>id %2 · p = %3</span>")
                       .arg(visibleText(t.text).toHtmlEscaped())
                       .arg(t.id)
                       .arg(percent(t.prob));
    if (!t.topK.empty()) {
        html += QStringLiteral("<table cellspacing=0 cellpadding=1 style='margin-top:4px'>");
        for (const TokenAlternative& a : t.topK) {
            const bool chosen = a.id == t.id;
            html +=
                QStringLiteral(
                    "<tr><td style='background:%1'>&nbsp;%2%3%4&nbsp;</td><td "
                    "align=right>&nbsp;%5</td>"
                    "<td style='color:#888'>&nbsp;%6</td></tr>")
                    .arg(probabilityColor(a.prob).name(), chosen ? "<b>" : "",
                         visibleText(a.text).toHtmlEscaped(), chosen ? "</b>" : "", percent(a.prob))
                    .arg(a.id);
        }
        html += QStringLiteral("</table>");
    }
    return html;
}

}  // namespace tokenStyle
