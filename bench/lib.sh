# Shared by the bench scripts: the session cookies the oauth2 filter leaves behind.
# Needs ISSUER, CLIENT_ID and NOW set by the caller.
#
# make_id_token SUB SID IAT: an ID-token-shaped JWT of about 1 KB (the claim set of
#   benches/session_check.rs, junk signature, which the session path does not check).
# cookie_header ID_TOKEN: OauthHMAC, OauthExpires, BearerToken, IdToken, RefreshToken.
make_id_token() { # sub sid iat
  python3 - "$ISSUER" "$CLIENT_ID" "$1" "$2" "$3" <<'PY'
import base64, json, sys
iss, aud, sub, sid, iat = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5])
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
header = {"alg": "RS256", "kid": "k"}
payload = {"iss": iss, "sub": sub, "aud": aud, "exp": iat + 3600, "iat": iat,
           "auth_time": iat - 2, "nonce": "n-0S6_WzA2Mj-Q4vZxYt1d8p", "sid": sid,
           "at_hash": "77QmUPtjPfzWtF2AnpK9RQ", "acr": "urn:mace:incommon:iap:silver",
           "amr": ["pwd", "otp"], "azp": aud, "email": "jane.doe@example.test",
           "email_verified": True, "name": "Jane Doe", "given_name": "Jane",
           "family_name": "Doe", "preferred_username": "jdoe", "locale": "en-GB",
           "groups": ["staff", "engineering", "on-call"]}
enc = lambda o: b(json.dumps(o, separators=(",", ":")).encode())
print(f"{enc(header)}.{enc(payload)}.{b(bytes([0x5a]) * 256)}")
PY
}
cookie_header() { # id_token
  python3 - "$1" "$NOW" <<'PY'
import base64, sys
b = lambda x: base64.urlsafe_b64encode(x).rstrip(b"=").decode()
print(f"OauthHMAC={b(bytes([7]) * 32)}; OauthExpires={int(sys.argv[2]) + 3600}; "
      f"BearerToken={b(bytes([3]) * 600)}; IdToken={sys.argv[1]}; RefreshToken={b(bytes([9]) * 300)}")
PY
}

# wasm_filter_yaml WASM PLUGIN_JSON: this filter as an entry of an HTTP connection manager's
#   http_filters (indented for the bench configs' listeners), FAIL_CLOSED as in the real configs.
wasm_filter_yaml() { # wasm plugin_json
  cat <<YAML
          - name: envoy.filters.http.wasm
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm
              config:
                name: backchannel_logout
                root_id: backchannel_logout
                failure_policy: FAIL_CLOSED
                vm_config:
                  vm_id: backchannel_logout
                  runtime: envoy.wasm.runtime.v8
                  code: { local: { filename: "$1" } }
                configuration:
                  "@type": type.googleapis.com/google.protobuf.StringValue
                  value: '$2'
YAML
}

# hcm_listener_yaml NAME PORT STAT_PREFIX CODEC: the head of a listener (under `listeners:`)
#   with an HTTP connection manager, down to its virtual host's `routes:`; the caller writes
#   the routes, then `http_filters:`.
hcm_listener_yaml() { # name port stat_prefix codec
  cat <<YAML
  - name: $1
    address: { socket_address: { address: 127.0.0.1, port_value: $2 } }
    filter_chains:
    - filters:
      - name: envoy.filters.network.http_connection_manager
        typed_config:
          "@type": type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager
          stat_prefix: $3
          codec_type: $4
          route_config:
            name: $3
            virtual_hosts:
            - name: all
              domains: ["*"]
              routes:
YAML
}

# router_filter_yaml: the last entry of every http_filters list.
router_filter_yaml() {
  cat <<'YAML'
          - name: envoy.filters.http.router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.router.v3.Router
YAML
}

# answering_listener_yaml NAME PORT CODEC BODY: a listener that answers every request itself
#   with 200 and BODY (the benches' upstreams).
answering_listener_yaml() { # name port codec body
  hcm_listener_yaml "$1" "$2" "$1" "$3"
  cat <<YAML
              - match: { prefix: "/" }
                direct_response: { status: 200, body: { inline_string: "$4" } }
          http_filters:
YAML
  router_filter_yaml
}

# main_listener_yaml PORT STAT_PREFIX ROUTE WASM PLUGIN_JSON: the chain of the shipped configs
#   (buffer_body, this filter, hold_router, router; both buffers disabled on "/" as there), with
#   ROUTE as the action of "/"; without WASM the same chain lacks only the wasm filter.
main_listener_yaml() { # port stat_prefix route wasm|"" plugin_json
  hcm_listener_yaml main "$1" "$2" HTTP1
  cat <<YAML
              - match: { path: /bff/backchannel }
                direct_response: { status: 404, body: { inline_string: "filter missing\n" } }
              - match: { prefix: "/" }
                $3
                typed_per_filter_config:
                  backchannel.buffer_body:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute
                    disabled: true
                  backchannel.hold_router:
                    "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.BufferPerRoute
                    disabled: true
          http_filters:
          - name: backchannel.buffer_body
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 1048576
YAML
  [[ -z $4 ]] || wasm_filter_yaml "$4" "$5"
  cat <<YAML
          - name: backchannel.hold_router
            typed_config:
              "@type": type.googleapis.com/envoy.extensions.filters.http.buffer.v3.Buffer
              max_request_bytes: 1048576
YAML
  router_filter_yaml
}
