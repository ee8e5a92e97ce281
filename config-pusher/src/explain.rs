//! `explain`: which route, rule, match and backend serve one request, and why.
//!
//! It runs on the tables `translate` produced and the filter's own engine: the compiled
//! [`Router`] selects (what Envoy would do), the naive [`reference`] router must select the same
//! (a disagreement is a bug and is reported first, loudly), and [`Reference::evaluate`] gives every
//! entry of the parent with its precedence key and the first condition that failed — the
//! higher-precedence entries that did not match and why, and the lower-precedence ones that
//! matched but lost. The decision (backends and their shares, filters, redirect `Location`,
//! rewrites, timeouts, retry, or the local 404/500/503 and its reason) comes from the same
//! [`gammaroute_filter::router::decision::build`] the filter runs.

use std::collections::{BTreeSet, HashSet};
use std::fmt::Write as _;
use std::net::IpAddr;

use serde::Serialize;

use gammaroute_filter::router::reference::{self, Evaluated, Failed, Reference};
use gammaroute_filter::router::{
    decision, request::strip_port, Destination, LocalReason, Outcome, OwnedRequest, ParentRef,
    Request, Router, Selected, Selection,
};
use gammaroute_filter::table::{
    Backend, BackendTarget, Filter, HeaderModifier, Match, PathMatch, PathModifier, RouteOrigin,
    RouteTable, TableError, ValueMatch,
};

use crate::render::envoy;
use crate::store::{ObjectKey, Store};
use crate::translate::Output;

/// Why `explain` cannot start: a `--parent`, request or header it cannot read, or a parent the
/// input does not serve.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ExplainError {
    #[error("`{0}`: expected gateway/NS/NAME[/LISTENER] or service/NS/NAME:PORT")]
    ParentSyntax(String),
    #[error("`{0}`: expected a URL like http://host/path")]
    NotAUrl(String),
    #[error("`{0}`: the scheme must be http or https")]
    Scheme(String),
    #[error("header `{0}`: expected 'name: value'")]
    HeaderSyntax(String),
    #[error("`{0}`: no host")]
    NoHost(String),
    #[error(
        "Gateway {key} is not served by this controller (class {class}); see `config-pusher check`"
    )]
    GatewayNotServed { key: ObjectKey, class: String },
    #[error("no Gateway {0} in the input")]
    NoGateway(ObjectKey),
    #[error("no namespace {0} in the input")]
    NoNamespace(String),
    #[error("Service {0} is not in the input or has no ClusterIP")]
    NoServiceIp(ObjectKey),
    #[error("listener {listener} of Gateway {key} is not programmed (see `config-pusher check`)")]
    ListenerNotProgrammed { key: ObjectKey, listener: String },
    #[error("Gateway {key} has no listener {listener}; it has: {listeners}")]
    NoSuchListener {
        key: ObjectKey,
        listener: String,
        /// `name (port N)`, comma-separated.
        listeners: String,
    },
    #[error("Gateway {0} has no programmed listener (see `config-pusher check`)")]
    NoProgrammedListener(ObjectKey),
    #[error("Gateway {key} listens on several ports: name a listener (--parent gateway/{}/{}/LISTENER) or put the port in the URL; listeners: {listeners}", .key.namespace, .key.name)]
    SeveralPorts { key: ObjectKey, listeners: String },
}

/// `--parent`: `gateway/NS/NAME[/LISTENER]` or `service/NS/NAME:PORT`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ParentSpec {
    Gateway {
        namespace: String,
        name: String,
        listener: Option<String>,
    },
    Service {
        namespace: String,
        name: String,
        port: u16,
    },
}

impl std::str::FromStr for ParentSpec {
    type Err = ExplainError;

    fn from_str(s: &str) -> Result<ParentSpec, ExplainError> {
        let usage = || ExplainError::ParentSyntax(s.to_string());
        let parts: Vec<&str> = s.split('/').collect();
        match parts.as_slice() {
            ["gateway", ns, name] | ["gateway", ns, name, ""]
                if !ns.is_empty() && !name.is_empty() =>
            {
                Ok(ParentSpec::Gateway {
                    namespace: (*ns).into(),
                    name: (*name).into(),
                    listener: None,
                })
            }
            ["gateway", ns, name, listener] if !ns.is_empty() && !name.is_empty() => {
                Ok(ParentSpec::Gateway {
                    namespace: (*ns).into(),
                    name: (*name).into(),
                    listener: Some((*listener).into()),
                })
            }
            ["service", ns, name_port] if !ns.is_empty() => {
                let (name, port) = name_port.split_once(':').ok_or_else(usage)?;
                let port = port.parse().map_err(|_| usage())?;
                if name.is_empty() {
                    return Err(usage());
                }
                Ok(ParentSpec::Service {
                    namespace: (*ns).into(),
                    name: name.into(),
                    port,
                })
            }
            _ => Err(usage()),
        }
    }
}

/// The request to explain, `[METHOD] URL` and `-H 'name: value'` headers parsed into the filter's
/// own [`OwnedRequest`] (the one request builder of tests, fuzz targets and tools). Its
/// destination is set when the `--parent` is known ([`HttpRequest::request`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest(OwnedRequest);

