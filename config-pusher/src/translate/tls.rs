//! TLS termination of Gateway listeners: `spec.listeners[].tls` resolved to certificates, or the
//! errors whose listener conditions `gateway::apply_tls` sets.
//!
//! - `tls.mode: Terminate` (the default) with `certificateRefs`: each ref must be group `""`, kind
//!   `Secret` (both defaults); a ref into another namespace needs a ReferenceGrant in the Secret's
//!   namespace from `Gateway` in the Gateway's namespace to `Secret` (Gateway API
//!   `GatewayTLSConfig.certificateRefs`, conformance `GatewaySecretReferenceGrant*`). Several refs
//!   are all served (implementation-specific support); Envoy picks among them by key type.
//! - A missing Secret, a Secret not of type `kubernetes.io/tls`, or one whose `tls.crt` / `tls.key`
//!   are not a PEM certificate chain and a PEM private key: `ResolvedRefs=False/InvalidCertificateRef`;
//!   a ref not granted: `ResolvedRefs=False/RefNotPermitted`. Either way the listener is
//!   `Programmed=False/Invalid` and render binds no filter chain for it, but it still takes
//!   routes and counts them (conformance `GatewayWithAttachedRoutes`, "AttachedRoutes set even
//!   when Gateway has unresolved refs"; `GatewayInvalidTLSConfiguration`).
//! - `tls.mode: Passthrough` on an HTTPS listener is refused by the API server's CEL rule ("tls
//!   mode must be Terminate for protocol HTTPS"); from a folder it makes the listener
//!   `Accepted=False/UnsupportedProtocol` (passthrough is protocol `TLS` with TLSRoute, which
//!   gammaroute does not serve).
//!
//! The key/certificate pairing is not checked (no crypto here): Envoy rejects a mismatched pair
//! when it loads it.

use gateway_api::experimental::gateways::{
    GatewayListeners, GatewayListenersTlsCertificateRefs as CertificateRef,
    GatewayListenersTlsMode as Mode,
};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use super::backend::GATEWAY_GROUP;
use super::status::Reason;
use crate::store::secret::{PrivateKey, TLS_SECRET_TYPE};
use crate::store::{ObjectKey, Store};

/// One certificate a listener serves, from one `certificateRefs` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Certificate {
    /// The Secret it came from.
    pub secret: ObjectKey,
    /// `tls.crt`: PEM, leaf first.
    pub chain: Vec<u8>,
    /// `tls.key`: PEM.
    pub key: PrivateKey,
}

/// Why a listener's TLS configuration cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TlsError {
    #[error("tls.mode Passthrough is not valid for protocol HTTPS (use protocol TLS with a TLSRoute, which gammaroute does not serve)")]
    Passthrough,
    #[error("tls.certificateRefs is empty: an HTTPS listener terminating TLS needs a certificate")]
    NoCertificateRefs,
    #[error("tls.certificateRefs[{index}]: {group}/{kind} is not supported (only core Secret)")]
    UnsupportedKind {
        index: usize,
        group: String,
        kind: String,
    },
    #[error("tls.certificateRefs[{index}]: Secret {secret} not found")]
    NotFound { index: usize, secret: ObjectKey },
    #[error(
        "tls.certificateRefs[{index}]: Secret {secret} has type {type_}, not kubernetes.io/tls"
    )]
    WrongType {
        index: usize,
        secret: ObjectKey,
        type_: String,
    },
    #[error("tls.certificateRefs[{index}]: Secret {secret}: data `{field}`: {problem}")]
    Malformed {
        index: usize,
        secret: ObjectKey,
        field: &'static str,
        problem: &'static str,
    },
    #[error("tls.certificateRefs[{index}]: Secret {secret} is in another namespace and no ReferenceGrant there allows Gateways from namespace {from}")]
    NotPermitted {
        index: usize,
        secret: ObjectKey,
        from: String,
    },
}

impl TlsError {
    /// The listener `ResolvedRefs` reason (`Accepted` reason for [`TlsError::Passthrough`]).
    pub fn reason(&self) -> Reason {
        match self {
            TlsError::Passthrough => Reason::UnsupportedProtocol,
            TlsError::NotPermitted { .. } => Reason::RefNotPermitted,
            _ => Reason::InvalidCertificateRef,
        }
    }
}

