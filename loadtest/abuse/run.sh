#!/usr/bin/env bash
# The adversarial suite of issue 9: starts `sparse-serve serve` on a loopback port with a fresh random API key, runs
# `sparse-serve abuse` against it (one scenario after another while a well-behaved client streams alongside; the last
# one sends the server SIGTERM), then reports how the server exited.
#
#   loadtest/abuse/run.sh [MODEL_DIR] [abuse options...]     e.g.  loadtest/abuse/run.sh models/kdoc-llama-5m --scale 0.5
#
# MODEL_DIR defaults to the bundled model. PORT (default 50197) and SERVE_OPTS (extra `serve` options) come from the
# environment. Loopback only; every scenario is bounded by its count and by --seconds (default 20) plus a 30 s settle,
# after a warm-up that runs each attacker once (at most 15 s each), so the whole run takes about 2 min of warm-up plus
# 10 scenarios x ~25 s. Nothing is left running: the server gets SIGTERM (then SIGKILL
# after 60 s) when the script exits, however it exits.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
model="${1:-$here/models/kdoc-llama-5m}"
shift $(( $# > 0 ? 1 : 0 ))
port="${PORT:-50197}"
# The connection flood opens 1 000 sockets from this machine: both ends need the descriptors.
ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
if [ "$(ulimit -n)" != unlimited ] && [ "$(ulimit -n)" -lt 4096 ]; then
  echo "warning: open-files limit is $(ulimit -n); the connection flood needs ~2 200 (raise the hard limit)" >&2
fi
export SPARSE_SERVE_API_KEY="abuse-$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')"

. "$here/loadtest/start-server.sh"
# The suite compares the server's resident memory before and after, to find what attacks leave behind. The heap is
# bounded and touched at start (-Xms = -Xmx, AlwaysPreTouch): otherwise the resident set grows as promoted garbage
# first touches more of the old generation, up to -Xmx (the launcher's default: a quarter of the machine's memory)
# before ParallelGC's first full collection, which is growth within the heap's bound, not a leak. Survivor spaces of
# a fixed size: ParallelGC's adaptive sizing shrank them to ~1.5 MB, so requests in flight at a young collection
# were promoted. SERVER_JAVA_OPTS overrides all of it.
server_java_opts="${SERVER_JAVA_OPTS:--Xms256m -Xmx256m -XX:+AlwaysPreTouch -XX:-UseAdaptiveSizePolicy -XX:SurvivorRatio=4}"
# shellcheck disable=SC2086
JAVA_OPTS="$server_java_opts" start_server "$model" "$port" ${SERVE_OPTS:-}
trap 'kill -TERM $server 2>/dev/null || true; for _ in $(seq 1 120); do kill -0 $server 2>/dev/null || break; sleep 0.5; done; kill -KILL $server 2>/dev/null || true' EXIT
echo "server pid $server (JAVA_OPTS $server_java_opts), log $log; $(nproc) cores, load average: $(cut -d' ' -f1-3 /proc/loadavg)" >&2

status=0
"$here/bin/sparse-serve" abuse --port "$port" --server-pid "$server" "$@" || status=$?
# The SIGTERM scenario stopped the server (when it ran); report its exit status (0 = drained cleanly).
kill -0 "$server" 2>/dev/null && kill -TERM "$server"
if wait "$server"; then code=0; else code=$?; fi
echo "server exit status after SIGTERM: $code; load average now: $(cut -d' ' -f1-3 /proc/loadavg)" >&2
echo "server log lines: $(wc -l <"$log"); ERROR lines: $(grep -c ' ERROR ' "$log" || true); WARN lines: $(grep -c ' WARN ' "$log" || true)" >&2
trap - EXIT
exit "$status"
