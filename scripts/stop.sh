#!/usr/bin/env bash
# Stops the nodes started by scripts/up.sh (and up-cluster.sh): gateways first, then banks
# (SIGTERM, graceful), then the cluster's PostgreSQL.
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
for f in "$run"/gateway-*.pid; do [ -f "$f" ] && stop "$f"; done
for f in "$run"/*.pid; do [ -f "$f" ] && stop "$f"; done
# The cluster's database (make cluster), after every gateway is gone.
if [ -f data/postgres/data/postmaster.pid ]; then scripts/pg-dev.sh stop data/postgres && echo "stopped postgres"; fi
rm -f "$run/cluster.env"
exit 0
