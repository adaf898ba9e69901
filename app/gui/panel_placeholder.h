// A reserved dock slot: says what will appear there, so an empty panel reads as intended.
// The live views replace it through MainWindow::setPanelWidget.
#pragma once
#include <QWidget>

class PanelPlaceholder : public QWidget {
    Q_OBJECT
  public:
    PanelPlaceholder(const QString& title, const QString& text, QWidget* parent = nullptr);
};
