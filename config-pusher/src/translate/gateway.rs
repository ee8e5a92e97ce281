//! North–south: GatewayClasses of our controller, their Gateways and listeners, and which
//! listeners an HTTPRoute parentRef attaches to.
//!
//! - A GatewayClass is ours when `spec.controllerName` equals [`super::Settings::controller_name`];
//!   ours get `Accepted=True`. Gateways of other classes are ignored entirely (no table, no status).
//! - Listeners: protocol `HTTP` or `HTTPS` (certificateRefs resolved by [`tls`]), any other protocol is `Accepted=False/UnsupportedProtocol`. Listeners on one
//!   port with different protocols are `Conflicted/ProtocolConflict`; listeners with the same port
//!   and hostname are `Conflicted/HostnameConflict`. Only listeners that are accepted and not
//!   conflicted go into the table.
//! - `allowedRoutes.kinds`: HTTPRoute (group `gateway.networking.k8s.io`) is the only kind;
//!   others make the listener `ResolvedRefs=False/InvalidRouteKinds` and are left out of
//!   `supportedKinds`. `allowedRoutes.namespaces.from`: `Same` (default), `All`, `Selector` (label
//!   selector over the namespace labels, `matchLabels` and `matchExpressions`).

use std::collections::{BTreeMap, BTreeSet};

use gateway_api::experimental::gateways::{
    Gateway, GatewayListeners, GatewayListenersAllowedRoutesNamespacesFrom as From,
    GatewayListenersAllowedRoutesNamespacesSelector as Selector,
};
use gateway_api::experimental::httproutes::HttpRouteParentRefs;

use super::backend::GATEWAY_GROUP;
use super::hostname;
use super::status::{
    Condition, ConditionType, GatewayAddress, Reason, RouteGroupKind, RouteProblem,
};
use super::{tls, Settings};
use crate::store::{ObjectKey, Store};

/// Which namespaces may attach routes to a listener.
#[derive(Debug, Clone)]
enum Namespaces {
    Same,
    All,
    Selector(Selector),
}

/// A listener as translate sees it.
#[derive(Debug, Clone)]
pub struct ListenerInfo {
    pub name: String,
    pub port: u16,
    pub protocol: String,
    /// Lowercase, without a trailing dot.
    pub hostname: Option<String>,
    /// Accepted and not conflicted: goes into the table and takes routes.
    pub usable: bool,
    /// Why it is not usable (for route messages).
    pub unusable_reason: String,
    namespaces: Namespaces,
    /// HTTPRoute is among the allowed kinds.
    pub takes_http_routes: bool,
    pub supported_kinds: Vec<RouteGroupKind>,
    /// Listener conditions other than the attached count.
    pub conditions: Vec<Condition>,
    /// Routes attached (accepted) here.
    pub attached: BTreeSet<ObjectKey>,
}

impl ListenerInfo {
    /// Whether the listener's status says it is programmed.
    pub fn programmed(&self) -> bool {
        self.usable
            && self
                .conditions
                .iter()
                .any(|c| c.type_ == ConditionType::Programmed && c.status)
    }
}

/// One Gateway of our classes.
#[derive(Debug, Clone)]
pub struct GatewayInfo {
    pub key: ObjectKey,
    pub generation: Option<i64>,
    pub listeners: Vec<ListenerInfo>,
    pub addresses: Vec<GatewayAddress>,
}

/// Our GatewayClasses (by name) with their status conditions.
pub fn classes(store: &Store, settings: &Settings) -> BTreeMap<String, Vec<Condition>> {
    store
        .gateway_classes
        .iter()
        .filter(|(_, c)| c.object.spec.controller_name == settings.controller_name)
        .map(|(name, c)| {
            let conditions = vec![Condition::new(
                ConditionType::Accepted,
                true,
                Reason::Accepted,
                format!("Handled by {}", settings.controller_name),
                c.object.metadata.generation,
            )];
            (name.clone(), conditions)
        })
        .collect()
}

