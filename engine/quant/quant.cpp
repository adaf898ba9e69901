#include "engine/quant/quant.h"

#include <cstring>

#include "engine/core/error.h"

namespace archlens::quant {

bool supported(DType t) { return t == DType::F32 || t == DType::F16 || t == DType::BF16; }

void dequantize_row(DType t, const void* src, float* dst, int64_t n) {
    switch (t) {
        case DType::F32:
            std::memcpy(dst, src, size_t(n) * 4);
            return;
        case DType::F16: {
            auto s = static_cast<const uint16_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = fp16_to_f32(s[i]);
            return;
        }
        case DType::BF16: {
            auto s = static_cast<const uint16_t*>(src);
            for (int64_t i = 0; i < n; ++i) dst[i] = bf16_to_f32(s[i]);
            return;
        }
        default:
            throw Error(std::string("weight type ") + dtype_name(t) + " is not supported yet");
    }
}

DType vec_dot_type(DType t) { return t; }

void quantize_row(DType t, const float* src, void* dst, int64_t n) {
    switch (t) {
        case DType::F32:
            std::memcpy(dst, src, size_t(n) * 4);
            return;
        case DType::F16: {
            auto d = static_cast<uint16_t*>(dst);
            for (int64_t i = 0; i < n; ++i) d[i] = f32_to_fp16(src[i]);
            return;
        }
        case DType::BF16: {
            auto d = static_cast<uint16_t*>(dst);
            for (int64_t i = 0; i < n; ++i) d[i] = f32_to_bf16(src[i]);
            return;
        }
        default:
            throw Error(std::string("cannot quantize to ") + dtype_name(t) + " yet");
    }
}

float vec_dot(DType t, int64_t n, const void* w, const void* a) {
    switch (t) {
        case DType::F32: {
            auto x = static_cast<const float*>(w);
            auto y = static_cast<const float*>(a);
            float s = 0;
            for (int64_t i = 0; i < n; ++i) s += x[i] * y[i];
            return s;
        }
        case DType::F16: {
            auto x = static_cast<const uint16_t*>(w);
            auto y = static_cast<const uint16_t*>(a);
            float s = 0;
            for (int64_t i = 0; i < n; ++i) s += fp16_to_f32(x[i]) * fp16_to_f32(y[i]);
            return s;
        }
        case DType::BF16: {
            auto x = static_cast<const uint16_t*>(w);
            auto y = static_cast<const uint16_t*>(a);
            float s = 0;
            for (int64_t i = 0; i < n; ++i) s += bf16_to_f32(x[i]) * bf16_to_f32(y[i]);
            return s;
        }
        default:
            throw Error(std::string("weight type ") + dtype_name(t) + " is not supported yet");
    }
}

}  // namespace archlens::quant
