//! `render`: everything a standalone deployment needs from one translation, as files — tables
//! (JSON and protobuf), statuses, an Envoy bootstrap per proxy role ([`envoy`]) and an
//! `index.json` that lists them, so scripts and CI can drive the output. Pure: the CLI writes
//! the files.

use std::net::SocketAddr;

use gammaroute_filter::table;
use serde::Serialize;

use crate::store::Store;
use crate::translate::{status, Output};

mod error;

pub mod envoy;
pub mod istio;
pub mod listen;
pub mod pusher_tls;
pub mod tls;

pub use error::RenderError;

/// One output file.
#[derive(Debug, Clone)]
pub struct File {
    /// Relative to the output folder.
    pub path: String,
    pub kind: FileKind,
    /// The proxy role (`gateway/<ns>/<name>`, `mesh/<namespace>`), for tables and bootstraps.
    pub role: Option<String>,
    /// Where a bootstrap's Envoy listens.
    pub listen: Vec<SocketAddr>,
    pub content: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub enum FileKind {
    TableJson,
    TableProto,
    Status,
    Bootstrap,
    /// Istio WasmPlugin + EnvoyFilter for a mesh client namespace (`render --istio`).
    Istio,
    /// An SDS file with a listener certificate and its private key (write it mode 0600).
    Sds,
    Index,
}

/// An `index.json` entry.
#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct IndexEntry<'a> {
    path: &'a str,
    kind: FileKind,
    #[serde(skip_serializing_if = "Option::is_none")]
    role: Option<&'a str>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    listen: Vec<String>,
}

/// Everything `render` writes, plus what it could not render and why.
#[derive(Debug, Clone, Default)]
pub struct Rendered {
    pub files: Vec<File>,
    /// Roles without a bootstrap and their reason, and per-bootstrap remarks.
    pub notes: Vec<String>,
}

impl Rendered {
    /// The bootstraps written.
    pub fn bootstraps(&self) -> impl Iterator<Item = &File> {
        self.files.iter().filter(|f| f.kind == FileKind::Bootstrap)
    }
}

/// Renders a translation. `Err` when a flag cannot apply (see [`envoy::bootstrap`]).
pub fn render(
    store: &Store,
    output: &Output,
    options: &envoy::BootstrapOptions,
) -> Result<Rendered, RenderError> {
    render_with(store, output, options, None)
}

/// [`render`], plus `istio/<namespace>.yaml` per mesh table when `istio` is given.
pub fn render_with(
    store: &Store,
    output: &Output,
    options: &envoy::BootstrapOptions,
    istio: Option<&istio::IstioOptions>,
) -> Result<Rendered, RenderError> {
    let mut out = Rendered::default();
    let file = |path: String, kind, role: Option<&str>, content: Vec<u8>| File {
        path,
        kind,
        role: role.map(str::to_string),
        listen: vec![],
        content,
    };
    for (role, t) in &output.tables {
        out.files.push(file(
            format!("tables/{role}.json"),
            FileKind::TableJson,
            Some(role),
            table::encode_json(t).into_bytes(),
        ));
        out.files.push(file(
            format!("tables/{role}.pb"),
            FileKind::TableProto,
            Some(role),
            table::encode_proto(t),
        ));
    }
    out.files.push(file(
        "status.yaml".into(),
        FileKind::Status,
        None,
        status::to_yaml(&output.statuses).into_bytes(),
    ));
    for (role, t) in &output.tables {
        match envoy::bootstrap(store, t, options)? {
            envoy::Rendered::Bootstrap(b) => {
                for s in &b.sds {
                    if !out
                        .files
                        .iter()
                        .any(|f| f.path == format!("sds/{}", s.file))
                    {
                        out.files.push(file(
                            format!("sds/{}", s.file),
                            FileKind::Sds,
                            None,
                            s.content.clone().into_bytes(),
                        ));
                    }
                }
                out.notes
                    .extend(b.notes.iter().map(|n| format!("envoy/{role}.yaml: {n}")));
                out.files.push(File {
                    path: format!("envoy/{role}.yaml"),
                    kind: FileKind::Bootstrap,
                    role: Some(role.clone()),
                    listen: b.listen.clone(),
                    content: b.yaml.into_bytes(),
                });
            }
            envoy::Rendered::Skipped(why) => out.notes.push(format!("{role}: no bootstrap: {why}")),
        }
    }
    if let Some(istio) = istio {
        for (role, t) in &output.tables {
            if let Some(ns) = role.strip_prefix("mesh/") {
                out.files.push(file(
                    format!("istio/{ns}.yaml"),
                    FileKind::Istio,
                    Some(role),
                    istio::manifests(ns, t, istio)?.into_bytes(),
                ));
            }
        }
    }
    // Roles come from object names, which the store checks (RFC 1123); this is the last line:
    // nothing is written outside the output folder, whatever a name contains.
    for f in &out.files {
        inside_out(&f.path)?;
    }
    let index: Vec<IndexEntry> = out
        .files
        .iter()
        .map(|f| IndexEntry {
            path: &f.path,
            kind: f.kind,
            role: f.role.as_deref(),
            listen: f.listen.iter().map(ToString::to_string).collect(),
        })
        .collect();
    let json =
        serde_json::to_string_pretty(&serde_json::json!({ "files": index })).map_err(|source| {
            RenderError::Json {
                what: "index.json".into(),
                source,
            }
        })?;
    out.files.push(file(
        "index.json".into(),
        FileKind::Index,
        None,
        format!("{json}\n").into_bytes(),
    ));
    Ok(out)
}

/// `path` names a file inside the output folder: relative, made of plain names only (no `..`,
/// `.`, root or drive prefix).
pub fn inside_out(path: &str) -> Result<(), RenderError> {
    let p = std::path::Path::new(path);
    let plain = p
        .components()
        .all(|c| matches!(c, std::path::Component::Normal(_)));
    if plain && p.components().next().is_some() && !path.contains('\\') {
        Ok(())
    } else {
        Err(RenderError::OutsideOut(path.to_string()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gammaroute_filter::table::RouteTable;

    #[test]
    fn nothing_is_written_outside_the_output_folder() {
        for bad in [
            "../x",
            "tables/mesh/../../../x.json",
            "/etc/x",
            "./x",
            "",
            "a\\..\\x",
        ] {
            assert!(inside_out(bad).is_err(), "{bad}");
        }
        assert!(inside_out("tables/gateway/ns/a.b.json").is_ok());
        // A role that did not come through the store's name checks.
        for role in ["mesh/../../x", "gateway/../../.."] {
            let mut output = Output::default();
            let t = RouteTable {
                role: role.into(),
                ..RouteTable::default()
            }
            .with_version();
            output.tables.insert(role.into(), t);
            let e =
                render(&Store::new(), &output, &envoy::BootstrapOptions::default()).unwrap_err();
            assert!(matches!(e, RenderError::OutsideOut(_)), "{e}");
        }
    }
}
