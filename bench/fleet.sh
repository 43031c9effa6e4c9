#!/usr/bin/env bash
# Fleet mode (Envoys sharing revocations through etcd v3), measured against the issue's three
# targets. Nothing here asserts: one run prints a Markdown table (target | goal | measured |
# met?) and the machine line to paste into bench/RESULTS.md.
#
# How to run (from the repository root, after `bash scripts/setup.sh`, which puts Envoy 1.40
# into .venv; etcd 3.4 is Debian's etcd-server, /usr/bin/etcd):
#
#   cargo build --release --target wasm32-wasip1   # or BUILD=1 below
#   bench/fleet.sh            # everything: 5 to 8 min on 2 cores (the 1,000,000 restart: 4 to 5)
#   bench/fleet.sh --quick    # the same without the 1,000,000-revocation restart: about 1.5 minutes
#   KEEP=1 bench/fleet.sh     # keep the run directory (configs, Envoy and etcd logs, JSON)
#
# What it measures, on 127.0.0.1 with a fresh 3-member etcd cluster for each part (default
# flags; data under ETCD_DIR, the disk by default) and Envoys from envoy/test-fleet.yaml.tmpl
# (the filter plus the fleet's singleton service, key prefix /bench/). Results: bench/RESULTS.md.
# bench/etcd-lease-expiry.sh shows why each part gets its own etcd (etcd 3.4's read buffer).
#   1. Propagation: three Envoys (--concurrency 1 each). examples/fleet_probe.rs (propagate)
#      sends each of PROP_RATES logouts/s for PROP_SECONDS, round robin (logout n to Envoy n % 3,
#      EdDSA, pre-signed) and after each 200 polls the two other Envoys with that session's
#      IdToken cookie (a navigation request: 302 once refused, 200 from the upstream while live)
#      every POLL_US until both refuse it. Reports p50/p90/p99/max of the time from the 200 to the
#      first 302 read (an upper bound; the last poll still let through gives a lower bound), both
#      Envoys together and apart, how many never refused within 5 s, the poll round trip and the
#      rate achieved. Goal: p99 <= 10 ms at 1,000/s.
#   2. Logout throughput through etcd: LOGOUTS pre-signed RS256 tokens POSTed by
#      examples/bcl_load.rs over LOGOUT_CONNECTIONS keep-alive connections to one Envoy
#      (--concurrency 1, pinned to ENVOY_CPU; bcl_load and the etcd members on LOAD_CPU), every
#      logout written to etcd (one Txn) before its 200; then the same Envoy config without the
#      fleet block (and without the singleton) for comparison. Goal: >= 2,000 logouts/s.
#   3. Restart: RESTART_SIZES live revocations (0, 100,000, 1,000,000; cumulative) written
#      straight into etcd (fleet_probe etcd-load: the JSON gateway, 128 puts per Txn, no lease),
#      then an Envoy (max_revocations 2,000,000) started from nothing: time from the process
#      start to (a) its log line "fleet: loaded N revocations ..." (and the load time it prints)
#      and (b) the first 302 for a session whose sid was bulk-loaded (fleet_probe first-refused,
#      polling every 2 ms from the start); Envoy's /memory "allocated" and RSS once loaded.
#      The prefix is deleted afterwards. No goal was set: reported.
# Pinning: only part 2 pins (Envoy alone on ENVOY_CPU). Parts 1 and 3 run unpinned: three
# Envoys, three etcd members, the upstream and the probe share both cores, as they would.
#
# Env: PROP_RATES="200 1000" (one this machine sustains, then the goal's rate) PROP_SECONDS=10
#      PROP_THREADS=128 POLL_US=500 PROP_WARMUP=200
#      LOGOUTS=10000 LOGOUT_CONNECTIONS=128 (etcd answers in 100s of ms here: keep many in flight)
#      RESTART_SIZES="0 100000 1000000" (--quick drops 1000000)
#      PARTS="propagation throughput restart"
#      ETCD_DIR=/tmp (where etcd's data goes; /dev/shm takes the disk's fsync out)
#      ENVOY_CPU=0 LOAD_CPU=1 WASM=<path> ENVOY=<path> BUILD=1 KEEP=1
# Every process it starts is stopped on exit (trap); ports are picked free on 127.0.0.1.
# Needs: cargo, curl, jq, python3, taskset, etcd.
set -euo pipefail

QUICK=0
for arg in "$@"; do
  case $arg in
    --quick) QUICK=1 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "fleet.sh: unknown argument $arg (try --help)" >&2; exit 2 ;;
  esac
