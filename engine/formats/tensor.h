// A tensor stored in a mapped model file. Shape is outermost-first (numpy order) for every format;
// for GGUF that is ggml's ne reversed.
#pragma once
#include <cstdint>
#include <string>
#include <vector>

#include "engine/core/dtype.h"

namespace archlens {

struct TensorRef {
    std::string name;  // the name in its file
    DType type = DType::F32;
    std::vector<int64_t> shape;  // outermost first
    const uint8_t* data = nullptr;
    uint64_t nbytes = 0;
    uint64_t file_offset = 0;
    const std::string* file = nullptr;  // owning file path (for messages)

    int64_t numel() const {
        int64_t n = 1;
        for (auto d : shape) n *= d;
        return n;
    }
    bool valid() const { return data != nullptr; }
    int64_t dim(int i) const { return shape[size_t(i < 0 ? int(shape.size()) + i : i)]; }
};

std::string shape_string(const std::vector<int64_t>& shape);

}  // namespace archlens