impl std::ops::Deref for HttpRequest {
    type Target = OwnedRequest;
    fn deref(&self) -> &OwnedRequest {
        &self.0
    }
}

impl HttpRequest {
    /// Parses `GET http://host/path?q` (the method defaults to GET) and `name: value` headers.
    /// A `host:` header replaces the URL's host; an `https://` URL's host is also the TLS server
    /// name (SNI), as `curl` sends it, whatever `host:` says (so a coalesced connection's 421 can
    /// be explained).
    pub fn parse(line: &str, headers: &[String]) -> Result<HttpRequest, ExplainError> {
        let line = line.trim();
        let (method, url) = match line.split_once(char::is_whitespace) {
            Some((m, u)) => (m.to_ascii_uppercase(), u.trim()),
            None => ("GET".to_string(), line),
        };
        let (scheme, rest) = url
            .split_once("://")
            .ok_or_else(|| ExplainError::NotAUrl(url.to_string()))?;
        let scheme = scheme.to_ascii_lowercase();
        if scheme != "http" && scheme != "https" {
            return Err(ExplainError::Scheme(url.to_string()));
        }
        let mut req = OwnedRequest::from_url(&method, &format!("{scheme}://{rest}"))
            .ok_or_else(|| ExplainError::NotAUrl(url.to_string()))?;
        if scheme == "https" {
            req.server_name = strip_port(&req.authority).to_string();
        }
        for h in headers {
            let (name, value) = h
                .split_once(':')
                .ok_or_else(|| ExplainError::HeaderSyntax(h.clone()))?;
            let name = name.trim().to_ascii_lowercase();
            let value = value.trim();
            if name == "host" {
                req.authority = value.to_string();
            } else {
                req = req.header(&name, value);
            }
        }
        if req.authority.is_empty() {
            return Err(ExplainError::NoHost(url.to_string()));
        }
        Ok(HttpRequest(req))
    }

    /// The request as the router reads it, sent to `destination`.
    pub fn request(&self, destination: Destination) -> Request<'_> {
        Request {
            destination,
            ..self.0.view()
        }
    }
}

/// The table and connection destination a `--parent` names.
#[derive(Debug, Clone)]
pub struct Target {
    pub role: String,
    pub destination: Destination,
}

/// Resolves `--parent` (and `--client-namespace` for Services) against a translation.
pub fn target(
    store: &Store,
    output: &Output,
    parent: &ParentSpec,
    client_namespace: Option<&str>,
    req: &HttpRequest,
) -> Result<Target, ExplainError> {
    match parent {
        ParentSpec::Gateway {
            namespace,
            name,
            listener,
        } => {
            let role = format!("gateway/{namespace}/{name}");
            let key = ObjectKey::new(namespace, name);
            let Some(table) = output.tables.get(&role) else {
                return Err(match store.gateways.get(&key) {
                    Some(g) => ExplainError::GatewayNotServed {
                        class: g.object.spec.gateway_class_name.clone(),
                        key,
                    },
                    None => ExplainError::NoGateway(key),
                });
            };
            let port = gateway_port(store, &key, table, listener.as_deref(), req)?;
            Ok(Target {
                role,
                destination: Destination {
                    ip: IpAddr::from([127, 0, 0, 1]),
                    port,
                },
            })
        }
        ParentSpec::Service {
            namespace,
            name,
            port,
        } => {
            let client = client_namespace.unwrap_or(namespace);
            let role = format!("mesh/{client}");
            if !output.tables.contains_key(&role) {
                return Err(ExplainError::NoNamespace(client.to_string()));
            }
            let ip = envoy::service_ip(store, namespace, name)
                .ok_or_else(|| ExplainError::NoServiceIp(ObjectKey::new(namespace, name)))?;
            Ok(Target {
                role,
                destination: Destination { ip, port: *port },
            })
        }
    }
}