/// Every Gateway whose class is one of `classes`, in namespace/name order.
pub fn gateways(store: &Store, classes: &BTreeMap<String, Vec<Condition>>) -> Vec<GatewayInfo> {
    store
        .gateways
        .iter()
        .filter(|(_, g)| classes.contains_key(&g.object.spec.gateway_class_name))
        .map(|(key, g)| gateway(store, key, &g.object))
        .collect()
}

fn gateway(store: &Store, key: &ObjectKey, g: &Gateway) -> GatewayInfo {
    let generation = g.metadata.generation;
    let mut listeners: Vec<ListenerInfo> = g
        .spec
        .listeners
        .iter()
        .map(|l| {
            let mut info = listener(l, generation);
            apply_tls(store, &key.namespace, l, &mut info, generation);
            info
        })
        .collect();
    // Conflicts among the listeners that are otherwise fine.
    let mut protocols: BTreeMap<u16, BTreeSet<String>> = BTreeMap::new();
    let mut binds: BTreeMap<(u16, Option<String>), usize> = BTreeMap::new();
    for l in listeners.iter().filter(|l| l.usable) {
        protocols
            .entry(l.port)
            .or_default()
            .insert(l.protocol.clone());
        *binds.entry((l.port, l.hostname.clone())).or_default() += 1;
    }
    for l in listeners.iter_mut().filter(|l| l.usable) {
        let conflict = if protocols.get(&l.port).is_some_and(|p| p.len() > 1) {
            Some((
                Reason::ProtocolConflict,
                format!(
                    "another listener on port {} uses a different protocol",
                    l.port
                ),
            ))
        } else if binds
            .get(&(l.port, l.hostname.clone()))
            .is_some_and(|n| *n > 1)
        {
            Some((
                Reason::HostnameConflict,
                format!(
                    "another listener on port {} has the same hostname {}",
                    l.port,
                    l.hostname.as_deref().unwrap_or("(none)")
                ),
            ))
        } else {
            None
        };
        if let Some((why, message)) = conflict {
            l.usable = false;
            l.unusable_reason = format!("listener {} is conflicted: {message}", l.name);
            set(
                &mut l.conditions,
                Condition::new(ConditionType::Conflicted, true, why, message, generation),
            );
            set(
                &mut l.conditions,
                Condition::new(
                    ConditionType::Programmed,
                    false,
                    Reason::Invalid,
                    "Listener is conflicted",
                    generation,
                ),
            );
        }
    }
    let addresses = g
        .spec
        .addresses
        .iter()
        .flatten()
        .filter_map(|a| {
            Some(GatewayAddress {
                type_: a.r#type.clone().unwrap_or_else(|| "IPAddress".into()),
                value: a.value.clone()?,
            })
        })
        .collect();
    GatewayInfo {
        key: key.clone(),
        generation,
        listeners,
        addresses,
    }
}

/// Sets the TLS part of a listener's status: `Accepted=False` for Passthrough, else
/// `ResolvedRefs=False` and `Programmed=False` when a certificate ref does not resolve.
fn apply_tls(
    store: &Store,
    gateway_ns: &str,
    spec: &GatewayListeners,
    info: &mut ListenerInfo,
    generation: Option<i64>,
) {
    if !info.usable {
        return;
    }
    let errors = match tls::resolve(store, gateway_ns, spec) {
        Ok(_) => return,
        Err(errors) => errors,
    };
    let message = errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ");
    let c = |t: ConditionType, r: Reason, m: &str| Condition::new(t, false, r, m, generation);
    if errors.contains(&tls::TlsError::Passthrough) {
        info.usable = false;
        info.unusable_reason = format!("listener {}: {message}", info.name);
        set(
            &mut info.conditions,
            c(
                ConditionType::Accepted,
                Reason::UnsupportedProtocol,
                &message,
            ),
        );
    } else {
        // RefNotPermitted wins: it is the one a user fixes elsewhere (a ReferenceGrant).
        let why = errors
            .iter()
            .map(tls::TlsError::reason)
            .find(|r| *r == Reason::RefNotPermitted)
            .unwrap_or(Reason::InvalidCertificateRef);
        set(
            &mut info.conditions,
            c(ConditionType::ResolvedRefs, why, &message),
        );
    }
    let programmed = if info.usable {
        "Listener TLS certificates are not resolved"
    } else {
        "Listener is not valid"
    };
    set(
        &mut info.conditions,
        c(ConditionType::Programmed, Reason::Invalid, programmed),
    );
}

