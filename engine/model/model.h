// A loaded model: its spec, its weights (views into mapped files) and where they came from.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/model/matformer.h"
#include "engine/model/spec.h"
#include "engine/model/weights.h"

namespace archlens {

class GgufFile;
class SafetensorsModel;

enum class ModelFormat { GGUF, Safetensors, ConfigOnly };

struct TensorInfo {  // for info/diagram: what the file holds
    std::string name;       // canonical
    std::string file_name;  // as stored
    DType type;
    std::vector<int64_t> shape;
    uint64_t nbytes;
};

struct LoadOptions {
    // Gemma 3n MatFormer: run the named slice (see matformer.h) instead of the whole model.
    std::string slice;
    // A slicing CSV to use instead of (in addition to) the ones found next to the model.
    std::string slicing_config;
};

class Model {
public:
    // MODEL is a .gguf file, an HF folder (config.json + safetensors), or a config.json (spec only).
    static std::unique_ptr<Model> load(const std::string& path, const LoadOptions& opts = {});
    // Only the spec (config.json, HF folder, or a GGUF header); no weights are mapped for use.
    static ModelSpec load_spec(const std::string& path);
    ~Model();

    const ModelSpec& spec() const { return spec_; }
    const ModelWeights& weights() const { return w_; }
    ModelFormat format() const { return format_; }
    const std::string& path() const { return path_; }
    uint64_t file_bytes() const { return file_bytes_; }
    uint64_t weight_bytes() const { return weight_bytes_; }
    const std::vector<TensorInfo>& tensors() const { return tensors_; }
    std::map<std::string, uint64_t> weight_types() const;  // dtype name -> tensor count
    const GgufFile* gguf() const { return gguf_.get(); }
    const std::string& tokenizer_dir() const { return tokenizer_dir_; }

    // RoPE layout the weights need: llama.cpp permutes Llama q/k rows so that interleaved-pair
    // RoPE on the GGUF equals rotate_half on the HF file.
    RopeStyle rope_style(const AttentionSpec& a) const;

    // MatFormer (Gemma 3n): the slices this model offers (built-in for E4B's shape, CSVs next to the
    // model, the one given in LoadOptions), the one running ("" = the whole model), the whole
    // model's spec, and the full-model index of each running layer. A slicing CSV that could not
    // be read is reported in slicing_error() without failing the load (unless a slice was asked for).
    const std::vector<MatformerSlice>& slices() const { return slices_; }
    const std::string& slicing_error() const { return slicing_error_; }
    const std::string& slice_name() const { return slice_name_; }
    const ModelSpec& full_spec() const { return slice_name_.empty() ? spec_ : full_spec_; }
    const std::vector<int>& kept_layers() const { return kept_layers_; }

private:
    Model() = default;
    static std::unique_ptr<Model> load_whole(const std::string& path);
    void bind_gguf();
    void bind_safetensors();
    void find_slices(const LoadOptions& opts);
    void apply_slice(const std::string& name);

    std::string path_, tokenizer_dir_;
    ModelFormat format_ = ModelFormat::ConfigOnly;
    ModelSpec spec_;
    ModelWeights w_;
    bool qk_permuted_ = false;
    uint64_t file_bytes_ = 0, weight_bytes_ = 0;
    std::vector<TensorInfo> tensors_;
    std::unique_ptr<GgufFile> gguf_;
    std::unique_ptr<SafetensorsModel> st_;
    std::vector<MatformerSlice> slices_;
    std::string slicing_error_, slice_name_;
    ModelSpec full_spec_;
    std::vector<int> kept_layers_;
};

}  // namespace archlens
