//! Per-role bearer tokens for `serve`'s `/v1/*`: one server secret (`serve --token-file`), and
//! for each proxy role a token derived from it, so a namespace's sidecars can read their own
//! table and nothing else, and report only about it.
//!
//! - The **secret itself** is the operator's token: every table, `/v1/proxies`, `/v1/status`.
//! - A **role token** is `gr1:<role>:<hex HMAC-SHA256(secret, role)>` (RFC 2104): it names its
//!   role, so a valid token presented for another role is told apart (403) from a wrong one
//!   (401). `config-pusher token --role ROLE` prints one; `render --istio` puts each namespace's
//!   own into its WasmPlugin. Rotating the secret rotates every role token.
//!
//! Pure: no IO (`serve::token` keeps the secret in sync with its file).

use ring::hmac;
use subtle::ConstantTimeEq;

/// What a bearer token grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Access {
    /// The server secret: everything.
    Operator,
    /// A role token: that role's table only.
    Role(String),
    /// Missing, malformed or not signed by the secret.
    Denied,
}

impl Access {
    /// Whether this access may read the table of `role`.
    pub fn reads(&self, role: &str) -> bool {
        match self {
            Access::Operator => true,
            Access::Role(r) => r == role,
            Access::Denied => false,
        }
    }
}

/// The prefix of role tokens (the version of their format).
const PREFIX: &str = "gr1:";

/// The server secret.
#[derive(Clone)]
pub struct Secret {
    bytes: Vec<u8>,
    key: hmac::Key,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret(…)")
    }
}

impl PartialEq for Secret {
    fn eq(&self, other: &Secret) -> bool {
        bool::from(self.bytes.ct_eq(&other.bytes))
    }
}

impl Eq for Secret {}

impl Secret {
    /// `None` for an empty secret (it would sign anything anyone can compute).
    pub fn new(bytes: &[u8]) -> Option<Secret> {
        (!bytes.is_empty()).then(|| Secret {
            bytes: bytes.to_vec(),
            key: hmac::Key::new(hmac::HMAC_SHA256, bytes),
        })
    }

    /// The token of `role`.
    pub fn role_token(&self, role: &str) -> String {
        let tag = hmac::sign(&self.key, role.as_bytes());
        let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        format!("{PREFIX}{role}:{hex}")
    }

    /// What `token` grants (compared in constant time).
    pub fn access(&self, token: &[u8]) -> Access {
        if bool::from(token.ct_eq(&self.bytes)) {
            return Access::Operator;
        }
        let Some((role, hex)) = std::str::from_utf8(token)
            .ok()
            .and_then(|t| t.strip_prefix(PREFIX))
            .and_then(|t| t.rsplit_once(':'))
        else {
            return Access::Denied;
        };
        match decode_hex(hex) {
            Some(tag) if hmac::verify(&self.key, role.as_bytes(), &tag).is_ok() => {
                Access::Role(role.to_string())
            }
            _ => Access::Denied,
        }
    }
}

fn decode_hex(hex: &str) -> Option<Vec<u8>> {
    if !hex.len().is_multiple_of(2) {
        return None;
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(hex.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn role_tokens_open_their_own_role_only() {
        let s = Secret::new(b"server-secret").unwrap();
        let shop = s.role_token("mesh/shop");
        assert!(shop.starts_with("gr1:mesh/shop:"));
        assert_eq!(shop.len(), "gr1:mesh/shop:".len() + 64);
        assert_eq!(s.access(shop.as_bytes()), Access::Role("mesh/shop".into()));
        assert!(s.access(shop.as_bytes()).reads("mesh/shop"));
        assert!(!s.access(shop.as_bytes()).reads("mesh/other"));
        assert_eq!(s.access(b"server-secret"), Access::Operator);
        // Forged: the role swapped, a bit flipped, another secret, garbage.
        let swapped = shop.replace("mesh/shop", "mesh/other");
        assert_eq!(s.access(swapped.as_bytes()), Access::Denied);
        let mut flipped = shop.clone().into_bytes();
        let last = flipped.len() - 1;
        flipped[last] = if flipped[last] == b'0' { b'1' } else { b'0' };
        assert_eq!(s.access(&flipped), Access::Denied);
        let other = Secret::new(b"another").unwrap().role_token("mesh/shop");
        assert_eq!(s.access(other.as_bytes()), Access::Denied);
        for junk in [
            &b""[..],
            b"gr1:",
            b"gr1:mesh/shop:zz",
            b"server-secre",
            "gr1:é:ab".as_bytes(),
        ] {
            assert_eq!(s.access(junk), Access::Denied, "{junk:?}");
        }
        assert!(Secret::new(b"").is_none());
    }
}
