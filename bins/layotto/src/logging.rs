//! The process's logger: `LAYOTTO_LOG` filters (tracing's `EnvFilter`
//! syntax, default `info`), text or JSON lines, and levels that change while
//! it runs through `/actuator/logger` (Layotto's logger names such as
//! `lock/redis` map to the API's crate; `""` or `root` is every logger).

use std::collections::BTreeMap;
use std::sync::Mutex;

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry, reload};

/// The OpenTelemetry layer, installed once the config says where spans go.
type OtelLayer = tracing_opentelemetry::OpenTelemetryLayer<Registry, opentelemetry_sdk::trace::SdkTracer>;

/// What [`init`] leaves for later: turning tracing on.
pub struct Logging {
    otel: reload::Handle<Option<OtelLayer>, Registry>,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    #[default]
    Text,
    Json,
}

/// The log lines never show the telemetry spans (they go to the exporter).
fn log_filter(directives: &str) -> Result<EnvFilter, String> {
    EnvFilter::try_new(format!("{directives},{}=off", layotto_core::telemetry::TARGET))
        .map_err(|e| format!("log filter '{directives}': {e}"))
}

pub fn init(format: LogFormat) -> Logging {
    let base = std::env::var("LAYOTTO_LOG")
        .ok()
        .filter(|s| EnvFilter::try_new(s).is_ok())
        .unwrap_or_else(|| "info".into());
    let (filter, handle) = reload::Layer::new(log_filter(&base).unwrap_or_else(|_| EnvFilter::new("info")));
    // Only the runtime's telemetry spans reach the exporter's layer, and only once it exists.
    let (otel, otel_handle) = reload::Layer::new(None::<OtelLayer>);
    let otel = otel.with_filter(
        tracing_subscriber::filter::Targets::new()
            .with_target(layotto_core::telemetry::TARGET, tracing::Level::INFO),
    );
    // Colours only on a terminal: logs piped to a file or a collector stay plain text.
    let ansi = std::io::IsTerminal::is_terminal(&std::io::stdout());
    let registry = tracing_subscriber::registry().with(otel);
    match format {
        LogFormat::Text => registry
            .with(tracing_subscriber::fmt::layer().with_target(false).with_ansi(ansi).with_filter(filter))
            .init(),
        LogFormat::Json => registry
            .with(tracing_subscriber::fmt::layer().json().with_current_span(false).with_filter(filter))
            .init(),
    }
    let overrides: Mutex<BTreeMap<String, String>> = Mutex::default();
    let root = Mutex::new(base);
    layotto_core::log_control::install(Box::new(move |component, level| {
        let level = level_directive(level)?;
        let mut root = root.lock().map_err(|_| "the logger is unavailable")?;
        let mut overrides = overrides.lock().map_err(|_| "the logger is unavailable")?;
        match target(component)? {
            None => {
                *root = level.to_owned();
                overrides.clear();
            }
            Some(target) => {
                overrides.insert(target, level.to_owned());
            }
        }
        let mut directives = root.clone();
        for (target, level) in overrides.iter() {
            directives.push_str(&format!(",{target}={level}"));
        }
        handle.reload(log_filter(&directives)?).map_err(|e| e.to_string())?;
        tracing::info!(component, level, "log level changed");
        Ok(())
    }));
    Logging { otel: otel_handle }
}

impl Logging {
    /// Installs the OTLP exporter when `[tracing]` or the `OTEL_*` variables
    /// ask for it; the provider to flush at exit.
    pub fn tracing(
        &self,
        config: Option<&layotto_runtime::config::TracingConfig>,
        app_id: &str,
    ) -> Result<Option<opentelemetry_sdk::trace::SdkTracerProvider>, String> {
        let Some(settings) = crate::telemetry::Settings::resolve(config, app_id)? else {
            return Ok(None);
        };
        let provider = crate::telemetry::provider(&settings)?;
        let tracer = opentelemetry::trace::TracerProvider::tracer(&provider, "layotto");
        self.otel
            .reload(Some(tracing_opentelemetry::layer().with_tracer(tracer)))
            .map_err(|e| e.to_string())?;
        layotto_core::telemetry::enable();
        tracing::info!(
            endpoint = %settings.endpoint, protocol = %settings.protocol, service = %settings.service_name,
            sampler = %settings.sampler_name, "tracing on: spans go out over OTLP"
        );
        Ok(Some(provider))
    }
}

fn level_directive(level: &str) -> Result<&'static str, String> {
    Ok(match level.trim().to_ascii_lowercase().as_str() {
        "trace" => "trace",
        "debug" => "debug",
        "info" => "info",
        "warn" | "warning" => "warn",
        // Layotto's loggers have fatal; ours stop at error.
        "error" | "fatal" => "error",
        "off" => "off",
        other => {
            return Err(format!("unknown level '{other}': use trace, debug, info, warn, error or fatal"));
        }
    })
}

/// Layotto's logger names (`lock/redis`, `sequencer/etcd`, `configstore/etcdv3`)
/// as our crates' targets; a crate or module path is taken as it is.
fn target(component: &str) -> Result<Option<String>, String> {
    let component = component.trim();
    if component.is_empty() || component == "root" || component == "all" {
        return Ok(None);
    }
    if component.starts_with("layotto") {
        return Ok(Some(component.replace('-', "_")));
    }
    let api = component.split('/').next().unwrap_or_default();
    let target = match api {
        "state" => "layotto_state",
        "pubsub" | "pub_subs" => "layotto_pubsub",
        "lock" => "layotto_lock",
        "sequencer" => "layotto_sequencer",
        "configstore" | "config_store" | "configuration" => "layotto_configuration",
        "secretstore" | "secret_store" | "secrets" => "layotto_secrets",
        "oss" | "file" => "layotto_oss",
        "bindings" => "layotto_bindings",
        "email" => "layotto_email",
        "invoke" => "layotto_invoke",
        "grpc" => "layotto_grpc",
        "runtime" | "actuator" => "layotto_runtime",
        _ => {
            return Err(format!(
                "unknown logger '{component}': use an API name (state, pubsub, lock, sequencer, configstore, secretstore, oss, bindings, email, invoke, runtime), optionally '/component', or a crate such as layotto_lock"
            ));
        }
    };
    Ok(Some(target.to_owned()))
}