/// The Gateway port a request arrives on: the named listener's; else the URL's port if a
/// listener has it; else the only port; else the scheme's default if a listener has it; else the
/// only port of the scheme's listeners (`http://` → `protocol: HTTP`, `https://` → `HTTPS`: a
/// Gateway with an HTTP listener on 8080 and an HTTPS one on 8443 needs no port in the URL).
fn gateway_port(
    store: &Store,
    key: &ObjectKey,
    table: &RouteTable,
    listener: Option<&str>,
    req: &HttpRequest,
) -> Result<u16, ExplainError> {
    let names = || {
        table
            .listeners
            .iter()
            .map(|l| format!("{} (port {})", l.name, l.port))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(wanted) = listener {
        if let Some(l) = table.listeners.iter().find(|l| l.name == wanted) {
            return Ok(l.port);
        }
        let declared = store
            .gateways
            .get(key)
            .is_some_and(|g| g.object.spec.listeners.iter().any(|l| l.name == wanted));
        let (key, listener) = (key.clone(), wanted.to_string());
        return Err(if declared {
            ExplainError::ListenerNotProgrammed { key, listener }
        } else {
            ExplainError::NoSuchListener {
                key,
                listener,
                listeners: names(),
            }
        });
    }
    let ports: BTreeSet<u16> = table.listeners.iter().map(|l| l.port).collect();
    let explicit = req
        .authority
        .rsplit_once(':')
        .filter(|(h, _)| !h.ends_with(']') || req.authority.starts_with('['))
        .and_then(|(_, p)| p.parse::<u16>().ok());
    if let Some(p) = explicit.filter(|p| ports.contains(p)) {
        return Ok(p);
    }
    if let (1, Some(p)) = (ports.len(), ports.first()) {
        return Ok(*p);
    }
    let default = if req.scheme == "https" { 443 } else { 80 };
    if ports.contains(&default) {
        return Ok(default);
    }
    let protocol = if req.scheme == "https" {
        "HTTPS"
    } else {
        "HTTP"
    };
    let spec = store.gateways.get(key).map(|g| &g.object.spec.listeners);
    let of_scheme: BTreeSet<u16> = table
        .listeners
        .iter()
        .filter(|l| {
            spec.into_iter()
                .flatten()
                .any(|d| d.name == l.name && d.protocol == protocol)
        })
        .map(|l| l.port)
        .collect();
    if let (1, Some(p)) = (of_scheme.len(), of_scheme.first()) {
        return Ok(*p);
    }
    if ports.is_empty() {
        return Err(ExplainError::NoProgrammedListener(key.clone()));
    }
    Err(ExplainError::SeveralPorts {
        key: key.clone(),
        listeners: names(),
    })
}

/// `explain -o json`: the same explanation as data.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// `METHOD scheme://authority/path`.
    pub request: String,
    pub headers: Vec<Header>,
    /// The table's role and version.
    pub role: String,
    pub version: String,
    /// The parent the request arrived on; `None` when none serves it.
    pub parent: Option<String>,
    /// Whether the compiled and the reference router agree (exit code 3 otherwise).
    pub engines_agree: bool,
    pub decision: Decision,
    /// The entry that serves the request.
    pub winner: Option<Winner>,
    /// Every entry of the parent that did not match, in precedence order, with the condition that
    /// failed first.
    pub failed: Vec<FailedEntry>,
    /// Lower-precedence entries that matched too but lost.
    pub also_matched: Vec<LostEntry>,
}

/// A request header as given with `-H`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Header {
    pub name: String,
    pub value: String,
}

/// What the proxy does with the request (backend `draw` 0 for the forward details).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "camelCase")]
pub enum Decision {
    /// Forwarded to one of `backends`, picked by weight.
    #[serde(rename_all = "camelCase")]
    Forward { backends: Vec<BackendShare> },
    /// Answered by the proxy: `reason` as in `%RESPONSE_CODE_DETAILS%` (`gammaroute_<reason>`).
    #[serde(rename_all = "camelCase")]
    Local {
        status: u16,
        reason: String,
        location: Option<String>,
    },
    /// A mesh destination this table does not route: the host's default routing applies.
    Passthrough,
}

/// One backend of the winning rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct BackendShare {
    /// The cluster, or `answers <status>: <reason>` for an unavailable backend.
    pub backend: String,
    pub weight: u32,
    /// Its share of the rule's weight, e.g. `90%`.
    pub share: String,
}

/// The entry that serves the request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Winner {
    /// `namespace/name` of the HTTPRoute.
    pub route: String,
    /// The rule's position in `spec.rules`, and its `name` (GEP-995) if it has one.
    pub rule: u32,
    pub rule_name: Option<String>,
    /// The match's position in the rule's `matches`, and what it requires.
    #[serde(rename = "match")]
    pub match_index: u32,
    pub match_description: String,
    /// Why it won (hostname, rank, competition).
    pub why: String,
}

/// An entry that did not match.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailedEntry {
    /// `ns/name rule R match M`, or the route alone when its hostnames ruled it out.
    pub entry: String,
    /// What the entry requires.
    #[serde(rename = "match")]
    pub requires: String,
    /// The condition that failed.
    pub condition: String,
    /// Ahead of the winner in precedence (it would have won had it matched).
    pub higher_precedence: bool,
}

/// A lower-precedence entry that matched too.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LostEntry {
    pub entry: String,
    #[serde(rename = "match")]
    pub requires: String,
    /// Hostname pattern and rank.
    pub precedence: String,
}

/// What `explain` found.
#[derive(Debug, Clone)]
pub struct Explanation {
    /// The compiled router's selection (what the filter does).
    pub router: Selection,
    /// The reference router's selection.
    pub reference: Selection,
    /// Both routers, and explain's own reading of the reference's entries, select the same.
    pub agree: bool,
    /// The human explanation.
    pub text: String,
    /// The same, as data (`-o json`).
    pub report: Report,
}

