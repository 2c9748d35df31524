// Runs every kernel of native/*.cu on small ragged shapes and compares with scalar references computed in double;
// prints one line per check and exits non-zero when any fails. Two builds of the same file:
// - on the CPU emulation of the CUDA execution model (cuda_emu.h), by CudaEmulationTest:
//   g++ -std=c++20 -O1 -pthread -fno-strict-aliasing -Wno-unknown-pragmas native/emu/emu_test.cpp
// - on a GPU, by native/check-kernels.sh: nvcc -x cu -arch=sm_90 native/emu/emu_test.cpp (device_launch.h turns
//   each launch into a <<<>>> launch on managed memory).
#ifndef __CUDACC__
#define SS_EMU 1
#endif
#include "../attention.cu"
#include "../elementwise.cu"
#include "../embed.cu"
#include "../expand.cu"
#include "../gemv_dense.cu"
#include "../gemv_sparse.cu"
#include "../gemv_tensor.cu"
#include "../norm.cu"
#include "../rope.cu"
#include "../sample.cu"

#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#ifdef SS_EMU
#define SS_CALL(kernel, ...) kernel(__VA_ARGS__)
template <class T> using Alloc = std::allocator<T>;
#else
#include "device_launch.h"
#endif
template <class T> using vector = std::vector<T, Alloc<T>>;

static int failures = 0, checks = 0;
static std::mt19937 rng(1234);

static float uni(float a = -1.f, float b = 1.f) { return std::uniform_real_distribution<float>(a, b)(rng); }
static vector<float> rand_vec(size_t n) {
    vector<float> v(n);
    for (auto& x : v) x = uni();
    return v;
}
static uint32_t f2u(float f) { uint32_t u; std::memcpy(&u, &f, 4); return u; }
static float u2f(uint32_t u) { float f; std::memcpy(&f, &u, 4); return f; }
// float -> bf16 bits, round to nearest even (NaN not needed here), and back.
static unsigned short bf16_bits(float f) { uint32_t u = f2u(f); return (unsigned short)((u + 0x7fffu + ((u >> 16) & 1)) >> 16); }
static float bf16_val(unsigned short b) { return u2f((uint32_t)b << 16); }
#ifdef SS_EMU
static unsigned short f16_bits(float f) {
    _Float16 h = (_Float16)f; // the compiler's own round-to-nearest-even conversion, independent of cuda_emu.h
    unsigned short u;
    std::memcpy(&u, &h, 2);
    return u;
}
static float f16_val(unsigned short b) {
    _Float16 h;
    std::memcpy(&h, &b, 2);
    return (float)h;
}
#else
static unsigned short f16_bits(float f) {
    __half h = __float2half_rn(f);
    unsigned short u;
    std::memcpy(&u, &h, 2);
    return u;
}
static float f16_val(unsigned short b) {
    __half h;
    std::memcpy(&h, &b, 2);
    return __half2float(h);
}
#endif

// got vs want, each |error| within rtol * (|want| + rms(want)) (the rms term absorbs cancellation in sums).
static void compare(const std::string& name, const vector<float>& got, const vector<double>& want, double rtol = 1e-4) {
    checks++;
    double rms = 0;
    for (double w : want) rms += w * w;
    rms = std::sqrt(rms / std::max<size_t>(1, want.size()));
    double worst = 0;
    size_t at = 0;
    bool bad = got.size() != want.size();
    for (size_t i = 0; !bad && i < want.size(); i++) {
        double err = std::fabs(got[i] - want[i]) / (std::fabs(want[i]) + rms + 1e-30);
        if (!(err <= rtol)) bad = true;
        if (!(err <= worst)) { worst = err; at = i; }
    }
    if (bad) {
        failures++;
        std::printf("FAIL %s: element %zu got %.9g want %.9g (rel %.3g > %.1g)\n", name.c_str(), at,
                    at < got.size() ? got[at] : NAN, at < want.size() ? want[at] : NAN, worst, rtol);
    } else {
        std::printf("ok   %s (max rel err %.2g, %zu values)\n", name.c_str(), worst, want.size());
    }
}
static void expect(const std::string& name, bool ok) {
    checks++;
    if (!ok) failures++;
    std::printf("%s %s\n", ok ? "ok  " : "FAIL", name.c_str());
}

// ---- weights in a dtype: bits (as stored) and the float values they stand for
struct Weights {
    int dtype; // 0 f32, 1 f16, 2 bf16
    vector<float> f32;
    vector<unsigned short> b16;
    vector<float> val;
    const void* ptr() const { return dtype == 0 ? (const void*)f32.data() : (const void*)b16.data(); }
};
static const char* DT[] = {"f32", "f16", "bf16"};
static Weights make_weights(int dtype, const vector<float>& w) {
    Weights r{dtype, {}, {}, {}};
    for (float x : w) {
        if (dtype == 0) { r.f32.push_back(x); r.val.push_back(x); }
        else if (dtype == 1) { r.b16.push_back(f16_bits(x)); r.val.push_back(f16_val(r.b16.back())); }
        else { r.b16.push_back(bf16_bits(x)); r.val.push_back(bf16_val(r.b16.back())); }
    }
    return r;
}
static dim3 grid1(int n, int per) { return dim3((unsigned)((n + per - 1) / per)); }

#include "emu_test_ops.inc"
#include "emu_test_gemv.inc"
#include "emu_test_attention.inc"

int main() {
    test_elementwise();
    test_norms();
    test_rope();
    test_embed_and_sample();
    test_gemv_dense();
    test_gemv_tensor();
    test_sparse();
    test_attention();
    std::printf("%d of %d checks failed\n", failures, checks);
    return failures == 0 ? 0 : 1;
}
