#!/usr/bin/env bash
# Throwaway PostgreSQL servers for development and tests, loopback only.
#   scripts/pg-dev.sh start DIR [--port N]     initdb into DIR/data (first time), start; prints the port
#   scripts/pg-dev.sh stop DIR                 fast shutdown (what is committed stays)
#   scripts/pg-dev.sh kill DIR                 SIGKILL the server (a crash)
#   scripts/pg-dev.sh status DIR               exit 0 when it answers
#   scripts/pg-dev.sh url DIR                  postgres://payments@127.0.0.1:PORT/payments
#   scripts/pg-dev.sh standby PRIMARY_DIR DIR [--port N]   a synchronous streaming standby of PRIMARY
#   scripts/pg-dev.sh promote DIR              the standby becomes a primary
#   scripts/pg-dev.sh tls DIR CERT KEY         TLS on (ssl = on, reloaded) with this certificate and key
# The server listens on 127.0.0.1 and a unix socket in DIR; the role and database are `payments`
# with trust authentication: only local processes can reach it, and it holds throwaway data. fsync
# and synchronous_commit keep their defaults (on). PostgreSQL refuses to run as root: as root the
# server runs as the `postgres` user, which then owns DIR.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
bindir=$("$root/scripts/install-postgres.sh" | tail -1)
cmd=${1:?usage: pg-dev.sh start|stop|kill|status|url|standby|promote|tls DIR}
shift

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
free_port() { node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})"; }
port_of() { cat "$1/port"; }
ready() { as_pg "$bindir/pg_isready" -q -h 127.0.0.1 -p "$(port_of "$1")" -d payments -U payments; }
wait_ready() {
  local i
  for i in $(seq 1 300); do ready "$1" && return 0; sleep 0.1; done
  echo "pg-dev: server in $1 did not become ready; log:" >&2; tail -20 "$1/log" >&2; return 1
}
prepare_dir() {
  mkdir -p "$1"
  if [ "$(id -u)" = 0 ]; then
    chown postgres "$1"
    # A 0700 parent (a mktemp folder) would keep the postgres user out: let it pass through.
    local parent
    parent=$(dirname "$1")
    runuser -u postgres -- test -x "$parent" || chmod o+x "$parent"
    runuser -u postgres -- test -x "$1" || { echo "pg-dev: the postgres user cannot reach $1 (a parent folder is closed to others)" >&2; exit 1; }
  fi
  chmod 700 "$1"
}
start_server() {
  local dir=$1
  as_pg "$bindir/pg_ctl" -D "$dir/data" -l "$dir/log" -w -t 60 \
    -o "-c listen_addresses=127.0.0.1 -c port=$(port_of "$dir") -c unix_socket_directories=$dir" start >/dev/null
  wait_ready "$dir"
}
parse_port() { if [ "${1:-}" = "--port" ]; then echo "$2"; else free_port; fi; }

case "$cmd" in
  start)
    dir=$(realpath -m "${1:?DIR}"); shift
    if [ -f "$dir/data/postmaster.pid" ] && ready "$dir" 2>/dev/null; then port_of "$dir"; exit 0; fi
    prepare_dir "$dir"
    if [ ! -f "$dir/data/PG_VERSION" ]; then
      as_pg "$bindir/initdb" -D "$dir/data" -A trust -U payments -E UTF8 --no-instructions >"$dir/initdb.log" 2>&1 \
        || { cat "$dir/initdb.log" >&2; exit 1; }
      parse_port "$@" > "$dir/port"
      # Streaming replication for a standby (pg-dev.sh standby) from loopback.
      echo "host replication payments 127.0.0.1/32 trust" | as_pg tee -a "$dir/data/pg_hba.conf" >/dev/null
      start_server "$dir"
      as_pg "$bindir/createdb" -h 127.0.0.1 -p "$(port_of "$dir")" -U payments payments
    else
      [ "${1:-}" = "--port" ] && echo "$2" > "$dir/port"
      start_server "$dir"
    fi
    port_of "$dir"
    ;;
  stop)
    dir=$(realpath -m "${1:?DIR}")
    [ -f "$dir/data/postmaster.pid" ] || exit 0
    as_pg "$bindir/pg_ctl" -D "$dir/data" -m fast -w -t 60 stop >/dev/null 2>&1 || true
    ;;
  kill)
    dir=$(realpath -m "${1:?DIR}")
    [ -f "$dir/data/postmaster.pid" ] || exit 0
    kill -KILL "$(head -1 "$dir/data/postmaster.pid")" 2>/dev/null || true
    ;;
  status)
    dir=$(realpath -m "${1:?DIR}")
    ready "$dir"
    ;;
  url)
    dir=$(realpath -m "${1:?DIR}")
    echo "postgres://payments@127.0.0.1:$(port_of "$dir")/payments"
    ;;
  standby)
    primary=$(realpath -m "${1:?PRIMARY_DIR}"); dir=$(realpath -m "${2:?DIR}"); shift 2
    prepare_dir "$dir"
    parse_port "$@" > "$dir/port"
    # -R writes primary_conninfo (with this application_name, which synchronous_standby_names names).
    as_pg "$bindir/pg_basebackup" -d "host=127.0.0.1 port=$(port_of "$primary") user=payments application_name=standby" \
      -D "$dir/data" -R -X stream --checkpoint=fast >"$dir/basebackup.log" 2>&1 || { cat "$dir/basebackup.log" >&2; exit 1; }
    start_server "$dir"
    # The primary now waits for this standby's flush before it acknowledges a commit.
    as_pg "$bindir/psql" -q -h 127.0.0.1 -p "$(port_of "$primary")" -U payments -d payments \
      -c "ALTER SYSTEM SET synchronous_standby_names = 'standby'" -c "SELECT pg_reload_conf()" >/dev/null
    port_of "$dir"
    ;;
  tls)
    dir=$(realpath -m "${1:?DIR}"); cert=${2:?CERT}; key=${3:?KEY}
    # The server reads them from its data folder, as its own files; the key private (0600). Read
    # here, written as the server's user (it may not reach the files where they are).
    as_pg sh -c 'umask 077; cat > "$1"' _ "$dir/data/server.crt" < "$cert"
    as_pg sh -c 'umask 077; cat > "$1"' _ "$dir/data/server.key" < "$key"
    as_pg "$bindir/psql" -q -h 127.0.0.1 -p "$(port_of "$dir")" -U payments -d payments \
      -c "ALTER SYSTEM SET ssl = on" -c "SELECT pg_reload_conf()" >/dev/null
    for i in $(seq 1 100); do
      [ "$(as_pg "$bindir/psql" -At -h 127.0.0.1 -p "$(port_of "$dir")" -U payments -d payments -c 'SHOW ssl')" = on ] && exit 0
      sleep 0.1
    done
    echo "pg-dev: TLS did not come on in $dir; log:" >&2; tail -20 "$dir/log" >&2; exit 1
    ;;
  promote)
    dir=$(realpath -m "${1:?DIR}")
    as_pg "$bindir/pg_ctl" -D "$dir/data" -w -t 60 promote >/dev/null
    ;;
  *)
    echo "pg-dev: unknown command $cmd" >&2; exit 2
    ;;
esac
