#include "engine/core/dtype.h"

#include <array>
#include <cctype>
#include <cstring>

namespace archlens {

namespace {
constexpr std::array<DTypeInfo, 15> kTypes{{
    {DType::F32, "F32", 1, 4, false},
    {DType::F16, "F16", 1, 2, false},
    {DType::Q4_0, "Q4_0", 32, 18, true},
    {DType::Q4_1, "Q4_1", 32, 20, true},
    {DType::Q5_0, "Q5_0", 32, 22, true},
    {DType::Q5_1, "Q5_1", 32, 24, true},
    {DType::Q8_0, "Q8_0", 32, 34, true},
    {DType::Q8_1, "Q8_1", 32, 36, true},
    {DType::Q2_K, "Q2_K", 256, 84, true},
    {DType::Q3_K, "Q3_K", 256, 110, true},
    {DType::Q4_K, "Q4_K", 256, 144, true},
    {DType::Q5_K, "Q5_K", 256, 176, true},
    {DType::Q6_K, "Q6_K", 256, 210, true},
    {DType::Q8_K, "Q8_K", 256, 292, true},
    {DType::BF16, "BF16", 1, 2, false},
}};
}  // namespace

std::optional<DTypeInfo> dtype_info(uint32_t id) {
    for (const auto& t : kTypes)
        if (uint32_t(t.type) == id) return t;
    return std::nullopt;
}

const DTypeInfo& dtype_info(DType t) {
    for (const auto& i : kTypes)
        if (i.type == t) return i;
    return kTypes[0];
}

const char* dtype_name(DType t) { return dtype_info(t).name; }

std::optional<DType> dtype_from_name(const std::string& name) {
    std::string up;
    for (char c : name) up += char(std::toupper(static_cast<unsigned char>(c)));
    for (const auto& t : kTypes)
        if (up == t.name) return t.type;
    return std::nullopt;
}

std::optional<uint64_t> dtype_row_bytes(DType t, uint64_t n) {
    const auto& i = dtype_info(t);
    if (n % uint64_t(i.block_size) != 0) return std::nullopt;
    uint64_t blocks = n / uint64_t(i.block_size);
    if (blocks > UINT64_MAX / uint64_t(i.type_size)) return std::nullopt;
    return blocks * uint64_t(i.type_size);
}

float fp16_to_f32(uint16_t h) {
    _Float16 v;
    std::memcpy(&v, &h, 2);
    return float(v);
}

uint16_t f32_to_fp16(float f) {
    _Float16 v = _Float16(f);
    uint16_t h;
    std::memcpy(&h, &v, 2);
    return h;
}

uint16_t f32_to_bf16(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    if ((u & 0x7fffffff) > 0x7f800000) return uint16_t((u >> 16) | 64);  // quiet NaN, as ggml
    u += 0x7fff + ((u >> 16) & 1);
    return uint16_t(u >> 16);
}

}  // namespace archlens
