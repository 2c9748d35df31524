// Dense GEMV for decode: y[t, r] = sum_k x[t, k] W[r, k] (+ bias[r]) for 1..16 token rows, W in its stored dtype,
// accumulation in float32. L lanes per weight row (32 at 1-2 token rows, 16 at 4, 8 at 8-16: ss::gemv_lanes_per_row);
// each lane streams chunks of 8 elements of its row with 16-byte loads, 64 bytes in flight before any arithmetic
// (at L = 32 a block keeps 8 * 32 * 64 = 16 KB of weights in flight; a few blocks per SM cover H200's
// bandwidth-delay product). Every loaded weight serves all T token rows; x rows come from L1/L2, and at many token
// rows their loads, 2T per weight chunk, would outweigh the weight stream: there the rows of a warp share each x load
// (same address across its row groups, one broadcast). As llama.cpp's mul_mat_vec, one kernel per token tile.
#include "common.cuh"

namespace {

template <int T> __device__ __forceinline__ void fma8(float (&acc)[T], const float (&w)[8], const float* x, int ldx, int k,
                                                      int tokens) {
#pragma unroll
    for (int t = 0; t < T; t++) {
        if (t < tokens) {
            const float4* xp = reinterpret_cast<const float4*>(x + (long long)t * ldx + k);
            float4 a = __ldg(xp), b = __ldg(xp + 1);
            acc[t] += w[0] * a.x + w[1] * a.y + w[2] * a.z + w[3] * a.w + w[4] * b.x + w[5] * b.y + w[6] * b.z + w[7] * b.w;
        }
    }
}

template <typename W, int T>
__device__ __forceinline__ void gemv(const W* w, const float* x, float* y, const float* bias, int rows, int cols, int tokens,
                                     int ldx, int ldy) {
    constexpr int L = ss::gemv_lanes_per_row(T); // lanes per row; a warp reads 32 / L rows side by side
    int lane = threadIdx.x & 31, sub = lane % L;
    int r = (blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5)) * (32 / L) + lane / L;
    // A lane of a row past the end still takes part in the shuffles (other rows of its warp need them).
    bool valid = r < rows;
    if (__ballot_sync(ss::FULL, valid) == 0) return; // the whole warp leaves
    const W* wr = w + (long long)(valid ? r : 0) * cols;
    float acc[T];
#pragma unroll
    for (int t = 0; t < T; t++) acc[t] = 0.f;
    bool vec = cols % 8 == 0 && ldx % 4 == 0 && ((uintptr_t)w & 15) == 0 && ((uintptr_t)x & 15) == 0;
    if (valid && vec) {
        // U chunks in flight per lane: 64 bytes of weights (4 chunks of BF16/F16, 2 of F32).
        constexpr int U = sizeof(W) == 4 ? 2 : 4;
        int chunks = cols / 8, c = sub;
        for (; c + (U - 1) * L < chunks; c += U * L) {
            float v[U][8];
#pragma unroll
            for (int u = 0; u < U; u++) ss::Dtype<W>::load8(wr + (c + L * u) * 8, v[u]);
#pragma unroll
            for (int u = 0; u < U; u++) fma8<T>(acc, v[u], x, ldx, (c + L * u) * 8, tokens);
        }
        for (; c < chunks; c += L) {
            float v[8];
            ss::Dtype<W>::load8(wr + c * 8, v);
            fma8<T>(acc, v, x, ldx, c * 8, tokens);
        }
    } else if (valid) {
        for (int k = sub; k < cols; k += L) {
            float v = ss::Dtype<W>::load(wr + k);
#pragma unroll
            for (int t = 0; t < T; t++)
                if (t < tokens) acc[t] += v * x[(long long)t * ldx + k];
        }
    }
    // Sum over the row's L lanes (aligned groups of L: xor offsets below L stay inside the group).
#pragma unroll
    for (int t = 0; t < T; t++) {
#pragma unroll
        for (int o = L / 2; o > 0; o >>= 1) acc[t] += __shfl_xor_sync(ss::FULL, acc[t], o);
    }
    if (valid && sub == 0) {
        float b = bias ? bias[r] : 0.f;
#pragma unroll
        for (int t = 0; t < T; t++)
            if (t < tokens) y[(long long)t * ldy + r] = acc[t] + b;
    }
}

} // namespace

#define SS_GEMV(NAME, W, T)                                                                                            \
    extern "C" __global__ void __launch_bounds__(256) NAME(const W* w, const float* x, float* y, const float* bias,    \
                                                           int rows, int cols, int tokens, int ldx, int ldy) {        \
        gemv<W, T>(w, x, y, bias, rows, cols, tokens, ldx, ldy);                                                      \
    }
#define SS_GEMV_ALL(DT, W) \
    SS_GEMV(gemv_##DT##_t1, W, 1) SS_GEMV(gemv_##DT##_t2, W, 2) SS_GEMV(gemv_##DT##_t4, W, 4) \
    SS_GEMV(gemv_##DT##_t8, W, 8) SS_GEMV(gemv_##DT##_t16, W, 16)

SS_GEMV_ALL(f32, float)
SS_GEMV_ALL(f16, __half)
SS_GEMV_ALL(bf16, __nv_bfloat16)
