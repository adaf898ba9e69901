// One x86 tier of the dot-product kernels. Textually included, inside a tier namespace and a
// `#pragma GCC target` region, by kernels_avx2.cpp and kernels_avx512.cpp (which include every
// header first: only intrinsics and this file's own code are compiled for the tier's target).
// AL_TIER_AVX512 selects VNNI integer dots and 512-bit float paths.
//
// Every kernel is `template <int NR> run(n, w, a[NR], out[NR])`: the weight block is decoded once
// and multiplied with NR activation rows, each with exactly the same operation sequence, so
// vec_dot (NR = 1) and vec_dot_rows (NR = 4) give bit-identical results.
//
// Integer dot per block, then one float scale per block as in ggml-cpu; the float accumulation
// runs in 8 lanes (like ggml's own AVX2 kernels), so results differ from the scalar reference
// only in float rounding order.
//
// ref: ggml-cpu/arch/x86/quants.c (ggml_vec_dot_*_q8_*, AVX2 paths) — same block algebra,
// written here around a shared "unsigned level × int8 activation, int16 scale" primitive.

#ifndef AL_TIER_AVX512
#error "define AL_TIER_AVX512 before including kernels_x86_impl.h"
#endif

// ---- primitives ---------------------------------------------------------------------------

// The row kernels read one weight row after another, and rows are contiguous: prefetching a fixed
// distance ahead of the current block (into L2, past the row's end into the next rows) keeps more
// misses in flight than the hardware prefetcher does on its own, which stops at every 4 KiB page
// of the memory-mapped file. Qwen3-0.6B Q4_K_M decode, 2 threads, this VM: 37-40 tok/s without,
// 51-60 with 4 KiB ahead (1 KiB: ~50; 8 KiB: ~57). A prefetch past the matrix's end is harmless.
constexpr uintptr_t kRowPrefetch = 4096;
template <class Block>
inline void prefetch_ahead(const Block* b) {
    const uintptr_t a = reinterpret_cast<uintptr_t>(b) + kRowPrefetch;
    if constexpr (sizeof(Block) >= 64) {
        for (size_t l = 0; l < sizeof(Block); l += 64) _mm_prefetch(reinterpret_cast<const char*>(a + l), _MM_HINT_T1);
    } else if ((a & 63) < sizeof(Block)) {  // the first block that touches its cache line
        _mm_prefetch(reinterpret_cast<const char*>(a), _MM_HINT_T1);
    }
}

inline float h2f(uint16_t h) { return _cvtsh_ss(h); }

inline __m256i loadu(const void* p) { return _mm256_loadu_si256(static_cast<const __m256i*>(p)); }

inline float hsum(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// 8 int32 lanes, each the sum of 4 adjacent u8 × s8 products.
// Without VNNI the pair sums pass through int16: exact while |u| <= 128 and |s| <= 127.
inline __m256i dot_us(__m256i u, __m256i s) {
#if AL_TIER_AVX512
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, s);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
#endif
}

// signed × signed through |w| and the sign of w moved onto a (activations never hold -128).
inline __m256i dot_ss(__m256i w, __m256i a) {
    return dot_us(_mm256_sign_epi8(w, w), _mm256_sign_epi8(a, w));
}

// 8 int32 lanes of sum(u*s) over 4 bytes, each pair of bytes weighted by the int16 scale of its
// 16-bit lane: lanes 0..7 cover bytes 0..15, lanes 8..15 bytes 16..31. Exact for u <= 63.
inline __m256i dot_us_scaled(__m256i u, __m256i s, __m256i scale16) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), scale16);
}

// int16 scale a for bytes 0..15 and b for bytes 16..31
inline __m256i scale_pair(int a, int b) {
    return _mm256_set_m128i(_mm_set1_epi16(short(b)), _mm_set1_epi16(short(a)));
}

// 16 packed nibbles → 32 bytes: low nibbles in bytes 0..15, high nibbles in 16..31.
inline __m256i nibbles16(const uint8_t* p) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_and_si256(_mm256_set_m128i(_mm_srli_epi16(v, 4), v), _mm256_set1_epi8(0x0F));
}

// Byte i = 0xFF where bit i of the little-endian uint32 at p is set.
inline __m256i bytes_from_bits32(const uint8_t* p) {
    uint32_t x;
    memcpy(&x, p, 4);
    const __m256i shuf = _mm256_set_epi64x(0x0303030303030303, 0x0202020202020202,
                                           0x0101010101010101, 0);
    __m256i bytes = _mm256_shuffle_epi8(_mm256_set1_epi32(int(x)), shuf);
    bytes = _mm256_or_si256(bytes, _mm256_set1_epi64x(0x7fbfdfeff7fbfdfe));
    return _mm256_cmpeq_epi8(bytes, _mm256_set1_epi64x(-1));
}

// 0x00/`value` per byte: `value` where (v & bit) != 0
inline __m256i bit_to(__m256i v, int bit, int value) {
    const __m256i m = _mm256_set1_epi8(char(bit));
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, m), m),
                            _mm256_set1_epi8(char(value)));
}

inline __m256i srli8(__m256i v, int s) {  // per-byte logical shift (the epi16 shift, masked)
    return _mm256_and_si256(_mm256_srli_epi16(v, s), _mm256_set1_epi8(char(0xFF >> s)));
}

// ---- 32-element blocks --------------------------------------------------------------------

// Two float accumulators per row (even/odd blocks) hide the FMA latency for single-row dots.
template <int NR>
struct Acc2 {
    __m256 v[NR][2];
    Acc2() {
        for (int r = 0; r < NR; ++r) v[r][0] = v[r][1] = _mm256_setzero_ps();
    }
    float sum(int r) const { return hsum(_mm256_add_ps(v[r][0], v[r][1])); }
};

