// A CPU emulation of the CUDA execution model, enough to run our kernels under g++ and compare them with scalar
// references where no GPU is present (CudaEmulationTest). Every CUDA thread of a block is a fiber; the blocks of a
// launch run one after another, so a function-static array serves as the block's __shared__ memory; __syncthreads is
// a barrier over the block; warp shuffles and ballots exchange through a per-warp array between two barriers of that
// warp (so a shuffle that not all 32 lanes reach is reported as a deadlock, as it would misbehave on a GPU).
// Not emulated: memory coalescing, timing, inline PTX (mma.sync): keep such code behind a macro with a plain path.
#pragma once

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <ucontext.h>
#include <cmath>
#include <math.h>
#include <cstdint>
#include <cstring>
#include <memory>
#include <vector>

#define __global__
#define __device__
#define __host__
#define __forceinline__ inline
#define __shared__ static
#define __launch_bounds__(...)
#define __align__(n) alignas(n)

struct dim3 {
    unsigned x, y, z;
    constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
};
struct alignas(16) float4 { float x, y, z, w; };
struct alignas(8) float2 { float x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }

struct __nv_bfloat16 { unsigned short x; };
struct __half { unsigned short x; };

inline float __uint_as_float(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
inline uint32_t __float_as_uint(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
inline __half __ushort_as_half(unsigned short u) { return __half{u}; }
inline unsigned short __half_as_ushort(__half h) { return h.x; }
inline float __bfloat162float(__nv_bfloat16 b) { return __uint_as_float((uint32_t)b.x << 16); }

// IEEE binary16 <-> binary32, round to nearest even (as the hardware conversion).
inline float __half2float(__half h) {
    uint32_t s = (uint32_t)(h.x >> 15) << 31, e = (h.x >> 10) & 31, m = h.x & 1023;
    if (e == 31) return __uint_as_float(s | 0x7f800000u | (m << 13));
    if (e == 0) {
        float f = std::ldexp((float)m, -24);
        return s ? -f : f;
    }
    return __uint_as_float(s | ((e + 112) << 23) | (m << 13));
}
inline __half __float2half_rn(float f) {
    uint32_t u = __float_as_uint(f), s = (u >> 16) & 0x8000u;
    uint32_t a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return __half{(unsigned short)(s | 0x7e00u)};
    if (a >= 0x477ff000u) return __half{(unsigned short)(s | 0x7c00u)}; // rounds to >= 65520: infinity
    if (a < 0x38800000u) { // subnormal half (or zero): value / 2^-24, rounded to nearest even
        float q = std::nearbyint(std::fabs(f) * 16777216.0f);
        return __half{(unsigned short)(s | (uint32_t)q)};
    }
    uint32_t r = a + 0xfffu + ((a >> 13) & 1);
    return __half{(unsigned short)(s | ((r - 0x38000000u) >> 13))};
}

template <typename T> inline T __ldg(const T* p) { return *p; }
inline int __popcll(unsigned long long x) { return __builtin_popcountll(x); }
inline int __popc(unsigned x) { return __builtin_popcount(x); }
inline int __ffs(int x) { return __builtin_ffs(x); }
inline int __ffsll(long long x) { return __builtin_ffsll(x); }
inline float __expf(float x) { return std::exp(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __fdividef(float a, float b) { return a / b; }
using std::max;
using std::min;

namespace emu {

// Every CUDA thread of a block is a fiber (ucontext) on the calling OS thread: a barrier parks the fiber and the
// scheduler resumes the next, so a kernel runs deterministically and a barrier costs a context switch, not a futex.
struct Barrier {
    int expected = 0, arrived = 0;
    long phase = 0;
};
struct Fiber {
    ucontext_t ctx;
    std::unique_ptr<char[]> stack;
    bool done = false;
    const Barrier* waitingOn = nullptr; // parked until this barrier's phase moves on
    long waitPhase = 0;
};
struct Launch {
    dim3 grid, block;
    int threads;
    Barrier blockBar;
    std::vector<Barrier> warpBars;
    std::vector<uint64_t> slots; // 32 per warp
    std::vector<unsigned char> dyn;
    ucontext_t scheduler;
    std::vector<Fiber> fibers;
    int running = -1;
    long progress = 0;
    std::function<void()> body;
};

inline Launch* current = nullptr;
inline int linearTid = 0;

inline unsigned char* dyn_shared() { return current->dyn.data(); }

inline void yield() { swapcontext(&current->fibers[current->running].ctx, &current->scheduler); }

inline void wait(Barrier& b) {
    long phase = b.phase;
    if (++b.arrived == b.expected) {
        b.arrived = 0;
        b.phase++;
        current->progress++;
        return;
    }
    Fiber& f = current->fibers[current->running];
    f.waitingOn = &b;
    f.waitPhase = phase;
    while (b.phase == phase) yield();
    f.waitingOn = nullptr;
}

} // namespace emu

inline dim3 threadIdx, blockIdx, blockDim, gridDim;

inline void __syncthreads() { emu::wait(emu::current->blockBar); }
inline void __syncwarp(unsigned = 0xffffffffu) { emu::wait(emu::current->warpBars[emu::linearTid / 32]); }

namespace emu {
template <typename T> inline T exchange(T v, int (*srcOf)(int lane, int arg, int width), int arg, int width) {
    static_assert(sizeof(T) <= 8, "shuffle of at most 8 bytes");
    int warp = linearTid / 32, lane = linearTid % 32;
    uint64_t* slot = &current->slots[warp * 32];
    uint64_t bits = 0;
    std::memcpy(&bits, &v, sizeof(T));
    slot[lane] = bits;
    wait(current->warpBars[warp]);
    int src = srcOf(lane, arg, width);
    T r;
    std::memcpy(&r, &slot[src], sizeof(T));
    wait(current->warpBars[warp]);
    return r;
}
inline int srcIdx(int lane, int src, int width) { return (lane & ~(width - 1)) + (src & (width - 1)); }
inline int srcXor(int lane, int m, int width) {
    int s = lane ^ m;
    return (s & ~(width - 1)) == (lane & ~(width - 1)) ? s : lane;
}
inline int srcDown(int lane, int d, int width) { return (lane & (width - 1)) + d < width ? lane + d : lane; }
inline int srcUp(int lane, int d, int width) { return (lane & (width - 1)) >= d ? lane - d : lane; }
} // namespace emu

template <typename T> inline T __shfl_sync(unsigned, T v, int src, int width = 32) { return emu::exchange(v, emu::srcIdx, src, width); }
template <typename T> inline T __shfl_xor_sync(unsigned, T v, int m, int width = 32) { return emu::exchange(v, emu::srcXor, m, width); }
template <typename T> inline T __shfl_down_sync(unsigned, T v, unsigned d, int width = 32) { return emu::exchange(v, emu::srcDown, (int)d, width); }
template <typename T> inline T __shfl_up_sync(unsigned, T v, unsigned d, int width = 32) { return emu::exchange(v, emu::srcUp, (int)d, width); }
inline unsigned __ballot_sync(unsigned, int pred) {
    int warp = emu::linearTid / 32, lane = emu::linearTid % 32;
    uint64_t* slot = &emu::current->slots[warp * 32];
    slot[lane] = pred ? 1 : 0;
    emu::wait(emu::current->warpBars[warp]);
    unsigned m = 0;
    for (int i = 0; i < 32; i++) if (slot[i] & 1) m |= 1u << i; // lanes past a partial warp read as 0
    emu::wait(emu::current->warpBars[warp]);
    return m;
}

namespace emu {
inline void fiber_main() {
    current->body();
    current->fibers[current->running].done = true;
    current->progress++;
    swapcontext(&current->fibers[current->running].ctx, &current->scheduler);
}

// Runs body() as a kernel over grid x block: blocks one after another, each block's threads as fibers resumed round
// robin. A round in which no fiber finishes and no barrier opens is a deadlock (a barrier or shuffle that not every
// thread reaches): reported, and the process exits non-zero. Dynamic shared memory is filled with 0xff bytes (NaN
// floats) so that a kernel reading what it did not write fails.
template <typename F> void launch(dim3 grid, dim3 block, size_t dynShared, F body) {
    Launch l;
    l.grid = grid;
    l.block = block;
    l.threads = (int)(block.x * block.y * block.z);
    l.blockBar.expected = l.threads;
    for (int w = 0; w * 32 < l.threads; w++) l.warpBars.push_back(Barrier{std::min(32, l.threads - w * 32), 0, 0});
    l.slots.assign(l.warpBars.size() * 32, 0);
    l.dyn.assign(dynShared + 16, 0xff);
    l.body = body;
    l.fibers.resize(l.threads);
    const size_t stackBytes = 128 * 1024;
    for (auto& f : l.fibers) f.stack.reset(new char[stackBytes]); // not zeroed: untouched pages stay unmapped
    current = &l;
    blockDim = block;
    gridDim = grid;
    for (unsigned z = 0; z < grid.z; z++)
        for (unsigned y = 0; y < grid.y; y++)
            for (unsigned x = 0; x < grid.x; x++) {
                blockIdx = dim3(x, y, z);
                for (auto& f : l.fibers) {
                    f.done = false;
                    getcontext(&f.ctx);
                    f.ctx.uc_stack.ss_sp = f.stack.get();
                    f.ctx.uc_stack.ss_size = stackBytes;
                    f.ctx.uc_link = nullptr;
                    makecontext(&f.ctx, fiber_main, 0);
                }
                int live = l.threads;
                while (live > 0) {
                    long before = l.progress;
                    for (int i = 0; i < l.threads; i++) {
                        Fiber& f = l.fibers[i];
                        if (f.done || (f.waitingOn && f.waitingOn->phase == f.waitPhase)) continue;
                        l.running = i;
                        linearTid = i;
                        threadIdx = dim3(i % block.x, (i / block.x) % block.y, i / (block.x * block.y));
                        swapcontext(&l.scheduler, &l.fibers[i].ctx);
                        if (l.fibers[i].done) live--;
                    }
                    if (live > 0 && l.progress == before) {
                        std::fprintf(stderr, "emu: deadlock in block (%u,%u,%u): a barrier or warp shuffle is not reached by "
                                             "every thread\n", x, y, z);
                        std::exit(3);
                    }
                }
            }
    current = nullptr;
}
} // namespace emu