/// Explains one request against one table.
pub fn explain(table: &RouteTable, req: &Request<'_>) -> Result<Explanation, TableError> {
    let router = Router::compile(table.clone())?;
    let reference = Reference::new(table);
    let compiled = router.select(req);
    let naive = reference.select(req);
    let parent = reference::parent(table, req);
    let evaluated = parent.map_or_else(Vec::new, |p| reference.evaluate(p, req));
    let winner = evaluated
        .iter()
        .filter(|e| e.failed.is_none())
        .min_by_key(|e| e.candidate.key());
    let own = match (reference::misdirected(table, req), parent, winner) {
        (Some(connection), _, _) => Selection::Misdirected(connection),
        (None, None, _) => Selection::NoParent,
        (None, Some(p), None) => Selection::NoMatch(p),
        (None, Some(_), Some(w)) => Selection::Matched(w.candidate.selected),
    };
    // The decision is built by shared code from the selection; compared anyway, for the draws
    // explain shows.
    let decisions_agree =
        (0..4).all(|draw| router.decide(req, draw) == reference.decide(req, draw));
    let agree = compiled == naive && naive == own && decisions_agree;

    let mut w = Writer::default();
    if !agree {
        w.line(
            "!!!",
            "ENGINE DISAGREEMENT: this is a gammaroute bug, please report it with this output",
        );
        w.line(
            "",
            &format!("compiled Router:  {}", selection_label(table, compiled)),
        );
        w.line(
            "",
            &format!("reference router: {}", selection_label(table, naive)),
        );
        w.line(
            "",
            &format!("explain:          {}", selection_label(table, own)),
        );
        w.line(
            "",
            "the explanation below follows the compiled Router (what the filter does)",
        );
        w.blank();
    }
    w.line(
        "request",
        &format!(
            "{} {}://{}{}",
            req.method, req.scheme, req.authority, req.path
        ),
    );
    for (n, v) in req.headers {
        w.line("", &format!("{n}: {v}"));
    }
    w.line(
        "table",
        &format!("{}  (version {})", table.role, short(&table.version)),
    );
    let shown_parent = match compiled {
        Selection::NoParent => parent,
        Selection::NoMatch(p) | Selection::Misdirected(p) => Some(p),
        Selection::Matched(sel) => Some(sel.parent),
    };
    match shown_parent {
        Some(p) => w.line("parent", &parent_label(table, p)),
        None => w.line("parent", &no_parent(table, req)),
    }
    if agree {
        w.line("engine", "compiled Router and reference router agree");
    }

    let mut report = Report {
        request: format!(
            "{} {}://{}{}",
            req.method, req.scheme, req.authority, req.path
        ),
        headers: req
            .headers
            .iter()
            .map(|(name, value)| Header {
                name: name.clone(),
                value: value.clone(),
            })
            .collect(),
        role: table.role.clone(),
        version: table.version.clone(),
        parent: shown_parent.map(|p| parent_label(table, p)),
        engines_agree: agree,
        decision: decision_report(table, &router, compiled, req),
        winner: None,
        failed: Vec::new(),
        also_matched: Vec::new(),
    };
    let decision = router.decide(req, 0);
    match compiled {
        Selection::NoParent => {
            if let Outcome::Passthrough = decision.outcome {
                w.line(
                    "decision",
                    "passthrough: not a routed Service port for this namespace; the host's default routing applies",
                );
            } else {
                w.line(
                    "decision",
                    "404 (no_route): no listener serves this port and Host",
                );
            }
        }
        Selection::NoMatch(_) => {
            w.line(
                "decision",
                "404 (no_route): no route of this parent matches",
            );
        }
        Selection::Misdirected(_) => {
            w.line(
                "decision",
                &format!(
                    "421 (misdirected): the TLS connection was made for {} (SNI), another listener than the Host's",
                    req.server_name
                ),
            );
        }
        Selection::Matched(sel) => {
            report.winner = matched(&mut w, table, &router, sel, &evaluated, req);
        }
    }

    // No parent, or a misdirected request: no entry of the parent was looked at.
    if shown_parent.is_none() || matches!(compiled, Selection::Misdirected(_)) {
        return Ok(Explanation {
            router: compiled,
            reference: naive,
            agree,
            text: w.out,
            report,
        });
    }
    let winner_key = match compiled {
        Selection::Matched(sel) => evaluated
            .iter()
            .filter(|e| e.failed.is_none() && e.candidate.selected == sel)
            .map(|e| e.candidate.key())
            .min(),
        _ => None,
    };
    let before = |e: &Evaluated<'_>| winner_key.is_none_or(|k| e.candidate.key() < k);
    let mut seen = BTreeSet::new();
    let mut missed: Vec<&Evaluated<'_>> = evaluated.iter().filter(|e| e.failed.is_some()).collect();
    missed.sort_by_key(|e| e.candidate.key());
    for e in missed {
        let s = e.candidate.selected;
        let row = match e.failed {
            Some(Failed::Host) => {
                if !seen.insert((s.route, u32::MAX, e.candidate.position.attachment)) {
                    continue;
                }
                let route = table.routes.get(s.route as usize);
                let hostnames = reference::attachments(table, s.parent)
                    .get(e.candidate.position.attachment as usize)
                    .map_or(String::new(), |a| a.hostnames.join(", "));
                [
                    route.map_or("?".into(), |r| format!("{}/{}", r.namespace, r.name)),
                    format!("hostnames {hostnames}"),
                    format!("host: \"{}\" does not match", req.host()),
                ]
            }
            Some(f) => {
                if !seen.insert((s.route, s.rule, s.matched)) {
                    continue;
                }
                let m = decision::resolve(table, s).map(|(_, _, m, _)| m);
                [
                    entry_label(table, s),
                    m.map_or("?".into(), describe_match),
                    m.map_or("?".into(), |m| describe_failure(f, m, req)),
                ]
            }
            None => continue,
        };
        let [entry, requires, condition] = row;
        report.failed.push(FailedEntry {
            entry,
            requires,
            condition,
            higher_precedence: before(e),
        });
    }
    // The text lists those that would have won.
    let rows: Vec<Vec<String>> = report
        .failed
        .iter()
        .filter(|f| f.higher_precedence)
        .map(|f| vec![f.entry.clone(), f.requires.clone(), f.condition.clone()])
        .collect();
    w.blank();
    let title = if winner_key.is_some() {
        "higher-precedence entries that did not match"
    } else {
        "entries that did not match"
    };
    w.list(title, rows);

    if let Some(k) = winner_key {
        let mut lost: Vec<&Evaluated<'_>> = evaluated
            .iter()
            .filter(|e| e.failed.is_none() && e.candidate.key() > k)
            .collect();
        lost.sort_by_key(|e| e.candidate.key());
        let mut seen = HashSet::new();
        if let Selection::Matched(sel) = compiled {
            seen.insert(sel);
        }
        let rows: Vec<Vec<String>> = lost
            .into_iter()
            .filter(|e| seen.insert(e.candidate.selected))
            .map(|e| {
                let s = e.candidate.selected;
                let m = decision::resolve(table, s).map(|(_, _, m, _)| m);
                vec![
                    entry_label(table, s),
                    m.map_or("?".into(), describe_match),
                    if matches!(s.parent, ParentRef::ServicePort { .. }) {
                        format!("rank {}", e.candidate.rank)
                    } else {
                        format!(
                            "{}, rank {}",
                            host_label(e.candidate.hostname),
                            e.candidate.rank
                        )
                    },
                ]
            })
            .collect();
        report.also_matched = rows
            .iter()
            .map(|r| LostEntry {
                entry: r.first().cloned().unwrap_or_default(),
                requires: r.get(1).cloned().unwrap_or_default(),
                precedence: r.get(2).cloned().unwrap_or_default(),
            })
            .collect();
        w.blank();
        w.list("lower-precedence entries that also matched", rows);
    }
    Ok(Explanation {
        router: compiled,
        reference: naive,
        agree,
        text: w.out,
        report,
    })
}

