// The built-in model catalog: the real config.json of well-known models (resources/catalog/*.json),
// compiled into the engine so that `catalog:NAME` opens an architecture anywhere a model path is
// accepted, without the source tree or any download.
#pragma once
#include <optional>
#include <string>
#include <vector>

namespace archlens {

inline constexpr const char* kCatalogPrefix = "catalog:";

std::vector<std::string> catalog_names();  // sorted
// The stored config.json text (with its "_source" and "_published" notes), or nullopt.
std::optional<std::string> catalog_config(const std::string& name);
// "catalog:NAME" -> NAME; any other path -> nullopt.
std::optional<std::string> catalog_ref(const std::string& path);
// catalog_config(name), or an archlens::Error naming the known entries.
std::string require_catalog_config(const std::string& name);

}  // namespace archlens
