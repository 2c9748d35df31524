// Elementwise float32 ops of the forward pass and dtype casts (block 256, grid-stride loops: any grid size works).
#include "common.cuh"

#define SS_GRID_STRIDE(i, n) for (int i = blockIdx.x * blockDim.x + threadIdx.x; i < (n); i += gridDim.x * blockDim.x)

// silu(g) * u with silu(g) = g / (1 + e^-g) (Llama's MLP, Hugging Face ACT2FN["silu"]).
extern "C" __global__ void silu_mul_f32(float* gate, const float* up, int n) {
    SS_GRID_STRIDE(i, n) {
        float g = gate[i];
        gate[i] = g / (1.f + expf(-g)) * up[i];
    }
}

extern "C" __global__ void relu_f32(float* x, int n) {
    SS_GRID_STRIDE(i, n) x[i] = fmaxf(x[i], 0.f);
}

extern "C" __global__ void add_f32(float* x, const float* y, int n) {
    SS_GRID_STRIDE(i, n) x[i] += y[i];
}

extern "C" __global__ void bias_add_f32(float* y, const float* bias, int tokens, int dim, int ldy) {
    SS_GRID_STRIDE(i, tokens * dim) y[(i / dim) * ldy + i % dim] += bias[i % dim];
}

extern "C" __global__ void cast_f32_to_bf16(const float* x, unsigned short* y, int n) {
    SS_GRID_STRIDE(i, n) y[i] = ss::f32_to_bf16_bits(x[i]);
}

extern "C" __global__ void cast_f32_to_f16(const float* x, unsigned short* y, int n) {
    SS_GRID_STRIDE(i, n) y[i] = __half_as_ushort(__float2half_rn(x[i]));
}

extern "C" __global__ void cast_bf16_to_f32(const unsigned short* x, float* y, int n) {
    SS_GRID_STRIDE(i, n) y[i] = __uint_as_float((uint32_t)x[i] << 16);
}

extern "C" __global__ void cast_f16_to_f32(const unsigned short* x, float* y, int n) {
    SS_GRID_STRIDE(i, n) y[i] = __half2float(__ushort_as_half(x[i]));
}
