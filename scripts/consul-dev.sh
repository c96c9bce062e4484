#!/usr/bin/env bash
# A local Consul dev agent for the demo (in-memory state; pid and log in data/run/, config in data/consul/).
# It runs the nodes' gRPC health checks over mutual TLS: it presents the `consul` client certificate
# from our CA (enable_agent_tls_for_checks) and verifies the nodes' certificates as "localhost".
# Usage: scripts/consul-dev.sh start|stop|status [CERTS_DIR]
#   Ports (env): CONSUL_HTTP_PORT (18500), CONSUL_SERVER_PORT (18300), CONSUL_SERF_LAN_PORT (18301),
#   CONSUL_SERF_WAN_PORT (18302); DNS and gRPC ports are off. Chosen away from Consul's defaults so
#   another agent on the machine does not clash. Exit 0 when running (start) / stopped (stop).
set -euo pipefail
cd "$(dirname "$0")/.."
cmd=${1:-start}
certs=${2:-certs}
http=${CONSUL_HTTP_PORT:-18500}
server=${CONSUL_SERVER_PORT:-18300}
lan=${CONSUL_SERF_LAN_PORT:-18301}
wan=${CONSUL_SERF_WAN_PORT:-18302}
run=data/run
pidf=$run/consul.pid
log=$run/consul.out

consul_bin() {
  if [ -x tools/bin/consul ]; then echo tools/bin/consul; return 0; fi
  command -v consul 2>/dev/null
}
alive() { [ -f "$pidf" ] && kill -0 "$(cat "$pidf")" 2>/dev/null; }
answering() { curl -fsS -m 2 "http://127.0.0.1:$http/v1/status/leader" 2>/dev/null | grep -q '"'; }

case "$cmd" in
  status)
    if alive; then echo "consul running (pid $(cat "$pidf"), http 127.0.0.1:$http)"; else echo "consul not running"; fi
    ;;
  stop)
    if alive; then
      pid=$(cat "$pidf"); kill -TERM "$pid"
      for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
      kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
      echo "stopped consul"
    fi
    rm -f "$pidf"
    ;;
  start)
    if alive; then echo "consul already running (pid $(cat "$pidf"), http 127.0.0.1:$http)"; exit 0; fi
    bin=$(consul_bin) || { echo "consul-dev: no consul binary (run scripts/install-consul.sh)" >&2; exit 1; }
    if answering; then
      echo "consul-dev: something else already answers on 127.0.0.1:$http; set CONSUL_HTTP_PORT" >&2; exit 1
    fi
    for f in ca.crt consul.crt consul.key; do
      [ -f "$certs/$f" ] || { echo "consul-dev: missing $certs/$f (run make certs)" >&2; exit 1; }
    done
    mkdir -p "$run" data/consul
    abs=$(cd "$certs" && pwd)
    cat > data/consul/agent.json <<JSON
{
  "node_name": "payments-dev",
  "bind_addr": "127.0.0.1",
  "client_addr": "127.0.0.1",
  "disable_update_check": true,
  "log_level": "warn",
  "ports": { "http": $http, "dns": -1, "grpc": -1, "server": $server, "serf_lan": $lan, "serf_wan": $wan },
  "enable_agent_tls_for_checks": true,
  "ca_file": "$abs/ca.crt",
  "cert_file": "$abs/consul.crt",
  "key_file": "$abs/consul.key",
  "server_name": "localhost"
}
JSON
    : > "$log"
    nohup "$bin" agent -dev -config-file data/consul/agent.json > "$log" 2>&1 < /dev/null &
    echo $! > "$pidf"
    for _ in $(seq 1 150); do
      if answering; then echo "consul: $("$bin" version | head -1) dev agent on http 127.0.0.1:$http (pid $(cat "$pidf"))"; exit 0; fi
      if ! alive; then echo "consul-dev: the agent exited:" >&2; cat "$log" >&2; rm -f "$pidf"; exit 1; fi
      sleep 0.1
    done
    echo "consul-dev: the agent did not answer within 15 s; see $log" >&2
    exit 1
    ;;
  *) echo "usage: scripts/consul-dev.sh start|stop|status [CERTS_DIR]" >&2; exit 2 ;;
esac
