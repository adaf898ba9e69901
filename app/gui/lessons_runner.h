// Runs a lesson's demo model through the engine off the UI thread: builds the demo (or a control's
// variant of it, written once into the demo cache), prefills the lesson's prompt with the probes
// its view needs, and hands back the same snapshots the app's worker sends the live views.
#pragma once
#include <QFutureWatcher>
#include <QObject>
#include <QString>

#include "app/gui/lessons_model.h"
#include "engine/probes.h"
#include "widgets/internals_snapshot.h"

namespace lessons {

struct DemoRun {
    quint64 id = 0;
    QString error;
    InternalsModelPtr model;
    ContextSnapshotPtr context;
    TokenSnapshotPtr token;  // the prefill's records, carried by the first predicted token
};

// Path of the variant's GGUF (built on first use, atomically) or of the built-in demo.
std::string ensureDemoVariant(const DemoVariant& v);
// Synchronous: what the worker thread runs.
DemoRun runDemo(quint64 id, const DemoVariant& v, const std::vector<int>& prompt, const archlens::ProbeConfig& probes);

class LessonRunner : public QObject {
    Q_OBJECT
public:
    explicit LessonRunner(QObject* parent = nullptr);
    ~LessonRunner() override;
    // Starts a run; an earlier one still running finishes but its result is dropped.
    quint64 start(const DemoVariant& v, const std::vector<int>& prompt, const archlens::ProbeConfig& probes);
    bool busy() const;
    quint64 latest() const { return latest_; }

signals:
    void finished(const lessons::DemoRun& run);

private:
    quint64 next_ = 0, latest_ = 0;
    QList<QFutureWatcher<DemoRun>*> watchers_;
};

}  // namespace lessons
