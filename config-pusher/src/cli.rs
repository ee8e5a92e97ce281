//! The `config-pusher` command line.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Parser, Subcommand, ValueEnum};

use crate::check::Report;
use crate::explain::{self, HttpRequest, ParentSpec};
use crate::kubernetes;
use crate::map;
use crate::render::pusher_tls::{PusherTls, ServerName};
use crate::render::{self, envoy};
use crate::serve;
use crate::source::files;
use crate::source::watcher::{self, Debounce};
use crate::store::Store;
use crate::translate::{self, Output, Settings, DEFAULT_CONTROLLER_NAME};

/// Renders Kubernetes Gateway API resources (GatewayClass, Gateway, HTTPRoute, ReferenceGrant,
/// Service, EndpointSlice, Namespace) into gammaroute route tables and Gateway API status.
#[derive(Debug, Parser)]
#[command(
    name = "config-pusher",
    version,
    about,
    long_about = None,
    after_help = "Exit codes: 0 done (check: everything fine); 1 check found problems; \
                  2 bad arguments or input that cannot be read (a folder, stdin, or the cluster with --kube); \
                  3 explain: the compiled and the \
                  reference router disagree (a gammaroute bug)."
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
    /// Log lines as text, or as one JSON object per line (for log pipelines; `serve` logs what
    /// it does, the other commands only what went wrong). RUST_LOG sets the level.
    #[arg(long, global = true, value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a folder of YAML; write the route tables, statuses and an Envoy bootstrap per proxy role.
    ///
    /// Reads every *.yaml, *.yml and *.json file under --from (recursively; multi-document YAML,
    /// as `kubectl apply -f DIR -R` takes it). Writes into --out:
    ///   tables/<role>.json, tables/<role>.pb   one table per proxy role, JSON and protobuf:
    ///                                          gateway/<ns>/<name> per Gateway of our classes,
    ///                                          mesh/<ns> per namespace (GAMMA client side)
    ///   status.yaml                            status of every GatewayClass, Gateway, HTTPRoute
    ///   envoy/<role>.yaml                      a ready-to-run Envoy bootstrap (envoy -c FILE):
    ///                                          gateways listen on their listener ports at
    ///                                          spec.addresses (else 0.0.0.0); mesh sidecars on
    ///                                          every routed Service ClusterIP:port
    ///   index.json                             every file written, its role and listen addresses
    /// Clusters: --backend overrides, else ready EndpointSlice endpoints, else STRICT_DNS on
    /// <svc>.<ns>.svc.<cluster-domain>. Documents that fail to load are reported and skipped.
    #[command(verbatim_doc_comment)]
    Render {
        #[command(flatten)]
        input: Input,
        /// Folder to write into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// The gammaroute .wasm the bootstraps load (`make wasm` builds it).
        #[arg(
            long,
            value_name = "PATH",
            default_value = "target/wasm32-wasip1/release/gammaroute_filter.wasm"
        )]
        wasm: PathBuf,
        /// Gateway bootstraps listen on IP instead of spec.addresses; IP:PORT binds a Gateway's
        /// one listener port at PORT; GWPORT=IP:PORT,... binds each Gateway port at its own
        /// address (e.g. 8080=127.0.0.1:18080,8443=127.0.0.1:18443). The filter is told which
        /// Gateway port each bound port stands for.
        #[arg(long, value_name = "IP[:PORT]|GWPORT=IP:PORT,...")]
        listen: Option<envoy::Listen>,
        #[command(flatten)]
        clusters: Clusters,
        /// Envoy's admin interface in the bootstraps (port 0: any free port).
        #[arg(long, default_value = "127.0.0.1:0", value_name = "ADDR:PORT")]
        admin: SocketAddr,
        /// The address of `config-pusher serve` (IP or DNS name): the bootstraps' filters then
        /// fetch newer tables from it (the rendered table stays inline as the start-up table).
        #[arg(long, value_name = "HOST:PORT", value_parser = envoy::Pusher::parse)]
        pusher: Option<envoy::Pusher>,
        /// The bearer token `serve --token-file` requires, read from this file and put in the
        /// plugin configuration (with --pusher) and the ADS metadata (with --xds-server).
        #[arg(long, value_name = "FILE")]
        pusher_token_file: Option<PathBuf>,
        /// Reach --pusher over TLS (`serve --tls-cert`), trusting only the CA certificates in
        /// this PEM file; the server's certificate must name --pusher-server-name.
        #[arg(long, value_name = "FILE", requires = "pusher")]
        pusher_ca: Option<PathBuf>,
        /// The name config-pusher's certificate must carry, sent as SNI when a DNS name
        /// (default: the host of --pusher).
        #[arg(long, value_name = "NAME", requires = "pusher_ca", value_parser = ServerName::parse)]
        pusher_server_name: Option<ServerName>,
        #[command(flatten)]
        istio: IstioArgs,
        /// The bootstraps read their clusters from DIR/cds.yaml (Envoy filesystem CDS, kept up
        /// to date by `serve --xds-dir DIR`) instead of listing them statically.
        #[arg(long, value_name = "DIR", conflicts_with = "xds_server")]
        xds_dir: Option<PathBuf>,
        /// The bootstraps get their clusters, endpoints and listener certificates over ADS (gRPC)
        /// from `config-pusher serve --xds-listen` at HOST:PORT, with the --pusher-token-file
        /// token.
        #[arg(long, value_name = "HOST:PORT", value_parser = envoy::Pusher::parse)]
        xds_server: Option<envoy::Pusher>,
        /// Also write route-map.html: the route map `serve` shows at /ui (parents, routes,
        /// rules, backends and their weights, status problems) with this translation inside,
        /// for a browser without a server.
        #[arg(long)]
        graph: bool,
    },
    /// Watch a folder of YAML (or the cluster: --kube) and serve each proxy role's route table
    /// over HTTP.
    ///
    /// Re-translates after every change (debounced) and serves the tables with ETag and
    /// If-None-Match long-polling; see README.md "config-pusher serve" for the API:
    ///   GET /v1/tables/<role>[?wait=30s]   the table (JSON, or protobuf with
    ///                                      Accept: application/x-protobuf)
    ///   GET /v1/proxies, /v1/status        what proxies run; statuses and load errors
    ///   GET /healthz, /readyz, /metrics    probes and Prometheus metrics
    /// A file that fails to load keeps its last good objects; a table that fails validation is
    /// not published (the role keeps its previous table).
    #[command(verbatim_doc_comment)]
    Serve {
        #[command(flatten)]
        input: ServeInput,
        #[command(flatten)]
        clusters: Clusters,
        /// Address of the HTTP API (port 0: any free port; the bound address is logged).
        #[arg(long, default_value = "127.0.0.1:18000", value_name = "ADDR:PORT")]
        listen: SocketAddr,
        /// The server secret (re-read when it changes): /v1/* requires `Authorization: Bearer
        /// <the secret>` (everything) or a role token derived from it (`config-pusher token`:
        /// that role's table only). Required to listen on a non-loopback address.
        #[arg(long, value_name = "FILE")]
        token_file: Option<PathBuf>,
        /// Listen on a non-loopback address without --token-file: every client that reaches the
        /// port reads every table and status and can forge proxy reports.
        #[arg(long)]
        insecure_no_auth: bool,
        /// Write Envoy filesystem xDS files (cds.yaml) into DIR; see `render --xds-dir`.
        #[arg(long, value_name = "DIR")]
        xds_dir: Option<PathBuf>,
        /// Serve ADS (xDS over gRPC: clusters, endpoints, listener certificates) on ADDR:PORT to
        /// the proxies of `render --xds-server`; the same tokens as the HTTP API, in the
        /// `authorization` metadata.
        #[arg(long, value_name = "ADDR:PORT")]
        xds_listen: Option<SocketAddr>,
        /// Quiet time after a change before re-reading the folder (at most 100 × this under
        /// continuous churn).
        #[arg(long, default_value_t = 100, value_name = "MS")]
        debounce_ms: u64,
        #[command(flatten)]
        limits: LongPollLimits,
        #[command(flatten)]
        tls: ServeTls,
    },
    /// Print the bearer token of one proxy role, derived from config-pusher's secret.
    ///
    /// `serve --token-file SECRET` accepts it for `GET /v1/tables/<ROLE>` only (403 on any other
    /// role, /v1/proxies and /v1/status); the secret itself opens everything.
    ///   config-pusher token --secret-file secret --role mesh/shop
    #[command(verbatim_doc_comment)]
    Token {
        /// The file `serve --token-file` reads.
        #[arg(long, value_name = "FILE")]
        secret_file: PathBuf,
        /// gateway/<namespace>/<name> or mesh/<namespace>.
        #[arg(long, value_name = "ROLE")]
        role: String,
    },
    /// Show the status of every GatewayClass, Gateway and HTTPRoute, and what failed to load.
    ///
    /// Like `kubectl get gateways,httproutes -o wide` plus the conditions that are not fine, with
    /// their reasons and messages. Exit code 0 when every document loaded and everything is
    /// Accepted, ResolvedRefs, Programmed and not PartiallyInvalid or Conflicted; 1 otherwise.
    #[command(verbatim_doc_comment)]
    Check {
        #[command(flatten)]
        input: Input,
        /// Output format: a human table, or the full report for machines.
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Explain which route, rule, match and backend would serve one request, and why.
    ///
    /// Selects with the filter's compiled router (and checks the reference router agrees), then
    /// prints the winner (hostname pattern, rank), the decision (backends and weights, filters,
    /// redirect Location, rewrites, timeouts, retry, or the local 404/500/503 and why), the
    /// higher-precedence entries that did not match with the condition that failed, and the
    /// lower-precedence entries that also matched. `-o json` gives the same as data, with every
    /// entry that failed and its condition.
    ///
    /// Examples:
    ///   config-pusher explain --from DIR --parent gateway/shop/web 'GET http://shop.example.com/cart'
    ///   config-pusher explain --from DIR --parent gateway/infra/gw/http -H 'x-canary: true' \
    ///       'http://any.host/api/items?canary=1'
    ///   config-pusher explain --from DIR --parent service/bookinfo/reviews:9080 \
    ///       --client-namespace frontend 'GET http://reviews/r'
    /// Exit code 0 when explained, 2 for bad arguments, 3 if the two routers disagree (a bug).
    #[command(verbatim_doc_comment)]
    Explain {
        #[command(flatten)]
        input: Input,
        /// gateway/NS/NAME[/LISTENER] (the listener's port; default: the URL's port, the only
        /// port, or 80/443 by scheme) or service/NS/NAME:PORT (a GAMMA Service frontend).
        #[arg(long, value_name = "PARENT")]
        parent: ParentSpec,
        /// For service parents: the namespace of the calling client (whose consumer routes
        /// apply). Default: the Service's namespace.
        #[arg(long, value_name = "NS")]
        client_namespace: Option<String>,
        /// A request header, 'name: value'. Repeatable. `-H 'host: h'` replaces the URL's host.
        #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
        headers: Vec<String>,
        /// '[METHOD] URL', e.g. 'GET http://shop.example.com/cart?id=1' (METHOD defaults to GET).
        /// An https URL's host is also the connection's TLS server name (SNI).
        #[arg(value_name = "REQUEST")]
        request: String,
        /// Output format: the explanation as text, or as data (`json`: request, parent,
        /// decision, winner, every entry that failed with its condition, the entries that lost;
        /// `yaml` the same).
        #[arg(short, long, value_enum, default_value_t = Format::Table)]
        output: Format,
    },
    /// Print a shell completion script.
    ///
    ///   config-pusher completion bash > /etc/bash_completion.d/config-pusher
    ///   config-pusher completion zsh > "${fpath[1]}/_config-pusher"
    ///   config-pusher completion fish > ~/.config/fish/completions/config-pusher.fish
    #[command(verbatim_doc_comment)]
    Completion {
        #[arg(value_enum)]
        shell: clap_complete::Shell,
    },
}

