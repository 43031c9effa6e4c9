#!/usr/bin/env bash
# Demo certificates for the fleet's etcd (mTLS between Envoy and etcd), made with the openssl
# command line into DIR (default .run/fleet-certs):
#   ca.pem ca-key.pem          a CA made for this fleet only
#   server.pem server-key.pem  etcd's certificate: serverAuth and clientAuth (etcd's own gateway
#                              dials its client port with it), names below
#   client.pem client-key.pem  Envoy's client certificate, CN=envoy, clientAuth
#
#   scripts/fleet-certs.sh [DIR]
# Used by scripts/demo.sh --fleet and by docker-compose.yml's "fleet" profile (which mounts
# .run/fleet-certs). Idempotent: existing files are kept while both certificates are valid for
# another day and the server certificate has every name asked for; otherwise all are made anew.
# Server names: localhost, 127.0.0.1, the compose services etcd-1..3, the Kubernetes example's
# *.etcd.bcl-fleet.svc(.cluster.local); more with FLEET_CERT_EXTRA_SANS="DNS:x,IP:10.0.0.1".
# Demo material: a real fleet gets its certificates from its own PKI (cert-manager, Vault...).
set -euo pipefail

dir=${1:-$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)/.run/fleet-certs}
days=${FLEET_CERT_DAYS:-365}
sans="DNS:localhost,IP:127.0.0.1,DNS:etcd-1,DNS:etcd-2,DNS:etcd-3"
sans="$sans,DNS:*.etcd.bcl-fleet.svc,DNS:*.etcd.bcl-fleet.svc.cluster.local,DNS:etcd.bcl-fleet.svc"
if [ -n "${FLEET_CERT_EXTRA_SANS:-}" ]; then sans="$sans,$FLEET_CERT_EXTRA_SANS"; fi

say() { printf 'fleet-certs: %s\n' "$*" >&2; }
command -v openssl >/dev/null 2>&1 || { say "openssl is missing (apt-get install openssl)"; exit 1; }

mkdir -p "$dir"
files=(ca.pem ca-key.pem server.pem server-key.pem client.pem client-key.pem)

current() {
  local f
  for f in "${files[@]}"; do [ -s "$dir/$f" ] || return 1; done
  openssl x509 -in "$dir/server.pem" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  openssl x509 -in "$dir/client.pem" -noout -checkend 86400 >/dev/null 2>&1 || return 1
  # the names asked for are all in the server certificate (a new FLEET_CERT_EXTRA_SANS remakes it)
  [ "$(cat "$dir/sans" 2>/dev/null)" = "$sans" ]
}

if current; then
  say "certificates in $dir are current"
  exit 0
fi

say "making a CA, etcd's server certificate and Envoy's client certificate in $dir"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
umask 077

key() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }

key "$tmp/ca-key.pem"
openssl req -x509 -new -key "$tmp/ca-key.pem" -subj "/CN=backchannel-logout fleet demo CA" \
  -days "$days" -sha256 -out "$tmp/ca.pem" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

sign() { # name subject extensions
  local name=$1 subject=$2 ext=$3
  key "$tmp/$name-key.pem"
  openssl req -new -key "$tmp/$name-key.pem" -subj "$subject" -out "$tmp/$name.csr" 2>/dev/null
  printf '%s\n' "$ext" > "$tmp/$name.ext"
  openssl x509 -req -in "$tmp/$name.csr" -CA "$tmp/ca.pem" -CAkey "$tmp/ca-key.pem" -CAcreateserial \
    -days "$days" -sha256 -extfile "$tmp/$name.ext" -out "$tmp/$name.pem" 2>/dev/null
}
sign server "/CN=etcd" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=serverAuth,clientAuth
subjectAltName=$sans"
sign client "/CN=envoy" "basicConstraints=CA:FALSE
keyUsage=critical,digitalSignature,keyEncipherment
extendedKeyUsage=clientAuth"

openssl verify -CAfile "$tmp/ca.pem" "$tmp/server.pem" "$tmp/client.pem" >/dev/null
for f in "${files[@]}"; do mv -f "$tmp/$f" "$dir/$f"; done
# certificates are public; keys stay 0600 (the containers of docker-compose.yml run as root)
chmod 0644 "$dir/ca.pem" "$dir/server.pem" "$dir/client.pem"
printf '%s\n' "$sans" > "$dir/sans"
say "done: $dir"
