#!/usr/bin/env bash
# Starts every bank and then the gateway in the background (pids and output in data/run/),
# waiting for each one's ready line. Nodes already running are left alone.
# Usage: scripts/up.sh CONFIG BANK...
#   GATEWAYS="g1:50050 g2:50060": several gateway instances (ID:PORT, data in data/gateway-ID)
#   instead of the one gateway (scripts/up-cluster.sh sets it, with the shared database).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:?usage: up.sh CONFIG BANK...}
shift
run=data/run
mkdir -p "$run"

start() { # start NAME CMD...
  local name=$1; shift
  local pidf="$run/$name.pid" out="$run/$name.out"
  if [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; then
    echo "$name already running (pid $(cat "$pidf"))"
    return 0
  fi
  : > "$out"
  nohup "$@" > "$out" 2>&1 < /dev/null &
  echo $! > "$pidf"
  for _ in $(seq 1 300); do
    if grep -q '"event":"listening"' "$out"; then
      echo "$name: $(grep -m1 '"event":"listening"' "$out")"
      return 0
    fi
    if ! kill -0 "$(cat "$pidf")" 2>/dev/null; then
      echo "$name failed to start:" >&2; cat "$out" >&2; rm -f "$pidf"; return 1
    fi
    sleep 0.1
  done
  echo "$name did not become ready in 30 s; see $out" >&2
  return 1
}

for b in "$@"; do start "$b" bin/bank --config "$config" --name "$b"; done
if [ -n "${GATEWAYS:-}" ]; then
  for g in $GATEWAYS; do
    id=${g%%:*} port=${g##*:}
    start "gateway-$id" bin/gateway --config "$config" --instance-id "$id" --port "$port" --data-dir "data/gateway-$id"
  done
else
  start gateway bin/gateway --config "$config"
fi
