// "Open catalog model…": the built-in catalog (resources/catalog) listed with each model's family,
// architecture and the published parameter counts; picking one opens it architecture only.
#pragma once
#include <QDialog>

class QTreeWidget;

struct CatalogEntryInfo {
    QString name;       // "deepseek-v3"
    QString family;     // "deepseek · MLA + MoE"
    QString published;  // "671B (36.6B active)"
    QString source;     // where the numbers came from
};
QList<CatalogEntryInfo> catalogEntries();

class CatalogDialog : public QDialog {
    Q_OBJECT
public:
    explicit CatalogDialog(QWidget* parent = nullptr);
    QTreeWidget* tree() const { return tree_; }
    QString selectedName() const;  // "" when none

signals:
    void catalogModelChosen(const QString& source);  // "catalog:NAME"

private:
    QTreeWidget* tree_;
};
