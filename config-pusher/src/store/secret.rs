//! Core `v1` Secrets, kept only as far as TLS termination needs them: `type`, `tls.crt` and
//! `tls.key` (Gateway API `spec.listeners[].tls.certificateRefs` point at `kubernetes.io/tls`
//! Secrets). Every other key is dropped on load, and the private key is a [`PrivateKey`] whose
//! `Debug` and `Serialize` never show it, so it cannot leak through logs, `/v1/status`, explain or
//! check output. The kube source lists only `type=kubernetes.io/tls` Secrets (field selector), so
//! there a Secret of another type looks missing; the folder source keeps every Secret.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::{Deserialize, Serialize};

/// `type` of a TLS Secret.
pub const TLS_SECRET_TYPE: &str = "kubernetes.io/tls";
/// Data key of the certificate chain (PEM).
pub const TLS_CERT_KEY: &str = "tls.crt";
/// Data key of the private key (PEM).
pub const TLS_PRIVATE_KEY: &str = "tls.key";

/// PEM private key bytes. Shown as `<redacted>` by `Debug` and `Serialize`; read with
/// [`PrivateKey::expose`] only where the bytes are written for Envoy.
#[derive(Clone, PartialEq, Eq)]
pub struct PrivateKey(Vec<u8>);

impl PrivateKey {
    pub fn new(pem: Vec<u8>) -> PrivateKey {
        PrivateKey(pem)
    }

    /// The PEM bytes. Callers must not log them.
    pub fn expose(&self) -> &[u8] {
        &self.0
    }
}

impl std::fmt::Debug for PrivateKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PrivateKey(<redacted, {} bytes>)", self.0.len())
    }
}

impl Serialize for PrivateKey {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("<redacted>")
    }
}

/// A Secret as the store keeps it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(from = "k8s_openapi::api::core::v1::Secret")]
pub struct Secret {
    pub metadata: ObjectMeta,
    /// `type`; Kubernetes defaults it to `Opaque`.
    #[serde(rename = "type")]
    pub type_: Option<String>,
    /// `tls.crt`, decoded.
    pub certificate: Option<Vec<u8>>,
    /// `tls.key`, decoded.
    pub private_key: Option<PrivateKey>,
}

impl From<k8s_openapi::api::core::v1::Secret> for Secret {
    /// `stringData` wins over `data` for the same key, as the API server merges them on write.
    fn from(s: k8s_openapi::api::core::v1::Secret) -> Secret {
        let mut data: BTreeMap<String, Vec<u8>> = s
            .data
            .unwrap_or_default()
            .into_iter()
            .filter(|(k, _)| k == TLS_CERT_KEY || k == TLS_PRIVATE_KEY)
            .map(|(k, v)| (k, v.0))
            .collect();
        for (k, v) in s.string_data.unwrap_or_default() {
            if k == TLS_CERT_KEY || k == TLS_PRIVATE_KEY {
                data.insert(k, v.into_bytes());
            }
        }
        Secret {
            metadata: s.metadata,
            type_: s.type_,
            certificate: data.remove(TLS_CERT_KEY),
            private_key: data.remove(TLS_PRIVATE_KEY).map(PrivateKey),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const YAML: &str = "metadata: {name: s}\ntype: kubernetes.io/tls\ndata:\n  tls.crt: Y2VydA==\n  tls.key: c2VjcmV0LWtleQ==\n  other: eA==\nstringData:\n  tls.crt: cert2\n";

    #[test]
    fn reads_data_and_string_data() {
        let s: Secret = serde_yaml_ng::from_str(YAML).unwrap();
        assert_eq!(s.type_.as_deref(), Some(TLS_SECRET_TYPE));
        assert_eq!(s.certificate.as_deref(), Some(&b"cert2"[..]));
        assert_eq!(s.private_key.as_ref().unwrap().expose(), b"secret-key");
    }

    #[test]
    fn key_never_shown() {
        let s: Secret = serde_yaml_ng::from_str(YAML).unwrap();
        let debug = format!("{s:?}");
        let json = serde_json::to_string(&s).unwrap();
        for shown in [debug, json] {
            assert!(!shown.contains("secret-key"), "{shown}");
            assert!(shown.contains("redacted"), "{shown}");
        }
    }
}
