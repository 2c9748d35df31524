#!/usr/bin/env bash
# The device check of issue 8, for a machine with an NVIDIA GPU but no Java, no Maven and no network: unpacks the
# bundle that native/make-gpu-bundle.sh built (gpu-bundle/, carried with the working tree), then checks correctness
# (GPU against the CPU backend) and measures speed, in under 5 minutes. Each phase has its own time limit, a failed
# phase does not stop the others, and every phase writes its JSON into the output folder as soon as it ends, so a
# cut run still reports. A short table comes last.
#
# Usage, from the repository root: native/gpu-check.sh [OUT_DIR]      (default: $OUT, else ./gpu-check-out)
# Environment: GPU_CHECK_BUDGET (seconds, default 285): phases that would start later are skipped;
#              GPU_CHECK_WORK (scratch folder, default /tmp/sparse-serve-gpu-check): the runtime, jar and models;
#              GPU_CHECK_SKIP_HF=1 skips the transformers baseline;
#              GPU_CHECK_LIMIT_SCALE (integer, default 1) multiplies every phase's limit (slow machines, tests).
set -u
start=$(date +%s)
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$root"
child=""
if [ "${1:-}" = "--phase" ]; then child="$2"; fi   # internal: run one phase function (under timeout)
if [ -z "$child" ]; then
  out="${1:-${OUT:-$root/gpu-check-out}}"
  mkdir -p "$out"
  out="$(cd "$out" && pwd)"
  export GPU_CHECK_OUT="$out"
fi
out="$GPU_CHECK_OUT"
budget="${GPU_CHECK_BUDGET:-285}"
work="${GPU_CHECK_WORK:-/tmp/sparse-serve-gpu-check}"
bundle="$root/gpu-bundle"
mkdir -p "$work"
log="$out/gpu-check.log"
[ -z "$child" ] && : > "$log"

say() { echo "[gpu-check $(( $(date +%s) - start ))s] $*" | tee -a "$log" >&2; }
left() { echo $(( budget - ($(date +%s) - start) )); }

# ---- Python (for JSON, comparisons and the transformers baseline): the first that imports torch, else any.
py=""
if [ -n "$child" ] && [ -n "${PYTHON:-}" ]; then py="$PYTHON"; fi   # a phase reuses the parent's choice
[ -z "$py" ] && for cand in "${PYTHON:-}" python3 python /usr/bin/python3 /opt/conda/bin/python /usr/local/bin/python3; do
  [ -n "$cand" ] && command -v "$cand" >/dev/null 2>&1 || continue
  if "$cand" -c 'import torch' >/dev/null 2>&1; then py="$cand"; break; fi
  [ -z "$py" ] && py="$cand"
done
[ -z "$py" ] && { echo "gpu-check: no python found (needed for the JSON reports)" >&2; exit 2; }
export PYTHON="$py"
lib="$root/native/gpu_check_lib.py"

# record PHASE STATUS SECONDS [DETAIL_JSON_FILE] [REASON]: writes $out/PHASE.json and appends to summary.json.
record() {
  "$py" "$lib" record "$out" "$1" "$2" "$3" "${4:-}" "${5:-}" >> "$log" 2>&1 || say "could not record phase $1"
}

# phase NAME LIMIT_SECONDS NEEDS_GPU(0/1) FUNCTION: runs FUNCTION under a time limit, records its result.
# FUNCTION writes extra JSON into $work/detail-NAME.json (optional) and returns 0 on success.
phase() {
  local name="$1" limit="$2" gpu="$3" fn="$4" t0 rc reason=""
  limit=$(( limit * ${GPU_CHECK_LIMIT_SCALE:-1} ))
  local remaining; remaining=$(left)
  if [ "$remaining" -le 5 ]; then record "$name" skipped 0 "" "out of time (budget ${budget}s)"; say "$name: skipped (out of time)"; return; fi
  if [ "$gpu" = 1 ] && [ -n "$no_gpu" ]; then record "$name" failed 0 "" "no GPU: $no_gpu"; say "$name: failed: no GPU ($no_gpu)"; return; fi
  case "$name" in unpack|env|hf_*) ;; *)
    if [ ! -x "$java_cmd" ] || [ ! -f "$work/sparse-serve.jar" ]; then
      record "$name" failed 0 "" "no Java runtime or jar (the unpack phase failed)"; say "$name: failed: no Java runtime or jar"; return
    fi;;
  esac
  [ "$limit" -gt "$remaining" ] && limit=$remaining
  say "$name: start (limit ${limit}s)"
  t0=$(date +%s)
  rm -f "$work/detail-$name.json" "$work/reason-$name.txt"
  GPU_CHECK_PHASE="$name" timeout --kill-after=5 "$limit" bash "$root/native/gpu-check.sh" --phase "$fn" >> "$log" 2>&1
  rc=$?
  [ -f "$work/reason-$name.txt" ] && { echo "--- stderr of $name:"; cat "$work/reason-$name.txt"; } >> "$log"
  local secs=$(( $(date +%s) - t0 ))
  [ -f "$work/reason-$name.txt" ] && reason=$(head -c 500 "$work/reason-$name.txt")
  if [ $rc -eq 0 ]; then record "$name" ok "$secs" "$work/detail-$name.json"; say "$name: ok (${secs}s)"
  elif [ $rc -eq 124 ] || [ $rc -eq 137 ]; then record "$name" timeout "$secs" "$work/detail-$name.json" "over ${limit}s"; say "$name: timeout after ${secs}s"
  else record "$name" failed "$secs" "$work/detail-$name.json" "${reason:-exit $rc, see gpu-check.log}"; say "$name: failed (exit $rc) ${reason}"
  fi
}

