#!/usr/bin/env bash
# Runs every kernel on the GPU of this machine against the scalar references of native/emu/emu_test.cpp (the same
# checks CudaEmulationTest runs on the CPU emulator), twice: with tensor-core mma and with its shuffle path
# (-DSS_NO_MMA). Needs nvcc and a GPU; no Java. Prints the checks; writes them to $OUT (if set) as
# kernel-check.txt and kernel-check-nomma.txt; exits non-zero when a build or a check fails.
# Usage (from the repository root): native/check-kernels.sh
set -uo pipefail
nvcc="${NVCC:-$(command -v nvcc || true)}"
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
if [ -z "$nvcc" ]; then echo "check-kernels: nvcc not found" >&2; exit 2; fi
work="${TMPDIR:-/tmp}/sparse-serve-kernel-check"
mkdir -p "$work"
out="${OUT:-$work}"
mkdir -p "$out"
# -arch=native: the GPU present (sm_90 on H100/H200); CUDA_ARCH overrides, e.g. CUDA_ARCH=sm_80.
arch="${CUDA_ARCH:-native}"
build() { "$nvcc" -std=c++17 -O2 -x cu -arch="$arch" -Wno-deprecated-gpu-targets "$@" native/emu/emu_test.cpp; }
build -o "$work/kernel-check" > "$work/build.log" 2>&1 &
p1=$!
build -DSS_NO_MMA -o "$work/kernel-check-nomma" > "$work/build-nomma.log" 2>&1 &
p2=$!
status=0
wait $p1 || { echo "check-kernels: build failed:"; cat "$work/build.log"; status=1; }
wait $p2 || { echo "check-kernels: build (SS_NO_MMA) failed:"; cat "$work/build-nomma.log"; status=1; }
[ $status -ne 0 ] && exit $status
for v in kernel-check kernel-check-nomma; do
  timeout 300 "$work/$v" > "$out/$v.txt" 2>&1
  rc=$?
  grep -v '^ok ' "$out/$v.txt"
  echo "check-kernels: $v: $(grep -c '^ok ' "$out/$v.txt") checks passed, exit $rc"
  [ $rc -ne 0 ] && status=1
done
exit $status
