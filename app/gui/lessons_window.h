// The lessons window: a list of guided lessons (resources/lessons/*.json), each walked through in
// steps beside the architecture diagram with the lesson's block lit and a live view fed by the
// lesson's demo model (run on a worker thread). One control per lesson changes the idea in the
// catalog config and shows the exact numbers the engine derives from the edited spec.
// Presentation mode: full screen, large type, ←/→ steps, PgUp/PgDn lessons, Esc to leave.
// Every screen can be captured (images, PDF) without a command line, for handouts and tests.
#pragma once
#include <QImage>
#include <QList>
#include <QWidget>

#include "app/gui/lessons_model.h"

class AttentionView;
class KvCacheView;
class NextTokenView;
class QCheckBox;
class QComboBox;
class QLabel;
class QListWidget;
class QProgressBar;
class QPushButton;
class QSlider;
class QStackedWidget;
class QTextBrowser;
class QTimer;
class RoutingView;

namespace archlens {
class DiagramView;
}

namespace lessons {

class LessonRunner;
struct DemoRun;
class KvCurveWidget;

class LessonsWindow : public QWidget {
    Q_OBJECT
public:
    explicit LessonsWindow(QWidget* parent = nullptr);
    ~LessonsWindow() override;

    const QList<Lesson>& lessons() const { return lessons_; }
    int lessonCount() const { return int(lessons_.size()); }
    int currentLesson() const { return current_; }
    int step() const { return step_; }
    int stepCount() const;  // the lesson's steps + "check yourself"
    bool answerShown() const { return answerShown_; }

    // The control: primary value (value list) or choice index; secondary value or toggle 0/1.
    ControlState controlState() const { return state_; }
    void setControlValue(int valueOrChoice);
    void setControlSecond(int valueOrToggle);
    const LessonOutcome& outcome() const { return outcome_; }
    QString numbersText() const;  // the readout as displayed (plain text)
    QString stepText() const;     // the current step as displayed (placeholders filled)
    QString controlError() const { return controlError_; }

    archlens::DiagramView* diagram() const { return diagram_; }
    QString litBlock() const;  // the diagram box lit for this lesson / control state
    ViewKind liveViewKind() const;
    QWidget* liveView() const;
    AttentionView* attentionView() const { return attention_; }
    RoutingView* routingView() const { return routing_; }
    KvCacheView* kvCacheView() const { return kvCache_; }
    NextTokenView* nextTokenView() const { return nextToken_; }
    KvCurveWidget* kvCurve() const { return curve_; }

    // The demo run behind the live view: done when the latest request has come back.
    bool demoReady() const { return demoReady_; }
    QString demoError() const { return demoError_; }
    QString demoName() const { return demoName_; }
    bool waitForDemo(int timeoutMs = 60000);  // spins the event loop (tests, capture)

    bool presentation() const { return presentation_; }

    // Captures every step of a lesson (waiting for its demo), as the window shows them.
    QList<QImage> captureLesson(int lesson);
    bool exportImages(int lesson, const QString& dir, QStringList* written = nullptr, QString* error = nullptr);
    bool exportPdf(int lesson, const QString& path, QString* error = nullptr);

public slots:
    void openLesson(int index);
    void setStep(int step);
    void nextStep();
    void previousStep();
    void nextLesson();
    void previousLesson();
    void showAnswer();
    void setPresentation(bool on);
    void togglePresentation() { setPresentation(!presentation_); }

signals:
    void lessonChanged(int index);
    void stepChanged(int step);
    void demoFinished();

protected:
    void keyPressEvent(QKeyEvent* e) override;
    bool eventFilter(QObject* o, QEvent* e) override;

private:
    void buildUi();
    void buildControl();
    void applyOutcome();
    void scrollToLitBlock();
    void showStep();
    void startDemo();
    void onDemoFinished(const DemoRun& run);
    void updateProgress();
    void applyFonts();
    void exportDialog(bool pdf);

    QList<Lesson> lessons_;
    QStringList loadErrors_;
    int current_ = -1, step_ = 0;
    bool answerShown_ = false, presentation_ = false;
    ControlState state_;
    LessonOutcome outcome_;
    QString controlError_;
    QString demoKey_, demoName_, demoError_;
    bool demoReady_ = false;
    bool updatingControl_ = false;

    LessonRunner* runner_;
    QTimer* demoTimer_;
    QListWidget* list_;
    QLabel *title_, *progressText_, *stepTitle_, *numbers_, *note_, *controlLabel_, *controlValue_, *secondLabel_, *secondValue_,
        *controlHelp_, *viewStatus_;
    QProgressBar* progress_;
    QTextBrowser* text_;
    QPushButton *prev_, *next_, *answer_, *present_, *exportPdf_, *exportImages_;
    QSlider *slider_, *secondSlider_;
    QComboBox* choice_;
    QCheckBox* toggle_;
    archlens::DiagramView* diagram_;
    QStackedWidget* views_;
    AttentionView* attention_;
    RoutingView* routing_;
    KvCacheView* kvCache_;
    NextTokenView* nextToken_;
    KvCurveWidget* curve_;
    QWidget* sidebar_;
    Qt::WindowStates normalState_;
};

// KV memory against context length: the configured model and a baseline (all layers global).
class KvCurveWidget : public QWidget {
    Q_OBJECT
public:
    explicit KvCurveWidget(QWidget* parent = nullptr);
    void setCurve(const std::vector<CurvePoint>& points, const QString& label, const QString& baselineLabel);
    const std::vector<CurvePoint>& points() const { return points_; }
    QSize sizeHint() const override { return {420, 200}; }

protected:
    void paintEvent(QPaintEvent*) override;

private:
    std::vector<CurvePoint> points_;
    QString label_, baselineLabel_;
};

}  // namespace lessons
