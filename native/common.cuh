// What every kernel file includes: the CUDA headers (or, under SS_EMU, the CPU emulation of the execution model in
// emu/cuda_emu.h), the shared index math, and the few device helpers for weight dtypes and warp reductions.
#pragma once

#ifdef SS_EMU
#include "emu/cuda_emu.h"
#else
#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <stdint.h>
#endif

#include "index.cuh"

// Dynamic shared memory as a typed pointer (the emulator hands out a per-launch buffer instead).
#ifdef SS_EMU
#define SS_DYN_SHARED(type, name) type* name = reinterpret_cast<type*>(emu::dyn_shared())
#else
#define SS_DYN_SHARED(type, name) \
    extern __shared__ __align__(16) unsigned char name##_raw[]; \
    type* name = reinterpret_cast<type*>(name##_raw)
#endif

namespace ss {

constexpr unsigned FULL = 0xffffffffu;

// bf16 is the high half of a float32: widening is a shift (exact), so a packed pair needs no intrinsic.
__device__ __forceinline__ float bf16_lo(uint32_t w) { return __uint_as_float(w << 16); }
__device__ __forceinline__ float bf16_hi(uint32_t w) { return __uint_as_float(w & 0xffff0000u); }

template <typename W> struct Dtype;
template <> struct Dtype<float> {
    __device__ __forceinline__ static float load(const float* p) { return __ldg(p); }
    // 8 consecutive values (32 bytes, two 16-byte loads) from a 16-byte aligned pointer.
    __device__ __forceinline__ static void load8(const float* p, float (&v)[8]) {
        float4 a = __ldg(reinterpret_cast<const float4*>(p)), b = __ldg(reinterpret_cast<const float4*>(p) + 1);
        v[0] = a.x; v[1] = a.y; v[2] = a.z; v[3] = a.w; v[4] = b.x; v[5] = b.y; v[6] = b.z; v[7] = b.w;
    }
};
template <> struct Dtype<__nv_bfloat16> {
    __device__ __forceinline__ static float load(const __nv_bfloat16* p) {
        return __uint_as_float((uint32_t)__ldg(reinterpret_cast<const unsigned short*>(p)) << 16);
    }
    __device__ __forceinline__ static void load8(const __nv_bfloat16* p, float (&v)[8]) {
        uint4 a = __ldg(reinterpret_cast<const uint4*>(p));
        v[0] = bf16_lo(a.x); v[1] = bf16_hi(a.x); v[2] = bf16_lo(a.y); v[3] = bf16_hi(a.y);
        v[4] = bf16_lo(a.z); v[5] = bf16_hi(a.z); v[6] = bf16_lo(a.w); v[7] = bf16_hi(a.w);
    }
};
template <> struct Dtype<__half> {
    __device__ __forceinline__ static float load(const __half* p) {
        return __half2float(__ushort_as_half(__ldg(reinterpret_cast<const unsigned short*>(p))));
    }
    __device__ __forceinline__ static void load8(const __half* p, float (&v)[8]) {
        uint4 a = __ldg(reinterpret_cast<const uint4*>(p));
        uint32_t w[4] = {a.x, a.y, a.z, a.w};
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[2 * i] = __half2float(__ushort_as_half((unsigned short)(w[i] & 0xffffu)));
            v[2 * i + 1] = __half2float(__ushort_as_half((unsigned short)(w[i] >> 16)));
        }
    }
};

// float32 -> bf16 bits, round to nearest even (NaN stays NaN), as the CPU backend's DTypeConvert does.
__device__ __forceinline__ unsigned short f32_to_bf16_bits(float f) {
    uint32_t u = __float_as_uint(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (unsigned short)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1);
    return (unsigned short)(u >> 16);
}

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(FULL, v, o);
    return v;
}
__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(FULL, v, o));
    return v;
}
// Inclusive prefix sum over the warp's lanes (lane i gets v of lanes 0..i): the bitmask tiles' popcount offsets.
__device__ __forceinline__ int warp_inclusive_sum(int v, int lane) {
#pragma unroll
    for (int o = 1; o < 32; o <<= 1) {
        int n = __shfl_up_sync(FULL, v, o);
        if (lane >= o) v += n;
    }
    return v;
}

