// A horizontal gauge "used / total" with a caption, e.g. the chat's context window
// ("1.2k / 4.1k tokens"). Turns amber past 80% and red past 95% so "almost full" is seen, not read.
#pragma once
#include <QWidget>

class GaugeBar : public QWidget {
    Q_OBJECT
  public:
    explicit GaugeBar(QWidget* parent = nullptr);

    void setValues(qint64 used, qint64 total);
    void setUnit(const QString& unit) {
        unit_ = unit;
        update();
    }
    void setPrefix(const QString& prefix) {
        prefix_ = prefix;
        update();
    }  // "context 1.2k / 4.1k tokens"
    qint64 used() const { return used_; }
    qint64 total() const { return total_; }
    QString caption() const;

    QSize sizeHint() const override;
    QSize minimumSizeHint() const override;

    static QString compactNumber(qint64 n);  // 950, 1.2k, 32k, 1.5M

  protected:
    void paintEvent(QPaintEvent*) override;

  private:
    qint64 used_ = 0, total_ = 0;
    QString unit_ = QStringLiteral("tokens");
    QString prefix_;
};