/// Where the objects come from (shared by every command).
#[derive(Debug, clap::Args)]
pub struct Input {
    /// Folder (or single file) of Kubernetes YAML to read; `-` reads the objects from standard
    /// input (e.g. `kubectl get svc,gateways,httproutes -A -o yaml | config-pusher check --from -`).
    #[arg(long, value_name = "DIR", required_unless_present = "kube")]
    pub from: Option<PathBuf>,
    /// Read the live cluster instead (KUBECONFIG, else in-cluster config), with the same
    /// watchers as `serve --kube`, once every kind has listed. Nothing is written.
    #[arg(long, conflicts_with = "from")]
    pub kube: bool,
    /// GatewayClasses whose spec.controllerName equals this are served.
    #[arg(long, default_value = DEFAULT_CONTROLLER_NAME, value_name = "NAME")]
    pub controller_name: String,
}

/// `render --istio`: Istio manifests per mesh client namespace.
#[derive(Debug, clap::Args)]
pub struct IstioArgs {
    /// Also write istio/<namespace>.yaml per mesh client namespace: a WasmPlugin loading the
    /// filter into the namespace's sidecars (CLIENT mode, FAIL_OPEN) and the EnvoyFilter
    /// giving them the x-gamma-cluster route, with Istio cluster names (--cluster-domain).
    #[arg(long)]
    pub istio: bool,
    /// WasmPlugin url of the filter image (built by config-pusher/deploy/Dockerfile.wasm).
    #[arg(
        long,
        value_name = "URL",
        default_value = render::istio::DEFAULT_WASM_URL
    )]
    pub wasm_url: render::istio::WasmUrl,
    /// WasmPlugin sha256 of the module (64 lower-case hex digits).
    #[arg(long, value_name = "HEX")]
    pub wasm_sha256: Option<render::istio::Sha256>,
    /// config-pusher's Service, which the filter polls for its table.
    #[arg(
        long,
        value_name = "NS/NAME:PORT",
        default_value = "gammaroute-system/config-pusher:18000"
    )]
    pub config_pusher: render::istio::ServiceRef,
    /// Bearer token the filter sends to config-pusher.
    #[arg(
        long,
        value_name = "TOKEN",
        conflicts_with = "config_pusher_secret_file"
    )]
    pub config_pusher_token: Option<String>,
    /// config-pusher's secret (`serve --token-file`): each namespace's WasmPlugin gets the token
    /// of its own role, `mesh/<namespace>`, which reads that table only.
    #[arg(long, value_name = "FILE")]
    pub config_pusher_secret_file: Option<PathBuf>,
    /// Put the table itself into pluginConfig instead of polling config-pusher.
    #[arg(long)]
    pub istio_inline: bool,
    /// config-pusher serves TLS (`serve --tls-cert`): add a DestinationRule per namespace that
    /// makes the sidecars verify its name against the CA in this Secret (key ca.crt, in each
    /// client namespace).
    #[arg(long, value_name = "SECRET", conflicts_with = "istio_inline", value_parser = secret_name)]
    pub config_pusher_ca_secret: Option<String>,
}

