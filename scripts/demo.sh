#!/usr/bin/env bash
# The whole demo, natively on 127.0.0.1: the demo IdP (node-oidc-provider), the demo app, and
# Envoy 1.40 with its oauth2 filter and this project's back-channel logout filter
# (envoy/envoy-demo.yaml.tmpl, the same template as docker-compose.yml and the e2e tests).
#
#   scripts/demo.sh            installs what is missing, builds the filter, starts everything,
#                              prints what to open and click; Ctrl-C stops everything
# Ports (environment): DEMO_PORT=10000 (Envoy: the URL to open), IDP_PORT=3000, APP_PORT=8081,
#   ADMIN_PORT=9901 (Envoy admin). BCL_WASM=path skips the cargo build. BCL_KEY_SOURCE_MODE=
#   jwks_uri (default) | discovery | inline picks where the filter gets the IdP's keys.
# Logs and the rendered Envoy config: .run/demo/.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
PREREQ_TAG=demo
# shellcheck source=scripts/stack-prereqs.sh
. scripts/stack-prereqs.sh

DEMO_PORT=${DEMO_PORT:-10000}
IDP_PORT=${IDP_PORT:-3000}
APP_PORT=${APP_PORT:-8081}
ADMIN_PORT=${ADMIN_PORT:-9901}
HOST=127.0.0.1
ISSUER="http://$HOST:$IDP_PORT"
BASE="http://$HOST:$DEMO_PORT"
RUN_DIR=.run/demo

port_in_use() { (exec 3<>"/dev/tcp/$HOST/$1") 2>/dev/null; }
for spec in "Envoy:$DEMO_PORT" "IdP:$IDP_PORT" "app:$APP_PORT" "Envoy admin:$ADMIN_PORT"; do
  if port_in_use "${spec##*:}"; then
    say "port ${spec##*:} ($HOST, for the ${spec%%:*}) is in use: is the demo already running? Stop it, or pick other ports, e.g. DEMO_PORT=10010 IDP_PORT=3010 APP_PORT=8091 ADMIN_PORT=9911 $0"
    exit 1
  fi
done

ensure_node
ensure_envoy
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
jwks_fetched() {
  node -e 'fetch(process.argv[1]).then(r => r.text()).then(t => { const m = /wasmcustom\.bcl\.jwks\.fetch_ok: (\d+)/.exec(t); process.exit(m && Number(m[1]) > 0 ? 0 : 1); }, () => process.exit(1))' \
    "http://$HOST:$ADMIN_PORT/stats?filter=bcl"
}

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
