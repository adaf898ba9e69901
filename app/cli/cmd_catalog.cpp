// catalog, diagram, compare: architecture-only views of any model (catalog:NAME, a config.json,
// an HF folder or a GGUF header) for scripts, docs and tests.
#include <cstdio>
#include <nlohmann/json.hpp>

#include "app/cli/command.h"
#include "engine/core/error.h"
#include "engine/model/catalog.h"
#include "engine/model/model.h"
#include "engine/model/spec_summary.h"

#ifdef ARCHLENS_CLI_HAS_WIDGETS
#include <QApplication>
#include <QPainter>

#include "widgets/comparison_view.h"
#include "widgets/diagram_layout.h"
#include "widgets/diagram_view.h"
#endif

using json = nlohmann::json;

namespace archlens::cli {
namespace {

// The catalog's entries with the architecture they declare; unparseable ones say why.
int cmd_catalog(const std::vector<std::string>& argv) {
    Args a(argv, {"json"});
    json list = json::array();
    for (auto& name : catalog_names()) {
        json e = {{"name", name}, {"path", kCatalogPrefix + name}};
        try {
            ModelSpec s = Model::load_spec(kCatalogPrefix + name);
            auto pc = count_params(s);
            e["architecture"] = s.model_type;
            e["params_total"] = pc.total;
            e["params_active"] = pc.active;
            e["supported"] = true;
        } catch (const Error& err) {
            e["supported"] = false;
            e["error"] = err.what();
        }
        list.push_back(e);
    }
    if (a.has("json")) {
        std::printf("%s\n", list.dump(1).c_str());
        return 0;
    }
    for (auto& e : list) {
        if (e["supported"].get<bool>())
            std::printf("%-24s %-12s %9s total %9s active\n", e["name"].get<std::string>().c_str(),
                        e["architecture"].get<std::string>().c_str(), human_count(e["params_total"].get<uint64_t>()).c_str(),
                        human_count(e["params_active"].get<uint64_t>()).c_str());
        else
            std::printf("%-24s (architecture not supported yet)\n", e["name"].get<std::string>().c_str());
    }
    return 0;
}

// A model's display name: the catalog name, else the file name.
std::string display_name(const std::string& path) {
    if (auto n = catalog_ref(path)) return *n;
    auto slash = path.find_last_of('/');
    std::string base = slash == std::string::npos ? path : path.substr(slash + 1);
    return base.empty() ? path : base;
}

json compare_json(const std::string& pa, const ModelSpec& a, const std::string& pb, const ModelSpec& b) {
    auto fa = spec_facts(a), fb = spec_facts(b);
    json rows = json::array();
    int differing = 0;
    for (size_t i = 0; i < fa.size() && i < fb.size(); ++i) {
        bool diff = fa[i].value != fb[i].value;
        differing += diff;
        rows.push_back({{"key", fa[i].key}, {"label", fa[i].label}, {"a", fa[i].value}, {"b", fb[i].value}, {"differs", diff}});
    }
    auto side = [](const std::string& path, const ModelSpec& s) {
        auto pc = count_params(s);
        return json{{"path", path},
                    {"model_type", s.model_type},
                    {"params_total", pc.total},
                    {"params_active", pc.active},
                    {"kv_bytes_per_token", kv_bytes_at(s, 1, 2.0)},
                    {"kv_bytes_at", {{"4096", kv_bytes_at(s, 4096, 2.0)}, {"32768", kv_bytes_at(s, 32768, 2.0)}, {"131072", kv_bytes_at(s, 131072, 2.0)}}}};
    };
    return {{"a", side(pa, a)}, {"b", side(pb, b)}, {"rows", rows}, {"differing", differing}, {"kv_type", "bf16"}};
}

#ifdef ARCHLENS_CLI_HAS_WIDGETS
// Offscreen Qt for rendering: no display is needed, and a caller's own platform choice wins.
struct OffscreenQt {
    int argc = 1;
    char arg0[16] = "archlens-cli";
    char* argv[2] = {arg0, nullptr};
    std::unique_ptr<QApplication> app;
    OffscreenQt() {
        if (qEnvironmentVariableIsEmpty("QT_QPA_PLATFORM")) qputenv("QT_QPA_PLATFORM", "offscreen");
        if (!QApplication::instance()) app = std::make_unique<QApplication>(argc, argv);
    }
};
#endif

int cmd_diagram(const std::vector<std::string>& argv) {
    Args a(argv, {});
    if (a.positional().size() != 1) throw Error("usage: archlens-cli diagram MODEL --out FILE.svg|FILE.png [--scale S]");
    const std::string path = a.positional()[0];
    const std::string out = a.require("out");
#ifdef ARCHLENS_CLI_HAS_WIDGETS
    ModelSpec s = Model::load_spec(path);
    OffscreenQt qt;
    DiagramLayout layout = layoutDiagram(s, QString::fromStdString(display_name(path)));
    QString err;
    if (!exportDiagram(layout, QString::fromStdString(out), &err, a.get_double("scale", 1.5))) throw Error(err.toStdString());
    std::printf("%s\n", out.c_str());
    return 0;
#else
    (void)out;
    throw Error("this archlens-cli was built without Qt widgets; the diagram command needs them");
#endif
}

int cmd_compare(const std::vector<std::string>& argv) {
    Args a(argv, {"json"});
    if (a.positional().size() != 2)
        throw Error("usage: archlens-cli compare MODEL_A MODEL_B [--json] [--out FILE.svg|FILE.png]");
    const std::string pa = a.positional()[0], pb = a.positional()[1];
    ModelSpec sa = Model::load_spec(pa), sb = Model::load_spec(pb);
    json j = compare_json(pa, sa, pb, sb);
    if (auto out = a.get("out")) {
#ifdef ARCHLENS_CLI_HAS_WIDGETS
        OffscreenQt qt;
        QString err;
        if (!exportComparison(sa, QString::fromStdString(display_name(pa)), sb, QString::fromStdString(display_name(pb)),
                              QString::fromStdString(*out), &err, a.get_double("scale", 1.25)))
            throw Error(err.toStdString());
#else
        throw Error("this archlens-cli was built without Qt widgets; --out needs them");
#endif
    }
    if (a.has("json")) {
        std::printf("%s\n", j.dump(1).c_str());
        return 0;
    }
    const std::string na = display_name(pa), nb = display_name(pb);
    std::printf("%-40s %-30s %-30s\n", "", na.c_str(), nb.c_str());
    for (auto& r : j["rows"])
        std::printf("%s %-38s %-30s %-30s\n", r["differs"].get<bool>() ? "*" : " ", r["label"].get<std::string>().c_str(),
                    r["a"].get<std::string>().c_str(), r["b"].get<std::string>().c_str());
    std::printf("\n%d of %zu rows differ (*)\n", j["differing"].get<int>(), j["rows"].size());
    return 0;
}

Register r_catalog({"catalog", "catalog [--json]", cmd_catalog});
Register r_diagram({"diagram", "diagram MODEL --out FILE.svg|FILE.png [--scale S]", cmd_diagram});
Register r_compare({"compare", "compare MODEL_A MODEL_B [--json] [--out FILE.svg|FILE.png]", cmd_compare});

}  // namespace
}  // namespace archlens::cli
