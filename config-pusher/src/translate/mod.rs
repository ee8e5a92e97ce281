//! `translate(store, settings) → Output`: one pure, deterministic pass from Gateway API objects to
//! the filter's route tables (one per proxy role) and the objects' statuses. Status and tables
//! come from the same validation, so they never disagree.
//!
//! - [`gateway`]: GatewayClasses, Gateways, listeners, allowedRoutes, attachment to listeners;
//! - [`mesh`]: Service (GAMMA) parents, producer and consumer routes;
//! - [`hostname`]: listener × route hostname intersection;
//! - [`route`], [`filter`], [`backend`]: rules, filters, backendRefs (ReferenceGrant, endpoints);
//! - [`precedence`]: match ranks; [`status`]: conditions and reasons.
//!
//! Every table is checked with [`gammaroute_filter::table::accept`] before it is returned; a table
//! that fails (which would be a translate bug, or input the API server would have refused, such as
//! two Services with one ClusterIP) is replaced by an empty table for its role and the error is
//! reported in [`Output::errors`], so the filter never receives a table it would reject.

use std::collections::{BTreeMap, BTreeSet};

use gammaroute_filter::table::{
    self, Attachment, Listener, MeshService, MeshServicePort, RouteOrigin, RouteTable,
};

use crate::store::{ObjectKey, Store};

pub mod backend;
pub mod filter;
pub mod gateway;
pub mod hostname;
pub mod mesh;
mod parallel;
pub mod precedence;
pub mod route;
pub mod status;
pub mod tls;

use backend::{Index, GATEWAY_GROUP};
use route::Converted;
use status::{Condition, ConditionType, Reason, RouteProblem, StatusDoc};

/// The default `GatewayClass.spec.controllerName` config-pusher serves.
pub const DEFAULT_CONTROLLER_NAME: &str = "gammaroute.dev/config-pusher";

/// Translation settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Settings {
    /// GatewayClasses with this `controllerName` are ours.
    pub controller_name: String,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            controller_name: DEFAULT_CONTROLLER_NAME.to_string(),
        }
    }
}

/// What a route is translated for: Gateway parents enforce ReferenceGrants, Service parents do not
/// (see [`backend`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Context {
    Gateway,
    Mesh,
}

/// The result of a translation.
#[derive(Debug, Clone, Default)]
pub struct Output {
    /// Tables by role (`gateway/<ns>/<name>`, `mesh/<namespace>`), each accepted by the filter's
    /// validation and versioned with its content hash.
    pub tables: BTreeMap<String, RouteTable>,
    /// Status of every GatewayClass, Gateway and HTTPRoute we are responsible for, in kind, then
    /// namespace/name order.
    pub statuses: Vec<StatusDoc>,
    /// Things worth a log line that are not part of any status (e.g. a parentRef to a Gateway that
    /// does not exist).
    pub notes: Vec<String>,
    /// Tables that failed the filter's validation and were replaced by empty ones.
    pub errors: Vec<TableRejected>,
}

/// A translated table the filter's validation refused (a translate bug, or input the API server
/// would have refused): `render` writes an empty table for its role, `serve` keeps the role's
/// previous table.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("table {role}: {error}")]
pub struct TableRejected {
    pub role: String,
    #[source]
    pub error: table::TableError,
}

