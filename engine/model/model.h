// A loaded model: its spec, its weights (views into mapped files) and where they came from.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

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

class Model {
public:
    // MODEL is a .gguf file, an HF folder (config.json + safetensors), or a config.json (spec only).
    static std::unique_ptr<Model> load(const std::string& path);
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

private:
    Model() = default;
    void bind_gguf();
    void bind_safetensors();

    std::string path_, tokenizer_dir_;
    ModelFormat format_ = ModelFormat::ConfigOnly;
    ModelSpec spec_;
    ModelWeights w_;
    bool qk_permuted_ = false;
    uint64_t file_bytes_ = 0, weight_bytes_ = 0;
    std::vector<TensorInfo> tensors_;
    std::unique_ptr<GgufFile> gguf_;
    std::unique_ptr<SafetensorsModel> st_;
};

}  // namespace archlens
