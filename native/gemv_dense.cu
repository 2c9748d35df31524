// Dense GEMV for decode: y[t, r] = sum_k x[t, k] W[r, k] (+ bias[r]) for 1..16 token rows, W in its stored dtype,
// accumulation in float32. One warp per weight row; each lane streams 16-byte chunks of the row (8 elements),
// four chunks in flight per lane before any arithmetic, so that a block of 8 warps keeps 8 * 32 * 64 = 16 KB of
// BF16 weights in flight (a few blocks per SM cover H200's bandwidth-delay product). Every loaded weight is used for
// all T token rows (the x rows are small and stay in L1/L2). As llama.cpp's mul_mat_vec, one kernel per token tile.
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
    int lane = threadIdx.x & 31;
    int r = blockIdx.x * (blockDim.x >> 5) + (threadIdx.x >> 5);
    if (r >= rows) return; // the whole warp leaves
    const W* wr = w + (long long)r * cols;
    float acc[T];
#pragma unroll
    for (int t = 0; t < T; t++) acc[t] = 0.f;
    bool vec = cols % 8 == 0 && ldx % 4 == 0 && ((uintptr_t)w & 15) == 0 && ((uintptr_t)x & 15) == 0;
    if (vec) {
        int chunks = cols / 8, c = lane;
        for (; c + 96 < chunks; c += 128) {
            float v[4][8];
#pragma unroll
            for (int u = 0; u < 4; u++) ss::Dtype<W>::load8(wr + (c + 32 * u) * 8, v[u]);
#pragma unroll
            for (int u = 0; u < 4; u++) fma8<T>(acc, v[u], x, ldx, (c + 32 * u) * 8, tokens);
        }
        for (; c < chunks; c += 32) {
            float v[8];
            ss::Dtype<W>::load8(wr + c * 8, v);
            fma8<T>(acc, v, x, ldx, c * 8, tokens);
        }
    } else {
        for (int k = lane; k < cols; k += 32) {
            float v = ss::Dtype<W>::load(wr + k);
#pragma unroll
            for (int t = 0; t < T; t++)
                if (t < tokens) acc[t] += v * x[(long long)t * ldx + k];
        }
    }
#pragma unroll
    for (int t = 0; t < T; t++) acc[t] = ss::warp_sum(acc[t]);
    if (lane == 0) {
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