done

PROP_RATES=${PROP_RATES:-200 1000}
PROP_SECONDS=${PROP_SECONDS:-10}
PROP_THREADS=${PROP_THREADS:-128}
PROP_WARMUP=${PROP_WARMUP:-200}
POLL_US=${POLL_US:-500}
LOGOUTS=${LOGOUTS:-10000}
LOGOUT_CONNECTIONS=${LOGOUT_CONNECTIONS:-128}
RESTART_SIZES=${RESTART_SIZES:-0 100000 1000000}
if [[ $QUICK == 1 ]]; then
  RESTART_SIZES=$(tr ' ' '\n' <<< "$RESTART_SIZES" | awk '$1 != "" && $1 < 1000000' | xargs)
fi
PARTS=${PARTS:-propagation throughput restart}
ENVOY_CPU=${ENVOY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}
PREFIX=/bench/

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WASM=${WASM:-$ROOT/target/wasm32-wasip1/release/envoy_backchannel_logout.wasm}
TEMPLATE=$ROOT/envoy/test-fleet.yaml.tmpl
ISSUER="https://idp.example.test"
CLIENT_ID="example-app"

say() { printf '[%s] %s\n' "$(date -u +%H:%M:%S)" "$*" >&2; }
die() { say "fleet.sh: $*"; exit 1; }
part() { [[ " $PARTS " == *" $1 "* ]]; }

# ---------------------------------------------------------------- prerequisites
if [[ -z ${ENVOY:-} ]]; then
  for candidate in "$ROOT"/.venv/lib/python3*/site-packages/envoy/_bin/envoy; do
    [[ -x $candidate ]] && ENVOY=$candidate && break
  done
  [[ -n ${ENVOY:-} ]] || die "no Envoy in .venv: run bash scripts/setup.sh (or set ENVOY)"
fi
[[ -x "$ENVOY" ]] || die "no Envoy binary at $ENVOY"
ETCD=${ETCD:-$(command -v etcd || true)}
[[ -n $ETCD ]] || die "no etcd: apt-get install etcd-server"
for tool in curl jq python3 taskset cargo; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done
[[ -f $TEMPLATE ]] || die "no $TEMPLATE"
if [[ ${BUILD:-0} == 1 ]]; then
  say "building the wasm filter"
  cargo build -q --release --target wasm32-wasip1
fi
[[ -f "$WASM" ]] || die "no $WASM (build it: cargo build --release --target wasm32-wasip1)"
say "building examples/fleet_probe and examples/bcl_load (release)"
cargo build -q --release --example fleet_probe --example bcl_load
PROBE="$ROOT/target/release/examples/fleet_probe"
LOAD="$ROOT/target/release/examples/bcl_load"

SCRIPT_START=$(date +%s)
RUN=$(mktemp -d /tmp/bcl-fleet.XXXXXX)
ETCD_DATA=$(mktemp -d "${ETCD_DIR:-/tmp}/bcl-fleet-etcd.XXXXXX")
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# A private copy: a rebuild during the run must not change what is measured, or its hash.
cp "$WASM" "$RUN/filter.wasm"
WASM_SHA=$(sha256sum "$RUN/filter.wasm" | cut -c1-12)
WASM="$RUN/filter.wasm"
COMMIT=$(git rev-parse --short HEAD 2>/dev/null || echo unknown)
git diff --quiet HEAD -- src 2>/dev/null || COMMIT="$COMMIT+dirty-src"
# etcd also reads ETCD_* variables: only the flags below may configure it.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^ETCD_' || true)

