#!/usr/bin/env bash
# The whole demo, natively on 127.0.0.1: the demo IdP (node-oidc-provider), the demo app, and
# Envoy 1.40 with its oauth2 filter and this project's back-channel logout filter
# (envoy/envoy-demo.yaml.tmpl, the same template as docker-compose.yml and the e2e tests).
#
#   scripts/demo.sh            installs what is missing, builds the filter, starts everything,
#                              prints what to open and click; Ctrl-C stops everything
#   scripts/demo.sh --fleet    the fleet: 3 etcd members (mTLS), two Envoys sharing revocations
#                              through them: the IdP's back-channel POSTs go to Envoy A, the
#                              browser uses Envoy B (docs/FLEET-DEPLOY.md)
#   scripts/demo.sh --fleet --check   non-interactive: starts the fleet, waits until both Envoys
#                              loaded it (wasmcustom.bcl.fleet.loaded 1), logs a user in at B,
#                              ends her IdP session (logout token to A), checks that B refuses her
#                              session, stops everything; exit 0 when all of it worked
# Ports (environment): DEMO_PORT=10000 (Envoy: the URL to open; Envoy B in the fleet),
#   IDP_PORT=3000, APP_PORT=8081, ADMIN_PORT=9901 (Envoy admin; B's in the fleet). Fleet only:
#   ENVOY_A_PORT=10002, ENVOY_A_ADMIN_PORT=9902; the etcd members get free ports. With --check,
#   every port not set in the environment is a free one. BCL_WASM=path skips the cargo build.
#   BCL_KEY_SOURCE_MODE=jwks_uri (default) | discovery | inline picks where the filter gets the
#   IdP's keys. ETCD_BIN=path picks etcd (default: etcd on PATH, else Debian's etcd-server).
# Logs and the rendered Envoy config: .run/demo/ (the fleet: .run/demo-fleet/, its etcd
# certificates .run/fleet-certs/ from scripts/fleet-certs.sh; --check: a temporary directory,
# removed when the check passes, kept and named when it fails).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PREREQ_TAG=demo
# shellcheck source=scripts/stack-prereqs.sh
. scripts/stack-prereqs.sh

FLEET=0
CHECK=0
for arg in "$@"; do
  case "$arg" in
    --fleet) FLEET=1 ;;
    --check) CHECK=1 ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed -e '$d' -e 's/^# \{0,1\}//'; exit 0 ;;
    *) say "unknown argument $arg (try --help)"; exit 2 ;;
  esac
done
if [ "$CHECK" = 1 ] && [ "$FLEET" = 0 ]; then
  say "--check goes with --fleet (the single-Envoy demo is checked by tests/e2e)"
  exit 2
fi

HOST=127.0.0.1
# free_ports N: N distinct ports of $HOST that were free a moment ago (all held at once, then
# released before this prints them)
free_ports() {
  node -e '
    const net = require("net"); const n = Number(process.argv[1]); const servers = []; let up = 0;
    for (let i = 0; i < n; i += 1) {
      const s = net.createServer(); servers.push(s);
      s.listen(0, process.argv[2], () => {
        if (++up < n) return;
        const ports = servers.map((x) => x.address().port);
        let closed = 0;
        servers.forEach((x) => x.close(() => { if (++closed === n) console.log(ports.join(" ")); }));
      });
    }' "$1" "$HOST"
}
if [ "$FLEET" = 1 ] && [ "$CHECK" = 1 ]; then
  # A self-check must not collide with a demo that is running: free ports unless set.
  ensure_node
  read -r -a picked <<<"$(free_ports 6)"
  : "${DEMO_PORT:=${picked[0]}}" "${IDP_PORT:=${picked[1]}}" "${APP_PORT:=${picked[2]}}"
  : "${ADMIN_PORT:=${picked[3]}}" "${ENVOY_A_PORT:=${picked[4]}}" "${ENVOY_A_ADMIN_PORT:=${picked[5]}}"
