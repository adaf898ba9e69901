// Drives a micro-kernel over a tile of weight rows × activation rows. Textually included inside a
// tier namespace (after <algorithm>-free code: only plain C++), like kernels_x86_impl.h.
//
// A micro-kernel K provides
//   kUnitW   weight rows it needs at least (2 when two rows share one 512-bit register),
//   kTileW   weight rows per prefill micro-tile,   kTileA activation rows per prefill micro-tile,
//   kDecodeW weight rows per pass for one activation row (several independent accumulator chains
//            hide the FMA latency and share each activation load),
//   template <int NW, int NA> static void micro(n, const void* const* w, const void* const* a,
//                                               float* out /* [NA][NW] */, ptrdiff_t pf)
//   where pf != 0 asks it to prefetch w[r] + pf along the way (the next pass's rows: decode
//   reads NW short interleaved streams, which the hardware prefetcher alone follows poorly).
//   Prefetch into L2 (_MM_HINT_T1): a core can keep many more L2 misses in flight than L1 ones,
//   and that, not the arithmetic, bounds one core's share of memory bandwidth (Q8_0 3072×1024
//   decode, one thread, this 2-vCPU Zen 5 VM: 8.7 GB/s with T0, 18.4 GB/s with T1).
// and must run the same per-(row, activation) operation sequence for every NW, NA. Missing rows are
// padded by repeating the last valid one (computed, not stored).

#ifndef AL_TILE_DRIVER_ONCE_PER_NAMESPACE
#error "define AL_TILE_DRIVER_ONCE_PER_NAMESPACE before including tile_driver.h"
#endif

template <class K, int NW, int NA>
inline void tile_pass(int64_t n, const void* const* wp, const uint8_t* ab, size_t as, int a0, int nv,
                      float* out, size_t os, int r0, ptrdiff_t pf = 0) {
    const void* ap[NA];
    for (int k = 0; k < NA; ++k) ap[k] = ab + size_t(a0 + k) * as;
    float tmp[NA * NW];
    K::template micro<NW, NA>(n, wp, ap, tmp, pf);
    for (int k = 0; k < NA; ++k)
        for (int r = 0; r < nv; ++r) out[size_t(a0 + k) * os + size_t(r0 + r)] = tmp[k * NW + r];
}

// Rows r0 .. r0+nv (nv <= NW) against all na activations, NA at a time.
template <class K, int NW, int NA>
inline void tile_rows(int64_t n, const uint8_t* wb, size_t ws, int r0, int nv, const uint8_t* ab,
                      size_t as, int na, float* out, size_t os, ptrdiff_t pf = 0) {
    const void* wp[NW];
    for (int r = 0; r < NW; ++r) wp[r] = wb + size_t(r0 + (r < nv ? r : nv - 1)) * ws;
    int a = 0;
    for (; a + NA <= na; a += NA) tile_pass<K, NW, NA>(n, wp, ab, as, a, nv, out, os, r0, pf);
    if constexpr (NA > 1) {
        switch (na - a) {
            case 0: break;
            case 1: tile_pass<K, NW, 1>(n, wp, ab, as, a, nv, out, os, r0); break;
            case 2: if constexpr (NA > 2) tile_pass<K, NW, 2>(n, wp, ab, as, a, nv, out, os, r0); break;
            case 3: if constexpr (NA > 3) tile_pass<K, NW, 3>(n, wp, ab, as, a, nv, out, os, r0); break;
            default:  // NA > 4: finish one at a time
                for (; a < na; ++a) tile_pass<K, NW, 1>(n, wp, ab, as, a, nv, out, os, r0);
        }
    }
}

template <class K>
void tile(int64_t n, const void* w, size_t ws, int nw, const void* acts, size_t as, int na, float* out,
          size_t os) {
    const auto* wb = static_cast<const uint8_t*>(w);
    const auto* ab = static_cast<const uint8_t*>(acts);
    if (na == 1) {
        int r = 0;
        for (; r + K::kDecodeW <= nw; r += K::kDecodeW) {
            const ptrdiff_t pf = r + 2 * K::kDecodeW <= nw ? ptrdiff_t(K::kDecodeW * ws) : 0;
            tile_rows<K, K::kDecodeW, 1>(n, wb, ws, r, K::kDecodeW, ab, as, 1, out, os, pf);
        }
        for (; r < nw; r += K::kUnitW) {
            const int nv = nw - r < K::kUnitW ? nw - r : K::kUnitW;
            tile_rows<K, K::kUnitW, 1>(n, wb, ws, r, nv, ab, as, 1, out, os);
        }
        return;
    }
    int r = 0;
    for (; r + K::kTileW <= nw; r += K::kTileW) tile_rows<K, K::kTileW, K::kTileA>(n, wb, ws, r, K::kTileW, ab, as, na, out, os);
    for (; r < nw; r += K::kUnitW) {
        const int nv = nw - r < K::kUnitW ? nw - r : K::kUnitW;
        tile_rows<K, K::kUnitW, K::kTileA>(n, wb, ws, r, nv, ab, as, na, out, os);
    }
}

// vec_dot_rows through the tile: one weight row against n_acts activations.
template <class K>
void rows_via_tile(int64_t n, const void* w, const void* acts, size_t stride, int n_acts, float* out,
                   size_t out_stride) {
    // out[a * out_stride + 0] is exactly the tile's layout with nw = 1
    tile<K>(n, w, 0, 1, acts, stride, n_acts, out, out_stride);
}
