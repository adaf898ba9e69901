#include "app/gui/panel_placeholder.h"

#include <QLabel>
#include <QVBoxLayout>

PanelPlaceholder::PanelPlaceholder(const QString& title, const QString& text, QWidget* parent)
    : QWidget(parent) {
    auto* layout = new QVBoxLayout(this);
    auto* label = new QLabel(QStringLiteral("<div style='color:#8a8f98'><b>%1</b><br>%2</div>")
                                 .arg(title.toHtmlEscaped(), text.toHtmlEscaped()),
                             this);
    label->setAlignment(Qt::AlignCenter);
    label->setWordWrap(true);
    layout->addWidget(label);
    setMinimumSize(120, 80);
}
