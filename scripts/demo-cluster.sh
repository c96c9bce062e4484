#!/usr/bin/env bash
# Shows two gateways sharing one PostgreSQL (after scripts/up-cluster.sh): a transfer through g1;
# g1 then dies (SIGKILL, from inside: the failpoint right after it made a commit decision durable,
# before any Commit left); the client's next transfer fails over to g2 with the same idempotency
# key, and g2 takes the dead instance's unfinished transfer over and finishes it.
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-config.json}
run=data/run
# shellcheck disable=SC2046
export $(cat "$run/cluster.env") $(cat "$run/discovery.env" 2>/dev/null)
alice=(bin/client --config "$config" --set client.dataDir=data/client-alice)
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }
note() { printf '\033[2m# %s\033[0m\n' "$*"; }

say "bin/client login BankA alice"
echo alice-pass | "${alice[@]}" login BankA alice --password-stdin
say "bin/client --gateway localhost:50050 transfer BankB bob 12.50      (through g1)"
"${alice[@]}" --gateway localhost:50050 transfer BankB bob 12.50

note "g1 restarts armed: it will die (SIGKILL) right after its next commit decision is durable"
kill -TERM "$(cat "$run/gateway-g1.pid")"
while kill -0 "$(cat "$run/gateway-g1.pid")" 2>/dev/null; do sleep 0.1; done
rm -f "$run/gateway-g1.pid"
PAYMENTS_FAILPOINTS=gateway.after_decision_persisted GATEWAYS="g1:50050" scripts/up.sh "$config" >/dev/null

say "bin/client --gateway localhost:50050,localhost:50060 transfer BankB bob 7.00      (g1 first, then g2)"
key=$(node -e 'console.log(crypto.randomUUID())')
"${alice[@]}" --gateway localhost:50050,localhost:50060 transfer BankB bob 7.00 --key "$key"
killed_at=$(date +%s%N)
g1_pid=$(cat "$run/gateway-g1.pid")
# (A zombie counts as dead: in a container nobody may reap it.)
g1_dead() { local st; st=$(ps -o stat= -p "$g1_pid" 2>/dev/null || true); [ -z "$st" ] || [[ "$st" == Z* ]]; }
if g1_dead; then note "g1 (pid $g1_pid) is dead: it made the commit decision durable and died before any Commit left;"
else echo "demo-cluster: g1 did not reach its failpoint" >&2; exit 1; fi
note "the client failed over to g2 with the same key, and g2 answered from the shared log: the decision is final"
say "bin/gateway unfinished      (right after: the dead g1's transfer, decided, no Commit sent yet)"
bin/gateway --config "$config" unfinished
note "g2 takes it over once g1's lease lapses (gateway.leaseMs) and sends the Commits"
for _ in $(seq 1 300); do
  bin/gateway --config "$config" unfinished --json | grep -q '"transfers":\[\]' && break
  sleep 0.1
done
note "finished by g2 $(( ($(date +%s%N) - killed_at) / 1000000 )) ms after g1 died"
grep -h '"took over transfers' logs/gateway-g2.log | tail -1 || true
say "bin/gateway unfinished"
bin/gateway --config "$config" unfinished
say "bin/client status $key      (any instance answers)"
"${alice[@]}" status "$key"
say "bin/client balance"
"${alice[@]}" balance

note "g1 comes back unarmed"
kill -KILL "$g1_pid" 2>/dev/null || true
rm -f "$run/gateway-g1.pid"
GATEWAYS="g1:50050" scripts/up.sh "$config" >/dev/null
cat <<MSG

The cluster is still running: PostgreSQL (data/postgres), BankA, BankB, gateways g1 (50050) and
g2 (50060); see \`make status\` and logs/gateway-g1.log, logs/gateway-g2.log.
  env \$(cat data/run/cluster.env) bin/client --set client.dataDir=data/client-alice balance
Stop it with: make stop
MSG
