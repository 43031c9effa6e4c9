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
