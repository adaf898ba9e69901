// Shared helpers for tests: where the fixtures are, reading reference files, running the CLI.
#pragma once
#include <QByteArray>
#include <QDir>
#include <QFile>
#include <QJsonDocument>
#include <QJsonObject>
#include <QProcess>
#include <QString>
#include <QtTest>
#include <algorithm>
#include <cmath>
#include <functional>
#include <span>
#include <vector>

namespace testutil {

// ARCHLENS_FIXTURES (set by CTest to ../shared/fixtures by default).
inline QString fixtures_dir() {
    QByteArray env = qgetenv("ARCHLENS_FIXTURES");
    if (!env.isEmpty()) return QString::fromLocal8Bit(env);
    return QStringLiteral(ARCHLENS_FIXTURES_FALLBACK);
}

inline std::vector<float> read_f32(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) return {};
    QByteArray b = f.readAll();
    std::vector<float> v(size_t(b.size()) / 4);
    std::memcpy(v.data(), b.constData(), v.size() * 4);
    return v;
}

inline QJsonObject read_json(const QString& path) {
    QFile f(path);
    if (!f.open(QIODevice::ReadOnly)) return {};
    return QJsonDocument::fromJson(f.readAll()).object();
}

inline QString cli_path() {
    QByteArray env = qgetenv("ARCHLENS_CLI");
    return env.isEmpty() ? QStringLiteral(ARCHLENS_CLI_FALLBACK) : QString::fromLocal8Bit(env);
}

struct CliResult {
    int exit_code;
    QByteArray out, err;
};

inline CliResult run_cli(const QStringList& args, int timeout_ms = 300000) {
    QProcess p;
    p.start(cli_path(), args);
    p.waitForFinished(timeout_ms);
    return {p.exitStatus() == QProcess::NormalExit ? p.exitCode() : -1, p.readAllStandardOutput(),
            p.readAllStandardError()};
}

// Logits [T][V] against a reference: the largest absolute difference, and at how many positions the
// argmax agrees (`agree` may accept more, e.g. a near-tie in the reference; default: same argmax).
struct LogitsDiff {
    double max_diff = 0;
    int argmax_agree = 0;
};
inline LogitsDiff compare_logits(const std::vector<float>& got, const std::vector<float>& want, int T, int V,
                                 const std::function<bool(std::span<const float> got, std::span<const float> want)>& agree = {}) {
    auto top = [](std::span<const float> v) { return int(std::max_element(v.begin(), v.end()) - v.begin()); };
    LogitsDiff d;
    for (int t = 0; t < T; ++t) {
        std::span<const float> g(got.data() + size_t(t) * size_t(V), size_t(V)), e(want.data() + size_t(t) * size_t(V), size_t(V));
        for (int i = 0; i < V; ++i) d.max_diff = std::max(d.max_diff, double(std::fabs(g[size_t(i)] - e[size_t(i)])));
        d.argmax_agree += agree ? agree(g, e) : top(g) == top(e);
    }
    return d;
}

}  // namespace testutil

// Skips loudly (QSKIP prints the reason) when the fixture folder is absent.
#define REQUIRE_FIXTURE(path)                                                                   \
    do {                                                                                        \
        if (!QFileInfo::exists(path))                                                           \
            QSKIP(qPrintable(QStringLiteral("FIXTURES MISSING: %1 not found (set ARCHLENS_FIXTURES)") \
                                 .arg(path)));                                                  \
    } while (0)
