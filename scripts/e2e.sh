#!/usr/bin/env bash
# End-to-end tests: real Envoy 1.40 running this filter behind its oauth2 filter, the demo IdP
# (node-oidc-provider), the demo app, a cookie-jar HTTP client and headless Chromium, all on
# 127.0.0.1 with free ports, started and stopped by the tests (tests/e2e/*.test.mjs).
#
#   scripts/e2e.sh                 install what is missing, build the filter, run every test
#   scripts/e2e.sh browser         only the files whose name contains "browser"
# Environment: ENVOY_BIN (default: .venv's), BCL_WASM (skip the cargo build, use this .wasm),
#   E2E_KEY_SOURCE=inline|jwks_uri|discovery (key source of the main tests, default jwks_uri),
#   E2E_KEEP=1 (keep every run's logs under $TMPDIR/bcl-e2e-*; failed runs keep them anyway).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PREREQ_TAG=e2e
# shellcheck source=scripts/stack-prereqs.sh
. scripts/stack-prereqs.sh

ensure_node
ensure_envoy
ensure_npm idp
ensure_npm tests/e2e
ensure_chromium
build_wasm

files=()
if [ $# -gt 0 ]; then
  for pattern in "$@"; do
    for f in tests/e2e/*"$pattern"*.test.mjs; do [ -f "$f" ] && files+=("$f"); done
  done
  [ ${#files[@]} -gt 0 ] || { say "no test file matches: $*"; exit 2; }
else
  files=(tests/e2e/)
fi
say "running node --test ${files[*]}"
exec node --test --test-concurrency=1 "${files[@]}"
