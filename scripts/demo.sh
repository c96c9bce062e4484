#!/usr/bin/env bash
# Shows the system doing its job through the real client: alice (BankA) pays bob (BankB).
set -euo pipefail
cd "$(dirname "$0")/.."
config=${1:-config.json}
alice=(bin/client --config "$config" --set client.dataDir=data/client-alice)
bob=(bin/client --config "$config" --set client.dataDir=data/client-bob)
# With Consul, the client finds the gateway there: wait (bounded) until its health check passes.
if [ "${PAYMENTS__DISCOVERY__MODE:-}" != static ] && command -v curl >/dev/null; then
  for _ in $(seq 1 50); do
    curl -sf "http://127.0.0.1:${PAYMENTS__CONSUL__HTTPPORT:-18500}/v1/health/service/payments-gateway?passing" \
      | grep -q '"ServiceID"' && break
    sleep 0.2
  done
fi
say() { printf '\n\033[1m$ %s\033[0m\n' "$*"; }

say "bin/client login BankA alice"
echo alice-pass | "${alice[@]}" login BankA alice --password-stdin
say "bin/client balance"
"${alice[@]}" balance
echo bob-pass | "${bob[@]}" login BankB bob --password-stdin >/dev/null
say "bin/client balance   (bob)"
"${bob[@]}" balance
say "bin/client transfer BankB bob 12.50"
"${alice[@]}" transfer BankB bob 12.50
say "bin/client balance"
"${alice[@]}" balance
say "bin/client balance   (bob)"
"${bob[@]}" balance
say "bin/client history --page-size 5"
"${alice[@]}" history --page-size 5
say "bin/client transfer BankB bob 100000.00   (more than alice has)"
"${alice[@]}" transfer BankB bob 100000.00 || echo "(refused as expected, exit code $?)"

cat <<MSG

The system is still running (gateway and banks BankA, BankB; see \`make status\`, logs/ and data/run/).
Keep using it:
  bin/client --set client.dataDir=data/client-alice balance
  bin/client --set client.dataDir=data/client-alice transfer BankB bob 5.00
  bin/client                                    # interactive: bank, user, password, then a menu
  (demo users: BankA alice/alice-pass, carol/carol-pass; BankB bob/bob-pass, dave/dave-pass)
Stop it with: make stop
MSG