// q8_0 × q8_0 in exactly ggml-cpu's float order, so that logits match llama.cpp bit for bit:
// per block, 8 int32 lanes of 4-byte dot products, one FMA with d_w·d_a into a single 8-lane
// accumulator, blocks in order, then the 8 lanes summed as hsum_float_8 does.
// ref: ggml-cpu arch/x86/quants.c ggml_vec_dot_q8_0_q8_0 (AVX2 path) and llamafile sgemm
// tinyBLAS_Q0_AVX, which share this sequence.
struct KQ8_0 {
    static constexpr int kUnitW = 1, kTileW = 2, kTileA = 4, kDecodeW = 4;
    template <int NW, int NA>
    static void micro(int64_t n, const void* const* wv, const void* const* av, float* out, ptrdiff_t pf) {
        const BlockQ8_0* x[NW];
        const BlockQ8_0* y[NA];
        for (int r = 0; r < NW; ++r) x[r] = static_cast<const BlockQ8_0*>(wv[r]);
        for (int a = 0; a < NA; ++a) y[a] = static_cast<const BlockQ8_0*>(av[a]);
        __m256 acc[NW][NA];
        for (int r = 0; r < NW; ++r)
            for (int a = 0; a < NA; ++a) acc[r][a] = _mm256_setzero_ps();
        const int64_t nb = n / kQK;
        for (int64_t i = 0; i < nb; ++i) {
            __m256i w[NW], aw[NW];
            float dw[NW];
            if (pf)
                for (int r = 0; r < NW; ++r) _mm_prefetch(reinterpret_cast<const char*>(x[r] + i) + pf, _MM_HINT_T1);
            for (int r = 0; r < NW; ++r) {
                w[r] = loadu(x[r][i].qs);
                aw[r] = _mm256_sign_epi8(w[r], w[r]);
                dw[r] = h2f(x[r][i].d);
            }
            for (int a = 0; a < NA; ++a) {
                const __m256i ya = loadu(y[a][i].qs);
                const float da = h2f(y[a][i].d);
                for (int r = 0; r < NW; ++r) {
                    const __m256i p = dot_us(aw[r], _mm256_sign_epi8(ya, w[r]));
                    acc[r][a] = _mm256_fmadd_ps(_mm256_set1_ps(dw[r] * da), _mm256_cvtepi32_ps(p), acc[r][a]);
                }
            }
        }
        for (int a = 0; a < NA; ++a)
            for (int r = 0; r < NW; ++r) out[a * NW + r] = hsum(acc[r][a]);
    }
};

struct KQ4_0 {
    template <int NR>
    static void run(int64_t n, const void* wv, const void* const* av, float* out) {
        const auto* x = static_cast<const BlockQ4_0*>(wv);
        const BlockQ8_0* y[NR];
        for (int r = 0; r < NR; ++r) y[r] = static_cast<const BlockQ8_0*>(av[r]);
        Acc2<NR> acc;
        const int64_t nb = n / kQK;
        for (int64_t i = 0; i < nb; ++i) {
            prefetch_ahead(x + i);
            const __m256i w = _mm256_sub_epi8(nibbles16(x[i].qs), _mm256_set1_epi8(8));
            const __m256i aw = _mm256_sign_epi8(w, w);
            const float dx = h2f(x[i].d);
            for (int r = 0; r < NR; ++r) {
                const __m256i p = dot_us(aw, _mm256_sign_epi8(loadu(y[r][i].qs), w));
                const __m256 d = _mm256_set1_ps(dx * h2f(y[r][i].d));
                acc.v[r][i & 1] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc.v[r][i & 1]);
            }
        }
        for (int r = 0; r < NR; ++r) out[r] = acc.sum(r);
    }
};

struct KQ5_0 {
    template <int NR>
    static void run(int64_t n, const void* wv, const void* const* av, float* out) {
        const auto* x = static_cast<const BlockQ5_0*>(wv);
        const BlockQ8_0* y[NR];
        for (int r = 0; r < NR; ++r) y[r] = static_cast<const BlockQ8_0*>(av[r]);
        Acc2<NR> acc;
        const int64_t nb = n / kQK;
        for (int64_t i = 0; i < nb; ++i) {
            prefetch_ahead(x + i);
            // nibble | 0xF0 where the 5th bit is clear == nibble - 16 as int8
            const __m256i hi = _mm256_andnot_si256(bytes_from_bits32(x[i].qh), _mm256_set1_epi8(char(0xF0)));
            const __m256i w = _mm256_or_si256(nibbles16(x[i].qs), hi);
            const __m256i aw = _mm256_sign_epi8(w, w);
            const float dx = h2f(x[i].d);
            for (int r = 0; r < NR; ++r) {
                const __m256i p = dot_us(aw, _mm256_sign_epi8(loadu(y[r][i].qs), w));
                const __m256 d = _mm256_set1_ps(dx * h2f(y[r][i].d));
                acc.v[r][i & 1] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc.v[r][i & 1]);
            }
        }
        for (int r = 0; r < NR; ++r) out[r] = acc.sum(r);
    }
};

// q4_1 / q5_1 × q8_1: d_x d_y Σ q·a + m_x s_y  (s_y = d_y Σ a, precomputed by the quantizer)
template <class Block, bool kFiveBits>
struct KQx_1 {
    template <int NR>
    static void run(int64_t n, const void* wv, const void* const* av, float* out) {
        const auto* x = static_cast<const Block*>(wv);
        const BlockQ8_1* y[NR];
        for (int r = 0; r < NR; ++r) y[r] = static_cast<const BlockQ8_1*>(av[r]);
        Acc2<NR> acc;
        float summs[NR] = {};
        const int64_t nb = n / kQK;
        for (int64_t i = 0; i < nb; ++i) {
            prefetch_ahead(x + i);
            __m256i u = nibbles16(x[i].qs);
            if constexpr (kFiveBits)
                u = _mm256_or_si256(u, _mm256_and_si256(bytes_from_bits32(x[i].qh), _mm256_set1_epi8(0x10)));
            const float dx = h2f(x[i].d), mx = h2f(x[i].m);
            for (int r = 0; r < NR; ++r) {
                summs[r] += mx * h2f(y[r][i].s);
                const __m256i p = dot_us(u, loadu(y[r][i].qs));
                const __m256 d = _mm256_set1_ps(dx * h2f(y[r][i].d));
                acc.v[r][i & 1] = _mm256_fmadd_ps(d, _mm256_cvtepi32_ps(p), acc.v[r][i & 1]);
            }
        }
        for (int r = 0; r < NR; ++r) out[r] = acc.sum(r) + summs[r];
    }
};

// ---- k-quants × Q8_K ----------------------------------------------------------------------
// Per block: int32 lanes of Σ scale_g · Σ level·a, minus an integer correction from the
// activation group sums (bsums) for the offset / min, then one FMA with the block's float scale.

template <int NR>
struct KAcc {
    __m256 acc[NR], accm[NR];
    __m256i sumi[NR];
    KAcc() {
        for (int r = 0; r < NR; ++r) acc[r] = accm[r] = _mm256_setzero_ps();
    }
    void begin_block() {
        for (int r = 0; r < NR; ++r) sumi[r] = _mm256_setzero_si256();
    }
};

template <class A>
inline __m256i bsums(const A& b) { return loadu(b.bsums); }

