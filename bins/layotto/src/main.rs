//! The `layotto` binary: command line and logging around `layotto-runtime`.
//! Which component types it can run is decided by its Cargo features
//! (`state-redis`, `pubsub-rabbitmq`, …), which turn on the API crates'
//! backend features; each API crate's `registry()` registers what it was
//! compiled with.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use layotto_runtime::{Config, Registries};
use tracing_subscriber::EnvFilter;

/// layotto-rs: Layotto's application runtime (sidecar), in Rust.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file: our TOML format or a Layotto JSON config. Without one,
    /// every API runs on its in-memory component.
    #[arg(short, long, global = false)]
    config: Option<PathBuf>,

    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Layotto's form: `layotto start -c configs/config.json`.
    Start {
        #[arg(short, long, env = "RUNTIME_CONFIG")]
        config: Option<PathBuf>,
    },
}

/// Every API, with the backends its crate was compiled with.
fn registries() -> Registries {
    Registries::builtin()
}

#[tokio::main]
async fn main() -> ExitCode {
    let filter = EnvFilter::try_from_env("LAYOTTO_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    // Colours only on a terminal: logs piped to a file or a collector stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    tracing_subscriber::fmt().with_env_filter(filter).with_target(false).with_ansi(ansi).init();

    let cli = Cli::parse();
    let path = match cli.command {
        Some(Command::Start { config }) => config.or(cli.config),
        None => cli.config,
    };
    let config = match Config::load(path.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    match path {
        Some(p) => tracing::info!(config = %p.display(), "starting"),
        None => tracing::info!("starting with embedded defaults (no config file)"),
    }
    let running = match layotto_runtime::start(config, registries()).await {
        Ok(running) => running,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = shutdown_signal().await {
        tracing::error!(error = %e, "cannot listen for shutdown signals");
    }
    tracing::info!("shutting down");
    running.shutdown().await;
    ExitCode::SUCCESS
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
