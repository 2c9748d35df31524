// Sparse GEMV for decode over pruned weights kept compressed (layouts in KERNELS.md), y[t, r] = sum_k x[t, k] W[r, k]
// (+ bias[r]) for 1..16 token rows, reading only kept values and mask bits. One warp per row in both formats.
//
// Bitmask tiles (SpInfer's idea of bitmap tiles with popcount offsets, laid out for a warp per row): a warp takes 32
// tiles of 64 columns at a time, one bitmap per lane, and a warp prefix sum of their popcounts gives each tile's first
// value, so only a row offset is stored. Then per tile lane l owns columns 2l and 2l+1 and finds its value slots by
// popcount of the bits below: the warp reads the tile's kept values as one contiguous run (coalesced), no gathers.
//
// 2:4: each lane reads 16 bytes of values (8 kept values = 16 columns) and two metadata bytes per step; as in the dense
// GEMV, 16 or 8 lanes per row at 4-16 token rows so that a warp's rows share their x loads.
#include "common.cuh"

namespace {

template <typename W, int T>
__device__ __forceinline__ void spmv_bitmask(const unsigned long long* bits, const W* values, const long long* rowStart,
                                             const float* x, float* y, const float* bias, int rows, int cols, int tokens,
                                             int ldx, int ldy) {
    int lane = threadIdx.x & 31;
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    int tiles = ss::tiles_per_row(cols);
    const unsigned long long* br = bits + ss::tile_bits_index(r, 0, cols);
    const W* vr = values + rowStart[r];
    float acc[T];
#pragma unroll
    for (int t = 0; t < T; t++) acc[t] = 0.f;
    int base = 0; // kept values of the row's tiles before this group of 32
    for (int g = 0; g < tiles; g += 32) {
        unsigned long long b = g + lane < tiles ? __ldg(br + g + lane) : 0ull;
        int cnt = __popcll(b), inc = ss::warp_inclusive_sum(cnt, lane);
        int off = base + inc - cnt;
        int nt = min(32, tiles - g);
#pragma unroll 4
        for (int i = 0; i < nt; i++) {
            unsigned long long bi = __shfl_sync(ss::FULL, b, i);
            int oi = __shfl_sync(ss::FULL, off, i);
            int c = 2 * lane;
            unsigned two = (unsigned)(bi >> c) & 3u;
            if (two) {
                const W* v = vr + oi + ss::tile_value_slot(bi, c);
                int col = (g + i) * 64 + c;
                float v0 = (two & 1u) ? ss::Dtype<W>::load(v) : 0.f;
                float v1 = (two & 2u) ? ss::Dtype<W>::load(v + (two & 1u)) : 0.f;
#pragma unroll
                for (int t = 0; t < T; t++) {
                    if (t < tokens) {
                        const float* xr = x + (long long)t * ldx + col;
                        acc[t] += ((two & 1u) ? v0 * xr[0] : 0.f) + ((two & 2u) ? v1 * xr[1] : 0.f);
                    }
                }
            }
        }
        base += __shfl_sync(ss::FULL, inc, 31);
    }
#pragma unroll
    for (int t = 0; t < T; t++) acc[t] = ss::warp_sum(acc[t]);
    if (lane == 0) {
        float bb = bias ? bias[r] : 0.f;
#pragma unroll
        for (int t = 0; t < T; t++)
            if (t < tokens) y[(long long)t * ldy + r] = acc[t] + bb;
    }
}

// The 8 kept values v of 16 columns starting at column k, metadata m (4 nibbles, group q in bits 4q..4q+3).
template <int T> __device__ __forceinline__ void fma_nm24(float (&acc)[T], const float (&v)[8], unsigned m, const float* x,
                                                          int ldx, int k, int tokens) {
#pragma unroll
    for (int t = 0; t < T; t++) {
        if (t < tokens) {
            const float* xr = x + (long long)t * ldx + k;
            float s = 0.f;
#pragma unroll
            for (int q = 0; q < 4; q++) {
                unsigned nib = (m >> (4 * q)) & 15u;
                s += v[2 * q] * xr[4 * q + (nib & 3u)] + v[2 * q + 1] * xr[4 * q + (nib >> 2)];
            }
            acc[t] += s;
        }
    }
}

template <typename W, int T>
__device__ __forceinline__ void spmv_nm24(const unsigned char* meta, const W* values, const float* x, float* y,
                                          const float* bias, int rows, int cols, int tokens, int ldx, int ldy) {
    // L lanes per row as in the dense GEMV (ss::gemv_lanes_per_row): at many token rows the rows of a warp share x.
    constexpr int L = ss::gemv_lanes_per_row(T);
    int lane = threadIdx.x & 31, sub = lane % L;
    int r = (blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * (32 / L) + lane / L;
    bool valid = r < rows;
    if (__ballot_sync(ss::FULL, valid) == 0) return;
    int row = valid ? r : 0;
    const W* vr = values + (long long)row * (cols / 2);
    const unsigned char* mr = meta + (long long)row * ss::nm24_meta_row_bytes(cols);
    float acc[T];
#pragma unroll
    for (int t = 0; t < T; t++) acc[t] = 0.f;
    bool vec = cols % 16 == 0 && ((uintptr_t)values & 15) == 0 && ((uintptr_t)meta & 1) == 0;
    if (valid && vec) {
        const unsigned short* mr2 = reinterpret_cast<const unsigned short*>(mr);
        int chunks = cols / 16, c = sub;
        for (; c + L < chunks; c += 2 * L) {
            float v[2][8];
            unsigned m[2];
#pragma unroll
            for (int u = 0; u < 2; u++) {
                ss::Dtype<W>::load8(vr + (c + L * u) * 8, v[u]);
                m[u] = __ldg(mr2 + c + L * u);
            }
#pragma unroll
            for (int u = 0; u < 2; u++) fma_nm24<T>(acc, v[u], m[u], x, ldx, (c + L * u) * 16, tokens);
        }
        for (; c < chunks; c += L) {
            float v[8];
            ss::Dtype<W>::load8(vr + c * 8, v);
            fma_nm24<T>(acc, v, __ldg(mr2 + c), x, ldx, c * 16, tokens);
        }
    } else if (valid) {
        for (int g = sub; g < cols / 4; g += L) {
            unsigned nib = (unsigned)ss::nm24_nibble(meta, row, g, cols);
            float v0 = ss::Dtype<W>::load(vr + 2 * g), v1 = ss::Dtype<W>::load(vr + 2 * g + 1);
#pragma unroll
            for (int t = 0; t < T; t++) {
                if (t < tokens) {
                    const float* xr = x + (long long)t * ldx + 4 * g;
                    acc[t] += v0 * xr[nib & 3u] + v1 * xr[nib >> 2];
                }
            }
        }
    }
#pragma unroll
    for (int t = 0; t < T; t++) {
#pragma unroll
        for (int o = L / 2; o > 0; o >>= 1) acc[t] += __shfl_xor_sync(ss::FULL, acc[t], o);
    }
    if (valid && sub == 0) {
        float bb = bias ? bias[r] : 0.f;
#pragma unroll
        for (int t = 0; t < T; t++)
            if (t < tokens) y[(long long)t * ldy + r] = acc[t] + bb;
    }
}

} // namespace

#define SS_SPMV_BM(NAME, W, T)                                                                                          \
    extern "C" __global__ void __launch_bounds__(256) NAME(const unsigned long long* bits, const W* values,            \
                                                           const long long* rowStart, const float* x, float* y,        \
                                                           const float* bias, int rows, int cols, int tokens, int ldx, \
                                                           int ldy) {                                                  \
        spmv_bitmask<W, T>(bits, values, rowStart, x, y, bias, rows, cols, tokens, ldx, ldy);                         \
    }
#define SS_SPMV_NM(NAME, W, T)                                                                                          \
    extern "C" __global__ void __launch_bounds__(256) NAME(const unsigned char* meta, const W* values, const float* x, \
                                                           float* y, const float* bias, int rows, int cols, int tokens, \
                                                           int ldx, int ldy) {                                          \
        spmv_nm24<W, T>(meta, values, x, y, bias, rows, cols, tokens, ldx, ldy);                                      \
    }
#define SS_SPMV_ALL(DT, W)                                                                                         \
    SS_SPMV_BM(spmv_bitmask_##DT##_t1, W, 1) SS_SPMV_BM(spmv_bitmask_##DT##_t2, W, 2)                              \
    SS_SPMV_BM(spmv_bitmask_##DT##_t4, W, 4) SS_SPMV_BM(spmv_bitmask_##DT##_t8, W, 8)                              \
    SS_SPMV_BM(spmv_bitmask_##DT##_t16, W, 16) SS_SPMV_NM(spmv_nm24_##DT##_t1, W, 1)                               \
    SS_SPMV_NM(spmv_nm24_##DT##_t2, W, 2) SS_SPMV_NM(spmv_nm24_##DT##_t4, W, 4) SS_SPMV_NM(spmv_nm24_##DT##_t8, W, 8) \
    SS_SPMV_NM(spmv_nm24_##DT##_t16, W, 16)

SS_SPMV_ALL(f32, float)
SS_SPMV_ALL(f16, __half)
SS_SPMV_ALL(bf16, __nv_bfloat16)
