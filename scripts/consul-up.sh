#!/usr/bin/env bash
# For `make up` / `make demo`: a local Consul agent if one can be had (install into ./tools if
# needed, then start the dev agent), else static discovery, announced loudly.
# Writes data/run/discovery.env: environment for the nodes and the client (empty = config.json as is).
# Usage: scripts/consul-up.sh CERTS_DIR
set -uo pipefail
cd "$(dirname "$0")/.."
certs=${1:-certs}
http=${CONSUL_HTTP_PORT:-18500}
mkdir -p data/run
env_file=data/run/discovery.env

fallback() {
  printf 'PAYMENTS__DISCOVERY__MODE=static\n' > "$env_file"
  printf '\n\033[1;33mNOTICE: %s\nNOTICE: running with static discovery (addresses from config.json); see `make consul`.\033[0m\n\n' "$1" >&2
  exit 0
}

if [ "${PAYMENTS_DISCOVERY:-}" = "static" ]; then fallback "PAYMENTS_DISCOVERY=static"; fi
scripts/install-consul.sh > /dev/null || fallback "no Consul agent available (none on the PATH and scripts/install-consul.sh failed)"
scripts/consul-dev.sh start "$certs" || fallback "the local Consul agent did not start (port $http busy? see data/run/consul.out)"
printf 'PAYMENTS__CONSUL__HTTPPORT=%s\n' "$http" > "$env_file"
echo "discovery: consul on 127.0.0.1:$http (registration, gRPC health checks over mTLS, trust material in KV)"