# ---- GPU presence (computed once by the parent, inherited by phases): the driver library and a device.
if [ -z "$child" ]; then
no_gpu=""
if ! { ldconfig -p 2>/dev/null | grep -q 'libcuda\.so\.1'; } && ! ls /usr/lib/x86_64-linux-gnu/libcuda.so.1 /usr/lib64/libcuda.so.1 >/dev/null 2>&1; then
  no_gpu="no CUDA driver (libcuda.so.1)"
elif command -v nvidia-smi >/dev/null 2>&1 && ! nvidia-smi -L >/dev/null 2>&1; then
  no_gpu="nvidia-smi lists no GPU"
fi
export GPU_CHECK_NO_GPU="$no_gpu"
fi
no_gpu="$GPU_CHECK_NO_GPU"

# ---- CUDA libraries: PyTorch's NVIDIA wheels (cuBLAS 13, cuSPARSE) and /usr/local/cuda, for the JVM and its loader.
if [ -z "$child" ]; then
  cuda_dirs=$("$py" "$lib" cuda-dirs 2>>"$log")
  export SPARSE_SERVE_CUDA_LIBS="$cuda_dirs"
  export LD_LIBRARY_PATH="${cuda_dirs}${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
cuda_dirs="${SPARSE_SERVE_CUDA_LIBS:-}"

java_cmd="$work/runtime/bin/java"
# ss ARGS...: the launcher's JVM flags (bin/sparse-serve) with the bundled runtime and jar.
ss() {
  "$java_cmd" --add-modules jdk.incubator.vector --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow \
    -XX:+UseParallelGC -Xmn64m ${JAVA_OPTS:-} -jar "$work/sparse-serve.jar" "$@" \
    2> >(grep --line-buffered -v '^WARNING: Using incubator modules' >&2)
}

# ============================ phases ============================

p_unpack() {
  set -e
  [ -f "$bundle/runtime.tar.xz" ] || { echo "gpu-bundle/runtime.tar.xz missing: run native/make-gpu-bundle.sh where Java is" > "$work/reason-unpack.txt"; exit 1; }
  rm -rf "$work/runtime" "$work/app"
  mkdir -p "$work/app"
  if command -v xz >/dev/null 2>&1; then   # xz's C decoder is several times faster than Python's tarfile
    tar -C "$work" -xJf "$bundle/runtime.tar.xz"
    tar -C "$work/app" -xJf "$bundle/app.tar.xz"
  else
    "$py" "$lib" untar "$bundle/runtime.tar.xz" "$work"
    "$py" "$lib" untar "$bundle/app.tar.xz" "$work/app"
  fi
  "$py" "$lib" jar "$work/app" "$work/sparse-serve.jar"
  rm -rf "$work/app"
  "$work/runtime/bin/java" -version 2>&1 | head -1 > "$work/java-version.txt"
  "$py" -c "import json,sys; json.dump({'java': open(sys.argv[1]).read().strip()}, open(sys.argv[2],'w'))" "$work/java-version.txt" "$work/detail-unpack.json"
}

p_env() {
  "$py" "$lib" env "$work/detail-env.json"
}

