//! Every local answer the filter sends, built in one place.

use crate::config::SessionConfig;
use crate::redirect::redirect_target;
use crate::rejection::Rejection;

/// A local HTTP answer, ready for the host.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalResponse {
    pub status: u32,
    pub headers: Vec<(&'static str, String)>,
    pub body: Vec<u8>,
}

impl LocalResponse {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Back-Channel Logout 1.0, 2.8: responses are not cached. `Pragma` for HTTP/1.0 caches,
/// as mature receivers still send it.
fn no_store() -> Vec<(&'static str, String)> {
    vec![
        ("cache-control", "no-store".into()),
        ("pragma", "no-cache".into()),
    ]
}

/// 200 with an empty body: the logout is recorded.
pub fn logout_accepted() -> LocalResponse {
    LocalResponse {
        status: 200,
        headers: no_store(),
        body: Vec::new(),
    }
}

/// 400 (or 405) with an OAuth-style JSON error naming the failed check.
pub fn logout_rejected(rejection: &Rejection) -> LocalResponse {
    let mut headers = no_store();
    headers.push(("content-type", "application/json".into()));
    if *rejection == Rejection::MethodNotAllowed {
        headers.push(("allow", "POST".into()));
    }
    let body = serde_json::json!({
        "error": "invalid_request",
        "error_description": rejection.to_string(),
    });
    LocalResponse {
        status: rejection.status(),
        headers,
        body: body.to_string().into_bytes(),
    }
}

/// 503: the filter cannot decide (not configured, or the revocation store failed). The
/// filter is fail-closed: an unchecked request is never forwarded.
pub fn unavailable() -> LocalResponse {
    LocalResponse {
        status: 503,
        headers: vec![("cache-control", "no-store".into())],
        body: Vec::new(),
    }
}

/// 503 for a session request while this Envoy has not yet loaded the fleet's revocations
/// from etcd (`fleet.sessions_before_loaded: refuse`): forwarding it could let a session
/// revoked on another Envoy through. Loading takes seconds; clients may retry.
pub fn fleet_loading() -> LocalResponse {
    LocalResponse {
        status: 503,
        headers: vec![
            ("cache-control", "no-store".into()),
            ("content-type", "application/json".into()),
            ("retry-after", "1".into()),
        ],
        body: br#"{"error":"fleet_loading","error_description":"this Envoy is still loading the fleet's revocations from etcd"}"#.to_vec(),
    }
}

/// Why a session was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SessionRefusal {
    /// The session cookie's session was revoked.
    Revoked,
    /// The session cookie cannot be read (or appears twice).
    Malformed,
    /// The `Authorization: Bearer` JWT belongs to a revoked session.
    BearerRevoked,
}

/// What the refusal answer depends on in the request.
#[derive(Debug, Clone, Copy, Default)]
pub struct RequestFacts<'a> {
    /// `:path`, query included, as the client sent it (bytes: it is attacker-controlled).
    pub path: &'a [u8],
    pub accept: Option<&'a [u8]>,
    pub sec_fetch_mode: Option<&'a [u8]>,
}

/// True when the request is an API call rather than a browser navigation: those get 401
/// JSON, since a redirect to a login page is useless to `fetch()` or a CLI.
pub fn is_api_request(facts: &RequestFacts<'_>, cfg: &SessionConfig) -> bool {
    let path = facts.path.split(|b| *b == b'?').next().unwrap_or_default();
    if cfg
        .api_path_prefixes
        .iter()
        .any(|p| path.starts_with(p.as_bytes()))
    {
        return true;
    }
    if facts
        .sec_fetch_mode
        .is_some_and(|mode| !mode.trim_ascii().eq_ignore_ascii_case(b"navigate"))
    {
        return true;
    }
    cfg.api_accept_json
        && facts.accept.is_some_and(|accept| {
            accept
                .windows(b"application/json".len())
                .any(|w| w.eq_ignore_ascii_case(b"application/json"))
        })
}

/// The answer to a request whose session is revoked or unreadable: clear the session
/// cookies, then send a browser back to the same URL (the oauth2 filter, finding no cookie,
/// starts a login) or tell an API client 401. Cookies are cleared with `Secure`, as the oauth2
/// filter sets them: browsers do not let a non-Secure cookie replace a Secure one.
pub fn session_refused(
    refusal: SessionRefusal,
    facts: &RequestFacts<'_>,
    cfg: &SessionConfig,
) -> LocalResponse {
    if refusal == SessionRefusal::BearerRevoked {
        return bearer_refused();
    }
    let mut headers = vec![("cache-control", "no-store".to_string())];
    for name in &cfg.clear_cookies {
        headers.push(("set-cookie", clearing_cookie(name, cfg)));
    }
    if is_api_request(facts, cfg) {
        headers.push(("content-type", "application/json".into()));
        let error = match refusal {
            SessionRefusal::Revoked | SessionRefusal::BearerRevoked => "session_revoked",
            SessionRefusal::Malformed => "invalid_session",
        };
        let body = serde_json::json!({
            "error": error,
            "error_description": match refusal {
                SessionRefusal::Revoked | SessionRefusal::BearerRevoked =>
                    "the session was ended by the identity provider",
                SessionRefusal::Malformed => "the session cookie cannot be read",
            },
        });
        return LocalResponse {
            status: 401,
            headers,
            body: body.to_string().into_bytes(),
        };
    }
    headers.push(("location", redirect_target(facts.path).to_string()));
    LocalResponse {
        status: 302,
        headers,
        body: Vec::new(),
    }
}

