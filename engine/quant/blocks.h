// Block layouts of ggml's quantized types, byte for byte as in GGUF files.
// ref: ggml/src/ggml-common.h (block_q4_0 … block_q8_K). fp16 fields are raw IEEE half bits.
// Internal to engine/quant and its tests; the rest of the engine sees only quant.h.
#pragma once
#include <cstdint>

namespace archlens::quant {

constexpr int kQK = 32;    // elements per block of the 32-wide types (q4_0 … q8_1)
constexpr int kQKK = 256;  // elements per k-quant super-block

// x = d * (q - 8), q a nibble; element j in the low nibble of qs[j], j+16 in the high one.
struct BlockQ4_0 {
    uint16_t d;
    uint8_t qs[kQK / 2];
};
// x = d * q + m
struct BlockQ4_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qs[kQK / 2];
};
// x = d * (q - 16); bit j of the little-endian uint32 qh is bit 4 of element j.
struct BlockQ5_0 {
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[kQK / 2];
};
// x = d * q + m, q as in Q5_0
struct BlockQ5_1 {
    uint16_t d;
    uint16_t m;
    uint8_t qh[4];
    uint8_t qs[kQK / 2];
};
struct BlockQ8_0 {
    uint16_t d;
    int8_t qs[kQK];
};
// Activation type for q4_1/q5_1: s = d * sum(qs).
struct BlockQ8_1 {
    uint16_t d;
    uint16_t s;
    int8_t qs[kQK];
};

// 16 groups of 16: x = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4), q 2 bits.
// qs[32*h + l] holds elements 128*h + 32*k + l in bits 2k..2k+1 (k = 0..3).
struct BlockQ2_K {
    uint8_t scales[kQKK / 16];
    uint8_t qs[kQKK / 4];
    uint16_t d;
    uint16_t dmin;
};
// 16 groups of 16: x = d * (s6[g] - 32) * (q2 - (hbit ? 0 : 4)). The 6-bit scales are packed
// in 12 bytes (low nibbles in bytes 0..7, top 2 bits in bytes 8..11); the high bit of element
// 32*k + l is bit k of hmask[l].
struct BlockQ3_K {
    uint8_t hmask[kQKK / 8];
    uint8_t qs[kQKK / 4];
    uint8_t scales[12];
    uint16_t d;
};
// 8 groups of 32: x = d * sc[g] * q - dmin * m[g], 6-bit sc/m packed in 12 bytes
// (get_scale_min_k4); qs[32*c + l] holds element 64*c + l (low nibble) and 64*c + 32 + l (high).
struct BlockQ4_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qs[kQKK / 2];
};
// As Q4_K plus a 5th bit: bit 2c of qh[l] for element 64*c + l, bit 2c+1 for 64*c + 32 + l.
struct BlockQ5_K {
    uint16_t d;
    uint16_t dmin;
    uint8_t scales[12];
    uint8_t qh[kQKK / 8];
    uint8_t qs[kQKK / 2];
};
// 16 groups of 16: x = d * scales[g] * (q6 - 32). Per half h (128 elements): ql[64h + l] low
// nibbles of elements l and l+64 … see dequantize_q6_k.
struct BlockQ6_K {
    uint8_t ql[kQKK / 2];
    uint8_t qh[kQKK / 4];
    int8_t scales[kQKK / 16];
    uint16_t d;
};
// Activation type for the k-quants: f32 scale, bsums[g] = sum of qs in group g of 16.
struct BlockQ8_K {
    float d;
    int8_t qs[kQKK];
    int16_t bsums[kQKK / 16];
};
// The same Q8_K values as the AVX-512 kernels read them inside the matmul: quants first, so that in
// a 64-byte aligned buffer every block's quants start on a cache line (a 64-byte load of Q8_K's
// quants, 4 bytes into a block of 292, always straddles two lines, and costs about 1.5x).
// Q8_0 activations as the AVX-512 Q8_0 kernel reads them inside the matmul: the quants, -128
// times the sum of each 4 quants (vpdpbusd's start value when the weights take the unsigned side,
// computed once per activation instead of once per weight row), and the scale already as f32
// (the fp16 value widened: the same number ggml multiplies with).
struct alignas(32) BlockQ8_0A {
    int8_t qs[kQK];
    int32_t corr[kQK / 4];
    float d;
};
struct alignas(64) BlockQ8_K64 {
    int8_t qs[kQKK];
    int16_t bsums[kQKK / 16];
    float d;
};

static_assert(sizeof(BlockQ4_0) == 18);
static_assert(sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22);
static_assert(sizeof(BlockQ5_1) == 24);
static_assert(sizeof(BlockQ8_0) == 34);
static_assert(sizeof(BlockQ8_1) == 36);
static_assert(sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110);
static_assert(sizeof(BlockQ4_K) == 144);
static_assert(sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);
static_assert(sizeof(BlockQ8_K) == 292);
static_assert(sizeof(BlockQ8_K64) == 320);
static_assert(sizeof(BlockQ8_0A) == 96);

// ref: ggml-quants.c get_scale_min_k4 — 6-bit scale and min of group j (0..7) of a Q4_K/Q5_K.
inline void get_scale_min_k4(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// ref: ggml-quants.c dequantize_row_q3_K — the 16 signed 6-bit scales (still offset by 32).
inline void unpack_q3_k_scales(const uint8_t* packed, int8_t out[16]) {
    for (int j = 0; j < 16; ++j) {
        int lo = j < 8 ? (packed[j] & 0xF) : (packed[j - 8] >> 4);
        int hi = (packed[8 + j % 4] >> (2 * (j / 4))) & 3;
        out[j] = int8_t(lo | (hi << 4));
    }
}

}  // namespace archlens::quant