// Sum over the block (blockDim.x a multiple of 32, at most 1024); every thread gets the result. scratch: 32 floats of
// shared memory, reused after a barrier.
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : 0.f;
    return warp_sum(v);
}
__device__ __forceinline__ float block_max(float v, float* scratch) {
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max(v);
    __syncthreads();
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    v = lane < warps ? scratch[lane] : -INFINITY;
    return warp_max(v);
}

} // namespace ss

namespace ss {

// D += A B for one warp-wide m16n8k16 tile, A 16x16 and B 16x8 in BF16 (pairs packed low index first), D float32.
// Fragments as PTX's mma.m16n8k16 defines them (PTX ISA, "Matrix Fragments for mma.m16n8k16"), g = lane / 4,
// t = lane % 4: a[0] = A[g][2t..2t+1], a[1] = A[g+8][2t..2t+1], a[2] = A[g][2t+8..2t+9], a[3] = A[g+8][2t+8..2t+9];
// b[0] = B[2t..2t+1][g], b[1] = B[2t+8..2t+9][g]; d[0..1] = D[g][2t..2t+1], d[2..3] = D[g+8][2t..2t+1].
// On sm_80+ the tensor-core instruction; elsewhere (the CPU emulator, or SS_NO_MMA) the same sums through shuffles.
__device__ __forceinline__ void mma_bf16_16816(float (&d)[4], const uint32_t (&a)[4], const uint32_t (&b)[2]) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800 && !defined(SS_NO_MMA)
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, {%4,%5,%6,%7}, {%8,%9}, "
                 "{%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
#else
    int lane = threadIdx.x & 31, g = lane >> 2, t = lane & 3;
#pragma unroll
    for (int s = 0; s < 4; s++) { // the k pairs held by lanes with t' = s: k in {2s, 2s+1, 2s+8, 2s+9}
        uint32_t aLo = __shfl_sync(FULL, a[0], g * 4 + s), aLo8 = __shfl_sync(FULL, a[1], g * 4 + s);
        uint32_t aHi = __shfl_sync(FULL, a[2], g * 4 + s), aHi8 = __shfl_sync(FULL, a[3], g * 4 + s);
        uint32_t b0c0 = __shfl_sync(FULL, b[0], (2 * t) * 4 + s), b1c0 = __shfl_sync(FULL, b[1], (2 * t) * 4 + s);
        uint32_t b0c1 = __shfl_sync(FULL, b[0], (2 * t + 1) * 4 + s), b1c1 = __shfl_sync(FULL, b[1], (2 * t + 1) * 4 + s);
        d[0] += bf16_lo(aLo) * bf16_lo(b0c0) + bf16_hi(aLo) * bf16_hi(b0c0) + bf16_lo(aHi) * bf16_lo(b1c0) + bf16_hi(aHi) * bf16_hi(b1c0);
        d[1] += bf16_lo(aLo) * bf16_lo(b0c1) + bf16_hi(aLo) * bf16_hi(b0c1) + bf16_lo(aHi) * bf16_lo(b1c1) + bf16_hi(aHi) * bf16_hi(b1c1);
        d[2] += bf16_lo(aLo8) * bf16_lo(b0c0) + bf16_hi(aLo8) * bf16_hi(b0c0) + bf16_lo(aHi8) * bf16_lo(b1c0) + bf16_hi(aHi8) * bf16_hi(b1c0);
        d[3] += bf16_lo(aLo8) * bf16_lo(b0c1) + bf16_hi(aLo8) * bf16_hi(b0c1) + bf16_lo(aHi8) * bf16_lo(b1c1) + bf16_hi(aHi8) * bf16_hi(b1c1);
    }
#endif
}

} // namespace ss
