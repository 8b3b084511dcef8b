//! The `layotto` binary: command line and logging around `layotto-runtime`.
//! Which component types it can run is decided by its Cargo features
//! (`state-redis`, `pubsub-rabbitmq`, …), which turn on the API crates'
//! backend features; each API crate's `registry()` registers what it was
//! compiled with.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use layotto_runtime::{Config, Registries};

mod logging;
mod telemetry;

#[cfg(feature = "mimalloc")]
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// layotto-rs: Layotto's application runtime (sidecar), in Rust.
#[derive(Parser)]
#[command(version, about)]
struct Cli {
    /// Config file: our TOML format or a Layotto JSON config. Without one,
    /// every API runs on its in-memory component.
    #[arg(short, long, global = false)]
    config: Option<PathBuf>,

    /// Log lines as text or JSON (also `LAYOTTO_LOG_FORMAT`).
    #[arg(long, value_enum)]
    log_format: Option<logging::LogFormat>,

    #[command(flatten)]
    daprd: DaprdFlags,

    #[command(subcommand)]
    command: Option<Command>,
}

/// daprd's own flags, accepted beside our config so Dapr users keep their
/// command lines; each overrides the config's value.
#[derive(clap::Args)]
struct DaprdFlags {
    /// The app id (`app.id`).
    #[arg(long)]
    app_id: Option<String>,
    /// The port of the app's callback server (`app.callback_port`).
    #[arg(long)]
    app_port: Option<u16>,
    /// How to reach the app: `grpc` (AppCallback) or `http`.
    #[arg(long)]
    app_protocol: Option<String>,
    /// Dapr's HTTP API port (`server.dapr_http`, on 127.0.0.1).
    #[arg(long)]
    dapr_http_port: Option<u16>,
    /// The gRPC port of both Layotto's and Dapr's API (`server.grpc`, on 127.0.0.1).
    #[arg(long)]
    dapr_grpc_port: Option<u16>,
    /// Directories of Dapr resource YAML files (`kind: Component`, `kind: Subscription`).
    #[arg(long)]
    resources_path: Vec<PathBuf>,
}

impl DaprdFlags {
    fn apply(self, config: &mut Config) -> Result<(), String> {
        let loopback = |port: u16| std::net::SocketAddr::from(([127, 0, 0, 1], port));
        if let Some(id) = self.app_id {
            config.app.id = id;
        }
        if let Some(port) = self.app_port {
            config.app.callback_port = port;
        }
        match self.app_protocol.as_deref() {
            None => {}
            Some("grpc") => config.app.protocol = layotto_runtime::config::AppProtocol::Grpc,
            Some("http") => config.app.protocol = layotto_runtime::config::AppProtocol::Http,
            Some(other) => return Err(format!("--app-protocol {other}: use grpc or http")),
        }
        if let Some(port) = self.dapr_http_port {
            config.server.dapr_http = Some(loopback(port));
        }
        if let Some(port) = self.dapr_grpc_port {
            config.server.grpc = layotto_runtime::ListenAddr::Tcp(loopback(port));
        }
        for dir in self.resources_path {
            config.load_dapr_resources(&dir).map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}

#[derive(Subcommand)]
enum Command {
    /// Layotto's form: `layotto start -c configs/config.json`.
    Start {
        #[arg(short, long, env = "RUNTIME_CONFIG")]
        config: Option<PathBuf>,
    },
    /// Traffic dump files (`[traffic_dump]`).
    Dump {
        #[command(subcommand)]
        action: DumpAction,
    },
}

#[derive(Subcommand)]
enum DumpAction {
    /// Lists a dump file's records and the HTTP/2 frames they carry.
    Show { file: PathBuf },
}

/// Every API, with the backends its crate was compiled with.
fn registries() -> Registries {
    Registries::builtin()
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let format = cli.log_format.unwrap_or_else(|| match std::env::var("LAYOTTO_LOG_FORMAT").as_deref() {
        Ok("json") => logging::LogFormat::Json,
        _ => logging::LogFormat::Text,
    });
    let logging = logging::init(format);

    let path = match cli.command {
        Some(Command::Start { config }) => config.or(cli.config),
        Some(Command::Dump { action: DumpAction::Show { file } }) => {
            return match layotto_runtime::dump::show(&file) {
                Ok(listing) => {
                    print!("{listing}");
                    ExitCode::SUCCESS
                }
                Err(e) => {
                    eprintln!("layotto dump show: {e}");
                    ExitCode::from(2)
                }
            };
        }
        None => cli.config,
    };
    let mut config = match Config::load(path.as_deref()) {
        Ok(config) => config,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(2);
        }
    };
    // On embedded defaults Dapr's SDKs find their HTTP API where daprd has it.
    if path.is_none() && config.server.dapr_http.is_none() {
        config.server.dapr_http = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 3500)));
    }
    if let Err(e) = cli.daprd.apply(&mut config) {
        tracing::error!("{e}");
        return ExitCode::from(2);
    }
    let tracer = match logging.tracing(config.tracing.as_ref(), &config.app.id) {
        Ok(tracer) => tracer,
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
    tokio::select! {
        signal = shutdown_signal() => {
            if let Err(e) = signal {
                tracing::error!(error = %e, "cannot listen for shutdown signals");
            }
        }
        _ = running.shutdown_requested() => tracing::info!("shutdown requested through the Dapr API"),
    }
    // A second signal while draining means "now".
    tokio::spawn(async {
        if shutdown_signal().await.is_ok() {
            tracing::warn!("second shutdown signal: exiting without waiting for the drain");
            std::process::exit(130);
        }
    });
    tracing::info!("shutting down: draining in-flight calls");
    running.shutdown().await;
    if let Some(tracer) = tracer {
        // The last spans go out before the process ends.
        if let Err(e) = tracer.shutdown() {
            tracing::warn!(error = %e, "flushing spans at exit failed");
        }
    }
    ExitCode::SUCCESS
}

async fn shutdown_signal() -> std::io::Result<()> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r,
        _ = term.recv() => Ok(()),
    }
}