/// The decision as data: local answers with their status and reason, or the winning rule's
/// backends with their shares.
fn decision_report(
    table: &RouteTable,
    router: &Router,
    compiled: Selection,
    req: &Request<'_>,
) -> Decision {
    match router.decide(req, 0).outcome {
        Outcome::Passthrough => Decision::Passthrough,
        Outcome::Respond(r) => Decision::Local {
            status: r.status,
            reason: r.reason.as_str().to_string(),
            location: r
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("location"))
                .map(|(_, v)| v.to_string()),
        },
        Outcome::Forward(_) => {
            let rule = match compiled {
                Selection::Matched(sel) => {
                    decision::resolve(table, sel).map(|(_, rule, _, _)| rule)
                }
                _ => None,
            };
            let backends = rule.map_or(&[][..], |r| r.backends.as_slice());
            let total: u64 = backends.iter().map(|b| u64::from(b.weight)).sum();
            Decision::Forward {
                backends: backends
                    .iter()
                    .map(|b| BackendShare {
                        backend: backend_label(b),
                        weight: b.weight,
                        share: if total == 0 {
                            "0%".into()
                        } else {
                            percent(u64::from(b.weight), total)
                        },
                    })
                    .collect(),
            }
        }
    }
}

/// The winner's part: route, rule, match, why, decision.
fn matched(
    w: &mut Writer,
    table: &RouteTable,
    router: &Router,
    sel: Selected,
    evaluated: &[Evaluated<'_>],
    req: &Request<'_>,
) -> Option<Winner> {
    let Some((route, rule, m, _)) = decision::resolve(table, sel) else {
        w.line("decision", "the selection points outside the table (bug)");
        return None;
    };
    let mut winner = Winner {
        route: format!("{}/{}", route.namespace, route.name),
        rule: rule.index,
        rule_name: rule.name.clone(),
        match_index: sel.matched,
        match_description: describe_match(m),
        why: String::new(),
    };
    w.blank();
    w.line("route", &format!("{}/{}", route.namespace, route.name));
    w.line("rule", &rule_label(rule.index, rule.name.as_deref()));
    w.line("match", &format!("{}: {}", sel.matched, describe_match(m)));
    let mine = evaluated
        .iter()
        .filter(|e| e.failed.is_none() && e.candidate.selected == sel)
        .min_by_key(|e| e.candidate.key());
    let matching: HashSet<Selected> = evaluated
        .iter()
        .filter(|e| e.failed.is_none())
        .map(|e| e.candidate.selected)
        .collect();
    if let Some(e) = mine {
        let c = e.candidate;
        let lowest = evaluated
            .iter()
            .filter(|e| e.failed.is_none())
            .map(|e| e.candidate.rank)
            .min()
            .unwrap_or(c.rank);
        let mut why = format!(
            "{}; rank {} (lower wins); {}",
            if matches!(sel.parent, ParentRef::ServicePort { .. }) {
                "mesh parent (the Host is not used)".to_string()
            } else {
                host_label(c.hostname)
            },
            c.rank,
            if matching.len() == 1 {
                "the only matching entry".to_string()
            } else {
                format!("the best of {} matching entries", matching.len())
            }
        );
        if c.rank > lowest {
            why.push_str(" (its more specific hostname beats lower ranks)");
        }
        w.line("why", &why);
        winner.why = why;
    }

    // The decision for each backend the weighted pick can choose: draw = the weights before it.
    let decision = router.decide(req, 0);
    match &decision.outcome {
        Outcome::Respond(r) if r.reason == LocalReason::Redirect => {
            let location = r
                .headers
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case("location"))
                .map_or(String::new(), |(_, v)| v.to_string());
            w.line(
                "decision",
                &format!("redirect {}  location: {location}", r.status),
            );
        }
        Outcome::Respond(r) if r.reason == LocalReason::CorsPreflight => {
            w.line(
                "decision",
                &format!("CORS preflight answered by the proxy ({})", r.status),
            );
        }
        Outcome::Respond(r) if r.reason == LocalReason::NoBackends => {
            w.line(
                "decision",
                &format!(
                    "{} (no_backends): the rule has no backend with a weight above 0",
                    r.status
                ),
            );
        }
        _ => {
            let total: u64 = rule.backends.iter().map(|b| u64::from(b.weight)).sum();
            let forwards = rule
                .backends
                .iter()
                .any(|b| b.weight > 0 && matches!(b.target, BackendTarget::Cluster(_)));
            let label = match (forwards, rule.backends.len()) {
                (false, _) => "answered by the proxy (backend_unavailable):".to_string(),
                (true, 1) => "forward to its backend:".to_string(),
                (true, n) => format!("forward, weighted between {n} backends:"),
            };
            w.line("decision", &label);
            let mut before = 0u64;
            let mut rows = Vec::new();
            let mut upstream = None;
            for b in &rule.backends {
                let share = if total == 0 {
                    "0%".to_string()
                } else {
                    percent(u64::from(b.weight), total)
                };
                let d = router.decide(req, before);
                if b.weight > 0 {
                    if let Outcome::Forward(f) = &d.outcome {
                        upstream.get_or_insert_with(|| {
                            (f.path.clone(), f.authority.clone().map(|a| a.to_string()))
                        });
                    }
                }
                before += u64::from(b.weight);
                rows.push(vec![
                    share,
                    format!("weight {}", b.weight),
                    backend_label(b),
                ]);
            }
            for r in align(&rows) {
                w.line("", &format!("  {r}"));
            }
            if let Some((path, authority)) = upstream {
                let mut parts = Vec::new();
                if let Some(a) = authority {
                    parts.push(format!("host {a}"));
                }
                if let Some(p) = path {
                    parts.push(format!("path {p}"));
                }
                if !parts.is_empty() {
                    w.line("upstream", &parts.join(", "));
                }
            }
        }
    }
    for (i, f) in rule.filters.iter().enumerate() {
        w.line(
            if i == 0 { "filters" } else { "" },
            &format!("{}. {}", i + 1, describe_filter(f)),
        );
    }
    for b in rule.backends.iter().filter(|b| !b.filters.is_empty()) {
        let name = match &b.target {
            BackendTarget::Cluster(c) => c.clone(),
            BackendTarget::Unavailable { .. } => "unavailable backend".into(),
        };
        for f in &b.filters {
            w.line("", &format!("{name} only: {}", describe_filter(f)));
        }
    }
    if let Some(t) = rule.timeouts {
        let mut parts = Vec::new();
        if let Some(ms) = t.request_ms {
            parts.push(format!("request {}", duration(ms)));
        }
        if let Some(ms) = t.backend_request_ms {
            parts.push(format!("backendRequest {}", duration(ms)));
        }
        if !parts.is_empty() {
            w.line("timeouts", &parts.join(", "));
        }
    }
    if let Some(r) = &rule.retry {
        let mut on = vec!["connection errors".to_string()];
        on.extend(r.codes.iter().map(u16::to_string));
        let mut s = format!(
            "up to {} {} on {}",
            r.attempts,
            if r.attempts == 1 { "retry" } else { "retries" },
            on.join(", ")
        );
        if let Some(b) = r.backoff_ms {
            s.push_str(&format!(
                "; backoff {} requested, Envoy's default back-off applies",
                duration(b)
            ));
        }
        w.line("retry", &s);
    }
    Some(winner)
}

