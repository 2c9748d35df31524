// RMSNorm (Llama) and LayerNorm (OPT) per token row: one block per row, the row read from global memory (L1-resident
// after the first pass), sums reduced in float32 across the block.
#include "common.cuh"

// out = x / sqrt(mean(x^2) + eps) * weight (Hugging Face LlamaRMSNorm).
extern "C" __global__ void __launch_bounds__(1024) rms_norm_f32(const float* x, float* out, const float* weight, int dim,
                                                              float eps) {
    __shared__ float scratch[32];
    const float* row = x + (long long)blockIdx.x * dim;
    float* o = out + (long long)blockIdx.x * dim;
    float ss = 0.f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) ss += row[i] * row[i];
    float scale = rsqrtf(ss::block_sum(ss, scratch) / dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = row[i] * scale * weight[i];
}

// out = (x - mean) / sqrt(var + eps) * weight + bias, var the biased variance (torch.nn.LayerNorm); two passes over
// the row (mean, then squared deviations) rather than E[x^2] - mean^2, which cancels badly.
extern "C" __global__ void __launch_bounds__(1024) layer_norm_f32(const float* x, float* out, const float* weight,
                                                                const float* bias, int dim, float eps) {
    __shared__ float scratch[32];
    const float* row = x + (long long)blockIdx.x * dim;
    float* o = out + (long long)blockIdx.x * dim;
    float s = 0.f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) s += row[i];
    float mean = ss::block_sum(s, scratch) / dim;
    float sq = 0.f;
    for (int i = threadIdx.x; i < dim; i += blockDim.x) {
        float d = row[i] - mean;
        sq += d * d;
    }
    float inv = rsqrtf(ss::block_sum(sq, scratch) / dim + eps);
    for (int i = threadIdx.x; i < dim; i += blockDim.x) o[i] = (row[i] - mean) * inv * weight[i] + bias[i];
}