/// Translates the store. Pure: same store and settings, same output, byte for byte.
pub fn translate(store: &Store, settings: &Settings) -> Output {
    let idx = Index::new(store);
    let namespaces = store.namespaces();
    let mut out = Output::default();

    let classes = gateway::classes(store, settings);
    let mut gateways: BTreeMap<ObjectKey, gateway::GatewayInfo> =
        gateway::gateways(store, &classes)
            .into_iter()
            .map(|g| (g.key.clone(), g))
            .collect();

    let converted = convert_all(store, &idx, &gateways);
    // gateway → listener index → route → effective hostnames
    let mut gw_attach: BTreeMap<ObjectKey, GatewayAttachments> = BTreeMap::new();
    let mut mesh_attach = mesh::MeshAttachments::default();

    for (key, stored) in &store.http_routes {
        let route = &stored.object;
        let generation = route.metadata.generation;
        let hostnames = route.spec.hostnames.clone().unwrap_or_default();
        let mut parents = Vec::new();
        for p in route.spec.parent_refs.iter().flatten() {
            let group = p.group.clone().unwrap_or_else(|| GATEWAY_GROUP.to_string());
            let kind = p.kind.clone().unwrap_or_else(|| "Gateway".to_string());
            let parent_ref = status::ParentRef {
                group: group.clone(),
                kind: kind.clone(),
                namespace: p.namespace.clone(),
                name: p.name.clone(),
                section_name: p.section_name.clone(),
                port: p.port,
            };
            let (ctx, attached): (Context, Result<(), RouteProblem>) =
                match (group.as_str(), kind.as_str()) {
                    (GATEWAY_GROUP, "Gateway") => {
                        let gkey = ObjectKey::new(
                            p.namespace.clone().unwrap_or_else(|| key.namespace.clone()),
                            p.name.clone(),
                        );
                        let Some(gw) = gateways.get(&gkey) else {
                            if !store.gateways.contains_key(&gkey) {
                                out.notes.push(format!(
                                    "HTTPRoute {key}: parentRef Gateway {gkey} does not exist"
                                ));
                            }
                            continue; // not ours: another controller's status
                        };
                        let Some(conv) = converted.gateway.get(key) else {
                            continue;
                        };
                        match gateway::attach(gw, p, &key.namespace, &hostnames, &namespaces) {
                            Ok(listeners) if !conv.all_dropped() => {
                                let per = gw_attach.entry(gkey.clone()).or_default();
                                for (i, hosts) in listeners {
                                    let entry =
                                        per.entry(i).or_default().entry(key.clone()).or_default();
                                    for h in hosts {
                                        if !entry.contains(&h) {
                                            entry.push(h);
                                        }
                                    }
                                    if let Some(gw) = gateways.get_mut(&gkey) {
                                        if let Some(l) = gw.listeners.get_mut(i) {
                                            l.attached.insert(key.clone());
                                        }
                                    }
                                }
                                (Context::Gateway, Ok(()))
                            }
                            Ok(_) => (Context::Gateway, Ok(())),
                            Err(e) => (Context::Gateway, Err(e)),
                        }
                    }
                    _ if is_service(&group, &kind) => {
                        let Some(conv) = converted.mesh.get(key) else {
                            continue;
                        };
                        match mesh::resolve(&idx, p, &key.namespace) {
                            Ok(parent) => {
                                if !conv.all_dropped() {
                                    mesh_attach.add(key, &parent);
                                }
                                (Context::Mesh, Ok(()))
                            }
                            Err(e) => (Context::Mesh, Err(e)),
                        }
                    }
                    _ => continue, // a parent kind we do not implement: not ours
                };
            let Some(conv) = converted.of(ctx).get(key) else {
                continue;
            };
            parents.push(status::RouteParentStatus {
                parent_ref,
                controller_name: settings.controller_name.clone(),
                conditions: route_conditions(conv, attached, generation),
            });
        }
        if !parents.is_empty() {
            out.statuses.push(StatusDoc {
                api_version: "gateway.networking.k8s.io/v1",
                kind: "HTTPRoute",
                metadata: status::Meta {
                    namespace: Some(key.namespace.clone()),
                    name: key.name.clone(),
                },
                status: status::Status::HttpRoute(status::RouteStatus { parents }),
            });
        }
    }

    // GatewayClass and Gateway statuses.
    for (name, conditions) in &classes {
        out.statuses.push(StatusDoc {
            api_version: "gateway.networking.k8s.io/v1",
            kind: "GatewayClass",
            metadata: status::Meta {
                namespace: None,
                name: name.clone(),
            },
            status: status::Status::GatewayClass(status::GatewayClassStatus {
                conditions: conditions.clone(),
            }),
        });
    }
    for gw in gateways.values() {
        let listeners = gw
            .listeners
            .iter()
            .map(|l| status::ListenerStatus {
                name: l.name.clone(),
                supported_kinds: l.supported_kinds.clone(),
                attached_routes: i32::try_from(l.attached.len()).unwrap_or(i32::MAX),
                conditions: l.conditions.clone(),
            })
            .collect();
        out.statuses.push(StatusDoc {
            api_version: "gateway.networking.k8s.io/v1",
            kind: "Gateway",
            metadata: status::Meta {
                namespace: Some(gw.key.namespace.clone()),
                name: gw.key.name.clone(),
            },
            status: status::Status::Gateway(status::GatewayStatus {
                addresses: gw.addresses.clone(),
                conditions: gateway::gateway_conditions(gw),
                listeners,
            }),
        });
    }
    out.statuses.sort_by(|a, b| a.sort_key().cmp(&b.sort_key()));

    // The tables: independent of each other, built (and validated, hashed) on every core.
    let jobs: Vec<TableJob<'_>> = gateways
        .values()
        .map(TableJob::Gateway)
        .chain(namespaces.keys().map(|ns| TableJob::Mesh(ns.as_str())))
        .collect();
    // Services with mesh routes, whatever the client.
    let routed: BTreeSet<&ObjectKey> = mesh_attach
        .producer
        .keys()
        .chain(mesh_attach.consumer.keys())
        .collect();
    let built = parallel::map(&jobs, |job| {
        let t = match job {
            TableJob::Gateway(gw) => gateway_table(gw, gw_attach.get(&gw.key), &converted),
            TableJob::Mesh(client) => mesh_table(client, &routed, &idx, &mesh_attach, &converted),
        };
        let role = t.role.clone();
        (role, table::accept(t))
    });
    for (role, accepted) in built {
        finish(&mut out, role, accepted);
    }
    out
}

