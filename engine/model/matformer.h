// MatFormer slices (Gemma 3n): a smaller model run out of a larger one's file. A slice keeps the
// first d_i hidden units of each kept layer's FFN (gate/up rows, down columns) and drops whole
// layers; the per-layer embeddings of dropped layers go with them.
//
// The slicing is described the way Google publishes it (the google/gemma3n-slicing-configs
// dataset, consumed by the Gemma "MatFormer Lab" notebook and by mistral.rs): a CSV with one row per
// slice and the columns `name`, `# Layers`, `# Effective Params (B)`, `FFN Hidden Dims` (a list such
// as "[2_048 * 4, 2_048 * 8, ...]", one entry per kept layer) and `Layers Skipped` ("[20, 21]" or
// empty). ArchLens finds such a CSV next to the model (in an HF folder, or beside a .gguf), takes
// one given explicitly, and knows the published E4B rows for models with E4B's exact shape.
//
// Semantics follow the MatFormer Lab export (ref: gemma-cookbook "[Gemma_3n]MatFormer_Lab"):
// num_kv_shared_layers drops by the skipped layers that were KV-sharing, the layers whose caches the
// shared layers read cannot be skipped, activation sparsity stays with the layers that had it, and
// the rows of per_layer_model_projection / columns of embed_tokens_per_layer of skipped layers go.
// One generalisation: a kept layer keeps its own attention type (sliding/global); the notebook
// leaves `layer_types` untouched, which is the same thing for the published, block-aligned skips.
#pragma once
#include <string>
#include <vector>

#include "engine/model/spec.h"

namespace archlens {

struct MatformerSlice {
    std::string name;
    std::vector<int> ffn_dims;        // per kept layer
    std::vector<int> layers_skipped;  // indices in the full model, ascending
    int published_layers = 0;         // the CSV's "# Layers" (0 = not given)
    double published_effective_b = 0; // the CSV's "# Effective Params (B)" (0 = not given)
    std::string source;               // file it came from, or "built-in"
};

// Parses Google's slicing CSV. Errors name the file, the line and the column.
std::vector<MatformerSlice> parse_matformer_csv_text(const std::string& text, const std::string& path);
std::vector<MatformerSlice> parse_matformer_csv(const std::string& path);

// CSV files describing slices next to a model (inside an HF folder, or in a .gguf's folder):
// every *.csv whose header has an "FFN Hidden Dims" column.
std::vector<std::string> find_matformer_csvs(const std::string& model_path);

// Google's published slicing configurations for Gemma 3n E4B (google/gemma3n-slicing-configs,
// the rows ArchLens ships), offered for any Gemma 3n model with E4B's exact shape.
std::vector<MatformerSlice> builtin_matformer_slices(const ModelSpec& full);

struct SlicePlan {
    ModelSpec spec;         // the sliced model's spec (what a physical slice's config.json says)
    std::vector<int> kept;  // kept layer -> its index in the full model
};

// Checks the slice against the full model and builds the sliced spec. `where` names the model in
// errors. Throws Error: not Gemma 3n, wrong number of FFN dims, a dim above the layer's own or not
// a multiple of `ffn_align`, a skipped index out of range or duplicated, a skipped KV source.
SlicePlan plan_matformer_slice(const ModelSpec& full, const MatformerSlice& slice, const std::string& where, int ffn_align = 1);

}  // namespace archlens
