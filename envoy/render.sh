#!/bin/sh
# Renders envoy/envoy-demo.yaml.tmpl (or the template given) to stdout.
#   envoy/render.sh [template] > envoy.yaml
# POSIX sh + awk only: it also runs inside the official Envoy image (docker-compose.yml).
#
# Every ${NAME} outside comment lines in the template is replaced by the environment variable NAME; a name that is
# neither set nor defaulted below is an error. Defaults = the native demo on loopback:
#   LISTEN_ADDRESS=127.0.0.1  LISTEN_PORT=10000      Envoy's listener (the URL to open)
#   ADMIN_ADDRESS=127.0.0.1   ADMIN_PORT=9901        Envoy's admin (stats: /stats?filter=bcl)
#   IDP_ISSUER=http://127.0.0.1:3000                 issuer, as the browser reaches the IdP
#   IDP_HOST=127.0.0.1        IDP_PORT=<from issuer> how Envoy reaches the IdP (cluster "idp")
#   APP_HOST=127.0.0.1        APP_PORT=8081          the demo app (cluster "demo_app")
#   CLIENT_ID=demo-app  CLIENT_SECRET=demo-app-secret  HMAC_SECRET=(demo value)
#   API_AUDIENCE=http://127.0.0.1:<LISTEN_PORT>/api  audience of the IdP's JWT access tokens
#                             (jwt_authn; the IdP's resource indicator, its --api-audience)
#   REDIRECT_URI=%REQ(x-forwarded-proto)%://%REQ(:authority)%/oauth2/callback
#   WASM_PATH=<repo>/target/wasm32-wasip1/release/envoy_backchannel_logout.wasm
#   WITH_WASM=1               0 drops the filter (the lines between "# @if WITH_WASM" and "# @endif")
#   WITH_HOLD_ROUTER=1        0 drops the buffer filter that keeps the back-channel request from
#                             the router (only to show why it is there)
#   BCL_KEY_SOURCE_MODE=jwks_uri   jwks_uri | discovery | inline (see the template's header)
#   BCL_JWKS_PUBLIC_FILE=<repo>/idp/dev-keys/jwks.public.json   (inline mode)
#   BCL_KEY_SOURCE            overrides the whole key-source line (JSON members, no trailing comma)
#   BCL_JWKS_REFRESH_SECONDS=300  BCL_JWKS_MIN_REFETCH_SECONDS=30
# Fleet mode (revocations shared through etcd; docs/FLEET-DEPLOY.md):
#   WITH_FLEET=0              1 adds the plugin's "fleet" block, the etcd cluster and the singleton
#                             sync service (the lines between "# @if WITH_FLEET" and "# @endif")
#   ETCD_MEMBERS=127.0.0.1:2379   the etcd members' client addresses, host:port,host:port,...
#                             (rendered as ETCD_LB_ENDPOINTS, which overrides it when set)
#   ETCD_TLS=1                mTLS to etcd with the three files below; 0 = plaintext
#   ETCD_CA_FILE=<repo>/.run/fleet-certs/ca.pem   ETCD_CLIENT_CERT_FILE=<...>/client.pem
#   ETCD_CLIENT_KEY_FILE=<...>/client-key.pem     (scripts/fleet-certs.sh makes them)
#   FLEET_KEY_PREFIX=/backchannel-logout/  FLEET_CALL_TIMEOUT_MS=1000
#   FLEET_SESSIONS_BEFORE_LOADED=refuse   refuse | allow
set -eu

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
template=${1:-$here/envoy-demo.yaml.tmpl}

