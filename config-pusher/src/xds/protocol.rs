//! The state-of-the-world xDS protocol of one ADS stream, IO-free: what to send, and what a
//! request means (envoy `api/envoy/service/discovery/v3/discovery.proto`, "xDS REST and gRPC
//! protocol": ACK/NACK and resource type instance versions, nonces, `resource_names`).
//!
//! Per type URL the stream remembers the names the proxy subscribed to (none for the wildcard
//! types, CDS and LDS), the last response it was sent (version and nonce) and the version it last
//! accepted. A request whose `response_nonce` is not the last one sent answers an older response
//! and is ignored (the protocol's "stale nonce" rule). A request with the current nonce and an
//! `error_detail` is a NACK: the proxy keeps its last good version, and so does the stream — the
//! refused version is never offered again; the next different one is. Versions are content hashes
//! of the resources sent, so every config-pusher replica names the same content alike.

use std::collections::{BTreeMap, BTreeSet};

use ring::digest;

/// A resource type's URL (`type.googleapis.com/envoy.config.cluster.v3.Cluster`, …).
pub type TypeUrl = String;

/// One resource, encoded: its name and the bytes of its `Any.value`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resource {
    pub name: String,
    pub bytes: Vec<u8>,
}

/// Every resource of one proxy role, by type URL, then by name.
pub type Resources = BTreeMap<TypeUrl, BTreeMap<String, Vec<u8>>>;

/// What a proxy's request told the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The first request of a type on this stream (no nonce): a subscription.
    Subscribe,
    /// The proxy applied `version`.
    Ack { version: String },
    /// The proxy refused `version`, and keeps `kept` (its `version_info`).
    Nack {
        version: String,
        kept: String,
        message: String,
    },
    /// The nonce is not the last one sent: a late answer to an older response, ignored.
    Stale,
}

/// One request as the state machine sees it (a `DiscoveryRequest`'s fields).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Request {
    pub type_url: String,
    /// The version the proxy runs (empty: none yet).
    pub version_info: String,
    pub resource_names: Vec<String>,
    pub response_nonce: String,
    /// `error_detail.message` of a NACK.
    pub error: Option<String>,
}

/// One response to send (a `DiscoveryResponse`'s fields).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Response {
    pub type_url: String,
    pub version: String,
    pub nonce: String,
    pub resources: Vec<Resource>,
}

/// What one type URL of the stream has seen.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct TypeState {
    /// Subscribed names; `None`: every resource of the type (wildcard).
    names: Option<BTreeSet<String>>,
    /// Version and nonce of the last response sent.
    sent: Option<(String, String)>,
    /// The version the proxy last applied.
    acked: Option<String>,
    /// The last version the proxy refused: not offered again.
    refused: Option<String>,
    /// A response is owed (a new subscription or changed names), even if the version is the same.
    owed: bool,
}

/// One ADS stream.
#[derive(Debug, Clone, Default)]
pub struct Stream {
    types: BTreeMap<TypeUrl, TypeState>,
    nonces: u64,
}

/// The types whose resources are asked for by name (`resource_names`); the others are wildcard.
fn named(type_url: &str) -> bool {
    type_url.ends_with(".ClusterLoadAssignment") || type_url.ends_with(".Secret")
}

impl Stream {
    /// Takes in one request. Call [`Stream::due`] afterwards for what to send.
    pub fn request(&mut self, req: &Request) -> Verdict {
        let state = self.types.entry(req.type_url.clone()).or_default();
        let names = if named(&req.type_url) {
            Some(req.resource_names.iter().cloned().collect())
        } else {
            None
        };
        if req.response_nonce.is_empty() {
            // A new subscription (or a reconnected proxy): always answered, even with the
            // version it already runs, so that it leaves its warming state.
            state.names = names;
            state.owed = true;
            if !req.version_info.is_empty() {
                state.acked = Some(req.version_info.clone());
            }
            return Verdict::Subscribe;
        }
        let Some((version, nonce)) = state.sent.clone() else {
            return Verdict::Stale;
        };
        if nonce != req.response_nonce {
            return Verdict::Stale;
        }
        if state.names != names {
            state.names = names;
            state.owed = true;
        }
        match &req.error {
            Some(message) => {
                state.refused = Some(version.clone());
                Verdict::Nack {
                    version,
                    kept: req.version_info.clone(),
                    message: message.clone(),
                }
            }
            None => {
                state.acked = Some(req.version_info.clone());
                Verdict::Ack {
                    version: req.version_info.clone(),
                }
            }
        }
    }