/// The answer to a bearer token of a revoked session (RFC 6750, 3.1): 401 with
/// `WWW-Authenticate: Bearer error="invalid_token"` and a JSON body. No cookie is cleared:
/// the request's cookie session, if any, is another matter.
pub fn bearer_refused() -> LocalResponse {
    let body = serde_json::json!({
        "error": "invalid_token",
        "error_description": "the session of this access token was ended by the identity provider",
    });
    LocalResponse {
        status: 401,
        headers: vec![
            ("cache-control", "no-store".to_string()),
            ("content-type", "application/json".to_string()),
            (
                "www-authenticate",
                r#"Bearer error="invalid_token", error_description="the session was ended by the identity provider""#
                    .to_string(),
            ),
        ],
        body: body.to_string().into_bytes(),
    }
}

fn clearing_cookie(name: &str, cfg: &SessionConfig) -> String {
    let mut cookie = format!(
        "{name}=deleted; Path={}; Expires=Thu, 01 Jan 1970 00:00:00 GMT; Max-Age=0; Secure; HttpOnly",
        cfg.clear_cookie_path
    );
    if let Some(domain) = &cfg.clear_cookie_domain {
        cookie.push_str("; Domain=");
        cookie.push_str(domain);
    }
    cookie
}

#[cfg(test)]
mod tests {
    use super::*;

    fn session_cfg() -> SessionConfig {
        SessionConfig {
            enabled: true,
            cookie_name: "IdToken".into(),
            clear_cookies: vec!["IdToken".into(), "OauthHMAC".into()],
            clear_cookie_path: "/".into(),
            clear_cookie_domain: None,
            api_path_prefixes: vec!["/api/".into()],
            api_accept_json: true,
            bearer_tokens: true,
        }
    }

    #[test]
    fn rejection_body_is_json_with_the_code() {
        let r = logout_rejected(&Rejection::Expired);
        assert_eq!(r.status, 400);
        assert_eq!(r.header("cache-control"), Some("no-store"));
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "invalid_request");
        assert!(body["error_description"]
            .as_str()
            .unwrap()
            .starts_with("expired: "));
        let r = logout_rejected(&Rejection::MethodNotAllowed);
        assert_eq!((r.status, r.header("allow")), (405, Some("POST")));
    }

    #[test]
    fn navigation_is_redirected_to_itself() {
        let facts = RequestFacts {
            path: b"/app?x=1",
            accept: Some(b"text/html"),
            sec_fetch_mode: Some(b"navigate"),
        };
        let r = session_refused(SessionRefusal::Revoked, &facts, &session_cfg());
        assert_eq!(r.status, 302);
        assert_eq!(r.header("location"), Some("/app?x=1"));
        let cleared: Vec<_> = r
            .headers
            .iter()
            .filter(|(n, _)| *n == "set-cookie")
            .collect();
        assert_eq!(cleared.len(), 2);
        assert!(cleared[0].1.starts_with("IdToken=deleted; Path=/;"));
        let open_redirect = RequestFacts {
            path: b"//evil.example/",
            ..facts
        };
        assert_eq!(
            session_refused(SessionRefusal::Revoked, &open_redirect, &session_cfg())
                .header("location"),
            Some("/")
        );
    }

    #[test]
    fn api_calls_get_401() {
        let cfg = session_cfg();
        for facts in [
            RequestFacts {
                path: b"/api/me",
                ..Default::default()
            },
            RequestFacts {
                path: b"/x",
                accept: Some(b"application/json"),
                ..Default::default()
            },
            RequestFacts {
                path: b"/x",
                sec_fetch_mode: Some(b"cors"),
                ..Default::default()
            },
        ] {
            let r = session_refused(SessionRefusal::Malformed, &facts, &cfg);
            assert_eq!(r.status, 401, "{facts:?}");
            let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
            assert_eq!(body["error"], "invalid_session");
        }
    }

    #[test]
    fn bearer_refusal_is_rfc6750() {
        let r = session_refused(
            SessionRefusal::BearerRevoked,
            &RequestFacts::default(),
            &session_cfg(),
        );
        assert_eq!(r.status, 401);
        assert!(r
            .header("www-authenticate")
            .unwrap()
            .starts_with(r#"Bearer error="invalid_token""#));
        assert!(r.header("set-cookie").is_none());
        let body: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        assert_eq!(body["error"], "invalid_token");
    }
}
