// Embedding gather: out[t] = table[ids[t]] widened to float32, one block per token.
#include "common.cuh"

template <typename W> __device__ __forceinline__ void embed(const W* table, const int* ids, float* out, int dim) {
    const W* row = table + (long long)ids[blockIdx.x] * dim;
    float* o = out + (long long)blockIdx.x * dim;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = ss::Dtype<W>::load(row + i);
}

extern "C" __global__ void embed_f32(const float* table, const int* ids, float* out, int dim) { embed(table, ids, out, dim); }
extern "C" __global__ void embed_f16(const __half* table, const int* ids, float* out, int dim) { embed(table, ids, out, dim); }
extern "C" __global__ void embed_bf16(const __nv_bfloat16* table, const int* ids, float* out, int dim) {
    embed(table, ids, out, dim);
}