fi
DEMO_PORT=${DEMO_PORT:-10000}
IDP_PORT=${IDP_PORT:-3000}
APP_PORT=${APP_PORT:-8081}
ADMIN_PORT=${ADMIN_PORT:-9901}
ENVOY_A_PORT=${ENVOY_A_PORT:-10002}
ENVOY_A_ADMIN_PORT=${ENVOY_A_ADMIN_PORT:-9902}
ISSUER="http://$HOST:$IDP_PORT"
BASE="http://$HOST:$DEMO_PORT"
RUN_DIR=.run/demo
port_specs=("Envoy:$DEMO_PORT" "IdP:$IDP_PORT" "app:$APP_PORT" "Envoy admin:$ADMIN_PORT")
if [ "$FLEET" = 1 ]; then
  RUN_DIR=.run/demo-fleet
  # a self-check gets a directory of its own: it may run while the demo runs (or another check)
  if [ "$CHECK" = 1 ]; then RUN_DIR=$(mktemp -d "${TMPDIR:-/tmp}/bcl-demo-fleet-check.XXXXXX"); fi
  BASE_A="http://$HOST:$ENVOY_A_PORT"
  CERT_DIR=.run/fleet-certs
  port_specs=("Envoy B:$DEMO_PORT" "IdP:$IDP_PORT" "app:$APP_PORT" "Envoy B admin:$ADMIN_PORT"
    "Envoy A:$ENVOY_A_PORT" "Envoy A admin:$ENVOY_A_ADMIN_PORT")
fi

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for spec in "${port_specs[@]}"; do
  if port_in_use "${spec##*:}"; then
    if [ "$FLEET" = 1 ]; then
      say "port ${spec##*:} ($HOST, for the ${spec%%:*}) is in use: is the demo already running? Stop it, or pick other ports, e.g. DEMO_PORT=10010 IDP_PORT=3010 APP_PORT=8091 ADMIN_PORT=9911 ENVOY_A_PORT=10012 ENVOY_A_ADMIN_PORT=9912 $0 --fleet"
    else
      say "port ${spec##*:} ($HOST, for the ${spec%%:*}) is in use: is the demo already running? Stop it, or pick other ports, e.g. DEMO_PORT=10010 IDP_PORT=3010 APP_PORT=8091 ADMIN_PORT=9911 $0"
    fi
    exit 1
  fi
done

ensure_node
ensure_envoy
[ "$FLEET" = 0 ] || ensure_etcd
ensure_npm idp
build_wasm