    /// The responses to send now for `resources` (the role's current snapshot): per subscribed
    /// type, its resources (those subscribed to) when their version is not the one last sent, not
    /// the one refused, or a response is owed.
    pub fn due(&mut self, resources: &Resources) -> Vec<Response> {
        let empty = BTreeMap::new();
        let mut out = Vec::new();
        for (type_url, state) in &mut self.types {
            let all = resources.get(type_url).unwrap_or(&empty);
            let chosen: Vec<Resource> = all
                .iter()
                .filter(|(name, _)| state.names.as_ref().is_none_or(|n| n.contains(*name)))
                .map(|(name, bytes)| Resource {
                    name: name.clone(),
                    bytes: bytes.clone(),
                })
                .collect();
            let version = version(&chosen);
            let last = state.sent.as_ref().map(|(v, _)| v);
            let new = last != Some(&version) && state.refused.as_ref() != Some(&version);
            if !(new || state.owed) {
                continue;
            }
            self.nonces += 1;
            let nonce = self.nonces.to_string();
            state.sent = Some((version.clone(), nonce.clone()));
            state.owed = false;
            out.push(Response {
                type_url: type_url.clone(),
                version,
                nonce,
                resources: chosen,
            });
        }
        out
    }

    /// The version the proxy last applied of `type_url`.
    pub fn acked(&self, type_url: &str) -> Option<&str> {
        self.types.get(type_url)?.acked.as_deref()
    }
}

