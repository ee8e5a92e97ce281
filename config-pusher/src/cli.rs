//! The `config-pusher` command line.

use std::path::{Path, PathBuf};

use clap::{Parser, Subcommand};

use crate::source::files;
use crate::translate::{self, status, Settings, DEFAULT_CONTROLLER_NAME};

/// Renders Kubernetes Gateway API resources (GatewayClass, Gateway, HTTPRoute, ReferenceGrant,
/// Service, EndpointSlice, Namespace) into gammaroute route tables and Gateway API status.
#[derive(Debug, Parser)]
#[command(name = "config-pusher", version, about, long_about = None)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Read a folder of YAML and write one route table per proxy role plus the statuses.
    ///
    /// Reads every *.yaml, *.yml and *.json file under --from (recursively; multi-document YAML,
    /// as `kubectl apply -f DIR -R` takes it). Writes into --out:
    ///   tables/gateway/<namespace>/<name>.json   one per Gateway of our GatewayClasses
    ///   tables/mesh/<namespace>.json             one per namespace (GAMMA client side)
    ///   status.yaml                              status of every GatewayClass, Gateway, HTTPRoute
    /// Documents that fail to load are reported and skipped; everything else is rendered.
    #[command(verbatim_doc_comment)]
    Render {
        /// Folder (or single file) of Kubernetes YAML to read.
        #[arg(long, value_name = "DIR")]
        from: PathBuf,
        /// Folder to write the tables and status into (created if missing).
        #[arg(long, value_name = "DIR")]
        out: PathBuf,
        /// GatewayClasses whose spec.controllerName equals this are served.
        #[arg(long, default_value = DEFAULT_CONTROLLER_NAME, value_name = "NAME")]
        controller_name: String,
    },
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
}

/// Runs a parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    match cli.command {
        Command::Render {
            from,
            out,
            controller_name,
        } => render(&from, &out, &Settings { controller_name }),
    }
}

/// `config-pusher render`.
pub fn render(from: &Path, out: &Path, settings: &Settings) -> Result<(), CliError> {
    if !from.exists() {
        return Err(CliError::MissingInput(from.to_path_buf()));
    }
    let (store, report) = files::load(from);
    for e in &report.errors {
        eprintln!("warning: {e}");
    }
    let output = translate::translate(&store, settings);
    for n in &output.notes {
        tracing::info!("{n}");
    }
    for e in &output.errors {
        eprintln!("error: a table was replaced by an empty one: {e}");
    }
    for (role, table) in &output.tables {
        let json = gammaroute_filter::table::encode_json(table);
        let path = out.join("tables").join(format!("{role}.json"));
        write(&path, json.as_bytes())?;
    }
    write(
        &out.join("status.yaml"),
        status::to_yaml(&output.statuses).as_bytes(),
    )?;
    eprintln!(
        "read {} objects from {} files ({} skipped, {} errors); wrote {} tables and {} statuses to {}",
        report.loaded,
        report.files.len(),
        report.skipped.len(),
        report.errors.len(),
        output.tables.len(),
        output.statuses.len(),
        out.display()
    );
    Ok(())
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