/// The certificates of an HTTPS listener of a Gateway in `gateway_ns`, or every reason it has
/// none it can serve (one per bad ref). `Ok(vec![])` for a listener that is not HTTPS.
pub fn resolve(
    store: &Store,
    gateway_ns: &str,
    listener: &GatewayListeners,
) -> Result<Vec<Certificate>, Vec<TlsError>> {
    if listener.protocol != "HTTPS" {
        return Ok(Vec::new());
    }
    let tls = listener.tls.clone().unwrap_or_default();
    if tls.mode == Some(Mode::Passthrough) {
        return Err(vec![TlsError::Passthrough]);
    }
    let refs = tls.certificate_refs.unwrap_or_default();
    if refs.is_empty() {
        return Err(vec![TlsError::NoCertificateRefs]);
    }
    let (mut certificates, mut errors) = (Vec::new(), Vec::new());
    for (index, r) in refs.iter().enumerate() {
        match certificate(store, gateway_ns, index, r) {
            Ok(c) => certificates.push(c),
            Err(e) => errors.push(e),
        }
    }
    if errors.is_empty() {
        Ok(certificates)
    } else {
        Err(errors)
    }
}

fn certificate(
    store: &Store,
    gateway_ns: &str,
    index: usize,
    r: &CertificateRef,
) -> Result<Certificate, TlsError> {
    let group = r.group.as_deref().unwrap_or_default();
    let kind = r.kind.as_deref().unwrap_or("Secret");
    if !group.is_empty() || kind != "Secret" {
        return Err(TlsError::UnsupportedKind {
            index,
            group: if group.is_empty() { "core" } else { group }.to_string(),
            kind: kind.to_string(),
        });
    }
    let secret = ObjectKey::new(r.namespace.as_deref().unwrap_or(gateway_ns), &r.name);
    if secret.namespace != gateway_ns && !granted(store, gateway_ns, &secret) {
        return Err(TlsError::NotPermitted {
            index,
            secret,
            from: gateway_ns.to_string(),
        });
    }
    let Some(stored) = store.secrets.get(&secret) else {
        return Err(TlsError::NotFound { index, secret });
    };
    let s = &stored.object;
    let type_ = s.type_.as_deref().unwrap_or("Opaque");
    if type_ != TLS_SECRET_TYPE {
        return Err(TlsError::WrongType {
            index,
            secret,
            type_: type_.to_string(),
        });
    }
    let malformed = |field, problem| TlsError::Malformed {
        index,
        secret: secret.clone(),
        field,
        problem,
    };
    let chain = s
        .certificate
        .clone()
        .ok_or_else(|| malformed("tls.crt", "missing"))?;
    let certs: Result<Vec<_>, _> = CertificateDer::pem_slice_iter(&chain).collect();
    match certs {
        Ok(c) if !c.is_empty() => {}
        // The pem error is not shown: it can quote the offending line.
        _ => return Err(malformed("tls.crt", "not a PEM certificate chain")),
    }
    let key = s
        .private_key
        .clone()
        .ok_or_else(|| malformed("tls.key", "missing"))?;
    if PrivateKeyDer::from_pem_slice(key.expose()).is_err() {
        return Err(malformed(
            "tls.key",
            "not a PEM private key (PKCS#8, PKCS#1 or SEC1)",
        ));
    }
    Ok(Certificate { secret, chain, key })
}

/// A ReferenceGrant in the Secret's namespace from Gateways of `from_ns` to that Secret (or to
/// every Secret there).
fn granted(store: &Store, from_ns: &str, secret: &ObjectKey) -> bool {
    let start = ObjectKey::new(secret.namespace.clone(), "");
    store
        .reference_grants
        .range(start..)
        .take_while(|(k, _)| k.namespace == secret.namespace)
        .any(|(_, g)| {
            let spec = &g.object.spec;
            spec.from
                .iter()
                .any(|f| f.group == GATEWAY_GROUP && f.kind == "Gateway" && f.namespace == from_ns)
                && spec.to.iter().any(|t| {
                    t.group.is_empty()
                        && t.kind == "Secret"
                        && t.name.as_deref().is_none_or(|n| n == secret.name)
                })
        })
}
