#!/usr/bin/env bash
# Runs the ghz scenarios (loadtest/ghz/*.json) against a sparse-serve on this machine. The scenarios carry no proto
# file: ghz reads the API through the server's reflection service. Each run is bounded by the config's "duration".
#
#   loadtest/run-ghz.sh [MODEL_DIR]      starts a server on PORT (default 50051) with MODEL_DIR (default: the
#                                        bundled model), runs both scenarios, stops it with SIGTERM
#   SERVER=running loadtest/run-ghz.sh   uses a server already listening on 127.0.0.1:PORT
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
if ! command -v ghz >/dev/null; then
  echo "ghz is not installed (https://ghz.sh); skipping the ghz scenarios. The Java load generator needs nothing:" >&2
  echo "  bin/sparse-serve loadtest --help" >&2
  exit 0
fi
port="${PORT:-50051}"
model="${1:-$here/models/kdoc-llama-5m}"
server=""
if [ "${SERVER:-}" != "running" ]; then
  log="$(mktemp -t sparse-serve-XXXX.log)"
  "$here/bin/sparse-serve" serve --model "$model" --port "$port" >"$log" 2>&1 &
  server=$!
  trap 'kill -TERM $server 2>/dev/null || true' EXIT
  for _ in $(seq 1 600); do
    grep -q "listening on" "$log" && break
    kill -0 $server 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.5
  done
fi
for scenario in generate generate-stream; do
  echo "== $scenario"
  ghz --config "$here/loadtest/ghz/$scenario.json" "127.0.0.1:$port"
done
if [ -n "$server" ]; then
  kill -TERM "$server"
  wait "$server"
  trap - EXIT
fi
