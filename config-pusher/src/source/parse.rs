//! One file's text → Gateway API objects: each YAML document parsed and deserialized into its
//! kind, a bad document reported ([`LoadError`], with file, document index and field path) and the
//! rest kept, kinds the store does not keep skipped with a note ([`Skipped`]). Pure: the folder
//! cache ([`super::folder`]) and the file IO ([`super::files`]) both build on it.
//!
//! Accepted `apiVersion`s: `gateway.networking.k8s.io/{v1,v1beta1}` for GatewayClass, Gateway,
//! HTTPRoute and ReferenceGrant (the experimental-channel types, a superset of the standard
//! channel); `v1` Service, Namespace and Secret (only `tls.crt`/`tls.key` kept, see
//! [`crate::store::secret`]); `discovery.k8s.io/v1` EndpointSlice.

use std::path::PathBuf;

use serde_yaml_ng::Value;

use super::GATEWAY_API_GROUP;
use crate::store::{Kind, Object};

/// A document that could not be loaded. The other documents are loaded regardless.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The folder or a file could not be read.
    #[error("{path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The YAML itself is broken; the rest of that file cannot be read.
    #[error("{file} document {document}: invalid YAML: {message}")]
    Syntax {
        file: String,
        document: usize,
        message: String,
    },
    /// A document without `apiVersion` or `kind`.
    #[error("{file} document {document}: not a Kubernetes object (no apiVersion/kind)")]
    NotAnObject { file: String, document: usize },
    /// A known kind whose content does not fit the API schema.
    #[error("{file} document {document}: {kind} {name}: field `{field}`: {message}")]
    Invalid {
        file: String,
        document: usize,
        kind: String,
        name: String,
        /// Path of the offending field, e.g. `spec.rules[0].matches[1].path.type`.
        field: String,
        message: String,
    },
}

impl LoadError {
    /// The file (as shown in messages) and document index the error is about; `None` for a
    /// folder or file that could not be read at all.
    pub fn location(&self) -> (String, Option<usize>) {
        match self {
            LoadError::Io { path, .. } => (path.display().to_string(), None),
            LoadError::Syntax { file, document, .. }
            | LoadError::NotAnObject { file, document }
            | LoadError::Invalid { file, document, .. } => (file.clone(), Some(*document)),
        }
    }
}

/// A document of a kind the store does not keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Skipped {
    pub file: String,
    pub document: usize,
    pub api_version: String,
    pub kind: String,
    pub name: String,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} document {}: skipped {} {} ({}): not used by config-pusher",
            self.file, self.document, self.kind, self.name, self.api_version
        )
    }
}

/// One file's documents, parsed but not stored yet (the watcher keeps the last good one).
#[derive(Debug, Default)]
pub struct ParsedFile {
    /// Objects with their document index, in file order.
    pub objects: Vec<(Object, usize)>,
    pub skipped: Vec<Skipped>,
    pub errors: Vec<LoadError>,
}

/// Parses one file's text (`file` names it in messages). Documents are numbered from 0.
pub fn parse_str(file: &str, text: &str) -> ParsedFile {
    let mut out = ParsedFile::default();
    for (document, de) in serde_yaml_ng::Deserializer::from_str(text).enumerate() {
        let value = match <Value as serde::Deserialize>::deserialize(de) {
            Ok(v) => v,
            Err(e) => {
                out.errors.push(LoadError::Syntax {
                    file: file.to_string(),
                    document,
                    message: e.to_string(),
                });
                // The parser cannot resynchronise after a syntax error.
                break;
            }
        };
        parse_value(&mut out, file, document, value);
    }
    out
}

fn parse_value(out: &mut ParsedFile, file: &str, document: usize, value: Value) {
    if value.is_null() {
        return; // empty document (`---` at the end of a file)
    }
    let api_version = value
        .get("apiVersion")
        .and_then(Value::as_str)
        .map(str::to_string);
    let kind = value
        .get("kind")
        .and_then(Value::as_str)
        .map(str::to_string);
    let (Some(api_version), Some(kind)) = (api_version, kind) else {
        out.errors.push(LoadError::NotAnObject {
            file: file.to_string(),
            document,
        });
        return;
    };
    if kind == "List" || kind.ends_with("List") && api_version == "v1" {
        if let Some(Value::Sequence(items)) = value.get("items") {
            for item in items.clone() {
                parse_value(out, file, document, item);
            }
        }
        return;
    }
    let name = value
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or("(unnamed)")
        .to_string();
    let Some(kind_) = super::kind_of(&api_version, &kind) else {
        out.skipped.push(Skipped {
            file: file.to_string(),
            document,
            api_version,
            kind,
            name,
        });
        return;
    };
    let ctx = Ctx {
        file,
        document,
        kind: &kind,
        name: &name,
    };
    let object = ctx.parse(value, kind_);
    match object {
        Ok(object) => out.objects.push((object, document)),
        Err(e) => out.errors.push(*e),
    }
}

struct Ctx<'a> {
    file: &'a str,
    document: usize,
    kind: &'a str,
    name: &'a str,
}

impl Ctx<'_> {
    /// Decodes `value` as `kind`, naming the failing field. Gateway API objects are read at the
    /// `v1` version (v1beta1 has the same schema for these kinds); `status` is ignored, since
    /// config-pusher computes it.
    fn parse(&self, mut value: Value, kind: Kind) -> Result<Object, Box<LoadError>> {
        if let Value::Mapping(m) = &mut value {
            m.remove("status");
            if kind.gateway_api() {
                m.insert(
                    Value::from("apiVersion"),
                    Value::from(format!("{GATEWAY_API_GROUP}/v1")),
                );
            }
        }
        super::decode(kind, value).map_err(|e| {
            Box::new(LoadError::Invalid {
                file: self.file.to_string(),
                document: self.document,
                kind: self.kind.to_string(),
                name: self.name.to_string(),
                field: e.field,
                message: e.message,
            })
        })
    }
}