fn percent(part: u64, total: u64) -> String {
    let tenths = (part * 1000 + total / 2) / total;
    if tenths.is_multiple_of(10) {
        format!("{}%", tenths / 10)
    } else {
        format!("{}.{}%", tenths / 10, tenths % 10)
    }
}

fn duration(ms: u64) -> String {
    if ms == 0 {
        "disabled".into()
    } else if ms.is_multiple_of(1000) {
        format!("{}s", ms / 1000)
    } else if ms > 1000 {
        format!("{}s", ms as f64 / 1000.0)
    } else {
        format!("{ms}ms")
    }
}

fn short(version: &str) -> &str {
    version.get(..12).unwrap_or(version)
}

fn backend_label(b: &Backend) -> String {
    match &b.target {
        BackendTarget::Cluster(c) => c.clone(),
        BackendTarget::Unavailable { status, reason } => format!("answers {status}: {reason}"),
    }
}

fn rule_label(index: u32, name: Option<&str>) -> String {
    match name {
        Some(n) => format!("{index} \"{n}\""),
        None => index.to_string(),
    }
}

/// `ns/name rule 0 "canary" match 1`.
fn entry_label(table: &RouteTable, s: Selected) -> String {
    match decision::resolve(table, s) {
        Some((route, rule, _, _)) => format!(
            "{}/{} rule {} match {}",
            route.namespace,
            route.name,
            rule_label(rule.index, rule.name.as_deref()),
            s.matched
        ),
        None => "?".into(),
    }
}