struct KQ2_K {
    template <int NR>
    static void run(int64_t n, const void* wv, const void* const* av, float* out) {
        const auto* x = static_cast<const BlockQ2_K*>(wv);
        const BlockQ8_K* y[NR];
        for (int r = 0; r < NR; ++r) y[r] = static_cast<const BlockQ8_K*>(av[r]);
        KAcc<NR> k;
        for (int64_t i = 0; i < n / kQKK; ++i) {
            prefetch_ahead(x + i);
            k.begin_block();
            const uint8_t* sc = x[i].scales;
            const __m256i mins16 = _mm256_cvtepu8_epi16(
                _mm_srli_epi16(_mm_andnot_si128(_mm_set1_epi8(0x0F), _mm_loadu_si128(reinterpret_cast<const __m128i*>(sc))), 4));
            for (int h = 0; h < 2; ++h) {
                const __m256i qv = loadu(x[i].qs + 32 * h);
                for (int s = 0; s < 4; ++s) {
                    const int g = 8 * h + 2 * s;
                    const __m256i u = _mm256_and_si256(_mm256_srli_epi16(qv, 2 * s), _mm256_set1_epi8(3));
                    const __m256i scale = scale_pair(sc[g] & 0xF, sc[g + 1] & 0xF);
                    for (int r = 0; r < NR; ++r)
                        k.sumi[r] = _mm256_add_epi32(k.sumi[r], dot_us_scaled(u, loadu(y[r][i].qs + 128 * h + 32 * s), scale));
                }
            }
            const float dx = h2f(x[i].d), mx = h2f(x[i].dmin);
            for (int r = 0; r < NR; ++r) {
                const __m256i summs = _mm256_madd_epi16(mins16, bsums(y[r][i]));
                k.acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(y[r][i].d * dx), _mm256_cvtepi32_ps(k.sumi[r]), k.acc[r]);
                k.accm[r] = _mm256_fmadd_ps(_mm256_set1_ps(y[r][i].d * mx), _mm256_cvtepi32_ps(summs), k.accm[r]);
            }
        }
        for (int r = 0; r < NR; ++r) out[r] = hsum(k.acc[r]) - hsum(k.accm[r]);
    }
};

struct KQ3_K {
    template <int NR>
    static void run(int64_t n, const void* wv, const void* const* av, float* out) {
        const auto* x = static_cast<const BlockQ3_K*>(wv);
        const BlockQ8_K* y[NR];
        for (int r = 0; r < NR; ++r) y[r] = static_cast<const BlockQ8_K*>(av[r]);
        KAcc<NR> k;
        for (int64_t i = 0; i < n / kQKK; ++i) {
            prefetch_ahead(x + i);
            k.begin_block();
            int8_t sc[16];
            unpack_q3_k_scales(x[i].scales, sc);
            for (int g = 0; g < 16; ++g) sc[g] = int8_t(sc[g] - 32);
            const __m256i hm = loadu(x[i].hmask);
            for (int h = 0; h < 2; ++h) {
                const __m256i qv = loadu(x[i].qs + 32 * h);
                for (int s = 0; s < 4; ++s) {
                    const int g = 8 * h + 2 * s;
                    // level + 4 in 0..7: 2 low bits, plus 4 where the hmask bit is set
                    const __m256i u = _mm256_or_si256(
                        _mm256_and_si256(_mm256_srli_epi16(qv, 2 * s), _mm256_set1_epi8(3)),
                        bit_to(hm, 1 << (4 * h + s), 4));
                    const __m256i scale = scale_pair(sc[g], sc[g + 1]);
                    for (int r = 0; r < NR; ++r)
                        k.sumi[r] = _mm256_add_epi32(k.sumi[r], dot_us_scaled(u, loadu(y[r][i].qs + 128 * h + 32 * s), scale));
                }
            }
            // the +4 offset: Σ_g 4·sc_g·bsum_g
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
            const float dx = h2f(x[i].d);
            for (int r = 0; r < NR; ++r) {
                const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums(y[r][i])), 2);
                const __m256i s = _mm256_sub_epi32(k.sumi[r], off);
                k.acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dx * y[r][i].d), _mm256_cvtepi32_ps(s), k.acc[r]);
            }
        }
        for (int r = 0; r < NR; ++r) out[r] = hsum(k.acc[r]);
    }
};

template <class Block, bool kFiveBits>
struct KQ45_K {
    template <int NR>
    static void run(int64_t n, const void* wv, const void* const* av, float* out) {
        const auto* x = static_cast<const Block*>(wv);
        const BlockQ8_K* y[NR];
        for (int r = 0; r < NR; ++r) y[r] = static_cast<const BlockQ8_K*>(av[r]);
        KAcc<NR> k;
        for (int64_t i = 0; i < n / kQKK; ++i) {
            prefetch_ahead(x + i);
            k.begin_block();
            uint8_t sc[8], mn[8];
            for (int j = 0; j < 8; ++j) get_scale_min_k4(j, x[i].scales, &sc[j], &mn[j]);
            __m128i m8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(mn));
            const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));  // m_g per bsum
            __m256i qh = _mm256_setzero_si256();
            if constexpr (kFiveBits) qh = loadu(x[i].qh);
            for (int c = 0; c < 4; ++c) {
                const __m256i qv = loadu(x[i].qs + 32 * c);
                __m256i lo = _mm256_and_si256(qv, _mm256_set1_epi8(0x0F));
                __m256i hi = srli8(qv, 4);
                if constexpr (kFiveBits) {
                    lo = _mm256_or_si256(lo, bit_to(qh, 1 << (2 * c), 16));
                    hi = _mm256_or_si256(hi, bit_to(qh, 1 << (2 * c + 1), 16));
                }
                const __m256i s_lo = _mm256_set1_epi16(short(sc[2 * c]));
                const __m256i s_hi = _mm256_set1_epi16(short(sc[2 * c + 1]));
                for (int r = 0; r < NR; ++r) {
                    const int8_t* a = y[r][i].qs + 64 * c;
                    const __m256i p = _mm256_add_epi32(dot_us_scaled(lo, loadu(a), s_lo),
                                                       dot_us_scaled(hi, loadu(a + 32), s_hi));
                    k.sumi[r] = _mm256_add_epi32(k.sumi[r], p);
                }
            }
            const float dx = h2f(x[i].d), mx = h2f(x[i].dmin);
            for (int r = 0; r < NR; ++r) {
                const __m256i summs = _mm256_madd_epi16(mins16, bsums(y[r][i]));
                k.acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dx * y[r][i].d), _mm256_cvtepi32_ps(k.sumi[r]), k.acc[r]);
                k.accm[r] = _mm256_fmadd_ps(_mm256_set1_ps(mx * y[r][i].d), _mm256_cvtepi32_ps(summs), k.accm[r]);
            }
        }
        for (int r = 0; r < NR; ++r) out[r] = hsum(k.acc[r]) - hsum(k.accm[r]);
    }
};

