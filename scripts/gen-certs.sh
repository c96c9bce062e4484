#!/usr/bin/env bash
# Creates a local CA and mutual-TLS certificates: gateway, one per bank, client, consul, and
# "intruder" (a valid certificate from the same CA with no role; tests use it).
# Every certificate names its role in the subject's OU (client | gateway | bank | consul); each
# service admits only its callers' role. The CN is the identity (the bank's name for a bank).
# Usage: scripts/gen-certs.sh DIR [BANK ...]   Existing files are kept; missing ones are added, and
# one issued without its role (before roles existed) is issued again.
set -euo pipefail
dir=${1:?usage: gen-certs.sh DIR [BANK ...]}
shift || true
banks=("$@")
mkdir -p "$dir"
chmod 700 "$dir"
umask 077
days=825

if [ ! -f "$dir/ca.crt" ]; then
  openssl ecparam -name prime256v1 -genkey -noout -out "$dir/ca.key"
  openssl req -x509 -new -key "$dir/ca.key" -sha256 -days 3650 -subj "/CN=payments-local-ca" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" \
    -out "$dir/ca.crt" 2>/dev/null
fi

# issue NAME CN EKU [ROLE]
issue() {
  local name=$1 cn=$2 eku=$3 role=${4:-}
  local subj="/CN=$cn"
  [ -n "$role" ] && subj="/OU=$role/CN=$cn"
  if [ -f "$dir/$name.crt" ] && [ -f "$dir/$name.key" ]; then
    [ -z "$role" ] && return 0
    openssl x509 -in "$dir/$name.crt" -noout -subject -nameopt RFC2253 | grep -q "OU=$role\(,\|$\)" && return 0
  fi
  openssl ecparam -name prime256v1 -genkey -noout -out "$dir/$name.key"
  openssl req -new -key "$dir/$name.key" -subj "$subj" -out "$dir/$name.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=$eku" "subjectAltName=DNS:localhost,IP:127.0.0.1" > "$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days $days -sha256 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
  chmod 600 "$dir/$name.key"
  chmod 644 "$dir/$name.crt"
}

issue gateway gateway serverAuth,clientAuth gateway
issue client client clientAuth client
# No role: our CA signed it, but it is none of the above (only the health service admits it).
issue intruder intruder serverAuth,clientAuth
# The Consul agent presents this one when it runs the gRPC health checks (enable_agent_tls_for_checks).
issue consul consul clientAuth consul
for b in "${banks[@]}"; do issue "$b" "$b" serverAuth,clientAuth bank; done
chmod 644 "$dir/ca.crt"
chmod 600 "$dir/ca.key"
echo "certificates in $dir: gateway client intruder consul ${banks[*]}"
