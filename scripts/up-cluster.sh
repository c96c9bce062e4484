#!/usr/bin/env bash
# Starts the cluster in the background: a PostgreSQL in data/postgres (scripts/pg-dev.sh), every
# bank, then two gateway instances g1 (port 50050) and g2 (port 50060) sharing that database
# (pids and output in data/run/, like scripts/up.sh). Nodes already running are left alone.
# data/run/cluster.env carries the settings to the nodes and the demo client.
# Usage: scripts/up-cluster.sh CONFIG BANK...
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:?usage: up-cluster.sh CONFIG BANK...}
shift
run=data/run
mkdir -p "$run"
pg_port=$(scripts/pg-dev.sh start data/postgres | tail -1)
echo "postgres: $(scripts/pg-dev.sh url data/postgres)"
cat > "$run/cluster.env" <<ENV
PAYMENTS__GATEWAY__STORE=postgres
PAYMENTS__GATEWAY__POSTGRES__PORT=$pg_port
PAYMENTS__CLIENT__GATEWAYADDRESS=localhost:50050,localhost:50060
PAYMENTS__CLIENT__CALLTIMEOUTMS=15000
ENV
# shellcheck disable=SC2046
export $(cat "$run/cluster.env") $(cat "$run/discovery.env" 2>/dev/null)
GATEWAYS="g1:50050 g2:50060" scripts/up.sh "$config" "$@"
