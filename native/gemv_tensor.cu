// Dense BF16 GEMV on tensor cores for 5..16 token rows: y[t, r] = sum_k x[t, k] W[r, k] (+ bias[r]). At 16 rows a
// CUDA-core GEMV does 16 FMAs per weight, as many as H200's FP32 lanes allow at full bandwidth; mma.m16n8k16 does
// them on tensor cores. x stays float32 in effect: each x is split into a BF16 high part and a BF16 remainder
// (x = hi + lo up to 2^-17 relative) and both are multiplied, products exact and accumulated in float32.
//
// A block (8 warps) owns 16 weight rows; warp w takes the 32-column chunks c = w, w + 8, ... and the warps' partial
// sums are added in shared memory (split-K inside the block, so that 4096 rows still make 256 blocks). The k order
// inside a chunk is permuted (sums do not care) so that each lane loads 16 contiguous bytes of its two rows: lane
// (g, t) holds columns 32c + 8t .. 8t+7 of rows g and g+8, and mma j in {0, 1} takes its logical k pairs (2t, 2t+1)
// and (2t+8, 2t+9) from columns 32c + 8t + 4j + {0,1} and + {2,3}; the x fragments use the same mapping.
#include "common.cuh"

namespace {

// Eight BF16 weights of row r, columns k0..k0+7, as four packed pairs; zeros outside the matrix.
__device__ __forceinline__ void load_w8(const unsigned short* w, int r, int rows, int cols, int k0, bool vec, uint32_t (&p)[4]) {
    if (r < rows && vec && k0 + 8 <= cols) {
        uint4 v = __ldg(reinterpret_cast<const uint4*>(w + (long long)r * cols + k0));
        p[0] = v.x; p[1] = v.y; p[2] = v.z; p[3] = v.w;
        return;
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        uint32_t lo = 0, hi = 0;
        if (r < rows && k0 + 2 * i < cols) lo = __ldg(w + (long long)r * cols + k0 + 2 * i);
        if (r < rows && k0 + 2 * i + 1 < cols) hi = __ldg(w + (long long)r * cols + k0 + 2 * i + 1);
        p[i] = lo | (hi << 16);
    }
}

// Eight x values of token row n, columns k0..k0+7, split into BF16 high parts and remainders, packed in pairs.
__device__ __forceinline__ void load_x8(const float* x, int n, int tokens, int cols, int ldx, int k0, bool vec,
                                        uint32_t (&hi)[4], uint32_t (&lo)[4]) {
    float v[8];
    if (n < tokens && vec && k0 + 8 <= cols) {
        const float4* p = reinterpret_cast<const float4*>(x + (long long)n * ldx + k0);
        float4 a = __ldg(p), b = __ldg(p + 1);
        v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    } else {
#pragma unroll
        for (int i = 0; i < 8; i++) v[i] = n < tokens && k0 + i < cols ? x[(long long)n * ldx + k0 + i] : 0.f;
    }
#pragma unroll
    for (int i = 0; i < 4; i++) {
        uint32_t h0 = ss::f32_to_bf16_bits(v[2 * i]), h1 = ss::f32_to_bf16_bits(v[2 * i + 1]);
        uint32_t l0 = ss::f32_to_bf16_bits(v[2 * i] - ss::bf16_lo(h0)), l1 = ss::f32_to_bf16_bits(v[2 * i + 1] - ss::bf16_lo(h1));
        hi[i] = h0 | (h1 << 16);
        lo[i] = l0 | (l1 << 16);
    }
}

template <int T>
__device__ __forceinline__ void gemv_tc(const unsigned short* w, const float* x, float* y, const float* bias, int rows,
                                        int cols, int tokens, int ldx, int ldy) {
    constexpr int NT = T / 8, WARPS = ss::GEMV_TC_THREADS / 32;
    __shared__ float part[WARPS][16][T];
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, t = lane & 3;
    int r0 = blockIdx.x * 16;
    bool wvec = cols % 8 == 0 && ((uintptr_t)w & 15) == 0;
    bool xvec = ldx % 4 == 0 && ((uintptr_t)x & 15) == 0;
    float d[NT][4];
#pragma unroll
    for (int nt = 0; nt < NT; nt++)
#pragma unroll
        for (int i = 0; i < 4; i++) d[nt][i] = 0.f;
    for (int c = warp; c * 32 < cols; c += WARPS) {
        int k0 = c * 32 + 8 * t;
        uint32_t ag[4], ag8[4];
        load_w8(w, r0 + g, rows, cols, k0, wvec, ag);
        load_w8(w, r0 + g + 8, rows, cols, k0, wvec, ag8);
#pragma unroll
        for (int nt = 0; nt < NT; nt++) {
            uint32_t hi[4], lo[4];
            load_x8(x, nt * 8 + g, tokens, cols, ldx, k0, xvec, hi, lo);
#pragma unroll
            for (int j = 0; j < 2; j++) {
                const uint32_t a[4] = {ag[2 * j], ag8[2 * j], ag[2 * j + 1], ag8[2 * j + 1]};
                const uint32_t bh[2] = {hi[2 * j], hi[2 * j + 1]}, bl[2] = {lo[2 * j], lo[2 * j + 1]};
                ss::mma_bf16_16816(d[nt], a, bh);
                ss::mma_bf16_16816(d[nt], a, bl);
            }
        }
    }
#pragma unroll
    for (int nt = 0; nt < NT; nt++) {
        part[warp][g][nt * 8 + 2 * t] = d[nt][0];
        part[warp][g][nt * 8 + 2 * t + 1] = d[nt][1];
        part[warp][g + 8][nt * 8 + 2 * t] = d[nt][2];
        part[warp][g + 8][nt * 8 + 2 * t + 1] = d[nt][3];
    }
    __syncthreads();
    for (int e = threadIdx.x; e < 16 * T; e += blockDim.x) {
        int rr = e / T, n = e % T, r = r0 + rr;
        if (r >= rows || n >= tokens) continue;
        float s = bias ? bias[r] : 0.f;
#pragma unroll
        for (int i = 0; i < WARPS; i++) s += part[i][rr][n];
        y[(long long)n * ldy + r] = s;
    }
}

} // namespace

extern "C" __global__ void __launch_bounds__(256) gemv_tc_bf16_t8(const __nv_bfloat16* w, const float* x, float* y,
                                                                  const float* bias, int rows, int cols, int tokens,
                                                                  int ldx, int ldy) {
    gemv_tc<8>(reinterpret_cast<const unsigned short*>(w), x, y, bias, rows, cols, tokens, ldx, ldy);
}
extern "C" __global__ void __launch_bounds__(256) gemv_tc_bf16_t16(const __nv_bfloat16* w, const float* x, float* y,
                                                                   const float* bias, int rows, int cols, int tokens,
                                                                   int ldx, int ldy) {
    gemv_tc<16>(reinterpret_cast<const unsigned short*>(w), x, y, bias, rows, cols, tokens, ldx, ldy);
}