struct KQ6_K {
    template <int NR>
    static void run(int64_t n, const void* wv, const void* const* av, float* out) {
        const auto* x = static_cast<const BlockQ6_K*>(wv);
        const BlockQ8_K* y[NR];
        for (int r = 0; r < NR; ++r) y[r] = static_cast<const BlockQ8_K*>(av[r]);
        KAcc<NR> k;
        const __m256i m4 = _mm256_set1_epi8(0x0F), m2 = _mm256_set1_epi8(3);
        for (int64_t i = 0; i < n / kQKK; ++i) {
            prefetch_ahead(x + i);
            k.begin_block();
            const int8_t* sc = x[i].scales;
            for (int h = 0; h < 2; ++h) {
                const __m256i l0 = loadu(x[i].ql + 64 * h), l1 = loadu(x[i].ql + 64 * h + 32);
                const __m256i hv = loadu(x[i].qh + 32 * h);
                // 6-bit levels (value + 32), 0..63
                const __m256i q[4] = {
                    _mm256_or_si256(_mm256_and_si256(l0, m4), _mm256_slli_epi16(_mm256_and_si256(hv, m2), 4)),
                    _mm256_or_si256(_mm256_and_si256(l1, m4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 2), m2), 4)),
                    _mm256_or_si256(srli8(l0, 4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 4), m2), 4)),
                    _mm256_or_si256(srli8(l1, 4), _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hv, 6), m2), 4)),
                };
                for (int s = 0; s < 4; ++s) {
                    const int g = 8 * h + 2 * s;
                    const __m256i scale = scale_pair(sc[g], sc[g + 1]);
                    for (int r = 0; r < NR; ++r)
                        k.sumi[r] = _mm256_add_epi32(k.sumi[r], dot_us_scaled(q[s], loadu(y[r][i].qs + 128 * h + 32 * s), scale));
                }
            }
            // the -32 offset: Σ_g 32·sc_g·bsum_g
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(sc)));
            const float dx = h2f(x[i].d);
            for (int r = 0; r < NR; ++r) {
                const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums(y[r][i])), 5);
                const __m256i s = _mm256_sub_epi32(k.sumi[r], off);
                k.acc[r] = _mm256_fmadd_ps(_mm256_set1_ps(dx * y[r][i].d), _mm256_cvtepi32_ps(s), k.acc[r]);
            }
        }
        for (int r = 0; r < NR; ++r) out[r] = hsum(k.acc[r]);
    }
};

#if AL_TIER_AVX512
// ---- 512-bit kernels for the hot types (Q8_0, Q4_K/Q5_K, Q6_K) ----------------------------
// Same algebra as above, two 32-byte halves per register.

inline __m512i load2x32(const void* lo, const void* hi) {
    return _mm512_inserti64x4(_mm512_castsi256_si512(loadu(lo)), loadu(hi), 1);
}

// ref: ggml-quants.c / ggml-cpu quants.c (kmask trick) — 8 scales then 8 mins, 6 bits each.
inline void unpack_k4(const uint8_t* packed, uint32_t out[4]) {
    constexpr uint32_t kmask1 = 0x3f3f3f3f, kmask2 = 0x0f0f0f0f, kmask3 = 0x03030303;
    memcpy(out, packed, 12);
    out[3] = ((out[2] >> 4) & kmask2) | (((out[1] >> 6) & kmask3) << 4);
    const uint32_t uaux = out[1] & kmask1;
    out[1] = (out[2] & kmask2) | (((out[0] >> 6) & kmask3) << 4);
    out[2] = uaux;
    out[0] &= kmask1;
}

template <bool kPrepared>
struct Q8_0Act {
    using T = BlockQ8_0;
};
template <>
struct Q8_0Act<true> {
    using T = BlockQ8_0A;
};