# shellcheck source=bench/processes.sh
. "$ROOT/bench/processes.sh"
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
ETCD_PID=()
cleanup() {
  local pid
  # etcd members one after the other: stopped together, one of them can wait seconds for a
  # quorum that is leaving with it.
  for pid in "${ETCD_PID[@]}"; do
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  done
  stop_all
  rm -rf "$ETCD_DATA"
  if [[ ${KEEP:-0} == 1 ]]; then say "run directory kept: $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# N free TCP ports on 127.0.0.1 (bound together, so distinct; released just before use).
free_ports() {
  python3 - "$1" <<'PY'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
PY
}
# Polls `cmd...` every 50 ms until it succeeds; gives up after $1 seconds, or at once when
# the command returns 2 (what it waits for has died).
poll_until() {
  local deadline=$(( $(date +%s) + $1 )) rc; shift
  while :; do
    "$@" && return 0
    rc=$?
    [[ $rc == 2 ]] && return 1
    (( $(date +%s) < deadline )) || return 1
    sleep 0.05
  done
}
b64() { printf '%s' "$1" | base64 -w0; }

# ---------------------------------------------------------------- etcd: three members
declare -a ETCD_CLIENT ETCD_METRICS
ETCD_LABEL=none
etcd_healthy() { # member
  kill -0 "${ETCD_PID[$1]}" 2>/dev/null || return 2
  [[ $(curl -s --max-time 1 "http://127.0.0.1:${ETCD_METRICS[$1]}/health" | jq -r .health 2>/dev/null) == true ]]
}
# A fresh 3-member cluster for each part (label): etcd 3.4 copies its whole read buffer, as
# large as the largest write batch it has seen, for every Txn (see bench/etcd-lease-expiry.sh),
# so one part's bulk deletes must not slow the next part's logouts.
start_etcd() { # label
  local ports i initial="" label=$1
  rm -rf "${ETCD_DATA:?}"/m*
  read -r -a ports <<< "$(free_ports 9)"
  for i in 0 1 2; do initial+="${initial:+,}m$i=http://127.0.0.1:${ports[3 * i + 1]}"; done
  for i in 0 1 2; do
    ETCD_CLIENT[i]=${ports[3 * i]}
    ETCD_METRICS[i]=${ports[3 * i + 2]}
    spawn "$ETCD" --name "m$i" --data-dir "$ETCD_DATA/m$i" \
      --listen-client-urls "http://127.0.0.1:${ports[3 * i]}" \
      --advertise-client-urls "http://127.0.0.1:${ports[3 * i]}" \
      --listen-peer-urls "http://127.0.0.1:${ports[3 * i + 1]}" \
      --initial-advertise-peer-urls "http://127.0.0.1:${ports[3 * i + 1]}" \
      --initial-cluster "$initial" --initial-cluster-state new \
      --initial-cluster-token "bcl-bench-$$" \
      --listen-metrics-urls "http://127.0.0.1:${ports[3 * i + 2]}" \
      --logger zap --log-outputs stderr > "$RUN/etcd-$label-m$i.log" 2>&1
    ETCD_PID[i]=$BG_PID
  done
  for i in 0 1 2; do
    poll_until 30 etcd_healthy "$i" || { tail -20 "$RUN/etcd-$label-m$i.log" >&2; die "etcd member m$i is not healthy"; }
  done
  ETCD_LABEL=$label
  etcd_metrics start
}
stop_etcd() {
  local i
  etcd_metrics end
  for i in 0 1 2; do stop_pid "${ETCD_PID[i]}"; done   # in turn: see cleanup
  ETCD_PID=()
}
etcd_api() { # path json_body: POST to member 0's JSON gateway
  curl -s --max-time 120 -X POST "http://127.0.0.1:${ETCD_CLIENT[0]}$1" -d "$2"
}
PREFIX_KEY=$(b64 "$PREFIX")
PREFIX_END=$(b64 "${PREFIX%/}0")   # "/bench0": the end of the "/bench/" range
REVOCATIONS_KEY=$(b64 "${PREFIX}r/")
REVOCATIONS_END=$(b64 "${PREFIX}r0")
etcd_count() { # revocations under the prefix
  etcd_api /v3/kv/range "{\"key\":\"$REVOCATIONS_KEY\",\"range_end\":\"$REVOCATIONS_END\",\"count_only\":true}" |
    jq -r '.count // "0"'
}
etcd_delete_prefix() { # prints how many keys went
  # In 16 slices of the revocations, then the rest: one DeleteRange of 1,000,000 keys takes etcd
  # longer than its request timeout (the gateway answers an error while the members go on).
  local digits=0123456789abcdefg i from to answer total=0
  for i in $(seq 0 16); do
    if (( i < 16 )); then
      from=$(b64 "${PREFIX}r/${digits:i:1}"); to=$(b64 "${PREFIX}r/${digits:i+1:1}")
    else
      from=$PREFIX_KEY; to=$PREFIX_END
    fi
    answer=$(etcd_api /v3/kv/deleterange "{\"key\":\"$from\",\"range_end\":\"$to\"}")
    jq -e '.header' <<< "$answer" > /dev/null || { say "  DeleteRange failed: $answer"; continue; }
    total=$((total + $(jq -r '.deleted // "0"' <<< "$answer")))
  done
  echo "$total"
}
etcd_metrics() { # when: keep the members' metrics (for reading the run later, KEEP=1)
  local i
  for i in 0 1 2; do
    curl -s --max-time 5 "http://127.0.0.1:${ETCD_METRICS[i]}/metrics" | grep -v '^#' \
      > "$RUN/etcd-$ETCD_LABEL-m$i-metrics-$1.txt" || true
  done
}
etcd_pin() { # cpu list: move every etcd thread there
  local i
  for i in 0 1 2; do taskset -a -p -c "$1" "${ETCD_PID[i]}" > /dev/null; done
}

# ---------------------------------------------------------------- Envoy configs
JWKS=$(jq -c . envoy/keys/jwks.json)
plugin_config() { # max_revocations fleet(1|0)
  jq -cn --arg iss "$ISSUER" --arg aud "$CLIENT_ID" --argjson jwks "$JWKS" \
    --argjson cap "$1" --argjson fleet "$2" --arg prefix "$PREFIX" '{
    backchannel_path: "/bff/backchannel",
    max_revocations: $cap,
    issuers: [{issuer: $iss, client_ids: [$aud], algorithms: ["ES256", "RS256", "EdDSA"],
               jwks: $jwks, max_token_age_seconds: 3600, clock_skew_seconds: 60}],
    session: {cookie_name: "IdToken"}
  } + (if $fleet == 1 then {fleet: {etcd_cluster: "etcd", key_prefix: $prefix}} else {} end)'
}

