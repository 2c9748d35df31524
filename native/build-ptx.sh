#!/usr/bin/env bash
# Compiles every native/*.cu to PTX into the folder given as $1 when nvcc is available; otherwise says so and
# succeeds (the CPU backend needs no PTX). Called by the Maven build (process-classes).
set -euo pipefail
out="$1"
shopt -s nullglob
sources=(native/*.cu)
if [ ${#sources[@]} -eq 0 ]; then exit 0; fi
nvcc="${NVCC:-$(command -v nvcc || true)}"
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
if [ -z "$nvcc" ]; then
  echo "native: nvcc not found, skipping PTX for ${#sources[@]} kernel file(s)"
  exit 0
fi
mkdir -p "$out"
for src in "${sources[@]}"; do
  name="$(basename "$src" .cu)"
  # sm_80 (A100) PTX is JIT-compiled by the driver for sm_90 (H100) too.
  "$nvcc" -ptx -arch=sm_80 -O3 -o "$out/$name.ptx" "$src"
done
echo "native: compiled ${#sources[@]} kernel file(s) to PTX in $out"