fn selection_label(table: &RouteTable, s: Selection) -> String {
    match s {
        Selection::NoParent => "no parent".into(),
        Selection::NoMatch(p) => format!("no match on {}", parent_label(table, p)),
        Selection::Misdirected(p) => format!("misdirected from {}", parent_label(table, p)),
        Selection::Matched(sel) => entry_label(table, sel),
    }
}

fn host_label(pattern: Option<&str>) -> String {
    match pattern {
        None => "any hostname".into(),
        Some(p) if p.starts_with("*.") => format!("hostname {p} (wildcard)"),
        Some(p) => format!("hostname {p} (exact)"),
    }
}

fn parent_label(table: &RouteTable, p: ParentRef) -> String {
    match p {
        ParentRef::Listener(i) => match table.listeners.get(i as usize) {
            Some(l) => format!(
                "listener {}: port {}, {}, {} route(s) attached",
                l.name,
                l.port,
                l.hostname
                    .as_deref()
                    .map_or("any hostname".to_string(), |h| format!("hostname {h}")),
                l.attachments.len()
            ),
            None => format!("listener #{i}"),
        },
        ParentRef::ServicePort { service, port } => {
            let s = table.services.get(service as usize);
            let p = s.and_then(|s| s.ports.get(port as usize));
            match (s, p) {
                (Some(s), Some(p)) => format!(
                    "Service {}/{} port {}: {} routes{}, {} route(s) attached",
                    s.namespace,
                    s.name,
                    p.port,
                    match p.origin {
                        RouteOrigin::Producer => "producer",
                        RouteOrigin::Consumer => "consumer",
                    },
                    match p.origin {
                        RouteOrigin::Producer => " (the Service's namespace)".to_string(),
                        RouteOrigin::Consumer => format!(
                            " (this namespace's, {})",
                            table.role.trim_start_matches("mesh/")
                        ),
                    },
                    p.attachments.len()
                ),
                _ => format!("Service #{service} port #{port}"),
            }
        }
    }
}

fn no_parent(table: &RouteTable, req: &Request<'_>) -> String {
    let d = req.destination;
    if table.role.starts_with("mesh/") {
        return format!(
            "none: {}:{} is not a routed Service port in {}",
            d.ip, d.port, table.role
        );
    }
    let on_port: Vec<String> = table
        .listeners
        .iter()
        .filter(|l| l.port == d.port)
        .map(|l| {
            format!(
                "{} ({})",
                l.name,
                l.hostname.as_deref().unwrap_or("any hostname")
            )
        })
        .collect();
    if on_port.is_empty() {
        format!("none: no listener on port {}", d.port)
    } else {
        format!(
            "none: host \"{}\" matches no listener on port {}: {}",
            req.host(),
            d.port,
            on_port.join(", ")
        )
    }
}

fn value(v: &ValueMatch) -> String {
    match v {
        ValueMatch::Exact(s) => format!("= \"{s}\""),
        ValueMatch::Regex(r) => format!("~ \"{r}\""),
    }
}

/// `PathPrefix /api, method GET, header x-env = "canary", query v ~ /2|3/`.
fn describe_match(m: &Match) -> String {
    let mut parts = vec![match &m.path {
        PathMatch::Exact(p) => format!("Exact {p}"),
        PathMatch::Prefix(p) => format!("PathPrefix {p}"),
        PathMatch::Regex(p) => format!("RegularExpression {p}"),
    }];
    if let Some(method) = &m.method {
        parts.push(format!("method {method}"));
    }
    for h in &m.headers {
        parts.push(format!("header {} {}", h.name, value(&h.value)));
    }
    for q in &m.query_params {
        parts.push(format!("query {} {}", q.name, value(&q.value)));
    }
    parts.join(", ")
}

