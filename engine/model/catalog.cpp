#include "engine/model/catalog.h"

#include <algorithm>
#include <cstddef>
#include <cstring>

#include "engine/core/error.h"

namespace archlens {

namespace catalog_data {
struct Entry {
    const char* name;
    const char* json;
};
extern const Entry entries[];
extern const std::size_t n_entries;
}  // namespace catalog_data

std::vector<std::string> catalog_names() {
    std::vector<std::string> names;
    for (std::size_t i = 0; i < catalog_data::n_entries; ++i) names.emplace_back(catalog_data::entries[i].name);
    std::sort(names.begin(), names.end());
    return names;
}

std::optional<std::string> catalog_config(const std::string& name) {
    for (std::size_t i = 0; i < catalog_data::n_entries; ++i)
        if (name == catalog_data::entries[i].name) return std::string(catalog_data::entries[i].json);
    return std::nullopt;
}

std::optional<std::string> catalog_ref(const std::string& path) {
    const std::size_t n = std::strlen(kCatalogPrefix);
    if (path.compare(0, n, kCatalogPrefix) != 0) return std::nullopt;
    return path.substr(n);
}

std::string require_catalog_config(const std::string& name) {
    if (auto text = catalog_config(name)) return *text;
    std::string known;
    for (auto& n : catalog_names()) known += (known.empty() ? "" : ", ") + n;
    fail(std::string(kCatalogPrefix) + name, "no such catalog model; known: " + known);
}

}  // namespace archlens
