#!/usr/bin/env bash
# Starts `sparse-serve serve` on a local port, runs the Java load generator against it at the given concurrencies
# (one after the other, in one run, so the numbers compare), and stops the server with SIGTERM (graceful drain).
#
#   loadtest/run-java-loadtest.sh MODEL_DIR "1 16" [DURATION_S] [MAX_NEW_TOKENS] [extra serve options...]
#
# Example (the batching benchmark of the README):
#   loadtest/run-java-loadtest.sh /tmp/s110m "1 16" 60 32 --kv-cache-bytes 1000000000 --max-running 16
# Loopback only; every phase is bounded by DURATION_S plus the requests' own deadline.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
model="${1:?model folder}"
concurrencies="${2:-1 16}"
duration="${3:-30}"
new_tokens="${4:-32}"
shift $(( $# < 4 ? $# : 4 ))
port="${PORT:-50199}"
warmup="${WARMUP_S:-10}"

. "$here/loadtest/start-server.sh"
start_server "$model" "$port" "$@"

# Warm-up: JIT-compile the kernels before anything is measured.
"$here/bin/sparse-serve" loadtest --port "$port" --concurrency 4 --duration "$warmup" --max-new-tokens "$new_tokens" >/dev/null

declare -A tps
for c in $concurrencies; do
  out="$("$here/bin/sparse-serve" loadtest --port "$port" --concurrency "$c" --duration "$duration" \
         --max-new-tokens "$new_tokens" --json)"
  echo "$out"
  tps[$c]="$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["tokens_per_s"])' "$out")"
done
first="$(echo $concurrencies | awk '{print $1}')"
for c in $concurrencies; do
  python3 -c 'import sys; a,b,c,f=sys.argv[1:]; print(f"concurrency {c}: {float(a):.1f} generated tokens/s = {float(a)/float(b):.2f}x concurrency {f}")' \
    "${tps[$c]}" "${tps[$first]}" "$c" "$first"
done
kill -TERM $server
wait $server
echo "server exit status: $?"
trap - EXIT