/// Every HTTPRoute translated for each kind of parent it names among ours (on every core: this is
/// most of the per-route work), with match ranks assigned over all routes of a kind (tables
/// renumber them, see [`precedence::densify`]).
fn convert_all(
    store: &Store,
    idx: &Index<'_>,
    gateways: &BTreeMap<ObjectKey, gateway::GatewayInfo>,
) -> ConvertedRoutes {
    let routes: Vec<_> = store.http_routes.iter().collect();
    let both = parallel::map(&routes, |(key, stored)| {
        let route = &stored.object;
        let (mut gateway, mut mesh) = (false, false);
        for p in route.spec.parent_refs.iter().flatten() {
            let group = p.group.as_deref().unwrap_or(GATEWAY_GROUP);
            let kind = p.kind.as_deref().unwrap_or("Gateway");
            if group == GATEWAY_GROUP && kind == "Gateway" {
                let ns = p.namespace.as_deref().unwrap_or(&key.namespace);
                gateway |= gateways.contains_key(&ObjectKey::new(ns.to_string(), p.name.clone()));
            } else if is_service(group, kind) {
                mesh = true;
            }
        }
        let convert = |ctx| route::convert(idx, &key.namespace, &key.name, route, ctx);
        (
            gateway.then(|| convert(Context::Gateway)),
            mesh.then(|| convert(Context::Mesh)),
        )
    });
    let mut out = ConvertedRoutes::default();
    let (mut gateway_ages, mut mesh_ages) = (Vec::new(), Vec::new());
    for ((key, stored), (gateway, mesh)) in routes.into_iter().zip(both) {
        let age = stored.age_key(&stored.object.metadata);
        if let Some(c) = gateway {
            gateway_ages.push(age.clone());
            out.gateway.insert(key.clone(), c);
        }
        if let Some(c) = mesh {
            mesh_ages.push(age);
            out.mesh.insert(key.clone(), c);
        }
    }
    // The store iterates in key order, so each map's values line up with its ages.
    for (routes, ages) in [(&mut out.gateway, gateway_ages), (&mut out.mesh, mesh_ages)] {
        let mut all: Vec<&mut table::Route> = routes.values_mut().map(|c| &mut c.route).collect();
        precedence::assign(&mut all, &ages);
    }
    out
}

/// A parentRef to a Service (GAMMA): core group, or the Gateway API group as some tools write it.
fn is_service(group: &str, kind: &str) -> bool {
    kind == "Service" && (group.is_empty() || group == GATEWAY_GROUP)
}