/// A Secret name as the API server accepts it (RFC 1123 subdomain).
fn secret_name(s: &str) -> Result<String, BadSecretName> {
    crate::store::name::NameRule::Subdomain
        .check(s)
        .map(|()| s.to_string())
        .map_err(|reason| BadSecretName {
            name: s.to_string(),
            reason,
        })
}

/// A command-line Secret name the API server would refuse.
#[derive(Debug, thiserror::Error)]
#[error("{name:?}: a Secret name {reason}")]
pub struct BadSecretName {
    name: String,
    reason: &'static str,
}

/// Where `serve` reads objects: a folder, or the cluster.
#[derive(Debug, clap::Args)]
pub struct ServeInput {
    /// Folder (or single file) of Kubernetes YAML to watch; `-` reads the objects once from
    /// standard input and serves them until stopped.
    #[arg(long, value_name = "DIR", required_unless_present = "kube")]
    pub from: Option<PathBuf>,
    /// Watch the Kubernetes cluster instead (KUBECONFIG, else in-cluster config) and write route,
    /// Gateway and GatewayClass status back; with POD_NAMESPACE/POD_NAME set, only the holder of
    /// the Lease `config-pusher-status` in POD_NAMESPACE writes status.
    #[arg(long, conflicts_with = "from")]
    pub kube: bool,
    /// GatewayClasses whose spec.controllerName equals this are served.
    #[arg(long, default_value = DEFAULT_CONTROLLER_NAME, value_name = "NAME")]
    pub controller_name: String,
    #[command(flatten)]
    pub provision: ProvisionArgs,
}

