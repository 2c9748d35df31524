// Paged attention over one layer's KV blocks ([block][kvHead][blockSize][headDim], Backend.AttentionLayout.kvIndex),
// causal, grouped-query (query head h reads KV head h / (heads / kvHeads)), float32 softmax and accumulation, KV in
// float32 or bf16. Layouts and launch shapes: KERNELS.md.
//
// Decode splits each token's positions into ranges of splitLen, one block per (head, token, split), and a second
// kernel combines the partial softmaxes (FlashDecoding; vLLM's paged_attention_v2 and its reduce kernel): a long
// context is then spread over many SMs even at batch 1. Prefill runs one warp per query token over K/V tiles staged
// in shared memory with an online softmax (FlashAttention-2, Dao 2023, Algorithm 1), a loaded tile serving every
// token of the block that belongs to the same sequence.
#include "common.cuh"

namespace {

// KV element access: float32 as is; bf16 as bits (widened exactly, stored rounded to nearest even).
template <typename KV> struct Kv;
template <> struct Kv<float> {
    __device__ __forceinline__ static float load(const float* p) { return *p; }
    __device__ __forceinline__ static void store(float* p, float v) { *p = v; }
};
template <> struct Kv<unsigned short> {
    __device__ __forceinline__ static float load(const unsigned short* p) { return __uint_as_float((uint32_t)*p << 16); }
    __device__ __forceinline__ static void store(unsigned short* p, float v) { *p = ss::f32_to_bf16_bits(v); }
};

template <typename KV>
__device__ __forceinline__ void kv_store(const float* k, const float* v, KV* kCache, KV* vCache, const int* slots,
                                         int kvHeads, int headDim, int blockSize, int ldk, int ldv) {
    int t = blockIdx.x, slot = slots[t];
    if (slot < 0) return;
    int b = slot / blockSize, o = slot % blockSize;
    for (int e = threadIdx.x; e < kvHeads * headDim; e += blockDim.x) {
        int h = e / headDim, i = e % headDim;
        long long at = ss::kv_index(b, h, o, kvHeads, blockSize, headDim) + i;
        Kv<KV>::store(kCache + at, k[(long long)t * ldk + e]);
        Kv<KV>::store(vCache + at, v[(long long)t * ldv + e]);
    }
}

template <typename KV>
__device__ __forceinline__ void decode_partial(const float* q, const KV* kCache, const KV* vCache, const int* blockTables,
                                               int maxBlocksPerSeq, const int* tokenSeq, const int* positions,
                                               float* partOut, float* partMax, float* partSum, int heads, int kvHeads,
                                               int headDim, int blockSize, int splitLen, int maxSplits, float scale) {
    __shared__ float qs[ss::MAX_HEAD_DIM];
    __shared__ float sc[ss::DECODE_MAX_SPLIT_LEN];
    __shared__ float red[32];
    int h = blockIdx.x, t = blockIdx.y, s = blockIdx.z;
    int n = positions[t] + 1;
    if (s >= ss::num_splits(n, splitLen)) return; // the whole block leaves
    int p0 = ss::split_begin(s, splitLen), p1 = ss::split_end(s, n, splitLen);
    int kvh = h / (heads / kvHeads);
    const int* table = blockTables + (long long)tokenSeq[t] * maxBlocksPerSeq;
    const float* qr = q + ((long long)t * heads + h) * headDim;
    for (int i = threadIdx.x; i < headDim; i += blockDim.x) qs[i] = qr[i] * scale;
    __syncthreads();
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    // Scores, a warp per position (one key row is contiguous: coalesced).
    float localMax = -INFINITY;
    for (int p = p0 + warp; p < p1; p += warps) {
        const KV* kr = kCache + ss::kv_index(ss::kv_block_of(table, p, blockSize), kvh, p % blockSize, kvHeads, blockSize,
                                             headDim);
        float d = 0.f;
        for (int i = lane; i < headDim; i += 32) d += qs[i] * Kv<KV>::load(kr + i);
        d = ss::warp_sum(d);
        if (lane == 0) sc[p - p0] = d;
        localMax = fmaxf(localMax, d);
    }
    float m = ss::block_max(localMax, red); // its barriers also publish sc
    float sum = 0.f;
    for (int j = threadIdx.x; j < p1 - p0; j += blockDim.x) {
        float e = expf(sc[j] - m);
        sc[j] = e;
        sum += e;
    }
    sum = ss::block_sum(sum, red);
    long long slot = ss::partial_index(t, h, s, heads, maxSplits);
    float inv = 1.f / sum;
    // Output, a thread per dimension: for each position the block reads one value row, coalesced.
    for (int i = threadIdx.x; i < headDim; i += blockDim.x) {
        float a = 0.f;
        for (int p = p0; p < p1; p++) {
            const KV* vr = vCache + ss::kv_index(ss::kv_block_of(table, p, blockSize), kvh, p % blockSize, kvHeads,
                                                 blockSize, headDim);
            a += sc[p - p0] * Kv<KV>::load(vr + i);
        }
        partOut[slot * headDim + i] = a * inv;
    }
    if (threadIdx.x == 0) {
        partMax[slot] = m;
        partSum[slot] = sum;
    }
}

template <typename KV>
__device__ __forceinline__ void prefill(const float* q, const KV* kCache, const KV* vCache, const int* blockTables,
                                        int maxBlocksPerSeq, const int* tokenSeq, const int* positions, float* out,
                                        int tokens, int heads, int kvHeads, int headDim, int blockSize, float scale) {
    constexpr int W = ss::PREFILL_WARPS, MAXK = ss::MAX_HEAD_DIM / 32;
    SS_DYN_SHARED(float, smem);
    const int tile = ss::prefill_kv_tile(headDim), kst = headDim + 1;
    float* ks = smem;                    // [tile][headDim + 1]
    float* vs = ks + tile * kst;         // [tile][headDim]
    float* qs = vs + tile * headDim;     // [W][headDim]
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
    int h = blockIdx.y, kvh = h / (heads / kvHeads), t0 = blockIdx.x * W;
    int me = t0 + warp;
    bool active = me < tokens;
    int mySeq = active ? tokenSeq[me] : -1, myN = active ? positions[me] + 1 : 0;
    float* qw = qs + warp * headDim;
    for (int i = lane; i < headDim; i += 32) qw[i] = active ? q[((long long)me * heads + h) * headDim + i] * scale : 0.f;
    float m = -INFINITY, l = 0.f, acc[MAXK];
#pragma unroll
    for (int k = 0; k < MAXK; k++) acc[k] = 0.f;
    // Each distinct sequence among the block's tokens, in order: its K/V tiles up to the furthest of its tokens.
    for (int w = 0; w < W && t0 + w < tokens; w++) {
        int seq = tokenSeq[t0 + w];
        bool seen = false;
        int nmax = 0;
        for (int u = 0; u < W && t0 + u < tokens; u++) {
            if (tokenSeq[t0 + u] != seq) continue;
            if (u < w) seen = true;
            nmax = max(nmax, positions[t0 + u] + 1);
        }
        if (seen) continue;
        const int* table = blockTables + (long long)seq * maxBlocksPerSeq;
        for (int p0 = 0; p0 < nmax; p0 += tile) {
            int cnt = min(tile, nmax - p0);
            __syncthreads(); // the previous tile is consumed
            for (int e = threadIdx.x; e < cnt * headDim; e += blockDim.x) {
                int j = e / headDim, i = e % headDim, p = p0 + j;
                long long at = ss::kv_index(ss::kv_block_of(table, p, blockSize), kvh, p % blockSize, kvHeads, blockSize,
                                            headDim) + i;
                ks[j * kst + i] = Kv<KV>::load(kCache + at);
                vs[j * headDim + i] = Kv<KV>::load(vCache + at);
            }
            __syncthreads();
            int lim = mySeq == seq ? min(cnt, myN - p0) : 0; // positions of this tile the warp's token sees
            if (lim > 0) {                                  // warp-uniform
                float sj = -INFINITY;
                if (lane < lim) {
                    float d = 0.f;
                    for (int i = 0; i < headDim; i++) d += qw[i] * ks[lane * kst + i];
                    sj = d;
                }
                float mNew = fmaxf(m, ss::warp_max(sj));
                float pj = lane < lim ? expf(sj - mNew) : 0.f;
                float corr = expf(m - mNew); // 0 on the first tile (m = -inf)
                l = l * corr + ss::warp_sum(pj);
#pragma unroll
                for (int k = 0; k < MAXK; k++) acc[k] *= corr;
                for (int j = 0; j < lim; j++) {
                    float pjj = __shfl_sync(ss::FULL, pj, j);
#pragma unroll
                    for (int k = 0; k < MAXK; k++)
                        if (lane + 32 * k < headDim) acc[k] += pjj * vs[j * headDim + lane + 32 * k];
                }
                m = mNew;
            }
        }
    }
    if (active) {
        float inv = 1.f / l;
#pragma unroll
        for (int k = 0; k < MAXK; k++)
            if (lane + 32 * k < headDim) out[((long long)me * heads + h) * headDim + lane + 32 * k] = acc[k] * inv;
    }
}

} // namespace