# The upstream of every Envoy's "/" route: one more Envoy answering 200 itself.
UPSTREAM_PORT=""
start_upstream() {
  local ports
  read -r -a ports <<< "$(free_ports 2)"
  UPSTREAM_PORT=${ports[0]}
  {
    cat <<YAML
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: ${ports[1]} } }
static_resources:
  listeners:
YAML
    answering_listener_yaml upstream "${ports[0]}" AUTO 'hello from upstream\n'
  } > "$RUN/upstream.yaml"
  spawn "$ENVOY" -c "$RUN/upstream.yaml" --concurrency 1 --disable-hot-restart --log-level warn \
    > "$RUN/envoy-upstream.log" 2>&1
  upstream_ready() { [[ $(curl -s --max-time 1 "http://127.0.0.1:${ports[1]}/ready") == LIVE ]]; }
  poll_until 30 upstream_ready || { tail -20 "$RUN/envoy-upstream.log" >&2; die "upstream Envoy did not start"; }
}

# Renders envoy/test-fleet.yaml.tmpl: admin and listener on the given ports (the template binds
# port 0), etcd's members as the `etcd` cluster; singleton=0 drops the fleet's singleton service.
render_fleet() { # out admin_port listener_port plugin_json singleton(1|0)
  python3 - "$TEMPLATE" "$@" "$WASM" "$UPSTREAM_PORT" "${ETCD_CLIENT[@]}" <<'PY'
import json, re, sys
template, out, admin, listener, plugin, singleton, wasm, upstream = sys.argv[1:9]
etcd = sys.argv[9:]
text = open(template).read()
endpoints = [{"endpoint": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": int(p)}}}}
             for p in etcd]
for name, value in {"@WASM_PATH@": json.dumps(wasm), "@PLUGIN_CONFIG@": json.dumps(plugin),
                    "@UPSTREAM_PORT@": upstream, "@IDP_PORT@": upstream,
                    "@ETCD_ENDPOINTS@": json.dumps(endpoints), "@ETCD_TRANSPORT_SOCKET@": "null"}.items():
    text = text.replace(name, value)
# The first "port_value: 0" is the admin's, the second the listener's.
for port in (admin, listener):
    text, n = re.subn(r"port_value: 0 \}", f"port_value: {port} }}", text, count=1)
    assert n == 1, "template: fewer port_value: 0 than expected"
if singleton == "0":
    start, end = text.index("bootstrap_extensions:"), text.index("static_resources:")
    text = text[:start] + text[end:]
assert not re.search(r"^[^#]*@[A-Z_]+@", text, re.M), "template: a placeholder is left"
open(out, "w").write(text)
PY
}

declare -A ADMIN LISTENER PID_OF STARTED_NS
# Starts Envoy NAME from the template, not waiting for it (start_envoy_wait does).
start_envoy() { # name plugin_json singleton(1|0) cpus log_level
  local name=$1 ports
  read -r -a ports <<< "$(free_ports 2)"
  ADMIN[$name]=${ports[0]}; LISTENER[$name]=${ports[1]}
  render_fleet "$RUN/envoy-$name.yaml" "${ports[0]}" "${ports[1]}" "$2" "$3"
  STARTED_NS[$name]=$(date +%s%N)
  # %E.%e: Unix seconds and milliseconds, to time log lines against the start.
  spawn taskset -c "$4" "$ENVOY" -c "$RUN/envoy-$name.yaml" --concurrency 1 \
    --disable-hot-restart --drain-time-s 0 --log-level "$5" --log-format '%E.%e [%l][%n] %v' \
    > "$RUN/envoy-$name.log" 2>&1
  PID_OF[$name]=$BG_PID
}
admin() { curl -s --max-time 10 "http://127.0.0.1:${ADMIN[$1]}$2"; }
stat_of() { # envoy stat_name
  admin "$1" "/stats?filter=^$2\$" | awk -F': ' -v n="$2" '$1 == n {print $2}' | head -1
}
envoy_ready() { # name fleet(1|0)
  kill -0 "${PID_OF[$1]}" 2>/dev/null || return 2
  [[ $(admin "$1" /ready) == LIVE ]] || return 1
  [[ $2 == 0 ]] && return 0
  [[ $(stat_of "$1" wasmcustom.bcl.fleet.loaded) == 1 && $(stat_of "$1" wasmcustom.bcl.fleet.connected) == 1 ]]
}
start_envoy_wait() { # name plugin_json singleton cpus log_level fleet(1|0)
  start_envoy "$1" "$2" "$3" "$4" "$5"
  poll_until 120 envoy_ready "$1" "$6" || { tail -30 "$RUN/envoy-$1.log" >&2; die "Envoy $1 did not get ready"; }
}
stop_envoy() { stop_pid "${PID_OF[$1]}"; }
fleet_stats() { # envoy: the fleet's counters and gauges as one JSON object
  admin "$1" "/stats?format=json&filter=^wasmcustom\\.bcl\\.(fleet|store)\\." |
    jq -c '[.stats[] | select(.value != null) | {key: (.name | sub("^wasmcustom\\.bcl\\."; "")), value}] | from_entries'
}
TICK=$(getconf CLK_TCK)
# utime + stime of the etcd members together, in clock ticks.
etcd_ticks() {
  local i total=0
  for i in 0 1 2; do total=$((total + $(awk '{print $14 + $15}' "/proc/${ETCD_PID[i]}/stat"))); done
  echo "$total"
}
# "busy total" clock ticks of CPU $1 (everything on it, other users' processes too).
cpu_busy() { awk -v c="cpu$1" '$1 == c { t = 0; for (i = 2; i <= NF; i++) t += $i; print t - $5 - $6, t }' /proc/stat; }

# ---------------------------------------------------------------- the run
say "Envoy $("$ENVOY" --version | grep -o '1\.[0-9]*\.[0-9]*' | head -1), $("$ETCD" --version | head -1) (a fresh 3-member cluster per part);" \
  "parts: $PARTS; restart sizes: ${RESTART_SIZES:-none}; etcd data in $ETCD_DATA ($(df --output=fstype "$ETCD_DATA" | tail -1))"
start_upstream

if part throughput; then
  # Signed first, on every CPU, before anything is measured.
  say "signing $LOGOUTS RS256 logout tokens for the throughput part"
  timeout 900 "$LOAD" --sign-only --alg rs256 --count "$LOGOUTS" --sid-prefix "tp-$$-" \
    --ttl 3600 > "$RUN/rs256-tokens"
  [[ $(wc -l < "$RUN/rs256-tokens") -eq $LOGOUTS ]] || die "signing failed"
fi

if part propagation; then
  start_etcd propagation
  say "propagation: three fleet Envoys; rates $PROP_RATES logouts/s for $PROP_SECONDS s each (+$PROP_WARMUP warm-up)"
  for name in F0 F1 F2; do start_envoy "$name" "$(plugin_config 100000 1)" 1 0,1 warn; done
  for name in F0 F1 F2; do
    poll_until 120 envoy_ready "$name" 1 || { tail -30 "$RUN/envoy-$name.log" >&2; die "Envoy $name did not get ready"; }
  done
  : > "$RUN/propagation.jsonl"
  for rate in $PROP_RATES; do
    timeout 600 "$PROBE" propagate \
      --envoys "127.0.0.1:${LISTENER[F0]},127.0.0.1:${LISTENER[F1]},127.0.0.1:${LISTENER[F2]}" \
      --count $((rate * PROP_SECONDS + PROP_WARMUP)) --rate "$rate" --threads "$PROP_THREADS" \
      --poll-us "$POLL_US" --warmup "$PROP_WARMUP" --timeout-ms 5000 --alg eddsa \
      --sid-prefix "prop-$$-$rate-" > "$RUN/propagation-$rate.json"
    for name in F0 F1 F2; do fleet_stats "$name" > "$RUN/stats-$name.json"; done
    jq -c --slurpfile f0 "$RUN/stats-F0.json" --slurpfile f1 "$RUN/stats-F1.json" \
      --slurpfile f2 "$RUN/stats-F2.json" '. + {stats: {F0: $f0[0], F1: $f1[0], F2: $f2[0]}}' \
      "$RUN/propagation-$rate.json" >> "$RUN/propagation.jsonl"
    say "  $rate/s: $(jq -c '{measured, rate_achieved: (.rate_achieved | floor), propagation_ms, lower_bound_ms, poll_rtt_ms, never, post_ms, statuses: .logout_statuses}' "$RUN/propagation-$rate.json")"
  done
  for name in F0 F1 F2; do stop_envoy "$name"; done
  stop_etcd
fi

if part throughput; then
  say "throughput: $LOGOUTS RS256 logouts over $LOGOUT_CONNECTIONS connections; Envoy on CPU $ENVOY_CPU, etcd and bcl_load on CPU $LOAD_CPU"
  start_etcd throughput
  etcd_pin "$LOAD_CPU"
  for mode in fleet local; do
    if [[ $mode == fleet ]]; then
      start_envoy_wait T "$(plugin_config 100000 1)" 1 "$ENVOY_CPU" warn 1
    else
      start_envoy_wait T "$(plugin_config 100000 0)" 0 "$ENVOY_CPU" warn 0
    fi
    etcd_before=$(etcd_ticks); read -r busy0 total0 <<< "$(cpu_busy "$LOAD_CPU")"
    timeout 600 taskset -c "$LOAD_CPU" "$LOAD" --url "http://127.0.0.1:${LISTENER[T]}/bff/backchannel" \
      --tokens "$RUN/rs256-tokens" --connections "$LOGOUT_CONNECTIONS" \
      --envoy-pid "${PID_OF[T]}" --clk-tck "$TICK" > "$RUN/throughput-$mode.raw.json"
    read -r busy1 total1 <<< "$(cpu_busy "$LOAD_CPU")"
    jq -c --argjson etcd $(( $(etcd_ticks) - etcd_before )) \
      --argjson busy "$(awk -v b=$((busy1 - busy0)) -v t=$((total1 - total0)) 'BEGIN { printf "%.3f", t ? b / t : 0 }')" \
      '. + {etcd_cpu_ticks: $etcd, load_cpu_busy: $busy}' "$RUN/throughput-$mode.raw.json" > "$RUN/throughput-$mode.json"
    fleet_stats T > "$RUN/throughput-$mode-stats.json"
    say "  $mode: $(jq -c '{accepted, statuses, per_s: (.per_s | floor), envoy_cpu_us_per_request, p50_us, p99_us, etcd_cpu_ticks, load_cpu_busy}' "$RUN/throughput-$mode.json")"
    stop_envoy T
  done
  stop_etcd
fi

if part restart && [[ -n $RESTART_SIZES ]]; then
  start_etcd restart
  loaded=0
  : > "$RUN/restart.jsonl"
  for size in $RESTART_SIZES; do
    if (( size > loaded )); then
      say "restart: writing $((size - loaded)) more revocations into etcd (total $size)"
      timeout 900 "$PROBE" etcd-load --etcd "127.0.0.1:${ETCD_CLIENT[0]},127.0.0.1:${ETCD_CLIENT[1]},127.0.0.1:${ETCD_CLIENT[2]}" \
        --prefix "$PREFIX" --from "$loaded" --count $((size - loaded)) --sid-prefix "bulk-$$-" \
        --connections 8 --ttl 7200 > "$RUN/load-$size.json"
      say "  $(jq -c '{written, per_s: (.per_s | floor), elapsed_s, retries}' "$RUN/load-$size.json")"
      loaded=$size
    fi
    in_etcd=$(etcd_count)
    say "restart with $in_etcd revocations in etcd"
    start_envoy R "$(plugin_config 2000000 1)" 1 0,1 info
    probe_args=()
    if (( size > 0 )); then
      # A session whose sid was bulk-loaded (in the middle of the range), polled from the start.
      timeout 600 "$PROBE" first-refused --envoy "127.0.0.1:${LISTENER[R]}" --sid "bulk-$$-$((size / 2))" \
        --live-sid "never-revoked-$$" --since-ns "${STARTED_NS[R]}" --timeout-s 300 > "$RUN/refused-$size.json" ||
        { tail -30 "$RUN/envoy-R.log" >&2; die "no refusal after the restart with $size revocations"; }
      probe_args=(--slurpfile refused "$RUN/refused-$size.json")
    else
      probe_args=(--argjson refused '[null]')
    fi
    poll_until 300 envoy_ready R 1 || { tail -30 "$RUN/envoy-R.log" >&2; die "Envoy R did not load"; }
    line=$(grep -m1 'fleet: loaded ' "$RUN/envoy-R.log" || true)
    [[ -n $line ]] || die "no 'fleet: loaded' line in Envoy's log"
    line_ms=$(awk '{ printf "%.0f", $1 * 1000 }' <<< "$line")
    since_ms=$(( STARTED_NS[R] / 1000000 ))
    mem=$(admin R /memory)
    rss_kb=$(awk '/^VmRSS/ {print $2}' "/proc/${PID_OF[R]}/status")
    jq -cn --argjson size "$size" --argjson in_etcd "$in_etcd" --argjson loaded_ms $((line_ms - since_ms)) \
      --arg line "${line#* }" --argjson mem "$mem" --argjson rss_kb "$rss_kb" \
      --argjson entries "$(stat_of R wasmcustom.bcl.store.revocation_entries)" "${probe_args[@]}" \
      '{size: $size, in_etcd: $in_etcd, loaded_ms: $loaded_ms, line: $line,
        load_ms: ($line | capture("in (?<ms>[0-9]+) ms").ms | tonumber),
        allocated: ($mem.allocated | tonumber), heap: ($mem.heap_size | tonumber), rss_kb: $rss_kb,
        entries: $entries, refused: $refused[0]}' >> "$RUN/restart.jsonl"
    say "  $(tail -1 "$RUN/restart.jsonl" | jq -c '{loaded_ms, load_ms, refused_ms: .refused.ms, entries, allocated_mib: (.allocated / 1048576 | floor)}')"
    stop_envoy R
  done
  say "  deleted $(etcd_delete_prefix) keys under $PREFIX"
  stop_etcd