/// `serve --kube`: the proxies provisioned for each Gateway (docs/provisioning.md).
#[derive(Debug, Clone, clap::Args)]
pub struct ProvisionArgs {
    /// Do not create Deployments, Services, ServiceAccounts and ConfigMaps for our Gateways
    /// (run the proxies yourself, e.g. from `render`'s bootstraps).
    #[arg(long)]
    pub no_provision: bool,
    /// The Envoy image of provisioned proxies (Envoy >= 1.40).
    #[arg(
        long,
        default_value = "docker.io/envoyproxy/envoy:v1.40-latest",
        value_name = "IMAGE"
    )]
    pub proxy_image: String,
    /// The filter image (config-pusher/deploy/Dockerfile.wasm), mounted into the proxy pods as
    /// an image volume (Kubernetes >= 1.33 with the ImageVolume feature).
    #[arg(
        long,
        default_value = "ghcr.io/gammaroute/gammaroute-wasm:0.1.0",
        value_name = "IMAGE"
    )]
    pub proxy_wasm_image: String,
    /// Envoy downloads the filter module from this http:// or https:// URL instead (clusters
    /// without image volumes); needs --proxy-wasm-sha256.
    #[arg(long, value_name = "URL", requires = "proxy_wasm_sha256")]
    pub proxy_wasm_url: Option<String>,
    /// The SHA-256 of the module at --proxy-wasm-url (64 lower-case hex digits): Envoy refuses
    /// anything else.
    #[arg(long, value_name = "HEX", requires = "proxy_wasm_url")]
    pub proxy_wasm_sha256: Option<render::istio::Sha256>,
    /// Where provisioned proxies fetch their tables: config-pusher's Service
    /// (default: config-pusher.$POD_NAMESPACE.svc:18000).
    #[arg(long, value_name = "HOST:PORT", value_parser = envoy::Pusher::parse)]
    pub proxy_pusher: Option<envoy::Pusher>,
    /// Where provisioned proxies get their clusters, endpoints and certificates over ADS
    /// (default with --xds-listen: config-pusher.$POD_NAMESPACE.svc and its port). Without ADS
    /// their clusters are static (Service DNS names) and HTTPS listeners are not served.
    #[arg(long, value_name = "HOST:PORT", value_parser = envoy::Pusher::parse)]
    pub proxy_xds: Option<envoy::Pusher>,
    /// config-pusher serves TLS (`--tls-cert`): provisioned proxies fetch their tables over TLS,
    /// trusting only the CA certificates in this PEM file and requiring the Service's DNS name
    /// (the host of --proxy-pusher) in config-pusher's certificate.
    #[arg(long, value_name = "FILE")]
    pub proxy_pusher_ca: Option<PathBuf>,
}

/// `serve`'s bounds on parked requests; a long-poll over them is answered 503 + Retry-After.
#[derive(Debug, Clone, clap::Args)]
pub struct LongPollLimits {
    /// Long-polls (`?wait=`) open at once, all roles together.
    #[arg(long, default_value_t = serve::limits::Limits::default().long_polls, value_name = "N")]
    pub max_long_polls: usize,
    /// Long-polls open at once for one proxy role.
    #[arg(long, default_value_t = serve::limits::Limits::default().long_polls_per_role, value_name = "N")]
    pub max_long_polls_per_role: usize,
    /// Connections open at once; one more is closed as soon as it is accepted.
    #[arg(long, default_value_t = serve::listener::ConnectionLimits::default().max, value_name = "N")]
    pub max_connections: usize,
    /// Time for a request's headers (and the TLS handshake) to arrive; an idle kept-alive
    /// connection is closed after it too.
    #[arg(
        long,
        default_value_t = serve::listener::ConnectionLimits::default().header_read.as_millis() as u64,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(1..)
    )]
    pub header_read_timeout_ms: u64,
}

