// The GPU side of emu_test.cpp (built by nvcc): test buffers in managed memory, so that the same host code fills and
// checks them, and each emu::launch(grid, block, shared, body) a real launch of the kernel body names through
// SS_CALL, followed by a synchronisation that turns any CUDA error into a failed run. (Managed memory only here, in a
// test harness; the backend allocates plain device memory.)
#pragma once
#include <cstdio>
#include <cstdlib>
#include <cuda_runtime.h>

namespace emu {
inline void check(cudaError_t e, const char* what) {
    if (e != cudaSuccess) {
        std::fprintf(stderr, "CUDA error in %s: %s\n", what, cudaGetErrorString(e));
        std::exit(2);
    }
}
struct Config {
    dim3 grid, block;
    size_t shared;
};
inline Config config;
template <typename F> void launch(dim3 grid, dim3 block, size_t shared, F body) {
    config = {grid, block, shared};
    body();
    check(cudaGetLastError(), "kernel launch");
    check(cudaDeviceSynchronize(), "kernel run");
}
} // namespace emu

#define SS_CALL(kernel, ...) (kernel)<<<emu::config.grid, emu::config.block, emu::config.shared>>>(__VA_ARGS__)

template <class T> struct Alloc {
    using value_type = T;
    Alloc() = default;
    template <class U> Alloc(const Alloc<U>&) {}
    T* allocate(size_t n) {
        void* p = nullptr;
        emu::check(cudaMallocManaged(&p, n * sizeof(T) + 16), "cudaMallocManaged");
        return static_cast<T*>(p);
    }
    void deallocate(T* p, size_t) { cudaFree(p); }
    template <class U> bool operator==(const Alloc<U>&) const { return true; }
    template <class U> bool operator!=(const Alloc<U>&) const { return false; }
};