/// The version of a set of resources: the first 16 bytes of SHA-256 over names and bytes, in
/// hex; equal on every replica for equal content.
pub fn version(resources: &[Resource]) -> String {
    let mut ctx = digest::Context::new(&digest::SHA256);
    for r in resources {
        ctx.update(&(r.name.len() as u64).to_be_bytes());
        ctx.update(r.name.as_bytes());
        ctx.update(&(r.bytes.len() as u64).to_be_bytes());
        ctx.update(&r.bytes);
    }
    ctx.finish()
        .as_ref()
        .iter()
        .take(16)
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const CDS: &str = "type.googleapis.com/envoy.config.cluster.v3.Cluster";
    const EDS: &str = "type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment";

    fn resources(items: &[(&str, &str, &str)]) -> Resources {
        let mut out = Resources::new();
        for (t, name, bytes) in items {
            out.entry(t.to_string())
                .or_default()
                .insert(name.to_string(), bytes.as_bytes().to_vec());
        }
        out
    }

    fn req(t: &str, version: &str, names: &[&str], nonce: &str) -> Request {
        Request {
            type_url: t.into(),
            version_info: version.into(),
            resource_names: names.iter().map(|n| n.to_string()).collect(),
            response_nonce: nonce.into(),
            error: None,
        }
    }

    #[test]
    fn subscribe_ack_and_push_on_change_only() {
        let mut s = Stream::default();
        let r1 = resources(&[(CDS, "a", "1"), (CDS, "b", "2")]);
        assert_eq!(s.request(&req(CDS, "", &[], "")), Verdict::Subscribe);
        let sent = s.due(&r1);
        assert_eq!(sent.len(), 1);
        assert_eq!(sent[0].resources.len(), 2, "wildcard: every cluster");
        let (v1, n1) = (sent[0].version.clone(), sent[0].nonce.clone());
        assert_eq!(
            s.request(&req(CDS, &v1, &[], &n1)),
            Verdict::Ack {
                version: v1.clone()
            }
        );
        assert_eq!(s.acked(CDS), Some(v1.as_str()));
        assert!(s.due(&r1).is_empty(), "same content: nothing to send");
        let r2 = resources(&[(CDS, "a", "1")]);
        let sent = s.due(&r2);
        assert_eq!(sent.len(), 1);
        assert_ne!(sent[0].version, v1);
        assert_ne!(sent[0].nonce, n1, "every response has its own nonce");
        // Types nobody subscribed to are not sent.
        assert!(sent.iter().all(|r| r.type_url == CDS));
    }

    #[test]
    fn a_nack_keeps_the_last_good_version_and_the_refused_one_is_not_resent() {
        let mut s = Stream::default();
        s.request(&req(CDS, "", &[], ""));
        let good = s.due(&resources(&[(CDS, "a", "good")])).remove(0);
        s.request(&req(CDS, &good.version, &[], &good.nonce));
        let bad_set = resources(&[(CDS, "a", "bad")]);
        let bad = s.due(&bad_set).remove(0);
        let mut nack = req(CDS, &good.version, &[], &bad.nonce);
        nack.error = Some("invalid cluster".into());
        assert_eq!(
            s.request(&nack),
            Verdict::Nack {
                version: bad.version.clone(),
                kept: good.version.clone(),
                message: "invalid cluster".into()
            }
        );
        assert_eq!(s.acked(CDS), Some(good.version.as_str()), "last good stays");
        assert!(
            s.due(&bad_set).is_empty(),
            "the refused version is not offered again"
        );
        let fixed = s.due(&resources(&[(CDS, "a", "fixed")]));
        assert_eq!(fixed.len(), 1, "the next different version is");
        assert!(
            s.due(&resources(&[(CDS, "a", "good")])).len() == 1,
            "and so is a return to the good one"
        );
    }

    #[test]
    fn stale_nonces_are_ignored() {
        let mut s = Stream::default();
        s.request(&req(CDS, "", &[], ""));
        let first = s.due(&resources(&[(CDS, "a", "1")])).remove(0);
        let second = s.due(&resources(&[(CDS, "a", "2")])).remove(0);
        // The proxy's NACK of the first response arrives after the second was sent.
        let mut late = req(CDS, "", &[], &first.nonce);
        late.error = Some("old".into());
        assert_eq!(s.request(&late), Verdict::Stale);
        assert_eq!(
            s.request(&req(CDS, &second.version, &[], &second.nonce)),
            Verdict::Ack {
                version: second.version.clone()
            }
        );
        assert_eq!(
            s.request(&req(EDS, "", &[], "7")),
            Verdict::Stale,
            "a nonce on a type never sent"
        );
    }

    #[test]
    fn named_types_send_what_is_subscribed_and_answer_a_change_of_names() {
        let mut s = Stream::default();
        let r = resources(&[(EDS, "a", "1"), (EDS, "b", "2")]);
        s.request(&req(EDS, "", &["a"], ""));
        let first = s.due(&r).remove(0);
        assert_eq!(first.resources.len(), 1);
        assert_eq!(first.resources[0].name, "a");
        // An ACK that also subscribes to b: owed even though a's content did not change.
        s.request(&req(EDS, &first.version, &["a", "b"], &first.nonce));
        let second = s.due(&r).remove(0);
        assert_eq!(second.resources.len(), 2);
        // A reconnected proxy that runs the current version still gets an answer.
        let mut again = Stream::default();
        again.request(&req(EDS, &second.version, &["a", "b"], ""));
        assert_eq!(again.acked(EDS), Some(second.version.as_str()));
        let resent = again.due(&r);
        assert_eq!(resent.len(), 1);
        assert_eq!(
            resent[0].version, second.version,
            "same content, same version"
        );
    }
}
