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
  . "$here/loadtest/start-server.sh"
  start_server "$model" "$port"
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