extern "C" __global__ void attn_decode_combine(const float* partOut, const float* partMax, const float* partSum,
                                               const int* positions, float* out, int heads, int headDim, int splitLen,
                                               int maxSplits) {
    int h = blockIdx.x, t = blockIdx.y;
    int ns = ss::num_splits(positions[t] + 1, splitLen);
    long long first = ss::partial_index(t, h, 0, heads, maxSplits);
    float m = -INFINITY;
    for (int s = 0; s < ns; s++) m = fmaxf(m, partMax[first + s]);
    float den = 0.f;
    for (int s = 0; s < ns; s++) den += partSum[first + s] * expf(partMax[first + s] - m);
    float inv = 1.f / den;
    for (int i = threadIdx.x; i < headDim; i += blockDim.x) {
        float a = 0.f;
        for (int s = 0; s < ns; s++) a += partSum[first + s] * expf(partMax[first + s] - m) * partOut[(first + s) * headDim + i];
        out[((long long)t * heads + h) * headDim + i] = a * inv;
    }
}

#define SS_ATTN(SUF, KV)                                                                                                 \
    extern "C" __global__ void kv_store_##SUF(const float* k, const float* v, KV* kCache, KV* vCache, const int* slots,   \
                                              int kvHeads, int headDim, int blockSize, int ldk, int ldv) {               \
        kv_store<KV>(k, v, kCache, vCache, slots, kvHeads, headDim, blockSize, ldk, ldv);                               \
    }                                                                                                                    \
    extern "C" __global__ void __launch_bounds__(256) attn_decode_partial_##SUF(                                        \
        const float* q, const KV* kCache, const KV* vCache, const int* blockTables, int maxBlocksPerSeq,                 \
        const int* tokenSeq, const int* positions, float* partOut, float* partMax, float* partSum, int heads,            \
        int kvHeads, int headDim, int blockSize, int splitLen, int maxSplits, float scale) {                             \
        decode_partial<KV>(q, kCache, vCache, blockTables, maxBlocksPerSeq, tokenSeq, positions, partOut, partMax,     \
                           partSum, heads, kvHeads, headDim, blockSize, splitLen, maxSplits, scale);                   \
    }                                                                                                                    \
    extern "C" __global__ void __launch_bounds__(256) attn_prefill_##SUF(                                                \
        const float* q, const KV* kCache, const KV* vCache, const int* blockTables, int maxBlocksPerSeq,                 \
        const int* tokenSeq, const int* positions, float* out, int tokens, int heads, int kvHeads, int headDim,          \
        int blockSize, float scale) {                                                                                    \
        prefill<KV>(q, kCache, vCache, blockTables, maxBlocksPerSeq, tokenSeq, positions, out, tokens, heads, kvHeads, \
                    headDim, blockSize, scale);                                                                          \
    }

SS_ATTN(kvf32, float)
SS_ATTN(kvbf16, unsigned short)