/// Every route translated, per kind of parent, by route key.
#[derive(Default)]
struct ConvertedRoutes {
    gateway: BTreeMap<ObjectKey, Converted>,
    mesh: BTreeMap<ObjectKey, Converted>,
}

impl ConvertedRoutes {
    fn of(&self, ctx: Context) -> &BTreeMap<ObjectKey, Converted> {
        match ctx {
            Context::Gateway => &self.gateway,
            Context::Mesh => &self.mesh,
        }
    }
}

/// One table to build: a Gateway's, or a mesh client namespace's.
enum TableJob<'a> {
    Gateway(&'a gateway::GatewayInfo),
    Mesh(&'a str),
}

/// Listener index → attached route → its effective hostnames.
type GatewayAttachments = BTreeMap<usize, BTreeMap<ObjectKey, Vec<String>>>;

/// The table of one Gateway: its usable listeners and the routes attached to them.
fn gateway_table(
    gw: &gateway::GatewayInfo,
    attach: Option<&GatewayAttachments>,
    converted: &ConvertedRoutes,
) -> RouteTable {
    let used: BTreeSet<&ObjectKey> = attach
        .iter()
        .flat_map(|a| a.values())
        .flat_map(|r| r.keys())
        .collect();
    let (routes, index) = routes_for(&used, converted.of(Context::Gateway));
    let listeners = gw
        .listeners
        .iter()
        .enumerate()
        .filter(|(_, l)| l.usable)
        .map(|(i, l)| Listener {
            name: l.name.clone(),
            port: l.port,
            hostname: l.hostname.clone(),
            attachments: attach
                .and_then(|a| a.get(&i))
                .into_iter()
                .flatten()
                .filter_map(|(k, hosts)| {
                    Some(Attachment {
                        route: *index.get(k)?,
                        hostnames: hosts.clone(),
                    })
                })
                .collect(),
        })
        .collect();
    RouteTable {
        version: String::new(),
        role: format!("gateway/{}/{}", gw.key.namespace, gw.key.name),
        listeners,
        services: vec![],
        routes,
    }
}

/// The table of the sidecars in namespace `client`: every Service with routes, each port with
/// the consumer routes of `client` if it has any there, else the producer routes.
fn mesh_table(
    client: &str,
    routed: &BTreeSet<&ObjectKey>,
    idx: &Index<'_>,
    mesh_attach: &mesh::MeshAttachments,
    converted: &ConvertedRoutes,
) -> RouteTable {
    let mut services = Vec::new();
    let mut per_service: Vec<(MeshService, Vec<Vec<&ObjectKey>>)> = Vec::new();
    for &svc_key in routed {
        let Some(svc) = idx.service(&svc_key.namespace, &svc_key.name) else {
            continue;
        };
        let consumer = mesh_attach
            .consumer
            .get(svc_key)
            .and_then(|c| c.get(client));
        let (origin, by_port) = match consumer {
            Some(c) => (RouteOrigin::Consumer, Some(c)),
            None => (RouteOrigin::Producer, mesh_attach.producer.get(svc_key)),
        };
        let Some(by_port) = by_port else { continue };
        let mut ports = Vec::new();
        let mut port_routes = Vec::new();
        for sp in svc
            .spec
            .as_ref()
            .and_then(|s| s.ports.as_ref())
            .into_iter()
            .flatten()
        {
            let Ok(port) = u16::try_from(sp.port) else {
                continue;
            };
            let Some(rs) = by_port.get(&port).filter(|rs| !rs.is_empty()) else {
                continue;
            };
            if ports.iter().any(|p: &MeshServicePort| p.port == port) {
                continue;
            }
            ports.push(MeshServicePort {
                port,
                name: sp.name.clone(),
                origin,
                attachments: vec![],
            });
            port_routes.push(rs.iter().collect());
        }
        if ports.is_empty() {
            continue;
        }
        per_service.push((
            MeshService {
                namespace: svc_key.namespace.clone(),
                name: svc_key.name.clone(),
                cluster_ips: mesh::cluster_ips(svc),
                ports,
            },
            port_routes,
        ));
    }
    let used: BTreeSet<&ObjectKey> = per_service
        .iter()
        .flat_map(|(_, p)| p.iter().flatten().copied())
        .collect();
    let (routes, index) = routes_for(&used, converted.of(Context::Mesh));
    for (mut svc, port_routes) in per_service {
        for (port, rs) in svc.ports.iter_mut().zip(port_routes) {
            port.attachments = rs
                .iter()
                .filter_map(|k| {
                    Some(Attachment {
                        route: *index.get(*k)?,
                        hostnames: vec![],
                    })
                })
                .collect();
        }
        services.push(svc);
    }
    RouteTable {
        version: String::new(),
        role: format!("mesh/{client}"),
        listeners: vec![],
        services,
        routes,
    }
}

/// The table routes for a set of route keys (namespace/name order) with dense ranks, and each
/// key's index.
fn routes_for<'k>(
    used: &BTreeSet<&'k ObjectKey>,
    converted: &BTreeMap<ObjectKey, Converted>,
) -> (Vec<table::Route>, BTreeMap<&'k ObjectKey, u32>) {
    let mut routes = Vec::with_capacity(used.len());
    let mut index = BTreeMap::new();
    for k in used {
        let Some(c) = converted.get(*k) else {
            continue;
        };
        index.insert(*k, u32::try_from(routes.len()).unwrap_or(u32::MAX));
        routes.push(c.route.clone());
    }
    precedence::densify(&mut routes);
    (routes, index)
}