fi

# ---------------------------------------------------------------- the table
ELAPSED=$(( $(date +%s) - SCRIPT_START ))
python3 - "$RUN" "$POLL_US" "$LOGOUT_CONNECTIONS" "$ENVOY_CPU" "$LOAD_CPU" "$TICK" <<'PY'
import json, os, sys
run, poll_us, conns, envoy_cpu, load_cpu, tick = sys.argv[1:7]
yes = lambda ok: "**yes**" if ok else "**no**"
rows = []
def fmt(s):
    return f"p50 {s['p50']:.1f} / p90 {s['p90']:.1f} / p99 {s['p99']:.1f} / max {s['max']:.1f} ms"
if os.path.exists(f"{run}/propagation.jsonl"):
    runs = [json.loads(line) for line in open(f"{run}/propagation.jsonl")]
    for p in sorted(runs, key=lambda p: -p["rate_target"]):
        st = p["stats"]
        rate = p["rate_target"]
        s = p["propagation_ms"]
        at_rate = p["rate_achieved"] >= 0.95 * rate
        errors = sum(v.get("fleet.etcd_errors", 0) for v in st.values())
        queued = sum(v.get("fleet.logouts_queued", 0) for v in st.values())
        bad = {k: v for k, v in p["logout_statuses"].items() if k != "200"}
        m = (f"**{fmt(s)}** over {s['n']:,} (logout, other Envoy) pairs, never refused within 5 s: {p['never']}; "
             f"B (polled first) {fmt(p['first_polled_ms'])}, C (polled second) {fmt(p['second_polled_ms'])}; "
             f"last poll still passed at p50 {p['lower_bound_ms']['p50']:.1f} / p99 {p['lower_bound_ms']['p99']:.1f} ms "
             f"(the refusal came between), poll round trip p50 {p['poll_rtt_ms']['p50']:.1f} / p99 {p['poll_rtt_ms']['p99']:.1f} ms, "
             f"{p['polls_per_target']:.1f} polls per pair, {int(poll_us)} µs apart; "
             f"**{p['rate_achieved']:,.0f} logouts/s achieved** of {rate:,.0f} "
             f"(POSTs started late by p50 {p['schedule_lag_ms']['p50']:.0f} / p99 {p['schedule_lag_ms']['p99']:.0f} ms, {p['threads']} threads); "
             f"the logout's 200 at A p50 {p['post_ms']['p50']:.1f} / p99 {p['post_ms']['p99']:.1f} ms"
             + (f"; logouts not 200: {bad}" if bad else "")
             + (f"; etcd errors {errors}, logouts queued {queued}" if errors or queued else "")
             + (f"; transport errors {p['transport_errors']}" if p["transport_errors"] else "")
             + f"; a control session still live everywhere after: {p['control_after']}")
        ok = s["p99"] <= 10 and p["never"] == 0 and not bad
        goal = ("p99 <= 10 ms at 1,000 logouts/s (3 etcd members, 3 Envoys, loopback)" if rate >= 1000
                else "(same measure at a rate this machine sustains)")
        rows.append((f"1. propagation at {rate:,.0f} logouts/s: A's 200 -> first refusal on B and C", goal, m,
                     (yes(ok) + ("" if at_rate else " (the rate was not reached)")) if rate >= 1000 else
                     ("(p99 <= 10 ms: " + ("yes" if ok else "no") + ")")))
