//! The JWS signature algorithms a logout token may use.
//!
//! The set is closed on purpose: `none` and the HMAC family (`HS*`) have no variant, so no
//! configuration and no token header can ever select them (Back-Channel Logout 1.0, 2.6 step 3:
//! a shared-secret MAC would let anyone holding the client secret forge logouts).

use std::fmt;

/// An asymmetric JWS algorithm this filter can verify.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    RS256,
    RS384,
    RS512,
    PS256,
    PS384,
    PS512,
    ES256,
    ES384,
    EdDSA,
}

/// The kind of key an algorithm needs; a key is never used with another family's algorithm.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KeyFamily {
    Rsa,
    EcP256,
    EcP384,
    Ed25519,
}

impl Algorithm {
    pub const ALL: [Algorithm; 9] = [
        Algorithm::RS256,
        Algorithm::RS384,
        Algorithm::RS512,
        Algorithm::PS256,
        Algorithm::PS384,
        Algorithm::PS512,
        Algorithm::ES256,
        Algorithm::ES384,
        Algorithm::EdDSA,
    ];

    /// Parses a JOSE `alg` name. Names are case-sensitive (RFC 7515, 4.1.1).
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|alg| alg.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Algorithm::RS256 => "RS256",
            Algorithm::RS384 => "RS384",
            Algorithm::RS512 => "RS512",
            Algorithm::PS256 => "PS256",
            Algorithm::PS384 => "PS384",
            Algorithm::PS512 => "PS512",
            Algorithm::ES256 => "ES256",
            Algorithm::ES384 => "ES384",
            Algorithm::EdDSA => "EdDSA",
        }
    }

    pub fn key_family(self) -> KeyFamily {
        match self {
            Algorithm::RS256
            | Algorithm::RS384
            | Algorithm::RS512
            | Algorithm::PS256
            | Algorithm::PS384
            | Algorithm::PS512 => KeyFamily::Rsa,
            Algorithm::ES256 => KeyFamily::EcP256,
            Algorithm::ES384 => KeyFamily::EcP384,
            Algorithm::EdDSA => KeyFamily::Ed25519,
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// True for names that must never be accepted, whatever the configuration says.
pub fn is_forbidden_name(name: &str) -> bool {
    name.eq_ignore_ascii_case("none") || name.to_ascii_uppercase().starts_with("HS")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for alg in Algorithm::ALL {
            assert_eq!(Algorithm::from_name(alg.name()), Some(alg));
        }
    }

    #[test]
    fn none_and_hmac_do_not_parse() {
        for name in ["none", "HS256", "HS384", "HS512", "rs256", ""] {
            assert_eq!(Algorithm::from_name(name), None, "{name}");
        }
        assert!(is_forbidden_name("none"));
        assert!(is_forbidden_name("NONE"));
        assert!(is_forbidden_name("HS256"));
        assert!(!is_forbidden_name("RS256"));
    }
}