/// Records a table validated the way the filter will ([`table::accept`]); a failing one is
/// replaced by an empty table.
fn finish(out: &mut Output, role: String, accepted: Result<RouteTable, table::TableError>) {
    match accepted {
        Ok(t) => {
            out.tables.insert(role, t);
        }
        Err(e) => {
            tracing::error!(role = %role, "translated table rejected by validation, publishing an empty one: {e}");
            let empty = RouteTable {
                role: role.clone(),
                ..RouteTable::default()
            }
            .with_version();
            out.errors.push(TableRejected {
                role: role.clone(),
                error: e,
            });
            out.tables.insert(role, empty);
        }
    }
}

/// The conditions of one route parent.
fn route_conditions(
    conv: &Converted,
    attached: Result<(), RouteProblem>,
    g: Option<i64>,
) -> Vec<Condition> {
    let accepted = match attached {
        Err(RouteProblem { reason, message }) => {
            Condition::new(ConditionType::Accepted, false, reason, message, g)
        }
        Ok(()) if conv.all_dropped() => {
            let why = conv
                .dropped
                .first()
                .map_or(Reason::UnsupportedValue, |d| d.reason);
            let message = if conv.total_rules == 0 {
                "the route has no rules".to_string()
            } else {
                format!("All rules are invalid: {}", dropped_message(conv))
            };
            Condition::new(ConditionType::Accepted, false, why, message, g)
        }
        Ok(()) => Condition::new(
            ConditionType::Accepted,
            true,
            Reason::Accepted,
            "Route is accepted",
            g,
        ),
    };
    let resolved = match conv.unresolved.first() {
        None => Condition::new(
            ConditionType::ResolvedRefs,
            true,
            Reason::ResolvedRefs,
            "All references are resolved",
            g,
        ),
        Some(first) => Condition::new(
            ConditionType::ResolvedRefs,
            false,
            first.reason,
            conv.unresolved
                .iter()
                .map(|p| p.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            g,
        ),
    };
    let partially = (accepted.is_true() && !conv.dropped.is_empty()).then(|| {
        let indexes: Vec<String> = conv.dropped.iter().map(|d| d.rule.to_string()).collect();
        Condition::new(
            ConditionType::PartiallyInvalid,
            true,
            conv.dropped
                .first()
                .map_or(Reason::UnsupportedValue, |d| d.reason),
            format!(
                "Dropped Rule(s) [{}]: {}",
                indexes.join(", "),
                dropped_message(conv)
            ),
            g,
        )
    });
    let mut out = vec![accepted, resolved];
    out.extend(partially);
    out
}

fn dropped_message(conv: &Converted) -> String {
    conv.dropped
        .iter()
        .map(|d| format!("rule {}: {}", d.rule, d.message))
        .collect::<Vec<_>>()
        .join("; ")
}
