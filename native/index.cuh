// Index math shared by the kernels, the CPU emulation tests and (by transcription, see KERNELS.md) the Java host:
// KV slots, decode split ranges, the sparse tile layouts. Plain integer functions, so that every side computes the
// same offsets.
#pragma once

#ifndef SS_HD
#define SS_HD __host__ __device__ __forceinline__
#endif

namespace ss {

SS_HD int popcll(unsigned long long x) {
#ifdef __CUDA_ARCH__
    return __popcll(x);
#else
    return __builtin_popcountll(x);
#endif
}

// ---- KV cache: per layer, blocks laid out [block][kvHead][blockSize][headDim] (Backend.AttentionLayout.kvIndex).
SS_HD long long kv_index(int block, int kvHead, int offset, int kvHeads, int blockSize, int headDim) {
    return ((long long)(block * (long long)kvHeads + kvHead) * blockSize + offset) * headDim;
}

// Position p of a sequence lives in block table entry p / blockSize, at offset p % blockSize.
SS_HD int kv_block_of(const int* blockTable, int p, int blockSize) { return blockTable[p / blockSize]; }

// ---- Split-K decode attention: split s of a sequence of n positions covers [s * splitLen, min(n, (s+1) * splitLen)).
SS_HD int num_splits(int n, int splitLen) { return (n + splitLen - 1) / splitLen; }
SS_HD int split_begin(int s, int splitLen) { return s * splitLen; }
SS_HD int split_end(int s, int n, int splitLen) { int e = (s + 1) * splitLen; return e < n ? e : n; }
// Slot of (token, head, split) in the partial buffers: out [tokens][heads][maxSplits][headDim], max/sum without headDim.
constexpr int DECODE_MAX_SPLIT_LEN = 1024; // scores of one split live in static shared memory
constexpr int MAX_HEAD_DIM = 256;
SS_HD long long partial_index(int t, int h, int s, int heads, int maxSplits) {
    return ((long long)t * heads + h) * maxSplits + s;
}

// ---- Prefill attention KV tile (positions per shared-memory tile) and its dynamic shared memory.
SS_HD int prefill_kv_tile(int headDim) { return headDim <= 128 ? 32 : 16; }
constexpr int PREFILL_WARPS = 8; // query tokens per block (one warp each), sharing each K/V tile
SS_HD int prefill_shared_bytes(int headDim) {
    // K tile padded by one float per row (no bank conflicts when lane j reads row j), V tile, one q row per warp.
    return (prefill_kv_tile(headDim) * (headDim + 1) + prefill_kv_tile(headDim) * headDim + PREFILL_WARPS * headDim) * 4;
}

// ---- Unstructured bitmask, tiled: a row is cut into 64-column tiles; tile j of row r has a 64-bit bitmap at
// bits[r * tiles_per_row + j] (bit i = column 64j + i, zero past the row's end); the kept values are those of
// compressed-tensors' sparse-bitmask, unchanged (row-major, so tile by tile), row r's first at rowStart[r].
SS_HD int tiles_per_row(int cols) { return (cols + 63) / 64; }
SS_HD long long tile_bits_index(int r, int j, int cols) { return (long long)r * tiles_per_row(cols) + j; }
// Index, within its tile's kept values, of column c (0..63) of a tile with bitmap b: the set bits below it.
SS_HD int tile_value_slot(unsigned long long b, int c) {
    return c == 0 ? 0 : popcll(b & ((~0ull) >> (64 - c)));
}

// ---- 2:4: values [rows][cols / 2] as stored; metadata 4 bits per group of 4 columns, two groups per byte, group g of
// row r in byte r * nm24_meta_row_bytes(cols) + g / 2, low nibble for even g; in a nibble, bits 1:0 = column (0..3)
// of the first kept value, bits 3:2 = column of the second (first < second).
SS_HD int nm24_meta_row_bytes(int cols) { return (cols / 4 + 1) / 2; }
SS_HD int nm24_nibble(const unsigned char* meta, int r, int g, int cols) {
    unsigned char b = meta[(long long)r * nm24_meta_row_bytes(cols) + g / 2];
    return (g & 1) ? (b >> 4) : (b & 15);
}

// ---- Dense GEMV: token-row tile sizes with a kernel each (gemv_<dtype>_t<T>); the host picks the smallest T >= tokens.
SS_HD int gemv_token_tile(int tokens) { return tokens <= 1 ? 1 : tokens <= 2 ? 2 : tokens <= 4 ? 4 : tokens <= 8 ? 8 : 16; }
// A dense GEMV row is read by gemv_lanes_per_row(T) lanes of a warp (32 / that many rows per warp): at 8 and 16 token
// rows, 8 lanes per row, so that the four rows of a warp read each x chunk once (a broadcast) instead of four times.
// Block = GEMV_THREADS (8 warps); grid = ceil(rows / gemv_rows_per_block(T)).
constexpr int GEMV_THREADS = 256;
SS_HD constexpr int gemv_lanes_per_row(int T) { return T <= 2 ? 32 : T <= 4 ? 16 : 8; }
SS_HD constexpr int gemv_rows_per_block(int T) { return GEMV_THREADS / gemv_lanes_per_row(T); }
// Tensor-core BF16 GEMV (gemv_tc_bf16_t8/_t16): 16 weight rows per block of GEMV_TC_THREADS; grid = ceil(rows / 16).
constexpr int GEMV_TC_THREADS = 256;
constexpr int GEMV_TC_ROWS = 16;
constexpr int GEMV_WARPS = 8; // rows per block of the sparse GEMVs and the bitmask expansion (one warp per row)

} // namespace ss
