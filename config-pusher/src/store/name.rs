//! Object names as the API server validates them, so that nothing else can reach the store — and
//! from it, role names, file names (`render`) and URLs. Kubernetes "Object Names and IDs":
//! <https://kubernetes.io/docs/concepts/overview/working-with-objects/names/>; the rules are
//! `k8s.io/apimachinery/pkg/util/validation` `IsDNS1123Subdomain`, `IsDNS1123Label` and
//! `IsDNS1035Label`.

use super::Kind;

/// Which rule a name follows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NameRule {
    /// RFC 1123 subdomain: at most 253 characters, dot-separated labels of lowercase letters,
    /// digits and `-`, each starting and ending with a letter or digit. Most kinds' names.
    Subdomain,
    /// RFC 1123 label: at most 63 characters, lowercase letters, digits and `-`, starting and
    /// ending with a letter or digit. Namespace names (so `metadata.namespace` too).
    Label,
    /// RFC 1035 label: an RFC 1123 label that starts with a letter. Service names (they become
    /// DNS names, `<svc>.<ns>.svc`).
    Dns1035Label,
}

impl NameRule {
    /// The rule `metadata.name` of `kind` follows.
    pub fn for_name(kind: Kind) -> NameRule {
        match kind {
            Kind::Namespace => NameRule::Label,
            Kind::Service => NameRule::Dns1035Label,
            _ => NameRule::Subdomain,
        }
    }

    /// Why `name` breaks the rule, if it does.
    pub fn check(self, name: &str) -> Result<(), &'static str> {
        match self {
            NameRule::Subdomain => {
                if name.len() > 253 {
                    return Err("must be no more than 253 characters (RFC 1123 subdomain)");
                }
                if name.split('.').all(is_label_text) {
                    Ok(())
                } else {
                    Err(
                        "must be lowercase letters, digits, '-' and '.', each dot-separated part \
                         starting and ending with a letter or digit (RFC 1123 subdomain)",
                    )
                }
            }
            NameRule::Label => {
                if name.len() > 63 {
                    return Err("must be no more than 63 characters (RFC 1123 label)");
                }
                if is_label_text(name) {
                    Ok(())
                } else {
                    Err(
                        "must be lowercase letters, digits and '-', starting and ending with a \
                         letter or digit (RFC 1123 label)",
                    )
                }
            }
            NameRule::Dns1035Label => {
                if name.len() > 63 {
                    return Err("must be no more than 63 characters (RFC 1035 label)");
                }
                if is_label_text(name) && name.starts_with(|c: char| c.is_ascii_lowercase()) {
                    Ok(())
                } else {
                    Err(
                        "must be lowercase letters, digits and '-', starting with a letter and \
                         ending with a letter or digit (RFC 1035 label)",
                    )
                }
            }
        }
    }
}

/// `[a-z0-9]([-a-z0-9]*[a-z0-9])?`, any length.
fn is_label_text(s: &str) -> bool {
    let alnum = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    let b = s.as_bytes();
    match (b.first(), b.last()) {
        (Some(&first), Some(&last)) => {
            alnum(first) && alnum(last) && b.iter().all(|&c| alnum(c) || c == b'-')
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_the_api_server_rules() {
        use NameRule::*;
        for ok in ["a", "web-1", "0abc", "a.b-c.d"] {
            assert_eq!(Subdomain.check(ok), Ok(()), "{ok}");
        }
        for bad in [
            "", "../../x", "/etc/x", "a/b", "A", "a..b", ".a", "a-", "-a", "a_b", "{{x}}", "a b",
        ] {
            assert!(Subdomain.check(bad).is_err(), "{bad}");
            assert!(Label.check(bad).is_err(), "{bad}");
        }
        assert!(Subdomain.check(&"a".repeat(253)).is_ok());
        assert!(Subdomain.check(&"a".repeat(254)).is_err());
        assert!(Label.check("a.b").is_err());
        assert!(Label.check(&"a".repeat(64)).is_err());
        assert!(Label.check("0ns").is_ok());
        assert!(Dns1035Label.check("0svc").is_err());
        assert!(Dns1035Label.check("svc-0").is_ok());
    }
}
