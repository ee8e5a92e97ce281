//! `check`: the statuses of a translation as a human reads them (`kubectl get -o wide` columns,
//! then every condition that is not fine with its reason and message), or as YAML/JSON for
//! machines; [`Report::ok`] is the exit code's answer.
//!
//! Everything is **fine** when no document failed to load, no table was replaced, every
//! GatewayClass and Gateway is Accepted and Programmed, every listener is Accepted, ResolvedRefs
//! and Programmed and not Conflicted, and every route parent is Accepted and ResolvedRefs and not
//! PartiallyInvalid. Skipped documents (kinds config-pusher does not use) and notes (such as a
//! parentRef to a Gateway that does not exist, which gets no status of ours) are shown but do not
//! count.

use serde::Serialize;

use crate::source::files::LoadReport;
use crate::source::Problem;
use crate::store::{ObjectKey, Store};
use crate::translate::status::{
    status_text, Condition, ConditionType, RouteParentStatus, Status, StatusDoc,
};
use crate::translate::Output;

/// A document that failed to load.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct LoadIssue {
    pub file: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub document: Option<usize>,
    pub message: String,
}

/// The result of `check`, serialized as is for `-o yaml|json`.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct Report {
    /// Everything loaded, accepted and resolved.
    pub ok: bool,
    /// One line per thing that is not fine (what makes `ok` false).
    pub problems: Vec<String>,
    pub load_errors: Vec<LoadIssue>,
    pub skipped: Vec<String>,
    pub notes: Vec<String>,
    /// The computed statuses (GatewayClasses, Gateways, HTTPRoutes), shaped like the objects.
    pub objects: Vec<StatusDoc>,
    #[serde(skip)]
    store: Store,
}

impl Report {
    /// The report of a folder load (`check`).
    pub fn new(store: &Store, load: &LoadReport, output: &Output) -> Report {
        let skipped = load.skipped.iter().map(ToString::to_string).collect();
        Report::from_problems(store, &load.errors, skipped, output)
    }

    /// The report of any source: its load `problems` and `skipped` documents (`serve`).
    pub fn from_problems(
        store: &Store,
        load_problems: &[Problem],
        skipped: Vec<String>,
        output: &Output,
    ) -> Report {
        let mut problems = Vec::new();
        let load_errors: Vec<LoadIssue> = load_problems
            .iter()
            .map(|p| LoadIssue {
                file: p.origin.clone(),
                document: p.document,
                message: p.to_string(),
            })
            .collect();
        for e in &load_errors {
            problems.push(format!("load error: {}", e.message));
        }
        for e in &output.errors {
            problems.push(format!("rejected by validation: {e}"));
        }
        for doc in &output.statuses {
            let name = display_name(doc);
            match &doc.status {
                Status::GatewayClass(s) => {
                    bad(
                        &mut problems,
                        &name,
                        &s.conditions,
                        &[ConditionType::Accepted],
                    );
                }
                Status::Gateway(s) => {
                    let wanted = [ConditionType::Accepted, ConditionType::Programmed];
                    bad(&mut problems, &name, &s.conditions, &wanted);
                    for l in &s.listeners {
                        let at = format!("{name} listener {}", l.name);
                        let wanted = [
                            ConditionType::Accepted,
                            ConditionType::ResolvedRefs,
                            ConditionType::Programmed,
                        ];
                        bad(&mut problems, &at, &l.conditions, &wanted);
                    }
                }
                Status::HttpRoute(s) => {
                    for p in &s.parents {
                        let at = format!("{name} → {}", parent_name(p, doc));
                        let wanted = [ConditionType::Accepted, ConditionType::ResolvedRefs];
                        bad(&mut problems, &at, &p.conditions, &wanted);
                    }
                }
            }
        }
        Report {
            ok: problems.is_empty(),
            problems,
            load_errors,
            skipped,
            notes: output.notes.clone(),
            objects: output.statuses.clone(),
            store: store.clone(),
        }
    }

    /// The human form: one table per kind, then problems, load errors and notes.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let classes: Vec<Vec<String>> = self
            .objects
            .iter()
            .filter_map(|d| match &d.status {
                Status::GatewayClass(s) => Some(vec![
                    d.metadata.name.clone(),
                    cell(&s.conditions, ConditionType::Accepted),
                ]),
                _ => None,
            })
            .collect();
        if !classes.is_empty() {
            out.push_str(&columns(&["GATEWAYCLASS", "ACCEPTED"], &classes));
            out.push('\n');
        }

        let mut gateways = Vec::new();
        let mut listeners = Vec::new();
        for d in &self.objects {
            let Status::Gateway(s) = &d.status else {
                continue;
            };
            let key = ObjectKey::new(
                d.metadata.namespace.clone().unwrap_or_default(),
                &d.metadata.name,
            );
            let spec = self.store.gateways.get(&key).map(|g| &g.object.spec);
            let addresses: Vec<&str> = s.addresses.iter().map(|a| a.value.as_str()).collect();
            gateways.push(vec![
                key.to_string(),
                spec.map_or("?".into(), |g| g.gateway_class_name.clone()),
                dash(addresses.join(",")),
                cell(&s.conditions, ConditionType::Accepted),
                cell(&s.conditions, ConditionType::Programmed),
            ]);
            for l in &s.listeners {
                let ls = spec.and_then(|g| g.listeners.iter().find(|x| x.name == l.name));
                listeners.push(vec![
                    key.to_string(),
                    l.name.clone(),
                    ls.map_or("?".into(), |x| x.port.to_string()),
                    ls.map_or("?".into(), |x| x.protocol.clone()),
                    dash(ls.and_then(|x| x.hostname.clone()).unwrap_or_default()),
                    l.attached_routes.to_string(),
                    cell(&l.conditions, ConditionType::Accepted),
                    cell(&l.conditions, ConditionType::ResolvedRefs),
                    cell(&l.conditions, ConditionType::Conflicted),
                    cell(&l.conditions, ConditionType::Programmed),
                ]);
            }
        }
        if !gateways.is_empty() {
            out.push_str(&columns(
                &["GATEWAY", "CLASS", "ADDRESSES", "ACCEPTED", "PROGRAMMED"],
                &gateways,
            ));
            out.push('\n');
            out.push_str(&columns(
                &[
                    "GATEWAY",
                    "LISTENER",
                    "PORT",
                    "PROTOCOL",
                    "HOSTNAME",
                    "ROUTES",
                    "ACCEPTED",
                    "RESOLVEDREFS",
                    "CONFLICTED",
                    "PROGRAMMED",
                ],
                &listeners,
            ));
            out.push('\n');
        }