// KQ8_0's sequence with two weight rows per 512-bit register (row 2p in lanes 0..7, row 2p+1 in
// lanes 8..15), each activation block broadcast to both halves: every 256-bit half is exactly
// ggml's accumulator for its (row, activation) pair.
// The integer part runs as u8 × s8 through vpdpbusd. On standard Q8_0 activations (kPrepared
// false): (a + 128) · w summed over 4 bytes, started from -128 · Σw (once per weight block), the
// activation's sign flip shared by all rows of the tile. On the matmul's BlockQ8_0A rows: (w + 128)
// · a started from the activation's stored -128 · Σa, so no per-row correction at all. Both equal
// Σ a · w exactly, lane for lane, so the two give the same floats.
template <bool kPrepared>
struct KQ8_0_512 {
    using Act = typename Q8_0Act<kPrepared>::T;
    static constexpr int kUnitW = 2, kTileW = 8, kTileA = 4, kDecodeW = 8;
    static float act_scale(const Act& b) {
        if constexpr (kPrepared) return b.d;
        else return h2f(b.d);
    }
    template <int NW, int NA>
    static void micro(int64_t n, const void* const* wv, const void* const* av, float* out, ptrdiff_t pf) {
        static_assert(NW % 2 == 0);
        constexpr int NP = NW / 2;
        const BlockQ8_0* x[NW];
        const Act* y[NA];
        for (int r = 0; r < NW; ++r) x[r] = static_cast<const BlockQ8_0*>(wv[r]);
        for (int a = 0; a < NA; ++a) y[a] = static_cast<const Act*>(av[a]);
        __m512 acc[NP][NA];
        for (int p = 0; p < NP; ++p)
            for (int a = 0; a < NA; ++a) acc[p][a] = _mm512_setzero_ps();
        const __m512i k128 = _mm512_set1_epi8(char(0x80));
        const int64_t nb = n / kQK;
        for (int64_t i = 0; i < nb; ++i) {
            __m512i w[NP], ncorr[NP];
            if (pf)
                for (int r = 0; r < NW; ++r) _mm_prefetch(reinterpret_cast<const char*>(x[r] + i) + pf, _MM_HINT_T1);
            for (int p = 0; p < NP; ++p) {
                w[p] = load2x32(x[2 * p][i].qs, x[2 * p + 1][i].qs);
                if constexpr (kPrepared)
                    w[p] = _mm512_xor_si512(w[p], k128);
                else
                    ncorr[p] = _mm512_sub_epi32(_mm512_setzero_si512(), _mm512_dpbusd_epi32(_mm512_setzero_si512(), k128, w[p]));
            }
            // per row pair and activation: the pair's scale products d_w · d_a (rounded to float as
            // ggml's scalar product is) in the two halves
            __m512 dw[NP];
            __m256 dw8 = _mm256_setzero_ps();
            if constexpr (NW == 8) {  // one multiply per activation for all eight rows, then permutes
                const __m128i hw = _mm_setr_epi16(short(x[0][i].d), short(x[1][i].d), short(x[2][i].d), short(x[3][i].d),
                                                  short(x[4][i].d), short(x[5][i].d), short(x[6][i].d), short(x[7][i].d));
                dw8 = _mm256_cvtph_ps(hw);
            } else {
                for (int p = 0; p < NP; ++p)
                    dw[p] = _mm512_insertf32x8(_mm512_set1_ps(h2f(x[2 * p][i].d)), _mm256_set1_ps(h2f(x[2 * p + 1][i].d)), 1);
            }
            for (int a = 0; a < NA; ++a) {
                const float da = act_scale(y[a][i]);
                __m512i ya, start = _mm512_setzero_si512();
                if constexpr (kPrepared) {
                    ya = _mm512_broadcast_i64x4(loadu(y[a][i].qs));
                    start = _mm512_broadcast_i64x4(loadu(y[a][i].corr));
                } else {
                    ya = _mm512_xor_si512(_mm512_broadcast_i64x4(loadu(y[a][i].qs)), k128);
                }
                __m512 prod = _mm512_setzero_ps();
                if constexpr (NW == 8) prod = _mm512_castps256_ps512(_mm256_mul_ps(dw8, _mm256_set1_ps(da)));
                for (int p = 0; p < NP; ++p) {
                    __m512i d;
                    if constexpr (kPrepared)
                        d = _mm512_dpbusd_epi32(start, w[p], ya);
                    else
                        d = _mm512_dpbusd_epi32(ncorr[p], ya, w[p]);
                    __m512 sc;
                    if constexpr (NW == 8)
                        sc = _mm512_permutexvar_ps(_mm512_inserti64x4(_mm512_set1_epi32(2 * p), _mm256_set1_epi32(2 * p + 1), 1), prod);
                    else
                        sc = _mm512_mul_ps(dw[p], _mm512_set1_ps(da));
                    acc[p][a] = _mm512_fmadd_ps(sc, _mm512_cvtepi32_ps(d), acc[p][a]);
                }
            }
        }
        for (int a = 0; a < NA; ++a)
            for (int p = 0; p < NP; ++p) {
                out[a * NW + 2 * p] = hsum(_mm512_castps512_ps256(acc[p][a]));
                out[a * NW + 2 * p + 1] = hsum(_mm512_extractf32x8_ps(acc[p][a], 1));
            }
    }
};

// Q4_K / Q5_K × Q8_K through vpdpbusd. The unsigned levels of 64 elements (two groups) multiply
// 64 activation bytes in one instruction, 16 int32 lanes of 4 products each. A lane is at most
// 4 · 31 · 128 = 15872, so two such vectors pack losslessly into int16 (vpackssdw) and one vpmaddwd
// applies the groups' 6-bit scales and adds lane pairs of the same group: the block's integer sum
// Σ_g sc_g Σ q·a exactly, in 4 dpbusd + 2 pack + 2 madd per activation row instead of 8 maddubs +
// 8 madd (this core runs 512-bit multiplies at one per cycle, so the count is what matters).
// Act is BlockQ8_K, or BlockQ8_K64 on the matmul path (same values, aligned quants).
template <class Block, bool kFiveBits, class Act>
struct KQ45_K_VNNI {
    template <int NR>
    __attribute__((always_inline)) static void run(int64_t n, const void* wv, const void* const* av, float* out) {
        const auto* x = static_cast<const Block*>(wv);
        const Act* y[NR];
        for (int r = 0; r < NR; ++r) y[r] = static_cast<const Act*>(av[r]);
        __m512 acc[NR];
        __m256 accm[NR];
        for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps(), accm[r] = _mm256_setzero_ps();
        const __m512i m4 = _mm512_set1_epi8(0x0F);
        // the low 256 bits keep the nibbles in place, the high 256 bits shift the high ones down
        const __m512i nib_shift = _mm512_inserti64x4(_mm512_setzero_si512(), _mm256_set1_epi16(4), 1);
        // after vpackssdw(R0, R1), 128-bit lane L holds R0's int32 lanes 4L..4L+3 then R1's: the
        // groups are 0 / 2 for L < 2 and 1 / 3 for L >= 2 (chunk pair 0,1; +4 for chunks 2,3)
        const __m512i sidx01 = _mm512_set_epi16(3, 3, 3, 3, 1, 1, 1, 1, 3, 3, 3, 3, 1, 1, 1, 1,
                                                2, 2, 2, 2, 0, 0, 0, 0, 2, 2, 2, 2, 0, 0, 0, 0);
        const __m512i sidx23 = _mm512_add_epi16(sidx01, _mm512_set1_epi16(4));
        for (int64_t i = 0; i < n / kQKK; ++i) {
            prefetch_ahead(x + i);
            uint32_t sm[4];
            unpack_k4(x[i].scales, sm);
            const __m512i sc = _mm512_castsi128_si512(_mm_cvtepu8_epi16(_mm_loadl_epi64(reinterpret_cast<const __m128i*>(sm))));
            const __m512i sc01 = _mm512_permutexvar_epi16(sidx01, sc), sc23 = _mm512_permutexvar_epi16(sidx23, sc);
            __m128i m8 = _mm_loadl_epi64(reinterpret_cast<const __m128i*>(sm + 2));
            const __m256i mins16 = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(m8, m8));
            // levels of elements 64k .. 64k+63: the low nibbles of qs[32k..32k+31], then the high ones
            __m512i w[4];
            __m512i qh = _mm512_setzero_si512();
            if constexpr (kFiveBits) qh = _mm512_broadcast_i64x4(loadu(x[i].qh));
            for (int k = 0; k < 4; ++k) {
                const __m512i q = _mm512_broadcast_i64x4(loadu(x[i].qs + 32 * k));
                w[k] = _mm512_and_si512(_mm512_srlv_epi16(q, nib_shift), m4);
                if constexpr (kFiveBits) {
                    const __m512i bits = _mm512_inserti64x4(_mm512_set1_epi8(char(1 << (2 * k))), _mm256_set1_epi8(char(2 << (2 * k))), 1);
                    w[k] = _mm512_mask_add_epi8(w[k], _mm512_test_epi8_mask(qh, bits), w[k], _mm512_set1_epi8(16));
                }
            }
            const float dx = h2f(x[i].d), mx = h2f(x[i].dmin);
            for (int r = 0; r < NR; ++r) {
                const int8_t* a = y[r][i].qs;
                __m512i d[4];
                for (int k = 0; k < 4; ++k) d[k] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), w[k], _mm512_loadu_si512(a + 64 * k));
                const __m512i s = _mm512_add_epi32(_mm512_madd_epi16(_mm512_packs_epi32(d[0], d[1]), sc01),
                                                   _mm512_madd_epi16(_mm512_packs_epi32(d[2], d[3]), sc23));
                const __m256i summs = _mm256_madd_epi16(mins16, bsums(y[r][i]));
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(dx * y[r][i].d), _mm512_cvtepi32_ps(s), acc[r]);
                accm[r] = _mm256_fmadd_ps(_mm256_set1_ps(mx * y[r][i].d), _mm256_cvtepi32_ps(summs), accm[r]);
            }
        }
        for (int r = 0; r < NR; ++r)
            out[r] = _mm512_reduce_add_ps(_mm512_sub_ps(acc[r], _mm512_zextps256_ps512(accm[r])));
    }
};

