#include "engine/model/matformer.h"

#include <algorithm>
#include <cctype>
#include <filesystem>
#include <fstream>
#include <set>
#include <sstream>

#include "engine/core/error.h"

namespace archlens {

namespace fs = std::filesystem;

namespace {

// RFC 4180 records: fields separated by commas, optionally quoted ("" inside quotes is a quote).
std::vector<std::vector<std::string>> csv_records(const std::string& text, const std::string& path) {
    std::vector<std::vector<std::string>> rows;
    std::vector<std::string> row;
    std::string field;
    bool quoted = false, any = false;
    size_t line = 1;
    size_t i = 0;
    if (text.compare(0, 3, "\xEF\xBB\xBF") == 0) i = 3;  // UTF-8 BOM
    for (; i < text.size(); ++i) {
        const char c = text[i];
        if (quoted) {
            if (c == '"') {
                if (i + 1 < text.size() && text[i + 1] == '"') {
                    field += '"';
                    ++i;
                } else {
                    quoted = false;
                }
            } else {
                if (c == '\n') ++line;
                field += c;
            }
            continue;
        }
        if (c == '"') {
            quoted = true;
            any = true;
        } else if (c == ',') {
            row.push_back(field);
            field.clear();
            any = true;
        } else if (c == '\n' || c == '\r') {
            if (c == '\r' && i + 1 < text.size() && text[i + 1] == '\n') ++i;
            if (any || !field.empty()) {
                row.push_back(field);
                rows.push_back(row);
            }
            row.clear();
            field.clear();
            any = false;
            ++line;
        } else {
            field += c;
            any = true;
        }
    }
    if (quoted) fail(path, "unterminated quoted field (opened before line " + std::to_string(line) + ")");
    if (any || !field.empty()) {
        row.push_back(field);
        rows.push_back(row);
    }
    return rows;
}

std::string trim(const std::string& s) {
    size_t a = 0, b = s.size();
    while (a < b && std::isspace(static_cast<unsigned char>(s[a]))) ++a;
    while (b > a && std::isspace(static_cast<unsigned char>(s[b - 1]))) --b;
    return s.substr(a, b - a);
}

// "2_048 * 4" -> 8192: a product of integers written with optional '_' separators.
long long eval_product(const std::string& expr, const std::string& what) {
    long long v = 1;
    std::stringstream ss(expr);
    std::string term;
    bool any = false;
    while (std::getline(ss, term, '*')) {
        std::string t;
        for (char c : trim(term))
            if (c != '_') t += c;
        if (t.empty() || !std::all_of(t.begin(), t.end(), [](char c) { return std::isdigit(static_cast<unsigned char>(c)); }) || t.size() > 12)
            throw Error(what + ": '" + trim(expr) + "' is not a number or a product of numbers");
        v *= std::stoll(t);
        if (v > (1ll << 40)) throw Error(what + ": '" + trim(expr) + "' is too large");
        any = true;
    }
    if (!any) throw Error(what + ": empty entry");
    return v;
}

// "[a, b, c]" -> its comma-separated entries; "", "null", "None", "nan", "[]" -> none.
std::vector<std::string> list_entries(const std::string& text, const std::string& what) {
    std::string s = trim(text);
    std::string low = s;
    std::transform(low.begin(), low.end(), low.begin(), [](unsigned char c) { return char(std::tolower(c)); });
    if (s.empty() || low == "null" || low == "none" || low == "nan") return {};
    if (s.front() != '[' || s.back() != ']') throw Error(what + ": expected a list in brackets, found '" + s + "'");
    s = trim(s.substr(1, s.size() - 2));
    std::vector<std::string> out;
    if (s.empty()) return out;
    std::stringstream ss(s);
    std::string e;
    while (std::getline(ss, e, ',')) out.push_back(e);
    return out;
}

const char* kE4BSlices =
    "name,# Layers,# Effective Params (B),MMLU PT accuracy,FFN Hidden Dims,Layers Skipped\n"
    "Main model,35,3.98,62.30%,\"[2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, "
    "2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, "
    "2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, "
    "2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8]\",\n"
    "Config for official E2B Model,30,1.91,50.90%,\"[2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, "
    "2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, "
    "2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, "
    "2_048 * 4]\",\"[20, 21, 22, 23, 24]\"\n"
    "Config for E1.96B (layer-level),30,1.96,53.40%,\"[2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 8, 2_048 * 4, "
    "2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, "
    "2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, "
    "2_048 * 4, 2_048 * 4]\",\"[20, 21, 22, 23, 24]\"\n"
    "Config for E2.54B (layer-level),35,2.54,55.40%,\"[2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 8, 2_048 * 4, "
    "2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, "
    "2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 8, 2_048 * 4, 2_048 * 4, 2_048 * 4, "
    "2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4, 2_048 * 4]\",\n";

}  // namespace

std::vector<MatformerSlice> parse_matformer_csv_text(const std::string& text, const std::string& path) {
    auto rows = csv_records(text, path);
    if (rows.empty()) fail(path, "empty slicing configuration (expected a CSV header and one row per slice)");
    const auto& head = rows[0];
    auto col = [&](const char* name) -> int {
        for (size_t i = 0; i < head.size(); ++i)
            if (trim(head[i]) == name) return int(i);
        return -1;
    };
    const int c_name = col("name"), c_layers = col("# Layers"), c_eff = col("# Effective Params (B)"), c_dims = col("FFN Hidden Dims"),
              c_skip = col("Layers Skipped");
    if (c_name < 0 || c_dims < 0)
        fail(path, "not a MatFormer slicing configuration: the header needs the columns 'name' and 'FFN Hidden Dims' "
                   "(as in google/gemma3n-slicing-configs)");
    std::vector<MatformerSlice> out;
    std::set<std::string> names;
    for (size_t r = 1; r < rows.size(); ++r) {
        const auto& row = rows[r];
        const std::string where = path + ": row " + std::to_string(r + 1);
        auto cell = [&](int c) { return c >= 0 && size_t(c) < row.size() ? row[size_t(c)] : std::string(); };
        MatformerSlice s;
        s.source = path;
        s.name = trim(cell(c_name));
        if (s.name.empty()) throw Error(where + ": the slice has no name");
        if (!names.insert(s.name).second) throw Error(where + ": slice name '" + s.name + "' appears twice");
        try {
            for (auto& e : list_entries(cell(c_dims), "FFN Hidden Dims")) s.ffn_dims.push_back(int(eval_product(e, "FFN Hidden Dims")));
            if (s.ffn_dims.empty()) throw Error("FFN Hidden Dims: the list is empty");
            for (auto& e : list_entries(cell(c_skip), "Layers Skipped")) s.layers_skipped.push_back(int(eval_product(e, "Layers Skipped")));
            if (std::string l = trim(cell(c_layers)); !l.empty()) s.published_layers = int(eval_product(l, "# Layers"));
            if (std::string e = trim(cell(c_eff)); !e.empty()) {
                size_t used = 0;
                s.published_effective_b = std::stod(e, &used);
                if (used != e.size()) throw Error("# Effective Params (B): '" + e + "' is not a number");
            }
        } catch (const Error& e) {
            throw Error(where + " ('" + s.name + "'): " + e.what());
        } catch (const std::exception&) {
            throw Error(where + " ('" + s.name + "'): '# Effective Params (B)' is not a number");
        }
        std::sort(s.layers_skipped.begin(), s.layers_skipped.end());
        if (s.published_layers && s.published_layers != int(s.ffn_dims.size()))
            throw Error(where + " ('" + s.name + "'): '# Layers' says " + std::to_string(s.published_layers) + " but 'FFN Hidden Dims' lists " +
                        std::to_string(s.ffn_dims.size()));
        out.push_back(std::move(s));
    }
    if (out.empty()) fail(path, "the slicing configuration lists no slices");
    return out;
}

std::vector<MatformerSlice> parse_matformer_csv(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    if (!in) fail(path, "cannot open the slicing configuration");
    std::stringstream ss;
    ss << in.rdbuf();
    const std::string text = ss.str();
    if (text.size() > (16u << 20)) fail(path, "slicing configuration larger than 16 MiB");
    return parse_matformer_csv_text(text, path);
}

std::vector<std::string> find_matformer_csvs(const std::string& model_path) {
    std::error_code ec;
    fs::path p(model_path);
    fs::path dir = fs::is_directory(p, ec) ? p : p.parent_path();
    if (dir.empty()) dir = ".";
    std::vector<std::string> out;
    for (auto it = fs::directory_iterator(dir, ec); !ec && it != fs::directory_iterator(); it.increment(ec)) {
        if (!it->is_regular_file(ec) || it->path().extension() != ".csv") continue;
        std::ifstream in(it->path(), std::ios::binary);
        std::string first;
        std::getline(in, first);
        if (first.find("FFN Hidden Dims") != std::string::npos) out.push_back(it->path().string());
    }
    std::sort(out.begin(), out.end());
    return out;
}

std::vector<MatformerSlice> builtin_matformer_slices(const ModelSpec& full) {
    // E4B's shape: 35 layers of FFN 16384 at hidden 2048, 15 KV-sharing layers, 256-wide PLE.
    if (full.family != Family::Gemma3n || full.n_layers != 35 || full.dim != 2048 || full.ple_dim != 256) return {};
    for (auto& l : full.layers)
        if (l.ffn.ffn_dim != 16384) return {};
    auto v = parse_matformer_csv_text(kE4BSlices, "built-in Gemma 3n E4B slicing configs");
    for (auto& s : v) s.source = "built-in (google/gemma3n-slicing-configs)";
    return v;
}

SlicePlan plan_matformer_slice(const ModelSpec& full, const MatformerSlice& slice, const std::string& where, int ffn_align) {
    const std::string what = where + ": slice '" + slice.name + "'";
    if (full.family != Family::Gemma3n)
        throw Error(what + ": MatFormer slicing applies to Gemma 3n models; this one is " + family_name(full.family));
    const int L = full.n_layers;
    std::set<int> skip;
    for (int i : slice.layers_skipped) {
        if (i < 0 || i >= L) throw Error(what + ": skipped layer " + std::to_string(i) + " is outside 0.." + std::to_string(L - 1));
        if (!skip.insert(i).second) throw Error(what + ": layer " + std::to_string(i) + " is skipped twice");
    }
    if (int(skip.size()) >= L) throw Error(what + ": skips every layer");
    SlicePlan plan;
    for (int i = 0; i < L; ++i)
        if (!skip.count(i)) plan.kept.push_back(i);
    if (slice.ffn_dims.size() != plan.kept.size())
        throw Error(what + ": 'FFN Hidden Dims' has " + std::to_string(slice.ffn_dims.size()) + " entries, but " + std::to_string(L) +
                    " layers minus " + std::to_string(skip.size()) + " skipped leaves " + std::to_string(plan.kept.size()));
    // Layers whose caches shared layers read must stay.
    for (auto& l : full.layers)
        if (l.kv_source >= 0 && skip.count(l.kv_source))
            throw Error(what + ": layer " + std::to_string(l.kv_source) + " holds the KV cache that later layers reuse; it cannot be skipped");
    ModelSpec s = full;
    s.layers.clear();
    for (size_t k = 0; k < plan.kept.size(); ++k) {
        const int orig = plan.kept[k];
        LayerSpec l = full.layers[size_t(orig)];
        const int d = slice.ffn_dims[k];
        if (d <= 0 || d > l.ffn.ffn_dim)
            throw Error(what + ": layer " + std::to_string(orig) + " FFN width " + std::to_string(d) + " must be between 1 and the layer's " +
                        std::to_string(l.ffn.ffn_dim));
        if (ffn_align > 1 && d % ffn_align != 0)
            throw Error(what + ": layer " + std::to_string(orig) + " FFN width " + std::to_string(d) + " is not a multiple of " +
                        std::to_string(ffn_align) + ", the block size of this file's quantized down projection");
        l.ffn.ffn_dim = d;
        if (l.kv_source >= 0) {
            auto it = std::find(plan.kept.begin(), plan.kept.end(), l.kv_source);
            l.kv_source = int(it - plan.kept.begin());
        }
        s.layers.push_back(l);
    }
    s.n_layers = int(s.layers.size());
    s.name = (full.name.empty() ? std::string("gemma3n") : full.name) + " [" + slice.name + "]";
    plan.spec = std::move(s);
    return plan;
}

}  // namespace archlens
