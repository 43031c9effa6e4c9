//! Where a refused browser navigation is sent: back to its own URL, so the oauth2 filter,
//! finding no session cookie, starts a login and returns the user there afterwards.
//!
//! The target comes from the request line, so it is attacker-controlled. Browsers resolve
//! `Location` leniently (WHATWG URL): `\` counts as `/`, tabs and newlines are dropped, so
//! `/\evil.example/x` or `/<TAB>/evil.example` becomes the network-path reference
//! `//evil.example/x`, an open redirect. Only a plain absolute path is kept; anything else
//! falls back to `/`.

/// The `Location` for a refused navigation to `path` (`:path`, query included).
pub fn redirect_target(path: &[u8]) -> &str {
    if is_plain_absolute_path(path) {
        // Checked above: every byte is visible ASCII.
        std::str::from_utf8(path).unwrap_or("/")
    } else {
        "/"
    }
}

/// `/` followed by visible ASCII only (no space, control byte or non-ASCII that a browser
/// could strip or reinterpret), no backslash anywhere, and a second segment start that is
/// not `/` or `\`, spelled out or percent-encoded (`%2F`, `%5C`), which some servers and
/// proxies decode before a browser sees them.
fn is_plain_absolute_path(path: &[u8]) -> bool {
    let Some((&b'/', rest)) = path.split_first() else {
        return false;
    };
    if !path
        .iter()
        .all(|b| (0x21..=0x7e).contains(b) && *b != b'\\')
    {
        return false;
    }
    let starts_like_slash = rest.first() == Some(&b'/')
        || rest
            .get(..3)
            .is_some_and(|p| p.eq_ignore_ascii_case(b"%2f") || p.eq_ignore_ascii_case(b"%5c"));
    !starts_like_slash
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_plain_paths() {
        for ok in ["/", "/app", "/app/page?x=1&y=%2F", "/a//b", "/a/%2f"] {
            assert_eq!(redirect_target(ok.as_bytes()), ok);
        }
    }

    #[test]
    fn never_points_off_site() {
        for bad in [
            &b"//evil.example/x"[..],
            b"/\\evil.example/x",
            b"/\\/evil.example",
            b"/%5Cevil.example/x",
            b"/%5cevil.example/x",
            b"/%2F%2Fevil.example",
            b"/%2fevil.example",
            b"/\t/evil.example",
            b"/ /evil.example",
            b"/x\r\nLocation: //evil",
            b"/caf\xc3\xa9",
            b"/\xff",
            b"http://evil.example/",
            b"evil.example",
            b"*",
            b"",
            b"/x\\y",
        ] {
            assert_eq!(
                redirect_target(bad),
                "/",
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }
}