tp = {}
for mode in ("fleet", "local"):
    path = f"{run}/throughput-{mode}.json"
    if os.path.exists(path):
        tp[mode] = json.load(open(path))
def tp_text(t):
    cpu = t.get("envoy_cpu_us_per_request", float("nan"))
    share = t.get("envoy_cpu_ticks", 0) / int(tick) / t["elapsed_s"] if t["elapsed_s"] else 0
    bad = {k: v for k, v in t["statuses"].items() if k != "200"}
    return (f"{t['per_s']:,.0f} logouts/s ({t['accepted']:,}/{t['sent']:,} accepted"
            + (f", others {bad} {t['codes']}" if bad else "")
            + f", {t['connections']} connections); latency p50 {t['p50_us'] / 1000:.1f} / p99 {t['p99_us'] / 1000:.1f} ms; "
            f"Envoy {cpu:.0f} µs CPU/logout (one core's worth: {1e6 / cpu:,.0f}/s), {share * 100:.0f} % of its core (CPU {envoy_cpu}); "
            f"etcd's 3 members {t['etcd_cpu_ticks'] * 1e6 / int(tick) / max(t['sent'], 1):.0f} µs CPU/logout; "
            f"CPU {load_cpu} (etcd, bcl_load, anything else) {t['load_cpu_busy'] * 100:.0f} % busy")
