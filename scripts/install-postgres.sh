#!/usr/bin/env bash
# Makes PostgreSQL's server binaries (initdb, pg_ctl, postgres, pg_isready, pg_basebackup) available
# (idempotent; quiet when present): found on the PATH or in /usr/lib/postgresql/*/bin, else Debian's
# `postgresql` package is installed with apt-get. The cluster the package may start on its own is
# stopped again: the project runs its own servers (scripts/pg-dev.sh) on free loopback ports.
# Prints the folder of the binaries on its last line. Exit 0 on success, 1 if it cannot install.
set -euo pipefail

find_bindir() {
  # The real folder (a PATH entry is often a symlink to it): it holds the other tools too.
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
    dirname "$(readlink -f "$(command -v pg_ctl)")"
    return 0
  fi
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then echo "$d"; return 0; fi
  done
  return 1
}

if dir=$(find_bindir); then
  echo "$dir"
  exit 0
fi
command -v apt-get >/dev/null 2>&1 || { echo "install-postgres: no PostgreSQL and no apt-get; install PostgreSQL (>= 13) yourself" >&2; exit 1; }
echo "install-postgres: installing Debian's postgresql package" >&2
export DEBIAN_FRONTEND=noninteractive
run_root() { if [ "$(id -u)" = 0 ]; then "$@"; else sudo -n "$@"; fi; }
# Do not let the package start its own cluster (policy-rc.d 101 = "action forbidden").
policy=/usr/sbin/policy-rc.d
made_policy=0
if [ ! -e "$policy" ]; then
  printf '#!/bin/sh\nexit 101\n' | run_root tee "$policy" >/dev/null && run_root chmod 755 "$policy" && made_policy=1
fi
trap '[ "$made_policy" = 1 ] && run_root rm -f "$policy"' EXIT
(run_root apt-get install -y -q postgresql >/dev/null 2>&1) \
  || { run_root apt-get update -q >/dev/null 2>&1 && run_root apt-get install -y -q postgresql >/dev/null 2>&1; } \
  || { echo "install-postgres: apt-get install postgresql failed" >&2; exit 1; }
# A cluster started anyway (no policy-rc.d support) is stopped: it would hold port 5432 for nothing.
if command -v pg_lsclusters >/dev/null 2>&1; then
  pg_lsclusters -h 2>/dev/null | awk '$4 == "online" {print $1, $2}' | while read -r v c; do run_root pg_ctlcluster "$v" "$c" stop || true; done
fi
dir=$(find_bindir) || { echo "install-postgres: installed, but no initdb/pg_ctl found" >&2; exit 1; }
echo "$dir"