fn describe_failure(f: Failed<'_>, m: &Match, req: &Request<'_>) -> String {
    let got = |v: Option<std::borrow::Cow<'_, str>>| match v {
        Some(v) => format!("\"{v}\""),
        None => "absent".to_string(),
    };
    match f {
        Failed::Host => format!("host: \"{}\" does not match", req.host()),
        Failed::Path => format!("path: \"{}\" does not match", req.path_only()),
        Failed::Method => format!(
            "method: {} is not {}",
            req.method,
            m.method.map_or("?", |m| m.as_str())
        ),
        Failed::Header(h) => format!("header {}: {}", h.name, got(req.header(&h.name))),
        Failed::QueryParam(q) => format!("query {}: {}", q.name, got(req.query_param(&q.name))),
    }
}

fn modifier(m: &HeaderModifier) -> String {
    let mut parts = Vec::new();
    for h in &m.set {
        parts.push(format!("set {}: {}", h.name, h.value));
    }
    for h in &m.add {
        parts.push(format!("add {}: {}", h.name, h.value));
    }
    for n in &m.remove {
        parts.push(format!("remove {n}"));
    }
    parts.join("; ")
}

fn path_modifier(p: &PathModifier) -> String {
    match p {
        PathModifier::ReplaceFullPath(s) => format!("ReplaceFullPath {s}"),
        PathModifier::ReplacePrefixMatch(s) => format!("ReplacePrefixMatch {s}"),
    }
}

fn describe_filter(f: &Filter) -> String {
    match f {
        Filter::RequestHeaderModifier(m) => format!("RequestHeaderModifier: {}", modifier(m)),
        Filter::ResponseHeaderModifier(m) => format!("ResponseHeaderModifier: {}", modifier(m)),
        Filter::RequestRedirect(r) => {
            let mut parts = vec![format!("status {}", r.status_code)];
            if let Some(s) = &r.scheme {
                parts.push(format!("scheme {s}"));
            }
            if let Some(h) = &r.hostname {
                parts.push(format!("hostname {h}"));
            }
            if let Some(p) = r.port {
                parts.push(format!("port {p}"));
            }
            if let Some(p) = &r.path {
                parts.push(path_modifier(p));
            }
            format!("RequestRedirect: {}", parts.join(", "))
        }
        Filter::UrlRewrite(rw) => {
            let mut parts = Vec::new();
            if let Some(h) = &rw.hostname {
                parts.push(format!("hostname {h}"));
            }
            if let Some(p) = &rw.path {
                parts.push(path_modifier(p));
            }
            format!("URLRewrite: {}", parts.join(", "))
        }
        Filter::RequestMirror(m) => format!(
            "RequestMirror: copy to {} ({})",
            m.cluster,
            if m.numerator >= m.denominator {
                "every request".to_string()
            } else {
                format!(
                    "{} of requests",
                    percent(u64::from(m.numerator), u64::from(m.denominator))
                )
            }
        ),
        Filter::Cors(c) => format!(
            "CORS: origins {}; preflights answered by the proxy",
            if c.allow_origins.is_empty() {
                "none".to_string()
            } else {
                c.allow_origins.join(", ")
            }
        ),
    }
}

/// Rows of cells, left-aligned, separated by two spaces.
fn align(rows: &[Vec<String>]) -> Vec<String> {
    let mut widths: Vec<usize> = Vec::new();
    for row in rows {
        for (i, c) in row.iter().enumerate() {
            let n = c.chars().count();
            match widths.get_mut(i) {
                Some(w) => *w = (*w).max(n),
                None => widths.push(n),
            }
        }
    }
    rows.iter()
        .map(|row| {
            let mut s = String::new();
            for (c, w) in row.iter().zip(&widths) {
                let _ = write!(s, "{c:<w$}  ");
            }
            s.trim_end().to_string()
        })
        .collect()
}

/// `label     value` lines with the labels in one column.
#[derive(Default)]
struct Writer {
    out: String,
}

/// Lines listed per section before "… and N more".
const LIST_LIMIT: usize = 20;

impl Writer {
    fn line(&mut self, label: &str, text: &str) {
        let line = format!("{label:<10} {text}");
        let _ = writeln!(self.out, "{}", line.trim_end());
    }

    fn blank(&mut self) {
        if !self.out.ends_with("\n\n") && !self.out.is_empty() {
            self.out.push('\n');
        }
    }

    fn list(&mut self, title: &str, rows: Vec<Vec<String>>) {
        if rows.is_empty() {
            let _ = writeln!(self.out, "{title}: none");
            return;
        }
        let _ = writeln!(self.out, "{title} ({}):", rows.len());
        let more = rows.len().saturating_sub(LIST_LIMIT);
        for r in align(rows.get(..LIST_LIMIT.min(rows.len())).unwrap_or_default()) {
            let _ = writeln!(self.out, "  {r}");
        }
        if more > 0 {
            let _ = writeln!(self.out, "  … and {more} more");
        }
    }
}
