# Sourced by the load-test scripts (after they set $here to the repository root).
# start_server MODEL_DIR PORT [serve options...] starts `bin/sparse-serve serve` in the background, sets $server
# (its pid) and $log, has it stopped with SIGTERM when the script exits, and returns once it is listening; if it
# dies or is not listening within 300 s, prints its log and exits 1.
start_server() {
  local model="$1" port="$2"
  shift 2
  log="$(mktemp -t sparse-serve-XXXX.log)"
  "$here/bin/sparse-serve" serve --model "$model" --port "$port" "$@" >"$log" 2>&1 &
  server=$!
  trap 'kill -TERM $server 2>/dev/null || true' EXIT
  for _ in $(seq 1 600); do
    grep -q "listening on" "$log" && return 0
    kill -0 "$server" 2>/dev/null || { cat "$log" >&2; exit 1; }
    sleep 0.5
  done
  echo "server did not start" >&2
  cat "$log" >&2
  exit 1
}