        let mut routes = Vec::new();
        for d in &self.objects {
            let key = ObjectKey::new(
                d.metadata.namespace.clone().unwrap_or_default(),
                &d.metadata.name,
            );
            let hostnames = self
                .store
                .http_routes
                .get(&key)
                .and_then(|r| r.object.spec.hostnames.clone())
                .unwrap_or_default()
                .join(",");
            for p in d.route_parents() {
                routes.push(vec![
                    key.to_string(),
                    dash(hostnames.clone()),
                    parent_name(p, d),
                    cell(&p.conditions, ConditionType::Accepted),
                    cell(&p.conditions, ConditionType::ResolvedRefs),
                    cell(&p.conditions, ConditionType::PartiallyInvalid),
                ]);
            }
        }
        if !routes.is_empty() {
            out.push_str(&columns(
                &[
                    "HTTPROUTE",
                    "HOSTNAMES",
                    "PARENT",
                    "ACCEPTED",
                    "RESOLVEDREFS",
                    "PARTIALLYINVALID",
                ],
                &routes,
            ));
            out.push('\n');
        }
        if self.objects.is_empty() {
            out.push_str("No GatewayClass, Gateway or HTTPRoute of ours.\n\n");
        }

        let section = |out: &mut String, title: &str, lines: &[String]| {
            if !lines.is_empty() {
                out.push_str(&format!("{title} ({}):\n", lines.len()));
                for l in lines {
                    out.push_str(&format!("  {l}\n"));
                }
                out.push('\n');
            }
        };
        section(&mut out, "Problems", &self.problems);
        section(&mut out, "Notes", &self.notes);
        section(&mut out, "Skipped", &self.skipped);
        out.push_str(if self.ok {
            "OK: everything is accepted and resolved.\n"
        } else {
            "NOT OK: see the problems above.\n"
        });
        out
    }
}

/// `HTTPRoute shop/web`, `Gateway shop/web`, `GatewayClass gammaroute`.
fn display_name(doc: &StatusDoc) -> String {
    match &doc.metadata.namespace {
        Some(ns) => format!("{} {ns}/{}", doc.kind, doc.metadata.name),
        None => format!("{} {}", doc.kind, doc.metadata.name),
    }
}

/// A route parent as `Gateway ns/name[/section][:port]` or `Service ns/name[:port]`.
fn parent_name(p: &RouteParentStatus, route: &StatusDoc) -> String {
    let r = &p.parent_ref;
    let ns = r
        .namespace
        .clone()
        .or_else(|| route.metadata.namespace.clone())
        .unwrap_or_default();
    let mut s = format!("{} {ns}/{}", r.kind, r.name);
    if let Some(section) = &r.section_name {
        s.push('/');
        s.push_str(section);
    }
    if let Some(port) = r.port {
        s.push_str(&format!(":{port}"));
    }
    s
}

/// A condition as a cell: `True`, `False (Reason)`; `-` when absent.
fn cell(conditions: &[Condition], type_: ConditionType) -> String {
    match conditions.iter().find(|c| c.type_ == type_) {
        None => "-".into(),
        Some(c) if fine(c) => status_text(c.status).into(),
        Some(c) => format!("{} ({})", status_text(c.status), c.reason),
    }
}

/// Whether a condition is in its good state (`Conflicted` and `PartiallyInvalid` are good when
/// False).
fn fine(c: &Condition) -> bool {
    match c.type_ {
        ConditionType::Conflicted | ConditionType::PartiallyInvalid => !c.is_true(),
        _ => c.is_true(),
    }
}

/// Adds a problem per condition not fine, and per wanted condition that is missing.
fn bad(problems: &mut Vec<String>, at: &str, conditions: &[Condition], wanted: &[ConditionType]) {
    for c in conditions.iter().filter(|c| !fine(c)) {
        problems.push(format!(
            "{at}: {}={} {}: {}",
            c.type_,
            status_text(c.status),
            c.reason,
            c.message
        ));
    }
    for w in wanted {
        if !conditions.iter().any(|c| c.type_ == *w) {
            problems.push(format!("{at}: no {w} condition"));
        }
    }
}

fn dash(s: String) -> String {
    if s.is_empty() {
        "-".into()
    } else {
        s
    }
}

/// Left-aligned columns separated by three spaces, header first.
pub fn columns(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (w, c) in widths.iter_mut().zip(row) {
            *w = (*w).max(c.chars().count());
        }
    }
    let line = |cells: Vec<&str>| {
        let mut s = String::new();
        for (i, (c, w)) in cells.iter().zip(&widths).enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}   "));
            }
        }
        s.trim_end().to_string() + "\n"
    };
    let mut out = line(headers.to_vec());
    for row in rows {
        out.push_str(&line(row.iter().map(String::as_str).collect()));
    }
    out
}