fn set(conditions: &mut Vec<Condition>, c: Condition) {
    match conditions.iter_mut().find(|x| x.type_ == c.type_) {
        Some(x) => *x = c,
        None => conditions.push(c),
    }
}

fn listener(l: &GatewayListeners, generation: Option<i64>) -> ListenerInfo {
    let c =
        |t: ConditionType, ok: bool, r: Reason, m: &str| Condition::new(t, ok, r, m, generation);
    let mut conditions = Vec::new();
    let mut usable = true;
    let mut unusable_reason = String::new();
    let port = u16::try_from(l.port).ok().filter(|p| *p != 0);
    let http = matches!(l.protocol.as_str(), "HTTP" | "HTTPS");
    if !http {
        usable = false;
        unusable_reason = format!(
            "listener {} has protocol {}, which gammaroute does not serve",
            l.name, l.protocol
        );
        conditions.push(c(
            ConditionType::Accepted,
            false,
            Reason::UnsupportedProtocol,
            &unusable_reason,
        ));
    } else if port.is_none() {
        usable = false;
        unusable_reason = format!("listener {} has an invalid port {}", l.name, l.port);
        conditions.push(c(
            ConditionType::Accepted,
            false,
            Reason::PortUnavailable,
            &unusable_reason,
        ));
    } else {
        conditions.push(c(
            ConditionType::Accepted,
            true,
            Reason::Accepted,
            "Listener is accepted",
        ));
    }
    // allowedRoutes.kinds
    let allowed = l.allowed_routes.clone().unwrap_or_default();
    let mut supported_kinds = Vec::new();
    let mut invalid_kinds = Vec::new();
    match &allowed.kinds {
        None => {
            if http {
                supported_kinds.push(RouteGroupKind {
                    group: GATEWAY_GROUP.into(),
                    kind: "HTTPRoute".into(),
                });
            }
        }
        Some(kinds) => {
            for k in kinds {
                let group = k.group.clone().unwrap_or_else(|| GATEWAY_GROUP.into());
                if group == GATEWAY_GROUP && k.kind == "HTTPRoute" && http {
                    supported_kinds.push(RouteGroupKind {
                        group,
                        kind: k.kind.clone(),
                    });
                } else {
                    invalid_kinds.push(format!("{}.{group}", k.kind));
                }
            }
        }
    }
    let takes_http_routes = !supported_kinds.is_empty();
    if invalid_kinds.is_empty() {
        conditions.push(c(
            ConditionType::ResolvedRefs,
            true,
            Reason::ResolvedRefs,
            "All references are resolved",
        ));
    } else {
        conditions.push(c(
            ConditionType::ResolvedRefs,
            false,
            Reason::InvalidRouteKinds,
            &format!(
                "unsupported route kinds: {} (only HTTPRoute)",
                invalid_kinds.join(", ")
            ),
        ));
    }
    conditions.push(c(
        ConditionType::Conflicted,
        false,
        Reason::NoConflicts,
        "No conflicts",
    ));
    if usable {
        conditions.push(c(
            ConditionType::Programmed,
            true,
            Reason::Programmed,
            "Listener is programmed",
        ));
    } else {
        conditions.push(c(
            ConditionType::Programmed,
            false,
            Reason::Invalid,
            "Listener is not valid",
        ));
    }
    let ns = allowed.namespaces.unwrap_or_default();
    let namespaces = match ns.from {
        None | Some(From::Same) => Namespaces::Same,
        Some(From::All) => Namespaces::All,
        Some(From::Selector) => Namespaces::Selector(ns.selector.unwrap_or_default()),
    };
    ListenerInfo {
        name: l.name.clone(),
        port: port.unwrap_or(0),
        protocol: l.protocol.clone(),
        hostname: l.hostname.as_deref().map(hostname::normalize),
        usable,
        unusable_reason,
        namespaces,
        takes_http_routes,
        supported_kinds,
        conditions,
        attached: BTreeSet::new(),
    }
}

