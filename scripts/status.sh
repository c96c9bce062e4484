#!/usr/bin/env bash
# Lists the nodes started by scripts/up.sh and whether they are alive.
cd "$(dirname "$0")/.."
for f in data/run/*.pid; do
  [ -f "$f" ] || { echo "nothing running (make up)"; exit 0; }
  n=$(basename "$f" .pid); p=$(cat "$f")
  if kill -0 "$p" 2>/dev/null; then echo "$n running (pid $p)"; else echo "$n dead (pid $p)"; fi
done
