// GGUF v2/v3 reader over a memory map. Every length, count, offset and shape is validated against
// the file before it is used, so a truncated or corrupt file gives an Error, never a crash or a
// huge allocation.
#pragma once
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <variant>
#include <vector>

#include "engine/core/mmap_file.h"
#include "engine/formats/tensor.h"

namespace archlens {

enum class GgufType : uint32_t {
    U8 = 0, I8 = 1, U16 = 2, I16 = 3, U32 = 4, I32 = 5, F32 = 6, BOOL = 7,
    STRING = 8, ARRAY = 9, U64 = 10, I64 = 11, F64 = 12,
};

struct GgufValue {
    GgufType type = GgufType::U32;
    GgufType elem_type = GgufType::U32;  // for arrays
    // Scalars: integers in i, floats in f, bools in i, strings in s.
    int64_t i = 0;
    double f = 0;
    std::string s;
    std::vector<int64_t> ai;  // integer/bool arrays
    std::vector<double> af;   // float arrays
    std::vector<std::string> as;  // string arrays

    bool is_array() const { return type == GgufType::ARRAY; }
    double as_number() const;
};

class GgufFile {
public:
    explicit GgufFile(const std::string& path);
    const std::string& path() const { return file_->path(); }
    uint32_t version() const { return version_; }
    uint64_t file_size() const { return file_->size(); }

    const std::map<std::string, GgufValue>& metadata() const { return kv_; }
    const GgufValue* find(const std::string& key) const;
    std::optional<std::string> get_string(const std::string& key) const;
    std::optional<int64_t> get_int(const std::string& key) const;
    std::optional<double> get_float(const std::string& key) const;
    std::optional<bool> get_bool(const std::string& key) const;

    const std::vector<TensorRef>& tensors() const { return tensors_; }
    const TensorRef* tensor(const std::string& name) const;
    std::shared_ptr<MappedFile> mapping() const { return file_; }

private:
    std::shared_ptr<MappedFile> file_;
    uint32_t version_ = 0;
    std::map<std::string, GgufValue> kv_;
    std::vector<TensorRef> tensors_;
    std::map<std::string, size_t> index_;
};

}  // namespace archlens