// Q6_K × Q8_K the same way: levels q + 32 in 0..63, so a lane of 4 products stays within
// 4 · 63 · 127 = 32004 and packs into int16; the 16 signed group scales (16 elements = 4 lanes)
// are applied by vpmaddwd, and the -32 offset comes from the activation group sums as before.
template <class Act>
struct KQ6_K_VNNI {
    template <int NR>
    __attribute__((always_inline)) static void run(int64_t n, const void* wv, const void* const* av, float* out) {
        const auto* x = static_cast<const BlockQ6_K*>(wv);
        const Act* y[NR];
        for (int r = 0; r < NR; ++r) y[r] = static_cast<const Act*>(av[r]);
        __m512 acc[NR];
        for (int r = 0; r < NR; ++r) acc[r] = _mm512_setzero_ps();
        const __m512i m4 = _mm512_set1_epi8(0x0F), m2 = _mm512_set1_epi8(3);
        // after vpackssdw(R0, R1) of half h, 128-bit lane L holds R0's lanes 4L..4L+3 (group
        // 8h + L) then R1's (group 8h + 4 + L)
        const __m512i sidx0 = _mm512_set_epi16(7, 7, 7, 7, 3, 3, 3, 3, 6, 6, 6, 6, 2, 2, 2, 2,
                                               5, 5, 5, 5, 1, 1, 1, 1, 4, 4, 4, 4, 0, 0, 0, 0);
        const __m512i sidx1 = _mm512_add_epi16(sidx0, _mm512_set1_epi16(8));
        for (int64_t i = 0; i < n / kQKK; ++i) {
            prefetch_ahead(x + i);
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128(reinterpret_cast<const __m128i*>(x[i].scales)));
            const __m512i sc = _mm512_castsi256_si512(sc16);
            const __m512i sch[2] = {_mm512_permutexvar_epi16(sidx0, sc), _mm512_permutexvar_epi16(sidx1, sc)};
            __m512i q[4];  // levels of elements 64j .. 64j+63
            for (int h = 0; h < 2; ++h) {
                const __m512i ql = _mm512_loadu_si512(x[i].ql + 64 * h);
                const __m256i qh = loadu(x[i].qh + 32 * h);
                // elements 0..63 of the half: low nibbles of ql, qh bits 0-1 then 2-3
                const __m512i h01 = _mm512_inserti64x4(_mm512_castsi256_si512(qh), _mm256_srli_epi16(qh, 2), 1);
                const __m512i h23 = _mm512_srli_epi16(h01, 4);  // bits 4-5, then 6-7
                q[2 * h] = _mm512_or_si512(_mm512_and_si512(ql, m4), _mm512_slli_epi16(_mm512_and_si512(h01, m2), 4));
                q[2 * h + 1] = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                               _mm512_slli_epi16(_mm512_and_si512(h23, m2), 4));
            }
            const float dx = h2f(x[i].d);
            for (int r = 0; r < NR; ++r) {
                const int8_t* a = y[r][i].qs;
                __m512i d[4];
                for (int k = 0; k < 4; ++k) d[k] = _mm512_dpbusd_epi32(_mm512_setzero_si512(), q[k], _mm512_loadu_si512(a + 64 * k));
                __m512i s = _mm512_add_epi32(_mm512_madd_epi16(_mm512_packs_epi32(d[0], d[1]), sch[0]),
                                             _mm512_madd_epi16(_mm512_packs_epi32(d[2], d[3]), sch[1]));
                // the -32 offset: Σ_g 32·sc_g·bsum_g, folded into lanes 0..7
                const __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsums(y[r][i])), 5);
                s = _mm512_sub_epi32(s, _mm512_zextsi256_si512(off));
                acc[r] = _mm512_fmadd_ps(_mm512_set1_ps(dx * y[r][i].d), _mm512_cvtepi32_ps(s), acc[r]);
            }
        }
        for (int r = 0; r < NR; ++r) out[r] = _mm512_reduce_add_ps(acc[r]);
    }
};

// ---- activation quantizers, bit for bit quant_ref's (ggml's) ------------------------------

inline __m512 abs512(__m512 v) {
    return _mm512_castsi512_ps(_mm512_and_si512(_mm512_castps_si512(v), _mm512_set1_epi32(0x7fffffff)));
}
// nearest_int(v) for 16 lanes: round half to even through the 1.5·2^23 trick
inline __m512i nearest_int16(__m512 v) {
    __asm__("" : "+v"(v));  // v is a rounded product: keep the compiler from fusing it into an FMA
    const __m512i t = _mm512_castps_si512(_mm512_add_ps(v, _mm512_set1_ps(12582912.f)));
    return _mm512_sub_epi32(_mm512_and_si512(t, _mm512_set1_epi32(0x007fffff)), _mm512_set1_epi32(0x00400000));
}

