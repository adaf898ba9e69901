// safetensors reader (single file or sharded with model.safetensors.index.json), memory-mapped.
// The header is validated completely: length, JSON, dtypes, shapes vs byte ranges, ordering.
#pragma once
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "engine/core/mmap_file.h"
#include "engine/formats/tensor.h"

namespace archlens {

class SafetensorsFile {
public:
    explicit SafetensorsFile(const std::string& path);
    const std::string& path() const { return file_->path(); }
    const std::vector<TensorRef>& tensors() const { return tensors_; }

private:
    std::shared_ptr<MappedFile> file_;
    std::vector<TensorRef> tensors_;
};

// All shards of an HF model folder, one name -> tensor table.
class SafetensorsModel {
public:
    explicit SafetensorsModel(const std::string& folder);
    const TensorRef* tensor(const std::string& name) const;
    const std::map<std::string, TensorRef>& tensors() const { return by_name_; }
    uint64_t total_bytes() const { return total_bytes_; }

private:
    std::vector<std::unique_ptr<SafetensorsFile>> files_;
    std::map<std::string, TensorRef> by_name_;
    uint64_t total_bytes_ = 0;
};

}  // namespace archlens
