// Guided lessons as data: each lesson (resources/lessons/*.json, compiled into the binary as Qt
// resources) names the catalog model it opens in architecture-only mode, the runnable demo, the
// diagram block it lights, the live view it opens and one control. Everything numeric the lesson
// shows is computed here from a ModelSpec (the catalog config, edited by the control, parsed by
// the engine's own spec_from_hf_config_text): the text's {model:field} placeholders and the
// control's readout. No Qt widgets here, so tests can check the numbers without a window.
#pragma once
#include <QJsonObject>
#include <QList>
#include <QString>
#include <QStringList>
#include <optional>
#include <vector>

#include "engine/model/spec.h"

namespace lessons {

enum class ViewKind { Attention, Routing, KvCache, NextToken };

struct LessonStep {
    QString title;
    QString text;  // may hold {catalog-name:field} placeholders (see fillPlaceholders)
};

struct ControlChoice {
    QString label;
    QString catalog;  // the model this choice shows
    QString block;    // the block it lights (empty: the lesson's)
};

// One control: a primary setting (a list of values on a slider, or named choices) and an
// optional secondary one (another value list, or an on/off toggle).
struct LessonControl {
    QString kind;   // kv_heads, kv_lora_rank, moe_topk, norm_placement, window, nope_interval,
                    // gemma3n_slice, experts, qwen3_family, positions
    QString label;  // what it changes
    QString help;   // the range and what to look for
    std::vector<int> values;
    int defaultValue = 0;
    QList<ControlChoice> choices;  // instead of values
    int defaultChoice = 0;
    QString secondLabel;
    std::vector<int> secondValues;  // a second slider
    int secondDefault = 0;
    bool toggle = false;  // secondLabel names an on/off toggle instead
    bool toggleDefault = false;
};

struct PromptSpec {
    QString kind = QStringLiteral("bytes");  // bytes: the text's bytes as ids; repeat: n distinct letters, twice
    QString text;
    int length = 0, seed = 1;
};

struct Lesson {
    QString id;
    int order = 0;
    QString title;
    QString summary;
    QString catalog;         // architecture-only model
    QStringList compare;     // other catalog models the text quotes
    QString demo;            // runnable demo (demo:NAME without the prefix)
    QString block;           // diagram box id lit
    ViewKind view = ViewKind::Attention;
    int viewLayer = 0, viewHead = 0;
    PromptSpec prompt;
    QList<LessonStep> steps;
    LessonControl control;
    QString question, answer;
};

// Every lesson embedded in the binary (":/lessons/*.json"), by order. Throws nothing: a broken
// file is reported in *errors and skipped.
QList<Lesson> loadLessons(QStringList* errors = nullptr);
std::optional<Lesson> lessonFromJson(const QJsonObject& o, QString* error);
ViewKind viewKindFromName(const QString& name);
QString viewKindName(ViewKind k);

// Catalog specs, optionally with config keys replaced (set to null to remove). Edits go into
// text_config when the config wraps one. Throws archlens::Error like the parser.
archlens::ModelSpec catalogSpec(const QString& name, const QJsonObject& edits = {});
QString editedCatalogConfig(const QString& name, const QJsonObject& edits);

// Fills {name:field} placeholders from catalog specs; unknown names/fields stay visible as "?".
QString fillPlaceholders(const QString& text);
QString specField(const archlens::ModelSpec& spec, const QString& field);

// The demo a control state runs: a built-in demo, or a variant config written once into the cache.
struct DemoVariant {
    QString name;        // "llama3" / "sliding-window" ...; the cache file stem for variants
    QString config;      // empty: the built-in demo:NAME; else an HF config.json text
    bool classRouter = false;  // set the weights of teaching::configure_class_router
    QString key() const;       // identifies the file (name + config hash)
};

struct ControlState {
    int value = 0;   // primary value (or choice index for choice controls)
    int second = 0;  // secondary value (toggle: 0/1)
};

struct NumberRow {
    QString label;
    quint64 exact = 0;  // the spec's number (bytes or parameters or a count)
    QString text;       // as displayed: "exact (human)"
    QString key;        // stable id for tests: "kv_token", "kv_32k", "active", ...
};

struct CurvePoint {
    quint64 tokens = 0, bytes = 0, baseline = 0;
};

struct LessonOutcome {
    archlens::ModelSpec spec;  // the catalog model as the control set it
    QString diagramTitle;
    QString block;
    QList<NumberRow> rows;
    QString note;                   // one line of interpretation
    std::vector<CurvePoint> curve;  // KV memory vs context (window lesson)
    QString curveLabel, baselineLabel;
    DemoVariant demo;
    int viewLayer = 0, viewHead = 0;
};

ControlState defaultState(const Lesson& l);
// Throws archlens::Error when the control's config does not parse.
LessonOutcome evaluate(const Lesson& l, const ControlState& s);

// Formatting shared by the window and the tests.
QString bytesText(quint64 bytes);   // "65,536 B (64.0 KiB)"
QString countText(quint64 n);       // "671,026,522,624 (671.0B)"
constexpr double kBf16 = 2.0;       // KV and weight bytes per value in the lessons
constexpr quint64 kLongContext = 32768;

// The prompt token ids for a lesson (bytes of the text, or a repeated random letter sequence).
std::vector<int> promptIds(const PromptSpec& p);

}  // namespace lessons