if "fleet" in tp:
    t = tp["fleet"]
    rows.append(("2. logout throughput through etcd (RS256, --concurrency 1)",
                 ">= 2,000 logouts/s per Envoy", tp_text(t),
                 yes(t["per_s"] >= 2000 and t["accepted"] == t["sent"])))
if "local" in tp:
    rows.append(("2. same Envoy without the fleet block", "(comparison)", tp_text(tp["local"]), ""))
if os.path.exists(f"{run}/restart.jsonl"):
    for line in open(f"{run}/restart.jsonl"):
        r = json.loads(line)
        ref = r["refused"]
        m = (f"(a) loaded {r['loaded_ms']:,} ms after the process start (the load itself: {r['load_ms']:,} ms); "
             + (f"(b) first refusal {ref['ms']:,.0f} ms after the start ({ref['statuses']}; a live session then: {ref['live_status']}); "
                if ref else "(b) n/a: nothing revoked; ")
             + f"store entries {r['entries']:,}; Envoy /memory allocated {r['allocated'] / 2**20:.1f} MiB, RSS {r['rss_kb'] / 1024:.0f} MiB")
        rows.append((f"3. restart with {r['in_etcd']:,} revocations in etcd", "(no goal set: reported)", m, "n/a"))
print("| target | goal | measured | met? |")
print("|---|---|---|---|")
for r in rows:
    print("| " + " | ".join(r) + " |")
PY
echo
echo "Envoy $("$ENVOY" --version | grep -o '1\.[0-9]*\.[0-9]*' | head -1), etcd $("$ETCD" --version | awk '/^etcd Version/ {print $3}')" \
  "(3 members, default flags, data on $(df --output=fstype "$ETCD_DATA" | tail -1));" \
  "$(nproc) CPUs ($(sed -n 's/^model name\s*: //p' /proc/cpuinfo | head -1)); commit $COMMIT, wasm $WASM_SHA;" \
  "$(date -u +%Y-%m-%dT%H:%MZ); script ${ELAPSED} s; load average before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg)"
