#!/usr/bin/env bash
# Builds every native/*.cu into ONE fatbin, $1/cuda/sparse-serve.fatbin (SASS for sm_80 and sm_90 plus compute_90 PTX
# that newer GPUs JIT-compile), with ptxas's per-kernel register and spill report in $2/ptxas.log. Without nvcc the
# build still succeeds and says that the GPU kernels are missing (the CPU backend needs none).
# Incremental: nothing is rebuilt when the fatbin is newer than native/*.cu, native/*.cuh and this script.
# Called by the Maven build (process-classes) as: build-ptx.sh target/classes target/cuda
set -euo pipefail
classes="$1"
work="$2"
shopt -s nullglob
sources=(native/*.cu)
if [ ${#sources[@]} -eq 0 ]; then exit 0; fi
nvcc="${NVCC:-$(command -v nvcc || true)}"
[ -z "$nvcc" ] && [ -x /usr/local/cuda/bin/nvcc ] && nvcc=/usr/local/cuda/bin/nvcc
if [ -z "$nvcc" ]; then
  echo "native: nvcc not found: GPU kernels are missing from this build (${#sources[@]} kernel file(s) not compiled;" \
       "--device cuda will be refused). Install the CUDA toolkit or set NVCC to build them."
  exit 0
fi
fatbin="$classes/cuda/sparse-serve.fatbin"
log="$work/ptxas.log"
if [ -f "$fatbin" ] && [ -f "$log" ] && [ -z "$(find native -maxdepth 1 -type f \( -name '*.cu' -o -name '*.cuh' \
     -o -name build-ptx.sh \) -newer "$fatbin" -print -quit)" ]; then
  echo "native: $fatbin is up to date"
  exit 0
fi
mkdir -p "$classes/cuda" "$work"
# One translation unit including every kernel file: nvcc -fatbin takes one input, and the kernels' extern "C"
# names are distinct.
unity="$work/sparse-serve.cu"
: > "$unity"
for src in "${sources[@]}"; do echo "#include \"$(cd "$(dirname "$src")" && pwd)/$(basename "$src")\"" >> "$unity"; done
# CUDA_ARCHS overrides the targets (e.g. "80 86" for a CUDA 12 build for older drivers, see native/README.md).
archs="${CUDA_ARCHS:-80 90}"
gencode=()
last=""
for a in $archs; do gencode+=("-gencode=arch=compute_$a,code=sm_$a"); last="$a"; done
gencode+=("-gencode=arch=compute_$last,code=compute_$last")
start=$(date +%s)
if ! "$nvcc" -fatbin -O3 -std=c++17 -Xptxas -v "${gencode[@]}" -o "$fatbin.tmp" "$unity" > "$log.tmp" 2>&1; then
  cat "$log.tmp" >&2
  rm -f "$fatbin.tmp"
  echo "native: nvcc failed (see above)" >&2
  exit 1
fi
mv "$log.tmp" "$log"
mv "$fatbin.tmp" "$fatbin"
kernels=$(grep -c "Compiling entry function" "$log" || true)
spills=$(grep -E "bytes spill (stores|loads)" "$log" | grep -vcE " 0 bytes spill stores, 0 bytes spill loads" || true)
echo "native: compiled ${#sources[@]} kernel file(s) for sm_${archs// /, sm_} + PTX into $fatbin in $(( $(date +%s) - start )) s" \
     "($kernels kernel builds, $spills with local-memory spills; ptxas report: $log)"
