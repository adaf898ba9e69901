// Writes GGUF v3 files: metadata and tensors (any dtype, raw bytes). Used by `synth`, the demo
// models and tests that need hand-made models.
#pragma once
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "engine/core/dtype.h"

namespace archlens {

class GgufWriter {
public:
    void set_string(const std::string& key, const std::string& v);
    void set_u32(const std::string& key, uint32_t v);
    void set_i32(const std::string& key, int32_t v);
    void set_f32(const std::string& key, float v);
    void set_bool(const std::string& key, bool v);
    void set_strings(const std::string& key, const std::vector<std::string>& v);
    void set_f32s(const std::string& key, const std::vector<float>& v);
    void set_i32s(const std::string& key, const std::vector<int32_t>& v);
    void set_bools(const std::string& key, const std::vector<bool>& v);

    // shape outermost-first (numpy order); data holds dtype_row_bytes(type, shape.back()) per row.
    void add_tensor(const std::string& name, DType type, const std::vector<int64_t>& shape, std::vector<uint8_t> data);
    void add_f32(const std::string& name, const std::vector<int64_t>& shape, const std::vector<float>& values);
    // Data produced only while writing (so multi-GB models never sit in memory at once). write()
    // runs generators ahead of the file on up to `threads` threads, holding at most
    // kLazyBytesInFlight of generated tensors (or one, if it is larger): a generator must depend on
    // nothing but what it captured, and may run on any thread. The file is the same for any count.
    using Generator = std::function<void(std::vector<uint8_t>& out)>;
    void add_tensor_lazy(const std::string& name, DType type, const std::vector<int64_t>& shape, Generator gen);
    size_t tensor_count() const { return tensors_.size(); }
    void set_threads(unsigned n) { threads_ = n; }  // 0: std::thread::hardware_concurrency()
    static constexpr uint64_t kLazyBytesInFlight = uint64_t(2) << 30;

    void write(const std::string& path) const;  // throws Error naming the path

private:
    struct Kv {
        std::string key;
        uint32_t type;
        std::vector<uint8_t> payload;  // encoded value
    };
    struct Tensor {
        std::string name;
        DType type;
        std::vector<int64_t> shape;
        std::vector<uint8_t> data;
        Generator gen;
        uint64_t nbytes = 0;
    };
    void put(const std::string& key, uint32_t type, std::vector<uint8_t> payload);
    std::vector<Kv> kv_;
    std::vector<Tensor> tensors_;
    unsigned threads_ = 0;
};

}  // namespace archlens