: "${LISTEN_ADDRESS:=127.0.0.1}"
: "${LISTEN_PORT:=10000}"
: "${ADMIN_ADDRESS:=127.0.0.1}"
: "${ADMIN_PORT:=9901}"
: "${IDP_ISSUER:=http://127.0.0.1:3000}"
IDP_ISSUER=${IDP_ISSUER%/}
: "${IDP_HOST:=127.0.0.1}"
if [ -z "${IDP_PORT:-}" ]; then
  # the port of the issuer URL (http default 80, https 443)
  hostport=${IDP_ISSUER#*://}
  hostport=${hostport%%/*}
  case "$hostport" in
    *:*) IDP_PORT=${hostport##*:} ;;
    *) case "$IDP_ISSUER" in https:*) IDP_PORT=443 ;; *) IDP_PORT=80 ;; esac ;;
  esac
fi
: "${APP_HOST:=127.0.0.1}"
: "${APP_PORT:=8081}"
: "${CLIENT_ID:=demo-app}"
: "${CLIENT_SECRET:=demo-app-secret}"
: "${HMAC_SECRET:=demo-hmac-secret-not-for-production}"
: "${API_AUDIENCE:=http://127.0.0.1:$LISTEN_PORT/api}"
: "${REDIRECT_URI:=%REQ(x-forwarded-proto)%://%REQ(:authority)%/oauth2/callback}"
: "${WASM_PATH:=$repo/target/wasm32-wasip1/release/envoy_backchannel_logout.wasm}"
: "${WITH_WASM:=1}"
: "${WITH_HOLD_ROUTER:=1}"
: "${BCL_KEY_SOURCE_MODE:=jwks_uri}"
: "${BCL_JWKS_PUBLIC_FILE:=$repo/idp/dev-keys/jwks.public.json}"
: "${BCL_JWKS_REFRESH_SECONDS:=300}"
: "${BCL_JWKS_MIN_REFETCH_SECONDS:=30}"

: "${WITH_FLEET:=0}"
: "${ETCD_MEMBERS:=127.0.0.1:2379}"
: "${ETCD_TLS:=1}"
: "${ETCD_CA_FILE:=$repo/.run/fleet-certs/ca.pem}"
: "${ETCD_CLIENT_CERT_FILE:=$repo/.run/fleet-certs/client.pem}"
: "${ETCD_CLIENT_KEY_FILE:=$repo/.run/fleet-certs/client-key.pem}"
: "${FLEET_KEY_PREFIX:=/backchannel-logout/}"
: "${FLEET_CALL_TIMEOUT_MS:=1000}"
: "${FLEET_SESSIONS_BEFORE_LOADED:=refuse}"

if [ "$WITH_FLEET" = 1 ] && [ "$WITH_WASM" = 0 ]; then
  echo "render.sh: WITH_FLEET=1 needs the filter (WITH_WASM=1)" >&2
  exit 2
fi
if [ -z "${ETCD_LB_ENDPOINTS:-}" ]; then
  # host:port,host:port -> a flow-style YAML list of lb_endpoints
  ETCD_LB_ENDPOINTS=""
  rest=$ETCD_MEMBERS,
  while [ -n "$rest" ]; do
    member=${rest%%,*}
    rest=${rest#*,}
    [ -n "$member" ] || continue
    host=${member%:*}
    port=${member##*:}
    case "$member" in *:*) ;; *) host="" ;; esac
    case "$port" in '' | *[!0-9]*) host="" ;; esac
    [ -n "$host" ] || { echo "render.sh: ETCD_MEMBERS: \"$member\" is not host:port" >&2; exit 2; }
    ETCD_LB_ENDPOINTS="${ETCD_LB_ENDPOINTS:+$ETCD_LB_ENDPOINTS, }{ endpoint: { address: { socket_address: { address: $host, port_value: $port } } } }"
  done
  [ -n "$ETCD_LB_ENDPOINTS" ] || { echo "render.sh: ETCD_MEMBERS is empty" >&2; exit 2; }
  ETCD_LB_ENDPOINTS="[$ETCD_LB_ENDPOINTS]"
fi

if [ -z "${BCL_KEY_SOURCE:-}" ]; then
  case "$BCL_KEY_SOURCE_MODE" in
    jwks_uri) BCL_KEY_SOURCE="\"jwks_uri\": \"$IDP_ISSUER/jwks\", \"cluster\": \"idp\"" ;;
    discovery) BCL_KEY_SOURCE="\"discovery\": true, \"cluster\": \"idp\"" ;;
    inline)
      [ -r "$BCL_JWKS_PUBLIC_FILE" ] || { echo "render.sh: cannot read $BCL_JWKS_PUBLIC_FILE" >&2; exit 2; }
      BCL_KEY_SOURCE="\"jwks\": $(tr -d '\n' < "$BCL_JWKS_PUBLIC_FILE")"
      ;;
    *) echo "render.sh: BCL_KEY_SOURCE_MODE must be jwks_uri, discovery or inline" >&2; exit 2 ;;
  esac
fi

export LISTEN_ADDRESS LISTEN_PORT ADMIN_ADDRESS ADMIN_PORT IDP_ISSUER IDP_HOST IDP_PORT APP_HOST \
  APP_PORT CLIENT_ID CLIENT_SECRET HMAC_SECRET API_AUDIENCE REDIRECT_URI WASM_PATH WITH_WASM WITH_HOLD_ROUTER BCL_KEY_SOURCE \
  BCL_JWKS_REFRESH_SECONDS BCL_JWKS_MIN_REFETCH_SECONDS WITH_FLEET ETCD_TLS ETCD_LB_ENDPOINTS \
  ETCD_CA_FILE ETCD_CLIENT_CERT_FILE ETCD_CLIENT_KEY_FILE FLEET_KEY_PREFIX FLEET_CALL_TIMEOUT_MS \
  FLEET_SESSIONS_BEFORE_LOADED

awk '
  # "# @if NAME" ... "# @endif NAME": the lines between are dropped when NAME is "0"
  /^[ \t]*# @if [A-Za-z_][A-Za-z0-9_]*[ \t]*$/ {
    split($0, w, " "); depth++; drop[depth] = (ENVIRON[w[3]] == "0") || (depth > 1 && drop[depth - 1]); next
  }
  /^[ \t]*# @endif/ { if (depth > 0) depth--; next }
  depth > 0 && drop[depth] { next }
  /^[ \t]*#/ { print; next }
  {
    line = $0; out = ""
    while (match(line, /\$\{[A-Za-z_][A-Za-z0-9_]*\}/)) {
      name = substr(line, RSTART + 2, RLENGTH - 3)
      if (!(name in ENVIRON)) {
        printf "render.sh: %s is not set (line %d)\n", name, NR > "/dev/stderr"
        failed = 1
        exit 3
      }
      out = out substr(line, 1, RSTART - 1) ENVIRON[name]
      line = substr(line, RSTART + RLENGTH)
    }
    print out line
  }
  END { if (failed) exit 3 }
' "$template"
