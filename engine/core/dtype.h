// Weight/activation element types. Ids are ggml's (GGUF tensor type field), so the table is the
// format's own; quantized types are blocks of `block_size` elements stored in `type_size` bytes.
#pragma once
#include <cstdint>
#include <optional>
#include <string>

namespace archlens {

enum class DType : uint32_t {
    F32 = 0,
    F16 = 1,
    Q4_0 = 2,
    Q4_1 = 3,
    Q5_0 = 6,
    Q5_1 = 7,
    Q8_0 = 8,
    Q8_1 = 9,
    Q2_K = 10,
    Q3_K = 11,
    Q4_K = 12,
    Q5_K = 13,
    Q6_K = 14,
    Q8_K = 15,
    BF16 = 30,
};

struct DTypeInfo {
    DType type;
    const char* name;
    int block_size;  // elements per block
    int type_size;   // bytes per block
    bool quantized;
};

// nullopt for an id this engine does not know.
std::optional<DTypeInfo> dtype_info(uint32_t ggml_type_id);
const DTypeInfo& dtype_info(DType t);
const char* dtype_name(DType t);
std::optional<DType> dtype_from_name(const std::string& name);  // "f32", "q4_k", "Q8_0" ...

// Bytes for n elements (n must be a multiple of the block size); nullopt on overflow or misalignment.
std::optional<uint64_t> dtype_row_bytes(DType t, uint64_t n);

// fp16 / bf16 helpers (round-to-nearest-even, as ggml does).
float fp16_to_f32(uint16_t h);
uint16_t f32_to_fp16(float f);
inline float bf16_to_f32(uint16_t h) {
    uint32_t u = uint32_t(h) << 16;
    float f;
    __builtin_memcpy(&f, &u, 4);
    return f;
}
uint16_t f32_to_bf16(float f);

}  // namespace archlens