/// `serve --tls-cert/--tls-key`.
#[derive(Debug, Clone, clap::Args)]
pub struct ServeTls {
    /// Serve the API over TLS only, with this PEM certificate chain (leaf first); re-read when
    /// it changes, so a rotated certificate is served without a restart.
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert (PKCS#8, PKCS#1 or SEC1).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
}

/// Where backend clusters' endpoints come from (`render` bootstraps, `serve --xds-dir`).
#[derive(Debug, Clone, clap::Args)]
pub struct Clusters {
    /// Endpoints of a backend cluster, instead of EndpointSlices or DNS. Repeatable;
    /// several addresses comma-separated. E.g. --backend shop/web-v1:80=127.0.0.1:9001
    #[arg(long, value_name = "NS/SVC:PORT=ADDR:PORT", value_parser = envoy::parse_backend)]
    pub backend: Vec<(String, Vec<SocketAddr>)>,
    /// Cluster domain for STRICT_DNS Service names.
    #[arg(long, default_value = "cluster.local", value_name = "DOMAIN")]
    pub cluster_domain: String,
}

impl Input {
    pub fn settings(&self) -> Settings {
        Settings {
            controller_name: self.controller_name.clone(),
        }
    }
}

/// `check -o`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    Table,
    Yaml,
    Json,
}

