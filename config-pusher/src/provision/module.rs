//! Where a provisioned proxy gets the filter module: the image `Dockerfile.wasm` builds, mounted
//! as an image volume (Kubernetes ≥ 1.33 with `ImageVolume`), or an `http(s)://` URL Envoy
//! downloads itself and checks against a SHA-256 (`vm_config.code.remote`, for clusters without
//! image volumes).

use crate::render::istio::Sha256;

/// The module of the proxies (`--proxy-wasm-image`, or `--proxy-wasm-url` + `--proxy-wasm-sha256`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ModuleSource {
    Image(String),
    Url(ModuleUrl),
}

/// An `http://` or `https://` URL, split as Envoy's cluster for it needs, with the module's hash.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModuleUrl {
    pub url: String,
    pub tls: bool,
    pub host: String,
    pub port: u16,
    pub sha256: String,
}

/// Why `--proxy-wasm-url` was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ModuleError {
    #[error("--proxy-wasm-url {0:?}: must start with http:// or https:// (an oci:// image goes to --proxy-wasm-image)")]
    Scheme(String),
    #[error("--proxy-wasm-url {0:?}: no host")]
    Host(String),
    #[error("--proxy-wasm-url {0:?}: the port must be 1-65535")]
    Port(String),
}

impl ModuleUrl {
    pub fn parse(url: &str, sha256: &Sha256) -> Result<ModuleUrl, ModuleError> {
        let (tls, rest) = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
            (Some(rest), _) => (true, rest),
            (None, Some(rest)) => (false, rest),
            _ => return Err(ModuleError::Scheme(url.into())),
        };
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let authority = authority.rsplit('@').next().unwrap_or_default();
        let (host, port) = match authority.strip_prefix('[') {
            Some(v6) => match v6.split_once(']') {
                Some((h, p)) => (h, p.strip_prefix(':')),
                None => return Err(ModuleError::Host(url.into())),
            },
            None => match authority.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (authority, None),
            },
        };
        if host.is_empty() || host.chars().any(char::is_whitespace) {
            return Err(ModuleError::Host(url.into()));
        }
        let port = match port {
            None => {
                if tls {
                    443
                } else {
                    80
                }
            }
            Some(p) => p
                .parse::<u16>()
                .ok()
                .filter(|p| *p != 0)
                .ok_or_else(|| ModuleError::Port(url.into()))?,
        };
        Ok(ModuleUrl {
            url: url.into(),
            tls,
            host: host.into(),
            port,
            sha256: sha256.as_str().into(),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_split_into_what_envoy_needs() {
        let sha: Sha256 = "a".repeat(64).parse().unwrap();
        let u = ModuleUrl::parse("https://example.com/m/gammaroute.wasm", &sha).unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (true, "example.com", 443));
        let u = ModuleUrl::parse("http://[::1]:8080/x.wasm", &sha).unwrap();
        assert_eq!((u.tls, u.host.as_str(), u.port), (false, "::1", 8080));
        let u = ModuleUrl::parse("http://127.0.0.1:9/x", &sha).unwrap();
        assert_eq!((u.host.as_str(), u.port), ("127.0.0.1", 9));
        assert!(matches!(
            ModuleUrl::parse("oci://ghcr.io/x", &sha),
            Err(ModuleError::Scheme(_))
        ));
        assert!(matches!(
            ModuleUrl::parse("http:///x", &sha),
            Err(ModuleError::Host(_))
        ));
        assert!(matches!(
            ModuleUrl::parse("http://h:0/x", &sha),
            Err(ModuleError::Port(_))
        ));
    }
}
