//! [`RenderError`]: what can go wrong between a checked translation and the files `render` writes.

use super::listen;

/// Why `render` (or a provisioned bootstrap) could not be made from a translation. Flag values
/// are checked when parsed ([`super::envoy::FlagError`], [`listen::ListenError`],
/// [`super::istio::WasmArgError`]); what is left depends on the translation they meet.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("{role}: not a gateway role")]
    NotGatewayRole { role: String },
    /// `--listen` does not fit the Gateway (e.g. one `IP:PORT` for several listener ports).
    #[error("{role}: {source}")]
    Listen {
        role: String,
        source: listen::ListenError,
    },
    #[error("{role}: no listen address")]
    NoListenAddress { role: String },
    /// A template slot with no value: a bug in the template or in `render`, never user input.
    #[error("template slot left unfilled: {0}")]
    UnfilledSlot(String),
    #[error("{what}: cannot encode: {source}")]
    Json {
        what: String,
        source: serde_json::Error,
    },
    #[error("{what}: cannot encode: {source}")]
    Yaml {
        what: String,
        source: serde_yaml_ng::Error,
    },
    #[error("refusing to write {0:?}: not a plain relative path inside --out")]
    OutsideOut(String),
}
