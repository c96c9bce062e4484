#!/usr/bin/env bash
# Stops the nodes started by scripts/up.sh: gateway first, then banks (SIGTERM, graceful).
set -uo pipefail
cd "$(dirname "$0")/.."
run=data/run
[ -d "$run" ] || exit 0
stop() {
  local pidf=$1 pid
  pid=$(cat "$pidf")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 1 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    echo "stopped $(basename "$pidf" .pid)"
  fi
  rm -f "$pidf"
}
[ -f "$run/gateway.pid" ] && stop "$run/gateway.pid"
for f in "$run"/*.pid; do [ -f "$f" ] && stop "$f"; done
exit 0