/// Whether a label selector selects a namespace with `labels`. An unknown operator selects
/// nothing. An empty selector selects everything (Kubernetes semantics).
pub fn selects(selector: &Selector, labels: &BTreeMap<String, String>) -> bool {
    let by_labels = selector
        .match_labels
        .iter()
        .flatten()
        .all(|(k, v)| labels.get(k) == Some(v));
    let by_expressions = selector.match_expressions.iter().flatten().all(|e| {
        let values = e.values.as_deref().unwrap_or_default();
        let value = labels.get(&e.key);
        match e.operator.as_str() {
            "In" => value.is_some_and(|v| values.contains(v)),
            "NotIn" => value.is_none_or(|v| !values.contains(v)),
            "Exists" => value.is_some(),
            "DoesNotExist" => value.is_none(),
            _ => false,
        }
    });
    by_labels && by_expressions
}

/// Where a route attaches on one Gateway: `(listener index, effective hostnames)`.
pub type Attachments = Vec<(usize, Vec<String>)>;

/// The listeners of `gw` that a parentRef of a route in `route_ns` attaches to, or the
/// `Accepted=False` reason and message. When several listeners refuse for different reasons the
/// most telling one wins: NotAllowedByListeners > NoMatchingListenerHostname > NoMatchingParent.
pub fn attach(
    gw: &GatewayInfo,
    parent: &HttpRouteParentRefs,
    route_ns: &str,
    route_hostnames: &[String],
    namespaces: &BTreeMap<String, BTreeMap<String, String>>,
) -> Result<Attachments, RouteProblem> {
    let candidates: Vec<(usize, &ListenerInfo)> = gw
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| parent.section_name.as_deref().is_none_or(|s| s == l.name))
        .filter(|(_, l)| parent.port.is_none_or(|p| i32::from(l.port) == p))
        .collect();
    if candidates.is_empty() {
        let what = match (&parent.section_name, parent.port) {
            (Some(s), Some(p)) => format!("no listener named {s} on port {p}"),
            (Some(s), None) => format!("no listener named {s}"),
            (None, Some(p)) => format!("no listener on port {p}"),
            (None, None) => "the Gateway has no listeners".into(),
        };
        return Err(RouteProblem::new(
            Reason::NoMatchingParent,
            format!("Gateway {}: {what}", gw.key),
        ));
    }
    let empty = BTreeMap::new();
    let labels = namespaces.get(route_ns).unwrap_or(&empty);
    let mut out = Vec::new();
    let mut refusals: Vec<RouteProblem> = Vec::new();
    for (i, l) in candidates {
        if !l.usable {
            refusals.push(RouteProblem::new(
                Reason::NoMatchingParent,
                l.unusable_reason.clone(),
            ));
            continue;
        }
        let ns_ok = match &l.namespaces {
            Namespaces::Same => route_ns == gw.key.namespace,
            Namespaces::All => true,
            Namespaces::Selector(s) => selects(s, labels),
        };
        if !l.takes_http_routes || !ns_ok {
            let why = if l.takes_http_routes {
                format!(
                    "listener {} does not allow routes from namespace {route_ns}",
                    l.name
                )
            } else {
                format!("listener {} does not allow HTTPRoutes", l.name)
            };
            refusals.push(RouteProblem::new(Reason::NotAllowedByListeners, why));
            continue;
        }
        match hostname::effective(l.hostname.as_deref(), route_hostnames) {
            Some(hosts) => out.push((i, hosts)),
            None => refusals.push(RouteProblem::new(
                Reason::NoMatchingListenerHostname,
                format!(
                    "no route hostname matches listener {} hostname {}",
                    l.name,
                    l.hostname.as_deref().unwrap_or_default()
                ),
            )),
        }
    }
    if !out.is_empty() {
        return Ok(out);
    }
    let best = refusals
        .iter()
        .map(|r| telling(r.reason))
        .max()
        .unwrap_or(0);
    let reason = refusals
        .iter()
        .find(|r| telling(r.reason) == best)
        .map_or(Reason::NoMatchingParent, |r| r.reason);
    let message = refusals
        .iter()
        .filter(|r| telling(r.reason) == best)
        .map(|r| r.message.as_str())
        .collect::<Vec<_>>()
        .join("; ");
    Err(RouteProblem { reason, message })
}

