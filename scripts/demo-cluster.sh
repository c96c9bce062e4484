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

say "bin/client transfer BankB bob 7.00      (gateways: localhost:50050,localhost:50060)"
key=$(node -e 'console.log(crypto.randomUUID())')
started=$(date +%s%N)
"${alice[@]}" transfer BankB bob 7.00 --key "$key"
elapsed=$(( ($(date +%s%N) - started) / 1000000 ))
note "answered by g2 after ${elapsed} ms; g1's state: $(kill -0 "$(cat "$run/gateway-g1.pid")" 2>/dev/null && echo alive || echo dead)"
say "bin/client status $key      (any instance answers)"
"${alice[@]}" status "$key"
say "bin/gateway unfinished      (the shared log: nothing left undone)"
bin/gateway --config "$config" unfinished
grep -h '"took over transfers' logs/gateway-g2.log | tail -1 || true
say "bin/client balance"
"${alice[@]}" balance

note "g1 comes back unarmed"
rm -f "$run/gateway-g1.pid"
GATEWAYS="g1:50050" scripts/up.sh "$config" >/dev/null
cat <<MSG

The cluster is still running: PostgreSQL (data/postgres), BankA, BankB, gateways g1 (50050) and
g2 (50060); see \`make status\` and logs/gateway-g1.log, logs/gateway-g2.log.
  env \$(cat data/run/cluster.env) bin/client --set client.dataDir=data/client-alice balance
Stop it with: make stop
MSG