inline void quantize_act_q8_0(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<BlockQ8_0*>(dst);
    for (int64_t i = 0; i < n / kQK; ++i, x += kQK) {
        const __m512 v0 = _mm512_loadu_ps(x), v1 = _mm512_loadu_ps(x + 16);
        const float amax = _mm512_reduce_max_ps(_mm512_max_ps(abs512(v0), abs512(v1)));
        const float d = amax / 127.f;
        y[i].d = f32_to_fp16(d);
        const __m512 id = _mm512_set1_ps(amax != 0.0f ? 127.f / amax : 0.0f);
        // |x · id| <= 127 up to rounding; the saturating pack is the reference's clamp
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs), _mm512_cvtsepi32_epi8(nearest_int16(_mm512_mul_ps(v0, id))));
        _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16), _mm512_cvtsepi32_epi8(nearest_int16(_mm512_mul_ps(v1, id))));
    }
}

// BlockQ8_0A rows: quantize_act_q8_0's values, plus the vpdpbusd correction and the f32 scale
inline void quantize_act_q8_0a(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<BlockQ8_0A*>(dst);
    for (int64_t i = 0; i < n / kQK; ++i) {
        BlockQ8_0 b;
        quantize_act_q8_0(x + i * kQK, &b, kQK);
        const __m256i q = loadu(b.qs);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].qs), q);
        const __m256i s128 = _mm256_dpbusd_epi32(_mm256_setzero_si256(), _mm256_set1_epi8(char(0x80)), q);
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y[i].corr), _mm256_sub_epi32(_mm256_setzero_si256(), s128));
        y[i].d = h2f(b.d);
    }
}

// Out is BlockQ8_K, or BlockQ8_K64 for the matmul path (the same values, laid out for it).
template <class Out>
void quantize_act_q8_k(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<Out*>(dst);
    for (int64_t i = 0; i < n / kQKK; ++i, x += kQKK) {
        __m512 m = _mm512_setzero_ps();
        for (int c = 0; c < 16; ++c) m = _mm512_max_ps(m, abs512(_mm512_loadu_ps(x + 16 * c)));
        const float amax = _mm512_reduce_max_ps(m);
        if (!(amax > 0)) {  // all zero (or NaN): the scalar reference decides
            BlockQ8_K b;
            quant::ref::quantize_row_act(DType::Q8_K, x, &b, kQKK);
            y[i].d = b.d;
            memcpy(y[i].qs, b.qs, sizeof b.qs);
            memcpy(y[i].bsums, b.bsums, sizeof b.bsums);
            continue;
        }
        // the first element whose |x| is the maximum (the reference's strict > scan)
        float max = 0;
        for (int c = 0; c < 16; ++c) {
            const __mmask16 k = _mm512_cmp_ps_mask(abs512(_mm512_loadu_ps(x + 16 * c)), _mm512_set1_ps(amax), _CMP_EQ_OQ);
            if (k) {
                max = x[16 * c + __builtin_ctz(unsigned(k))];
                break;
            }
        }
        const float iscale = -127.f / max;
        const __m512 is = _mm512_set1_ps(iscale);
        for (int c = 0; c < 16; ++c) {
            __m512i q = nearest_int16(_mm512_mul_ps(is, _mm512_loadu_ps(x + 16 * c)));
            q = _mm512_min_epi32(q, _mm512_set1_epi32(127));
            _mm_storeu_si128(reinterpret_cast<__m128i*>(y[i].qs + 16 * c), _mm512_cvtsepi32_epi8(q));
            y[i].bsums[c] = int16_t(_mm512_reduce_add_epi32(q));
        }
        y[i].d = 1 / iscale;
    }
}

inline void quantize_act_bf16(const float* x, void* dst, int64_t n) {
    auto* y = static_cast<uint16_t*>(dst);
    int64_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512i u = _mm512_castps_si512(_mm512_loadu_ps(x + i));
        const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff)), _mm512_set1_epi32(0x7f800000));
        const __m512i hi = _mm512_srli_epi32(u, 16);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), _mm512_and_si512(hi, _mm512_set1_epi32(1)))), 16);
        r = _mm512_mask_or_epi32(r, nan, hi, _mm512_set1_epi32(64));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(y + i), _mm512_cvtepi32_epi16(r));
    }
    for (; i < n; ++i) y[i] = f32_to_bf16(x[i]);
}
#endif  // AL_TIER_AVX512

// ---- unquantized --------------------------------------------------------------------------
// Lanes of FMAs (16 lanes × 2 accumulators on AVX-512, 8 × 4 on AVX2), scalar tail.

#if AL_TIER_AVX512
using FVec = __m512;
constexpr int kFLanes = 16;
inline FVec fzero() { return _mm512_setzero_ps(); }
inline FVec fma_(FVec a, FVec b, FVec c) { return _mm512_fmadd_ps(a, b, c); }
inline FVec fadd(FVec a, FVec b) { return _mm512_add_ps(a, b); }
inline float fsum(FVec v) { return _mm512_reduce_add_ps(v); }
inline FVec load_f32(const float* p) { return _mm512_loadu_ps(p); }
inline FVec load_f16(const uint16_t* p) { return _mm512_cvtph_ps(loadu(p)); }
inline FVec load_bf16(const uint16_t* p) {
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(loadu(p)), 16));
}
#else
using FVec = __m256;
constexpr int kFLanes = 8;
inline FVec fzero() { return _mm256_setzero_ps(); }
inline FVec fma_(FVec a, FVec b, FVec c) { return _mm256_fmadd_ps(a, b, c); }
inline FVec fadd(FVec a, FVec b) { return _mm256_add_ps(a, b); }
inline float fsum(FVec v) { return hsum(v); }
inline FVec load_f32(const float* p) { return _mm256_loadu_ps(p); }
inline FVec load_f16(const uint16_t* p) {
    return _mm256_cvtph_ps(_mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
}
inline FVec load_bf16(const uint16_t* p) {
    const __m128i v = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(v), 16));
}
#endif

struct LoadF32 {
    using T = float;
    static FVec load(const T* p) { return load_f32(p); }
    static float scalar(T v) { return v; }
};
struct LoadF16 {
    using T = uint16_t;
    static FVec load(const T* p) { return load_f16(p); }
    static float scalar(T v) { return h2f(v); }
};
struct LoadBF16 {
    using T = uint16_t;
    static FVec load(const T* p) { return load_bf16(p); }
    static float scalar(T v) { return bf16_to_f32(v); }
};

