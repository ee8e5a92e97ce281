use clap::Parser;

/// See the `mimalloc` note in Cargo.toml; `benches/translate.rs` measures with the same allocator.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    let cli = config_pusher::cli::Cli::parse();
    // A server logs what it does; the one-shot commands only what went wrong.
    let default_level = match cli.command {
        config_pusher::cli::Command::Serve { .. } => "info",
        _ => "warn",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default_level));
    let logs = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(filter);
    match cli.log_format {
        config_pusher::cli::LogFormat::Json => logs.json().init(),
        config_pusher::cli::LogFormat::Text => logs
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .init(),
    }
    match config_pusher::cli::run(cli) {
        Ok(code) => std::process::ExitCode::from(code),
        Err(e) => {
            eprintln!("config-pusher: {e}");
            std::process::ExitCode::from(2)
        }
    }
}
