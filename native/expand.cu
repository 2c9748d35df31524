// Expansion of a compressed sparse layer into a dense scratch matrix [rows][cols] in the same dtype, for prefill
// through cuBLAS (whose GEMM then reads dense bytes, but once per 512 tokens rather than once per token). The values
// are copied as raw bits (S: an unsigned type of the dtype's size), zeros where pruned.
#include "common.cuh"

namespace {

template <typename S>
__device__ __forceinline__ void expand_bitmask(const unsigned long long* bits, const S* values, const long long* rowStart,
                                               S* dense, int rows, int cols) {
    int lane = threadIdx.x & 31;
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return;
    int tiles = ss::tiles_per_row(cols);
    const unsigned long long* br = bits + ss::tile_bits_index(r, 0, cols);
    const S* vr = values + rowStart[r];
    S* dr = dense + (long long)r * cols;
    int base = 0;
    for (int g = 0; g < tiles; g += 32) {
        unsigned long long b = g + lane < tiles ? br[g + lane] : 0ull;
        int cnt = __popcll(b), inc = ss::warp_inclusive_sum(cnt, lane);
        int off = base + inc - cnt;
        int nt = min(32, tiles - g);
        for (int i = 0; i < nt; i++) {
            unsigned long long bi = __shfl_sync(ss::FULL, b, i);
            int oi = __shfl_sync(ss::FULL, off, i);
            int c = 2 * lane, col = (g + i) * 64 + c;
            unsigned two = (unsigned)(bi >> c) & 3u;
            const S* v = vr + oi + ss::tile_value_slot(bi, c);
            if (col < cols) dr[col] = (two & 1u) ? v[0] : (S)0;
            if (col + 1 < cols) dr[col + 1] = (two & 2u) ? v[two & 1u] : (S)0;
        }
        base += __shfl_sync(ss::FULL, inc, 31);
    }
}

template <typename S>
__device__ __forceinline__ void expand_nm24(const unsigned char* meta, const S* values, S* dense, int rows, int cols) {
    long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x, groups = (long long)rows * (cols / 4);
    if (i >= groups) return;
    int r = (int)(i / (cols / 4)), g = (int)(i % (cols / 4));
    unsigned nib = (unsigned)ss::nm24_nibble(meta, r, g, cols);
    const S* v = values + (long long)r * (cols / 2) + 2 * g;
    S* d = dense + (long long)r * cols + 4 * g;
#pragma unroll
    for (int j = 0; j < 4; j++) d[j] = (S)0;
    d[nib & 3u] = v[0];
    d[nib >> 2] = v[1];
}

} // namespace

#define SS_EXPAND(DT, S)                                                                                             \
    extern "C" __global__ void __launch_bounds__(256) expand_bitmask_##DT(                                           \
        const unsigned long long* bits, const S* values, const long long* rowStart, S* dense, int rows, int cols) {  \
        expand_bitmask<S>(bits, values, rowStart, dense, rows, cols);                                                \
    }                                                                                                                \
    extern "C" __global__ void __launch_bounds__(256) expand_nm24_##DT(const unsigned char* meta, const S* values,   \
                                                                       S* dense, int rows, int cols) {               \
        expand_nm24<S>(meta, values, dense, rows, cols);                                                             \
    }

SS_EXPAND(f32, unsigned int)
SS_EXPAND(f16, unsigned short)
SS_EXPAND(bf16, unsigned short)