/// Why the command failed.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{0} does not exist")]
    MissingInput(PathBuf),
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(transparent)]
    PusherTls(#[from] crate::render::pusher_tls::PusherTlsError),
    #[error(transparent)]
    Serve(#[from] serve::ServeError),
    #[error(transparent)]
    Watch(#[from] watcher::WatchError),
    #[error(transparent)]
    Module(#[from] crate::provision::module::ModuleError),
    #[error("tokio runtime: {0}")]
    Runtime(#[source] std::io::Error),
    /// `explain`: the role's table is not among those translated.
    #[error("no table {0}")]
    NoTable(String),
    /// `explain`: the translated table does not compile (a translate bug: it was accepted).
    #[error("{role}: {source}")]
    Table {
        role: String,
        #[source]
        source: gammaroute_filter::table::TableError,
    },
    #[error("cannot encode the report as JSON: {0}")]
    Json(#[from] serde_json::Error),
    #[error("cannot encode the report as YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("{0}: the secret is empty")]
    EmptySecret(PathBuf),
    #[error("--role {0:?}: expected gateway/<namespace>/<name> or mesh/<namespace>")]
    Role(String),
    #[error(transparent)]
    Explain(#[from] explain::ExplainError),
    #[error(transparent)]
    Render(#[from] render::RenderError),
    #[error("--kube: {0}")]
    Cluster(#[from] kubernetes::ClusterError),
}

/// Runs a parsed command line; `Ok` carries the exit code.
pub fn run(cli: Cli) -> Result<u8, CliError> {
    match cli.command {
        Command::Render {
            input,
            out,
            wasm,
            listen,
            clusters,
            admin,
            pusher,
            pusher_token_file,
            pusher_ca,
            pusher_server_name,
            istio,
            xds_dir,
            xds_server,
            graph,
        } => {
            // Envoy resolves a relative path from its own working directory: make it absolute.
            let wasm = match std::fs::canonicalize(&wasm) {
                Ok(absolute) => absolute,
                Err(_) => {
                    eprintln!(
                        "warning: {} does not exist (yet): the bootstraps refer to it; `make wasm` builds it",
                        wasm.display()
                    );
                    wasm
                }
            };
            let token = match &pusher_token_file {
                Some(path) => Some(
                    std::fs::read_to_string(path)
                        .map_err(|source| CliError::Read {
                            path: path.clone(),
                            source,
                        })?
                        .trim()
                        .to_string(),
                ),
                None => None,
            };
            let pusher_tls = match (&pusher, &pusher_ca) {
                (Some(p), Some(ca)) => {
                    let pem = std::fs::read_to_string(ca).map_err(|source| CliError::Read {
                        path: ca.clone(),
                        source,
                    })?;
                    let name = match pusher_server_name {
                        Some(n) => n,
                        None => ServerName::parse(&p.host)?,
                    };
                    Some(PusherTls::new(&ca.display().to_string(), &pem, name)?)
                }
                _ => None,
            };
            let secret = istio
                .config_pusher_secret_file
                .as_deref()
                .map(read_secret)
                .transpose()?;
            let istio = istio.istio.then(|| render::istio::IstioOptions {
                url: istio.wasm_url,
                sha256: istio.wasm_sha256,
                domain: clusters.cluster_domain.clone(),
                config_pusher: istio.config_pusher,
                token: istio.config_pusher_token,
                secret,
                inline: istio.istio_inline,
                ca_secret: istio.config_pusher_ca_secret,
                ..render::istio::IstioOptions::default()
            });
            let options = envoy::BootstrapOptions {
                wasm: wasm.display().to_string(),
                listen,
                backends: clusters.backend.into_iter().collect(),
                cluster_domain: clusters.cluster_domain,
                admin,
                ads: xds_server.map(|p| envoy::Pusher {
                    token: token.clone(),
                    ..p
                }),
                pusher: pusher.map(|p| envoy::Pusher {
                    token,
                    tls: pusher_tls,
                    ..p
                }),
                // Certificates beside cds.yaml when `serve --xds-dir` keeps them current, else
                // in the output folder (render/tls.rs).
                sds_dir: Some(
                    absolute(xds_dir.as_deref().unwrap_or(&out.join("sds")))
                        .display()
                        .to_string(),
                ),
                cds_dir: xds_dir.map(|d| absolute(&d).display().to_string()),
            };
            render(&input, &out, &options, istio.as_ref(), graph).map(|()| 0)
        }
        Command::Serve {
            input,
            clusters,
            listen,
            token_file,
            insecure_no_auth,
            xds_dir,
            xds_listen,
            debounce_ms,
            limits,
            tls,
        } => {
            for addr in std::iter::once(listen).chain(xds_listen) {
                serve::check_exposure(addr, token_file.is_some(), insecure_no_auth)?;
            }
            let config = serve::Config {
                limits: serve::limits::Limits {
                    long_polls: limits.max_long_polls,
                    long_polls_per_role: limits.max_long_polls_per_role,
                },
                connections: serve::listener::ConnectionLimits {
                    max: limits.max_connections,
                    header_read: Duration::from_millis(limits.header_read_timeout_ms),
                },
                tls: tls
                    .tls_cert
                    .zip(tls.tls_key)
                    .map(|(cert, key)| serve::tls::TlsFiles { cert, key }),
                listen,
                token_file,
                xds_dir,
                xds_listen,
                settings: Settings {
                    controller_name: input.controller_name.clone(),
                },
                clusters: envoy::BootstrapOptions {
                    backends: clusters.backend.into_iter().collect(),
                    cluster_domain: clusters.cluster_domain,
                    ..envoy::BootstrapOptions::default()
                },
            };
            serve(input, config, debounce_ms)
        }
        Command::Check { input, output } => check(&input, output),
        Command::Token { secret_file, role } => {
            check_role(&role)?;
            println!("{}", read_secret(&secret_file)?.role_token(&role));
            Ok(0)
        }
        Command::Explain {
            input,
            parent,
            client_namespace,
            headers,
            request,
            output,
        } => explain(
            &input,
            &parent,
            client_namespace.as_deref(),
            &request,
            &headers,
            output,
        ),
        Command::Completion { shell } => {
            use clap::CommandFactory;
            use std::io::Write;
            // Into memory first: clap_complete panics on a write error (`| head`).
            let mut script = Vec::new();
            clap_complete::generate(shell, &mut Cli::command(), "config-pusher", &mut script);
            match std::io::stdout().write_all(&script) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(CliError::Write {
                    path: PathBuf::from("<stdout>"),
                    source: e,
                }),
                _ => Ok(0),
            }
        }
    }
}

/// `--from -`: standard input, read to the end.
const STDIN: &str = "-";

fn read_stdin() -> Result<String, CliError> {
    std::io::read_to_string(std::io::stdin()).map_err(|source| CliError::Read {
        path: PathBuf::from("<stdin>"),
        source,
    })
}

/// Loads and translates `--from`; load errors go to stderr unless `quiet`.
fn load(input: &Input, quiet: bool) -> Result<(Store, files::LoadReport, Output), CliError> {
    let (store, report) = match &input.from {
        Some(from) if from == Path::new(STDIN) => files::load_text("<stdin>", &read_stdin()?),
        Some(from) if from.exists() => files::load(from),
        Some(from) => return Err(CliError::MissingInput(from.clone())),
        None => read_cluster()?,
    };
    if !quiet {
        for e in &report.errors {
            eprintln!("warning: {e}");
        }
    }
    let output = translate::translate(&store, &input.settings());
    for n in &output.notes {
        tracing::info!("{n}");
    }
    if !quiet {
        for e in &output.errors {
            eprintln!("error: a table was replaced by an empty one: {e}");
        }
    }
    Ok((store, report, output))
}

/// How long `--kube` waits for every kind to list.
const KUBE_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// `--kube` for `check`, `explain` and `render`: the cluster read once ([`kubernetes::read_once`]).
fn read_cluster() -> Result<(Store, files::LoadReport), CliError> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    let snapshot = runtime.block_on(async {
        let client = kubernetes::connect().await?;
        kubernetes::read_once(client, KUBE_READ_TIMEOUT).await
    })?;
    Ok((
        snapshot.store.clone(),
        files::LoadReport::of_snapshot(&snapshot),
    ))
}

/// `config-pusher render`.
pub fn render(
    input: &Input,
    out: &Path,
    options: &envoy::BootstrapOptions,
    istio: Option<&render::istio::IstioOptions>,
    graph: bool,
) -> Result<(), CliError> {
    let (store, report, output) = load(input, false)?;
    let rendered = render::render_with(&store, &output, options, istio)?;
    for n in &rendered.notes {
        eprintln!("note: {n}");
    }
    for f in &rendered.files {
        if f.kind == render::FileKind::Sds {
            write_private(&out.join(&f.path), &f.content)?;
        } else {
            write(&out.join(&f.path), &f.content)?;
        }
    }
    if graph {
        let status = serde_json::to_string(&Report::new(&store, &report, &output))?;
        // The tables as just written to tables/<role>.json, not encoded a second time.
        let tables = rendered
            .files
            .iter()
            .filter_map(|f| match (f.kind, &f.role) {
                (render::FileKind::TableJson, Some(role)) => {
                    Some((role.as_str(), std::str::from_utf8(&f.content).ok()?))
                }
                _ => None,
            });
        let doc = map::document(0, tables, &status);
        write(
            &out.join("route-map.html"),
            map::static_page(&doc).as_bytes(),
        )?;
    }
    eprintln!(
        "read {} objects from {} files ({} skipped, {} errors); wrote {} tables, {} statuses and {} Envoy bootstraps to {} (see index.json)",
        report.loaded,
        report.files.len(),
        report.skipped.len(),
        report.errors.len(),
        output.tables.len(),
        output.statuses.len(),
        rendered.bootstraps().count(),
        out.display()
    );
    Ok(())
}

/// `config-pusher check`: exit code 0 when everything is fine, 1 otherwise.
pub fn check(input: &Input, format: Format) -> Result<u8, CliError> {
    let (store, load_report, output) = load(input, true)?;
    let report = Report::new(&store, &load_report, &output);
    let text = match format {
        Format::Table => report.to_text(),
        Format::Yaml => serde_yaml_ng::to_string(&report)?,
        Format::Json => serde_json::to_string_pretty(&report)? + "\n",
    };
    print!("{text}");
    Ok(if report.ok { 0 } else { 1 })
}

/// `config-pusher explain`: 0 when explained, 3 when the routers disagree.
pub fn explain(
    input: &Input,
    parent: &ParentSpec,
    client_namespace: Option<&str>,
    request: &str,
    headers: &[String],
    format: Format,
) -> Result<u8, CliError> {
    let req = HttpRequest::parse(request, headers)?;
    let (store, _, output) = load(input, false)?;
    let target = explain::target(&store, &output, parent, client_namespace, &req)?;
    let table = output
        .tables
        .get(&target.role)
        .ok_or_else(|| CliError::NoTable(target.role.clone()))?;
    let e = explain::explain(table, &req.request(target.destination)).map_err(|source| {
        CliError::Table {
            role: target.role.clone(),
            source,
        }
    })?;
    match format {
        Format::Table => print!("{}", e.text),
        Format::Json => println!("{}", serde_json::to_string_pretty(&e.report)?),
        Format::Yaml => print!("{}", serde_yaml_ng::to_string(&e.report)?),
    }
    Ok(if e.agree { 0 } else { 3 })
}

/// `config-pusher serve` (runs until SIGINT/SIGTERM).
fn serve(input: ServeInput, config: serve::Config, debounce_ms: u64) -> Result<u8, CliError> {
    let provision = match input.kube && !input.provision.no_provision {
        true => Some(provisioning(
            &input.provision,
            config.token_file.as_deref(),
            &config.clusters.cluster_domain,
            config.xds_listen,
        )?),
        false => None,
    };
    // Read before the runtime starts: a blocking read has no place on it.
    let stdin = match &input.from {
        Some(from) if !input.kube && from == Path::new(STDIN) => read_stdin()?,
        _ => String::new(),
    };
    let quiet = Duration::from_millis(debounce_ms);
    let debounce = Debounce::new(quiet, (quiet * 100).min(Duration::from_secs(10)).max(quiet));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .map_err(CliError::Runtime)?;
    runtime.block_on(async {
        let served = match &input.from {
            Some(from) if !input.kube && from == Path::new(STDIN) => {
                let (store, report) = files::load_text("<stdin>", &stdin);
                let (tx, source) = tokio::sync::watch::channel(crate::source::Snapshot::new(
                    store,
                    report.errors,
                    std::time::Instant::now(),
                ));
                // Nothing will change: the sender only has to outlive the server.
                let served = serve::run(config, source, serve::NoStatus).await;
                drop(tx);
                served
            }
            Some(from) if !input.kube => {
                let source = watcher::spawn(from, debounce)?;
                serve::run(config, source, serve::NoStatus).await
            }
            _ => {
                let client = kubernetes::connect().await?;
                let mut options = kubernetes::RunOptions::from_env(input.controller_name.clone());
                options.provision = provision;
                let running = kubernetes::start(client, options);
                serve::run(config, running.snapshots, running.statuses).await
            }
        };
        served.map_err(CliError::from)
    })?;
    Ok(0)
}

/// `serve --kube`'s provisioning settings from its flags and the environment: the proxies reach
/// config-pusher through its Service in `$POD_NAMESPACE`, on the table API's port and, when
/// `xds_listen` serves ADS, on that port too.
fn provisioning(
    args: &ProvisionArgs,
    token_file: Option<&Path>,
    cluster_domain: &str,
    xds_listen: Option<SocketAddr>,
) -> Result<kubernetes::Provisioning, CliError> {
    let service = || {
        let ns = std::env::var("POD_NAMESPACE").unwrap_or_else(|_| "gammaroute-system".into());
        format!("config-pusher.{ns}.svc")
    };
    let at = |port| envoy::Pusher {
        host: service(),
        port,
        token: None,
        tls: None,
    };
    let mut pusher = args.proxy_pusher.clone().unwrap_or_else(|| at(18000));
    if let Some(ca) = &args.proxy_pusher_ca {
        let pem = std::fs::read_to_string(ca).map_err(|source| CliError::Read {
            path: ca.clone(),
            source,
        })?;
        let name = ServerName::parse(&pusher.host)?;
        pusher.tls = Some(PusherTls::new(&ca.display().to_string(), &pem, name)?);
    }
    let ads = args
        .proxy_xds
        .clone()
        .or_else(|| xds_listen.map(|a| at(a.port())));
    Ok(kubernetes::Provisioning {
        options: crate::provision::ProvisionOptions {
            envoy_image: args.proxy_image.clone(),
            module: match (&args.proxy_wasm_url, &args.proxy_wasm_sha256) {
                (Some(url), Some(sha)) => crate::provision::ModuleSource::Url(
                    crate::provision::ModuleUrl::parse(url, sha)?,
                ),
                _ => crate::provision::ModuleSource::Image(args.proxy_wasm_image.clone()),
            },
        },
        control_plane: crate::provision::bootstrap::ControlPlane { pusher, ads },
        secret: token_file.map(read_secret).transpose()?,
        cluster_domain: cluster_domain.to_string(),
    })
}

/// The server secret in `path` (trimmed, as `serve --token-file` reads it).
fn read_secret(path: &Path) -> Result<crate::auth::Secret, CliError> {
    let text = std::fs::read_to_string(path).map_err(|source| CliError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    crate::auth::Secret::new(text.trim().as_bytes())
        .ok_or_else(|| CliError::EmptySecret(path.to_path_buf()))
}

/// `role` is `gateway/<namespace>/<name>` or `mesh/<namespace>` with names Kubernetes accepts.
fn check_role(role: &str) -> Result<(), CliError> {
    use crate::store::name::NameRule;
    let parts: Vec<&str> = role.split('/').collect();
    let ok = match parts.as_slice() {
        ["gateway", ns, name] => {
            NameRule::Label.check(ns).is_ok() && NameRule::Subdomain.check(name).is_ok()
        }
        ["mesh", ns] => NameRule::Label.check(ns).is_ok(),
        _ => false,
    };
    if ok {
        Ok(())
    } else {
        Err(CliError::Role(role.to_string()))
    }
}

/// `path` made absolute against the working directory (Envoy resolves relative paths from its
/// own).
fn absolute(path: &Path) -> PathBuf {
    std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf())
}

/// [`write`] for files holding a private key: created mode 0600 (never readable by others, not
/// even briefly).
fn write_private(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let err = |source| CliError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    let _ = std::fs::remove_file(path);
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .and_then(|mut f| f.write_all(bytes))
        .map_err(err)
}

fn write(path: &Path, bytes: &[u8]) -> Result<(), CliError> {
    let err = |source| CliError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::fs::write(path, bytes).map_err(err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(extra: &[&str]) -> ProvisionArgs {
        #[derive(Parser)]
        struct Args {
            #[command(flatten)]
            provision: ProvisionArgs,
        }
        let argv = std::iter::once("serve").chain(extra.iter().copied());
        Args::try_parse_from(argv).unwrap().provision
    }

    #[test]
    fn provisioned_proxies_use_ads_when_it_is_served_and_tls_when_given_a_ca() {
        let plain = provisioning(&args(&[]), None, "cluster.local", None).unwrap();
        assert_eq!(plain.control_plane.ads, None);
        assert_eq!(plain.control_plane.pusher.port, 18000);
        assert_eq!(plain.control_plane.pusher.tls, None);

        let xds = Some("0.0.0.0:18001".parse().unwrap());
        let with_ads = provisioning(&args(&[]), None, "cluster.local", xds).unwrap();
        let ads = with_ads.control_plane.ads.unwrap();
        assert_eq!(ads.port, 18001);
        assert_eq!(ads.host, with_ads.control_plane.pusher.host);
        let chosen = provisioning(
            &args(&["--proxy-xds", "xds.example.svc:9000"]),
            None,
            "cluster.local",
            xds,
        )
        .unwrap();
        assert_eq!(chosen.control_plane.ads.unwrap().host, "xds.example.svc");

        let dir = std::env::temp_dir().join(format!("cli-proxy-ca-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ca = dir.join("ca.pem");
        std::fs::write(
            &ca,
            "-----BEGIN CERTIFICATE-----\nMAA=\n-----END CERTIFICATE-----\n",
        )
        .unwrap();
        let ca_arg = ca.display().to_string();
        let tls = provisioning(
            &args(&[
                "--proxy-pusher",
                "pusher.ops.svc:18000",
                "--proxy-pusher-ca",
                &ca_arg,
            ]),
            None,
            "cluster.local",
            None,
        )
        .unwrap();
        let pusher_tls = tls.control_plane.pusher.tls.unwrap();
        assert_eq!(
            pusher_tls.server_name,
            ServerName::Dns("pusher.ops.svc".into())
        );
        std::fs::write(&ca, "not a certificate").unwrap();
        let refused = provisioning(
            &args(&["--proxy-pusher-ca", &ca_arg]),
            None,
            "cluster.local",
            None,
        );
        assert!(
            matches!(&refused, Err(CliError::PusherTls(e)) if e.to_string().contains("no PEM CERTIFICATE")),
            "{:?}",
            refused.err()
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
