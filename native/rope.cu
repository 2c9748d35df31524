// Rotate-half rotary embedding (Hugging Face apply_rotary_pos_emb with rotate_half), in place, as CpuKernels.rope:
// for i < headDim/2: (x1, x2) = (x[i], x[i + half]) -> (x1 c - x2 s, x2 c + x1 s), c/s from row positions[t] of the
// [maxPositions][half] tables. One block per token; each thread owns whole (head, i) pairs, so no barrier is needed.
#include "common.cuh"

extern "C" __global__ void rope_f32(float* x, const float* cos, const float* sin, const int* positions, int stride,
                                    int heads, int headDim) {
    int t = blockIdx.x, half = headDim / 2;
    const float* c = cos + (long long)positions[t] * half;
    const float* s = sin + (long long)positions[t] * half;
    float* row = x + (long long)t * stride;
    for (int j = threadIdx.x; j < heads * half; j += blockDim.x) {
        int h = j / half, i = j % half;
        float* p = row + h * headDim + i;
        float x1 = p[0], x2 = p[half], cj = c[i], sj = s[i];
        p[0] = x1 * cj - x2 * sj;
        p[half] = x2 * cj + x1 * sj;
    }
}
