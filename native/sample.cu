// What the engine reads back from the logits: the argmax per row (greedy rows) or the rows it asked for.
#include "common.cuh"

// (value, index) order of Sampler.argmax: larger value first, the lower index on ties, NaN below everything.
__device__ __forceinline__ bool better(float v, int i, float bv, int bi) {
    if (v != v) return false;
    if (bv != bv) return true;
    return v > bv || (v == bv && i < bi);
}

// One block per row; blockDim.x a multiple of 32, at most 1024. All-NaN rows give 0, as Sampler.argmax does.
extern "C" __global__ void __launch_bounds__(1024) argmax_f32(const float* logits, int vocab, int ld, int* out) {
    __shared__ float sv[32];
    __shared__ int si[32];
    const float* row = logits + (long long)blockIdx.x * ld;
    float bv = NAN;
    int bi = 0x7fffffff;
    for (int i = threadIdx.x; i < vocab; i += blockDim.x) {
        float v = row[i];
        if (better(v, i, bv, bi)) { bv = v; bi = i; }
    }
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        float v = __shfl_xor_sync(ss::FULL, bv, o);
        int i = __shfl_xor_sync(ss::FULL, bi, o);
        if (better(v, i, bv, bi)) { bv = v; bi = i; }
    }
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    if (lane == 0) { sv[warp] = bv; si[warp] = bi; }
    __syncthreads();
    if (warp == 0) {
        bv = lane < (int)(blockDim.x >> 5) ? sv[lane] : NAN;
        bi = lane < (int)(blockDim.x >> 5) ? si[lane] : 0x7fffffff;
#pragma unroll
        for (int o = 16; o > 0; o >>= 1) {
            float v = __shfl_xor_sync(ss::FULL, bv, o);
            int i = __shfl_xor_sync(ss::FULL, bi, o);
            if (better(v, i, bv, bi)) { bv = v; bi = i; }
        }
        if (lane == 0) out[blockIdx.x] = bi == 0x7fffffff ? 0 : bi;
    }
}

extern "C" __global__ void gather_rows_f32(const float* src, const int* rows, float* dst, int dim) {
    const float* s = src + (long long)rows[blockIdx.x] * dim;
    float* d = dst + (long long)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) d[i] = s[i];
}