mkdir -p "$RUN_DIR"
rm -f "$RUN_DIR"/*.log

# Each child runs in its own process group (set -m) so that Ctrl-C reaches only this script,
# which then stops every group it started.
set -m
pids=()
cleanup() {
  trap - INT TERM EXIT
  if [ ${#pids[@]} -gt 0 ]; then
    say "stopping"
    for pid in "${pids[@]}"; do kill -TERM -- "-$pid" 2>/dev/null || true; done
    for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  fi
}
trap 'cleanup; exit 130' INT
trap 'cleanup; exit 143' TERM
trap cleanup EXIT

start() { # name logfile command...
  local name=$1 log=$2
  shift 2
  "$@" >"$log" 2>&1 &
  pids+=($!)
  say "started $name (pid $!), log $log"
}

wait_until() { # what timeout-seconds command...
  local what=$1 timeout=$2
  shift 2
  local deadline=$((SECONDS + timeout))
  until "$@" >/dev/null 2>&1; do
    if [ $SECONDS -ge $deadline ]; then
      say "timed out waiting for $what; logs in $RUN_DIR"
      tail -n 30 "$RUN_DIR"/*.log >&2 || true
      exit 1
    fi
    for pid in "${pids[@]}"; do
      if ! kill -0 "$pid" 2>/dev/null; then
        say "a process exited while waiting for $what; logs in $RUN_DIR"
        tail -n 30 "$RUN_DIR"/*.log >&2 || true
        exit 1
      fi
    done
    sleep 0.2
  done
}
http_ok() { node -e 'fetch(process.argv[1]).then(r => process.exit(r.ok ? 0 : 1), () => process.exit(1))' "$1"; }
# stat_at_least ADMIN_PORT STAT MIN: the Envoy stat (e.g. wasmcustom.bcl.fleet.loaded) is >= MIN
stat_at_least() {
  # shellcheck disable=SC2016 # JavaScript template literals, not shell expansions
  node -e '
    const [port, name, min] = process.argv.slice(1);
    fetch(`http://127.0.0.1:${port}/stats?filter=bcl`).then(r => r.text()).then(t => {
      const line = t.split("\n").find(l => l.startsWith(`${name}: `));
      process.exit(line && Number(line.slice(name.length + 2)) >= Number(min) ? 0 : 1);
    }, () => process.exit(1))' "$1" "$2" "$3"
}
jwks_fetched() { stat_at_least "${1:-$ADMIN_PORT}" wasmcustom.bcl.jwks.fetch_ok 1; }

if [ "$FLEET" = 1 ]; then
  # ---- The fleet ----------------------------------------------------------------------------
  scripts/fleet-certs.sh "$CERT_DIR"
  abs_certs=$(cd "$CERT_DIR" && pwd)

  # Three etcd members on free ports (client: mTLS; peer, /health and metrics: plaintext on
  # loopback), fresh data directories on every run.
  read -r -a ep <<<"$(free_ports 9)"
  etcd_client=("${ep[0]}" "${ep[1]}" "${ep[2]}")
  etcd_peer=("${ep[3]}" "${ep[4]}" "${ep[5]}")
  etcd_metrics=("${ep[6]}" "${ep[7]}" "${ep[8]}")
  initial_cluster="etcd-1=http://$HOST:${etcd_peer[0]},etcd-2=http://$HOST:${etcd_peer[1]},etcd-3=http://$HOST:${etcd_peer[2]}"
  etcd_members="$HOST:${etcd_client[0]},$HOST:${etcd_client[1]},$HOST:${etcd_client[2]}"
  for i in 1 2 3; do rm -rf "${RUN_DIR:?}/etcd-$i"; done

  start "demo app" "$RUN_DIR/demo-app.log" node demo-app/server.mjs --port "$APP_PORT" --host "$HOST"
  # The browser's Envoy (B) is the app's URL; the back-channel logout URI registered for the
  # demo client is Envoy A's: a logout accepted by A reaches B only through etcd.
  start "IdP" "$RUN_DIR/idp.log" node idp/server.mjs --port "$IDP_PORT" --host "$HOST" --issuer "$ISSUER" \
    --app-url "$BASE" --backchannel-url "$BASE_A/bff/backchannel"
  etcd_pids=()
  for i in 1 2 3; do
    n=$((i - 1))
    start "etcd-$i" "$RUN_DIR/etcd-$i.log" "$ETCD_BIN" --name "etcd-$i" --data-dir "$RUN_DIR/etcd-$i" \
      --listen-client-urls "https://$HOST:${etcd_client[n]}" --advertise-client-urls "https://$HOST:${etcd_client[n]}" \
      --listen-peer-urls "http://$HOST:${etcd_peer[n]}" --initial-advertise-peer-urls "http://$HOST:${etcd_peer[n]}" \
      --listen-metrics-urls "http://$HOST:${etcd_metrics[n]}" \
      --initial-cluster "$initial_cluster" --initial-cluster-state new --initial-cluster-token "bcl-demo-fleet-$$" \
      --heartbeat-interval 50 --election-timeout 500 \
      --client-cert-auth --trusted-ca-file "$abs_certs/ca.pem" \
      --cert-file "$abs_certs/server.pem" --key-file "$abs_certs/server-key.pem" \
      --logger zap --log-outputs stderr
    etcd_pids+=("${pids[-1]}")
  done
  wait_until "the demo app" 20 http_ok "http://$HOST:$APP_PORT/healthz"
  wait_until "the IdP" 20 http_ok "$ISSUER/.well-known/openid-configuration"
  etcd_healthy() { # /health says true once the member sees a leader
    node -e 'fetch(process.argv[1]).then(r => r.text()).then(t => process.exit(/"health"\s*:\s*"true"/.test(t) ? 0 : 1), () => process.exit(1))' "$1"
  }
  for i in 1 2 3; do
    wait_until "etcd-$i to be healthy" 30 etcd_healthy "http://$HOST:${etcd_metrics[i - 1]}/health"
  done

  HMAC_SECRET=$(head -c 32 /dev/urandom | base64) # one for both Envoys: the same cookies pass on both
  export HMAC_SECRET
  render_envoy() { # listen-port admin-port > file
    LISTEN_ADDRESS=$HOST LISTEN_PORT=$1 ADMIN_ADDRESS=$HOST ADMIN_PORT=$2 \
      IDP_ISSUER=$ISSUER IDP_HOST=$HOST IDP_PORT=$IDP_PORT APP_HOST=$HOST APP_PORT=$APP_PORT API_AUDIENCE="$BASE/api" \
      WASM_PATH=$BCL_WASM WITH_FLEET=1 ETCD_MEMBERS=$etcd_members ETCD_TLS=1 \
      ETCD_CA_FILE="$abs_certs/ca.pem" ETCD_CLIENT_CERT_FILE="$abs_certs/client.pem" \
      ETCD_CLIENT_KEY_FILE="$abs_certs/client-key.pem" \
      sh envoy/render.sh
  }
  render_envoy "$ENVOY_A_PORT" "$ENVOY_A_ADMIN_PORT" > "$RUN_DIR/envoy-a.yaml"
  render_envoy "$DEMO_PORT" "$ADMIN_PORT" > "$RUN_DIR/envoy-b.yaml"
  start "Envoy A" "$RUN_DIR/envoy-a.log" "$ENVOY_BIN" -c "$RUN_DIR/envoy-a.yaml" --concurrency 2 --use-dynamic-base-id
  start "Envoy B" "$RUN_DIR/envoy-b.log" "$ENVOY_BIN" -c "$RUN_DIR/envoy-b.yaml" --concurrency 2 --use-dynamic-base-id
  wait_until "Envoy A" 30 http_ok "http://$HOST:$ENVOY_A_ADMIN_PORT/ready"
  wait_until "Envoy B" 30 http_ok "http://$HOST:$ADMIN_PORT/ready"
  if [ "${BCL_KEY_SOURCE_MODE:-jwks_uri}" != inline ]; then
    wait_until "Envoy A's filter to fetch the IdP's keys" 30 jwks_fetched "$ENVOY_A_ADMIN_PORT"
    wait_until "Envoy B's filter to fetch the IdP's keys" 30 jwks_fetched "$ADMIN_PORT"
  fi
  wait_until "Envoy A to load the fleet's revocations from etcd" 60 stat_at_least "$ENVOY_A_ADMIN_PORT" wasmcustom.bcl.fleet.loaded 1
  wait_until "Envoy B to load the fleet's revocations from etcd" 60 stat_at_least "$ADMIN_PORT" wasmcustom.bcl.fleet.loaded 1
  say "both Envoys loaded the fleet (wasmcustom.bcl.fleet.loaded 1)"

  if [ "$CHECK" = 1 ]; then
    if ! node scripts/demo-fleet-check.mjs --browser-url "$BASE" --issuer "$ISSUER" \
      --admin-a "http://$HOST:$ENVOY_A_ADMIN_PORT" --admin-b "http://$HOST:$ADMIN_PORT"; then
      say "fleet check failed; logs in $RUN_DIR"
      exit 1
    fi
    cleanup
    rm -rf "$RUN_DIR"
    say "fleet check passed"
    exit 0
  fi

  cat <<EOF

================================================================================================
 Back-channel logout demo, fleet mode, is running.                  Ctrl-C stops everything.

   Open   $BASE/        (Envoy B; the demo app behind it)

 Three etcd members (mTLS), two Envoys sharing revocations through them:
   Envoy A  $BASE_A   admin http://$HOST:$ENVOY_A_ADMIN_PORT   receives the IdP's back-channel POSTs
   Envoy B  $BASE   admin http://$HOST:$ADMIN_PORT   serves your browser
   etcd     https://$HOST:${etcd_client[0]}, https://$HOST:${etcd_client[1]}, https://$HOST:${etcd_client[2]} (mTLS)
            health: http://$HOST:${etcd_metrics[0]}/health, :${etcd_metrics[1]}/health, :${etcd_metrics[2]}/health

 1. You land on the IdP's sign-in page: type any login (e.g. alice) and any password, Sign-in.
    The app, through Envoy B, shows who you are and your IdP session id (sid).
 2. Click "End this IdP session from another tab". In the new tab, click "Yes, sign me out".
    The IdP POSTs a logout token to Envoy A ($BASE_A/bff/backchannel), not to the Envoy
    your browser uses. A checks it, writes the revocation to etcd and answers 200; below:
    "[envoy A] ... backchannel logout accepted". Envoy B receives it from its etcd watch
    (wasmcustom.bcl.fleet.applied goes up on B's admin).
 3. Back in the first tab, click "reload": Envoy B refuses the revoked session, clears its
    cookies and you are on the IdP's sign-in page again, not on the app.
    (A second user logged in from a private window keeps working all along.)

 Also: http://$HOST:$ADMIN_PORT/stats?filter=bcl.fleet   B's fleet gauges and counters
       (connected, loaded, revision, applied...); the same on A's admin port
       kill one etcd member (its pid is above): the other two keep the quorum, both Envoys
         go on with them (the etcd cluster's health check takes the stopped one out in 0.5 s)
       $RUN_DIR/*.log                           every log
================================================================================================

EOF

  # Show the back-channel and fleet traffic as it happens, prefixed with where it happened.
  for name in envoy-a envoy-b idp; do
    label=$name
    case $name in envoy-a) label="envoy A" ;; envoy-b) label="envoy B" ;; esac
    (tail -n 0 -F "$RUN_DIR/$name.log" 2>/dev/null \
      | grep --line-buffered -E 'backchannel logout (accepted|rejected)|backchannel\.(success|error)|keys of|fleet:' \
      | sed -u "s/^/[$label] /") &
    pids+=($!)
  done

  # Run until Ctrl-C, or until a server other than an etcd member stops by itself (members may
  # be stopped on purpose: the fleet goes on while two of three are up).
  others=()
  for pid in "${pids[@]}"; do
    case " ${etcd_pids[*]} " in *" $pid "*) ;; *) others+=("$pid") ;; esac
  done
  set +e
  wait -n "${others[@]}"
  say "a process stopped by itself; logs in $RUN_DIR"
  exit 1
fi

start "demo app" "$RUN_DIR/demo-app.log" node demo-app/server.mjs --port "$APP_PORT" --host "$HOST"
start "IdP" "$RUN_DIR/idp.log" node idp/server.mjs --port "$IDP_PORT" --host "$HOST" --issuer "$ISSUER" --app-url "$BASE"
wait_until "the demo app" 20 http_ok "http://$HOST:$APP_PORT/healthz"
wait_until "the IdP" 20 http_ok "$ISSUER/.well-known/openid-configuration"

LISTEN_ADDRESS=$HOST LISTEN_PORT=$DEMO_PORT ADMIN_ADDRESS=$HOST ADMIN_PORT=$ADMIN_PORT \
  IDP_ISSUER=$ISSUER IDP_HOST=$HOST IDP_PORT=$IDP_PORT APP_HOST=$HOST APP_PORT=$APP_PORT API_AUDIENCE="$BASE/api" \
  WASM_PATH=$BCL_WASM HMAC_SECRET="$(head -c 32 /dev/urandom | base64)" \
  sh envoy/render.sh > "$RUN_DIR/envoy.yaml"
start "Envoy" "$RUN_DIR/envoy.log" "$ENVOY_BIN" -c "$RUN_DIR/envoy.yaml" --concurrency 2 --use-dynamic-base-id
wait_until "Envoy" 30 http_ok "http://$HOST:$ADMIN_PORT/ready"
if [ "${BCL_KEY_SOURCE_MODE:-jwks_uri}" != inline ]; then
  wait_until "the filter to fetch the IdP's keys" 30 jwks_fetched
fi

cat <<EOF

================================================================================================
 Back-channel logout demo is running.                               Ctrl-C stops everything.

   Open   $BASE/        (Envoy; the demo app behind it)

 1. You land on the IdP's sign-in page: type any login (e.g. alice) and any password, Sign-in.
    The app shows who you are and your IdP session id (sid).
 2. Click "End this IdP session from another tab". In the new tab, click "Yes, sign me out".
    The IdP POSTs a logout token to Envoy ($BASE/bff/backchannel); the line
    "backchannel logout accepted" appears below. Your first tab still holds its cookies.
 3. Back in the first tab, click "reload": Envoy refuses the revoked session, clears its
    cookies and you are on the IdP's sign-in page again, not on the app.
    (A second user logged in from a private window keeps working all along.)

 Also: $BASE/signout  RP-initiated logout through Envoy (back-channel call included)
       $BASE/api/token  your JWT access token; an API client holding only it:
         curl -i -H "Authorization: Bearer <access_token>" $BASE/api/me
       (200 while the IdP session lives, 401 invalid_token after step 2)
       http://$HOST:$ADMIN_PORT/stats?filter=bcl   the filter's counters
       $RUN_DIR/*.log                           every log
================================================================================================

EOF

# Show the back-channel traffic as it happens (filter log lines and the IdP's outcome).
(tail -n 0 -F "$RUN_DIR/envoy.log" "$RUN_DIR/idp.log" 2>/dev/null \
  | grep --line-buffered -E 'backchannel logout (accepted|rejected)|backchannel\.(success|error)|keys of') &
pids+=($!)

# Run until Ctrl-C, or until one of the servers stops by itself.
set +e
wait -n "${pids[@]}"
say "a process stopped by itself; logs in $RUN_DIR"
exit 1