# CPU references: perplexity of the bundled model and its pruned copies, generated ids of the fixtures.
p_cpu_prune() {
  set -e
  for spec in "half:--sparsity 0.5" "nm24:--pattern 2:4"; do
    name=${spec%%:*}; args=${spec#*:}
    ss prune --model "$root/models/kdoc-llama-5m" --out "$work/kdoc-$name" --method sparsegpt $args \
      --calibration "$bundle/data/calibration.txt" --nsamples 16 --force --json > "$work/prune-$name.json"
  done
}

eval_models() { echo "$root/models/kdoc-llama-5m $work/kdoc-half $work/kdoc-nm24"; }
# The Llama and OPT fixtures are tracked (src/test/resources); the Llama 3 and Qwen2 ones travel in the bundle.
fixture_dirs() {
  echo "$root/src/test/resources/fixtures/tiny-llama-f32 $root/src/test/resources/fixtures/tiny-opt-f16"
  echo "$bundle/fixtures/tiny-llama3-bf16 $bundle/fixtures/tiny-qwen2-f32"
}
test_text="$root/src/test/resources/data/kdoc-test-60k.txt"   # the first 60 000 characters of data/kdoc/test.txt

p_cpu_eval() {
  set -e
  for m in $(eval_models); do
    [ -d "$m" ] || continue
    ss eval --model "$m" --text "$test_text" --device cpu --json > "$work/eval-cpu-$(basename "$m").json"
  done
  "$py" "$lib" collect "$work" 'eval-cpu-*.json' "$work/detail-cpu_eval.json"
}

p_gpu_eval() {
  set -e
  for m in $(eval_models); do
    [ -d "$m" ] || continue
    ss eval --model "$m" --text "$test_text" --device cuda:0 --json > "$work/eval-gpu-$(basename "$m").json" \
      2>> "$work/reason-$GPU_CHECK_PHASE.txt" || true
  done
  "$py" "$lib" compare-eval "$work" 0.005 "$work/detail-gpu_eval.json"
}

# Logits of every row within 1e-2 of the row's largest |logit|, greedy ids over 32 tokens where the CPU's margin
# allows: sparse-serve's own gpu-compare runs both backends in one process.
p_gpu_logits() {
  set -e
  models="$(fixture_dirs) $(eval_models)"
  for m in $models; do
    [ -d "$m" ] || continue
    # a failing model does not stop the others: collect --all-pass decides
    ss gpu-compare --model "$m" --device cuda:0 --new-tokens 32 --tolerance 1e-2 --json \
      > "$work/compare-$(basename "$m").json" 2>> "$work/reason-$GPU_CHECK_PHASE.txt" || true
  done
  "$py" "$lib" collect "$work" 'compare-*.json' "$work/detail-gpu_logits.json" --all-pass
}

# Issue 12: a layer split on one GPU (cuda:0,0: two stages, the residual stream copied device to device) must
# generate exactly what one stage does, token for token: 32 greedy ids each on its own, and logits within 1e-3.
p_gpu_split() {
  set -e
  for spec in "$root/models/kdoc-llama-5m:" "$root/models/kdoc-llama-5m:1,5" "$root/src/test/resources/fixtures/tiny-llama-f32:" \
              "$root/src/test/resources/fixtures/tiny-opt-f16:"; do
    m=${spec%%:*}; split=${spec#*:}
    tag="$(basename "$m")${split:+-$(echo "$split" | tr , _)}"
    ss gpu-compare --model "$m" --device cuda:0,0 ${split:+--layer-split $split} --reference cuda:0 --same-ids \
      --new-tokens 32 --tolerance 1e-3 --json > "$work/split-$tag.json" 2>> "$work/reason-$GPU_CHECK_PHASE.txt" || true
  done
  "$py" "$lib" collect "$work" 'split-*.json' "$work/detail-gpu_split.json" --all-pass
}

# Issue 8: a sticky CUDA error (here CUDA_ERROR_ILLEGAL_ADDRESS injected into the CUDA runner's 2nd step) answers the
# request in flight 503 and ends serve with exit code 1 (health goes NOT_SERVING first: tested in mvn verify).
p_gpu_fault() {
  set -e
  "$py" "$lib" fault-check "$work/detail-gpu_fault.json" 18 -- "$java_cmd" --add-modules jdk.incubator.vector \
    --enable-native-access=ALL-UNNAMED --sun-misc-unsafe-memory-access=allow -Dsparseserve.faultInjection=700@2 \
    -jar "$work/sparse-serve.jar" serve --model "$root/models/kdoc-llama-5m" --port 0 --device cuda:0 --max-running 4 \
    --max-batch-tokens 64 2>> "$work/reason-$GPU_CHECK_PHASE.txt"
}

# Issue 8: --sparse-kernel auto times own / cusparse / dense per matrix shape at load; inspect shows the choices.
p_sparse_auto() {
  set -e
  for m in l7b8-half l7b8-nm24 kdoc-half kdoc-nm24; do
    [ -d "$work/$m" ] || continue
    ss inspect --model "$work/$m" --device cuda:0 --sparse-kernel auto --json > "$work/auto-$m.json" \
      2>> "$work/reason-$GPU_CHECK_PHASE.txt" || true
  done
  "$py" "$lib" collect "$work" 'auto-*.json' "$work/detail-sparse_auto.json"
}

p_gpu_calibrate() {
  set -e
  ss gpu-calibrate --device cuda:0 --hidden 4096 --intermediate 11008 --vocab 32000 --tokens 512 --json \
    > "$work/detail-gpu_calibrate.json" 2> "$work/reason-$GPU_CHECK_PHASE.txt"
}

# Llama-2-7B's layer shapes, 8 layers, BF16: dense, 50% and 2:4 by magnitude (no calibration needed).
p_synth() {
  set -e
  ss synth --family llama --hidden 4096 --layers 8 --heads 32 --intermediate 11008 --vocab 32000 --dtype bf16 \
    --context 2048 --tokenizer "$root/src/test/resources/fixtures/tiny-llama-f32/tokenizer.json" --out "$work/l7b8" --force
  ss prune --model "$work/l7b8" --out "$work/l7b8-half" --method magnitude --sparsity 0.5 --force --json > "$work/prune-l7b8-half.json"
  ss prune --model "$work/l7b8" --out "$work/l7b8-nm24" --method magnitude --pattern 2:4 --force --json > "$work/prune-l7b8-nm24.json"
  ss inspect --model "$work/l7b8-half" --json > "$work/inspect-l7b8-half.json"
  "$py" "$lib" bytes-ratio "$work/inspect-l7b8-half.json" "$work/detail-synth.json"
}

bench_one() { # MODEL TAG BATCH [extra args]
  local m="$1" tag="$2" b="$3"; shift 3
  ss bench --model "$work/$m" --device cuda:0 --batch "$b" --prompt-tokens 512 --new-tokens 32 --rounds 3 \
    --warmup-seconds 1 --json "$@" > "$work/bench-$tag.json" 2>> "$work/reason-$GPU_CHECK_PHASE.txt"
}
p_bench_dense()  { set -e; bench_one l7b8 dense-b1 1; bench_one l7b8 dense-b16 16; "$py" "$lib" collect "$work" 'bench-dense-*.json' "$work/detail-bench_dense.json"; }
p_bench_own()    { set -e; bench_one l7b8-half half-own-b1 1 --sparse-kernel own; bench_one l7b8-half half-own-b16 16 --sparse-kernel own;
                   bench_one l7b8-nm24 nm24-own-b1 1 --sparse-kernel own; "$py" "$lib" collect "$work" 'bench-*-own-*.json' "$work/detail-bench_own.json"; }
p_bench_other()  { set -e; for k in dense cusparse; do bench_one l7b8-half half-$k-b1 1 --sparse-kernel $k; done;
                   bench_one l7b8-nm24 nm24-dense-b1 1 --sparse-kernel dense; "$py" "$lib" collect "$work" 'bench-*-dense-b1.json' 'bench-*-cusparse-b1.json' "$work/detail-bench_other.json"; }

p_hf_eager()    { "$py" "$root/native/hf_baseline.py" --model "$work/l7b8" --new-tokens 32 --mode eager --json "$work/detail-hf_eager.json"; }
p_hf_compiled() { "$py" "$root/native/hf_baseline.py" --model "$work/l7b8" --new-tokens 32 --mode compiled --json "$work/detail-hf_compiled.json"; }

# ============================ run ============================
if [ -n "$child" ]; then
  set -o pipefail
  "$child"
  exit $?
fi
say "output in $out; python $py; GPU: ${no_gpu:-present}; CUDA library folders: ${cuda_dirs:-none}"
phase unpack        90  0 p_unpack
phase env           20  0 p_env
if [ ! -x "$java_cmd" ]; then say "no Java runtime: the remaining phases cannot run"; fi
phase cpu_prune     50  0 p_cpu_prune
phase cpu_eval      60  0 p_cpu_eval
phase gpu_eval      40  1 p_gpu_eval
phase gpu_logits    60  1 p_gpu_logits
phase gpu_split     45  1 p_gpu_split
phase gpu_fault     40  1 p_gpu_fault
phase gpu_calibrate 30  1 p_gpu_calibrate
if [ -z "$no_gpu" ]; then
  phase synth      120  0 p_synth
else
  record synth skipped 0 "" "no GPU: the 3.7 GB synthetic model is only for GPU timings"
fi
phase bench_dense   45  1 p_bench_dense
phase bench_own     45  1 p_bench_own
phase sparse_auto   45  1 p_sparse_auto
if [ "${GPU_CHECK_SKIP_HF:-0}" != 1 ]; then phase hf_eager 50 1 p_hf_eager; fi
phase bench_other   45  1 p_bench_other
if [ "${GPU_CHECK_SKIP_HF:-0}" != 1 ]; then phase hf_compiled 90 1 p_hf_compiled; fi
"$py" "$lib" table "$out" | tee -a "$log"
say "done in $(( $(date +%s) - start ))s; results in $out"
