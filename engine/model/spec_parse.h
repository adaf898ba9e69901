// Filling the ModelSpec: from an HF config.json and from GGUF metadata. Each family's quirks are
// small named blocks in spec_parse.cpp.
#pragma once
#include <string>

#include "engine/model/spec.h"

namespace archlens {

class GgufFile;

ModelSpec spec_from_hf_config_text(const std::string& json_text, const std::string& path);
ModelSpec spec_from_hf_config_file(const std::string& path);
ModelSpec spec_from_gguf(const GgufFile& f);

// Validates invariants shared by both formats (top_k <= experts, groups divide experts, ...).
void validate_spec(const ModelSpec& spec, const std::string& path);

}  // namespace archlens