template <class L>
struct KFloat {
    template <int NR>
    static void run(int64_t n, const void* wv, const void* const* av, float* out) {
        constexpr int kU = 2;  // accumulators per row (the same for every NR: identical sums)
        const auto* x = static_cast<const typename L::T*>(wv);
        const typename L::T* y[NR];
        for (int r = 0; r < NR; ++r) y[r] = static_cast<const typename L::T*>(av[r]);
        FVec acc[NR][kU];
        for (int r = 0; r < NR; ++r)
            for (int u = 0; u < kU; ++u) acc[r][u] = fzero();
        int64_t i = 0;
        for (; i + kU * kFLanes <= n; i += kU * kFLanes) {
            for (int u = 0; u < kU; ++u) {
                const FVec w = L::load(x + i + u * kFLanes);
                for (int r = 0; r < NR; ++r) acc[r][u] = fma_(w, L::load(y[r] + i + u * kFLanes), acc[r][u]);
            }
        }
        for (; i + kFLanes <= n; i += kFLanes) {
            const FVec w = L::load(x + i);
            for (int r = 0; r < NR; ++r) acc[r][0] = fma_(w, L::load(y[r] + i), acc[r][0]);
        }
        for (int r = 0; r < NR; ++r) {
            for (int u = 1; u < kU; ++u) acc[r][0] = fadd(acc[r][0], acc[r][u]);
            float s = fsum(acc[r][0]);
            for (int64_t j = i; j < n; ++j) s += L::scalar(x[j]) * L::scalar(y[r][j]);
            out[r] = s;
        }
    }
};

// ---- row driver ---------------------------------------------------------------------------

template <class K>
void rows(int64_t n, const void* w, const void* acts, size_t stride, int n_acts, float* out,
          size_t out_stride) {
    const auto* a = static_cast<const uint8_t*>(acts);
    float tmp[4];
    const void* p[4];
    int r = 0;
    for (; r + 4 <= n_acts; r += 4) {
        for (int k = 0; k < 4; ++k) p[k] = a + size_t(r + k) * stride;
        K::template run<4>(n, w, p, tmp);
        for (int k = 0; k < 4; ++k) out[size_t(r + k) * out_stride] = tmp[k];
    }
    const int left = n_acts - r;
    for (int k = 0; k < left; ++k) p[k] = a + size_t(r + k) * stride;
    switch (left) {
        case 3: K::template run<3>(n, w, p, tmp); break;
        case 2: K::template run<2>(n, w, p, tmp); break;
        case 1: K::template run<1>(n, w, p, tmp); break;
        default: return;
    }
    for (int k = 0; k < left; ++k) out[size_t(r + k) * out_stride] = tmp[k];
}

// A tile as one weight row at a time against all activations (quant.cpp's fallback for kernels
// without a tile of their own), for the table entries that only exist on the matmul path.
template <class K>
void tile_by_rows(int64_t n, const void* w, size_t ws, int nw, const void* acts, size_t as, int na,
                  float* out, size_t os) {
    const auto* wb = static_cast<const uint8_t*>(w);
    if (na == 1) {  // decode: the row loop around the kernel itself (constants set up once, no calls)
        const void* a[1] = {acts};
        for (int r = 0; r < nw; ++r) K::template run<1>(n, wb + size_t(r) * ws, a, out + r);
        return;
    }
    for (int r = 0; r < nw; ++r) rows<K>(n, wb + size_t(r) * ws, acts, as, na, out + r, os);
}

#define AL_TILE_DRIVER_ONCE_PER_NAMESPACE 1
#include "engine/quant/tile_driver.h"
#undef AL_TILE_DRIVER_ONCE_PER_NAMESPACE

inline KernelTable make_table() {
    KernelTable t;
    auto set = [&](DType d, VecDotRowsFn f) { t.rows[uint32_t(d)] = f; };
    set(DType::F32, rows<KFloat<LoadF32>>);
    set(DType::F16, rows<KFloat<LoadF16>>);
    set(DType::BF16, rows<KFloat<LoadBF16>>);
    set(DType::Q4_0, rows<KQ4_0>);
    set(DType::Q4_1, rows<KQx_1<BlockQ4_1, false>>);
    set(DType::Q5_0, rows<KQ5_0>);
    set(DType::Q5_1, rows<KQx_1<BlockQ5_1, true>>);
#if AL_TIER_AVX512
    set(DType::Q8_0, rows_via_tile<KQ8_0_512<false>>);
    t.tile[uint32_t(DType::Q8_0)] = tile<KQ8_0_512<false>>;
#else
    set(DType::Q8_0, rows_via_tile<KQ8_0>);
    t.tile[uint32_t(DType::Q8_0)] = tile<KQ8_0>;
#endif
#if AL_TIER_AVX512
    t.quantize[uint32_t(DType::Q8_0)] = quantize_act_q8_0;
    t.quantize[uint32_t(DType::Q8_K)] = quantize_act_q8_k<BlockQ8_K>;
    auto path = [&](DType d, KernelTable::QuantizeFn q, GemmTileFn tl, int elems, int bytes) {
        t.act_path[uint32_t(d)] = {q, tl, elems, bytes};
    };
    constexpr int kK64 = int(sizeof(BlockQ8_K64));
    path(DType::Q4_K, quantize_act_q8_k<BlockQ8_K64>, tile_by_rows<KQ45_K_VNNI<BlockQ4_K, false, BlockQ8_K64>>, kQKK, kK64);
    path(DType::Q5_K, quantize_act_q8_k<BlockQ8_K64>, tile_by_rows<KQ45_K_VNNI<BlockQ5_K, true, BlockQ8_K64>>, kQKK, kK64);
    path(DType::Q6_K, quantize_act_q8_k<BlockQ8_K64>, tile_by_rows<KQ6_K_VNNI<BlockQ8_K64>>, kQKK, kK64);
    path(DType::Q8_0, quantize_act_q8_0a, tile<KQ8_0_512<true>>, kQK, int(sizeof(BlockQ8_0A)));
    t.quantize[uint32_t(DType::BF16)] = quantize_act_bf16;
#endif
    set(DType::Q2_K, rows<KQ2_K>);
    set(DType::Q3_K, rows<KQ3_K>);
#if AL_TIER_AVX512
    set(DType::Q4_K, rows<KQ45_K_VNNI<BlockQ4_K, false, BlockQ8_K>>);
    set(DType::Q5_K, rows<KQ45_K_VNNI<BlockQ5_K, true, BlockQ8_K>>);
    set(DType::Q6_K, rows<KQ6_K_VNNI<BlockQ8_K>>);
#else
    set(DType::Q4_K, rows<KQ45_K<BlockQ4_K, false>>);
    set(DType::Q5_K, rows<KQ45_K<BlockQ5_K, true>>);
    set(DType::Q6_K, rows<KQ6_K>);
#endif
    return t;
}