/// How much a listener's refusal tells the route's author (the most telling wins in
/// [`attach`]): NotAllowedByListeners > NoMatchingListenerHostname > anything else.
fn telling(reason: Reason) -> u8 {
    match reason {
        Reason::NotAllowedByListeners => 2,
        Reason::NoMatchingListenerHostname => 1,
        _ => 0,
    }
}

/// Gateway-level conditions from its listeners.
pub fn gateway_conditions(gw: &GatewayInfo) -> Vec<Condition> {
    let g = gw.generation;
    let usable = gw.listeners.iter().filter(|l| l.usable).count();
    let invalid = gw.listeners.len() - usable;
    let accepted = if invalid == 0 {
        Condition::new(
            ConditionType::Accepted,
            true,
            Reason::Accepted,
            "Gateway is accepted",
            g,
        )
    } else {
        Condition::new(
            ConditionType::Accepted,
            usable > 0,
            Reason::ListenersNotValid,
            format!(
                "{invalid} of {} listeners are not valid",
                gw.listeners.len()
            ),
            g,
        )
    };
    // A listener with unresolved certificates takes routes but is not programmed (see [`tls`]).
    let programmed = gw.listeners.iter().filter(|l| l.programmed()).count();
    let programmed = if programmed > 0 {
        let message = if programmed == usable {
            "Gateway is programmed".to_string()
        } else {
            format!(
                "{programmed} of {} listeners are programmed",
                gw.listeners.len()
            )
        };
        Condition::new(
            ConditionType::Programmed,
            true,
            Reason::Programmed,
            message,
            g,
        )
    } else {
        Condition::new(
            ConditionType::Programmed,
            false,
            Reason::Invalid,
            if usable > 0 {
                "Gateway has no programmed listener"
            } else {
                "Gateway has no valid listener"
            },
            g,
        )
    };
    vec![accepted, programmed]
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_api::experimental::gateways::GatewayListenersAllowedRoutesNamespacesSelectorMatchExpressions as Expr;

    fn labels(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn selector_match_labels_and_expressions() {
        let ns = labels(&[("env", "prod"), ("team", "shop")]);
        let sel = |ml: &[(&str, &str)], ex: Vec<Expr>| Selector {
            match_labels: (!ml.is_empty()).then(|| labels(ml)),
            match_expressions: (!ex.is_empty()).then_some(ex),
        };
        let expr = |k: &str, op: &str, v: &[&str]| Expr {
            key: k.into(),
            operator: op.into(),
            values: (!v.is_empty()).then(|| v.iter().map(|s| s.to_string()).collect()),
        };
        assert!(selects(&sel(&[], vec![]), &ns));
        assert!(selects(&sel(&[("env", "prod")], vec![]), &ns));
        assert!(!selects(&sel(&[("env", "dev")], vec![]), &ns));
        assert!(selects(
            &sel(&[], vec![expr("team", "In", &["shop", "web"])]),
            &ns
        ));
        assert!(!selects(
            &sel(&[], vec![expr("team", "NotIn", &["shop"])]),
            &ns
        ));
        assert!(selects(
            &sel(&[], vec![expr("missing", "NotIn", &["x"])]),
            &ns
        ));
        assert!(selects(&sel(&[], vec![expr("env", "Exists", &[])]), &ns));
        assert!(selects(
            &sel(&[], vec![expr("gpu", "DoesNotExist", &[])]),
            &ns
        ));
        assert!(!selects(&sel(&[], vec![expr("env", "Bogus", &[])]), &ns));
        assert!(!selects(
            &sel(&[("env", "prod")], vec![expr("env", "DoesNotExist", &[])]),
            &ns
        ));
    }
}
