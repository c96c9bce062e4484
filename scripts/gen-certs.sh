#!/usr/bin/env bash
# Creates a local CA and mutual-TLS certificates: gateway, one per bank, client, and "intruder"
# (a valid client certificate from the same CA that is NOT the gateway; tests use it).
# Usage: scripts/gen-certs.sh DIR [BANK ...]   Existing files are kept; missing ones are added.
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

# issue NAME CN EKU
issue() {
  local name=$1 cn=$2 eku=$3
  [ -f "$dir/$name.crt" ] && [ -f "$dir/$name.key" ] && return 0
  openssl ecparam -name prime256v1 -genkey -noout -out "$dir/$name.key"
  openssl req -new -key "$dir/$name.key" -subj "/CN=$cn" -out "$dir/$name.csr" 2>/dev/null
  printf '%s\n' "basicConstraints=CA:FALSE" "keyUsage=critical,digitalSignature,keyEncipherment" \
    "extendedKeyUsage=$eku" "subjectAltName=DNS:localhost,IP:127.0.0.1" > "$dir/$name.ext"
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.crt" -CAkey "$dir/ca.key" -CAcreateserial \
    -days $days -sha256 -extfile "$dir/$name.ext" -out "$dir/$name.crt" 2>/dev/null
  rm -f "$dir/$name.csr" "$dir/$name.ext"
  chmod 600 "$dir/$name.key"
  chmod 644 "$dir/$name.crt"
}

issue gateway gateway serverAuth,clientAuth
issue client client clientAuth
issue intruder intruder serverAuth,clientAuth
# The Consul agent presents this one when it runs the gRPC health checks (enable_agent_tls_for_checks).
issue consul consul clientAuth
for b in "${banks[@]}"; do issue "$b" "$b" serverAuth,clientAuth; done
chmod 644 "$dir/ca.crt"
chmod 600 "$dir/ca.key"
echo "certificates in $dir: gateway client intruder consul ${banks[*]}"
