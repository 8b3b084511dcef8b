//! The OTLP exporter behind `[tracing]` and OpenTelemetry's standard
//! variables (`OTEL_EXPORTER_OTLP_ENDPOINT`, `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT`,
//! `OTEL_EXPORTER_OTLP_PROTOCOL`, `OTEL_SERVICE_NAME`, `OTEL_TRACES_SAMPLER`
//! and `OTEL_TRACES_SAMPLER_ARG`), as every OpenTelemetry SDK reads them;
//! the config file wins where both say something.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use opentelemetry_otlp::{WithExportConfig, WithHttpConfig};
use opentelemetry_sdk::error::OTelSdkResult;
use opentelemetry_sdk::trace::{Sampler, SdkTracerProvider, SpanData, SpanExporter};

pub struct Settings {
    pub endpoint: String,
    pub protocol: String,
    pub service_name: String,
    pub sampler: Sampler,
    pub sampler_name: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().map(|v| v.trim().to_owned()).filter(|v| !v.is_empty())
}

impl Settings {
    /// None when tracing is off: neither the config enables it nor an OTLP endpoint is set.
    pub fn resolve(
        config: Option<&layotto_runtime::config::TracingConfig>,
        app_id: &str,
    ) -> Result<Option<Self>, String> {
        let config = config.cloned().unwrap_or_default();
        let traces_endpoint = env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT");
        let base_endpoint = env("OTEL_EXPORTER_OTLP_ENDPOINT");
        let sdk_disabled = env("OTEL_SDK_DISABLED").is_some_and(|v| v.eq_ignore_ascii_case("true"));
        let wanted = config.enabled
            || config.endpoint.is_some()
            || traces_endpoint.is_some()
            || base_endpoint.is_some();
        if !wanted || sdk_disabled {
            return Ok(None);
        }
        let protocol = config
            .protocol
            .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL"))
            .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
            .unwrap_or_else(|| "grpc".into());
        let http = match protocol.as_str() {
            "grpc" => false,
            "http/protobuf" => true,
            other => {
                return Err(format!(
                    "tracing.protocol (or OTEL_EXPORTER_OTLP_PROTOCOL) must be grpc or http/protobuf, got '{other}'"
                ));
            }
        };
        // The base endpoint is the collector's; over HTTP the traces path goes after it.
        let endpoint = match (config.endpoint, traces_endpoint, base_endpoint) {
            (Some(endpoint), _, _) | (None, Some(endpoint), _) => endpoint,
            (None, None, Some(base)) if http => format!("{}/v1/traces", base.trim_end_matches('/')),
            (None, None, Some(base)) => base,
            (None, None, None) if http => "http://localhost:4318/v1/traces".into(),
            (None, None, None) => "http://localhost:4317".into(),
        };
        if !(endpoint.starts_with("http://") || endpoint.starts_with("https://")) {
            return Err(format!("tracing endpoint '{endpoint}' must be an http:// or https:// URL"));
        }
        let service_name = config
            .service_name
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| if app_id.is_empty() { "layotto".into() } else { app_id.to_owned() });
        let (sampler, sampler_name) = sampler(config.sample_ratio)?;
        Ok(Some(Self { endpoint, protocol, service_name, sampler, sampler_name }))
    }
}

fn ratio(arg: Option<String>) -> Result<f64, String> {
    match arg {
        None => Ok(1.0),
        Some(arg) => arg
            .parse::<f64>()
            .ok()
            .filter(|r| (0.0..=1.0).contains(r))
            .ok_or_else(|| format!("OTEL_TRACES_SAMPLER_ARG must be a ratio from 0 to 1, got '{arg}'")),
    }
}

/// The sampler: `sample_ratio` from the config (parent-based), else OTel's variables.
fn sampler(config_ratio: Option<f64>) -> Result<(Sampler, String), String> {
    if let Some(r) = config_ratio {
        if !(0.0..=1.0).contains(&r) {
            return Err(format!("tracing.sample_ratio must be from 0 to 1, got {r}"));
        }
        return Ok((
            Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(r))),
            format!("parentbased_traceidratio {r}"),
        ));
    }
    let name = env("OTEL_TRACES_SAMPLER").unwrap_or_else(|| "parentbased_always_on".into());
    let arg = env("OTEL_TRACES_SAMPLER_ARG");
    let sampler = match name.as_str() {
        "always_on" => Sampler::AlwaysOn,
        "always_off" => Sampler::AlwaysOff,
        "traceidratio" => Sampler::TraceIdRatioBased(ratio(arg)?),
        "parentbased_always_on" => Sampler::ParentBased(Box::new(Sampler::AlwaysOn)),
        "parentbased_always_off" => Sampler::ParentBased(Box::new(Sampler::AlwaysOff)),
        "parentbased_traceidratio" => Sampler::ParentBased(Box::new(Sampler::TraceIdRatioBased(ratio(arg)?))),
        other => {
            return Err(format!(
                "OTEL_TRACES_SAMPLER '{other}' is not one of always_on, always_off, traceidratio, parentbased_always_on, parentbased_always_off, parentbased_traceidratio"
            ));
        }
    };
    Ok((sampler, name))
}

pub fn provider(settings: &Settings) -> Result<SdkTracerProvider, String> {
    let exporter = if settings.protocol == "grpc" {
        opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(&settings.endpoint)
            .with_timeout(Duration::from_secs(5))
            .build()
    } else {
        opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .with_endpoint(&settings.endpoint)
            .with_timeout(Duration::from_secs(5))
            .with_headers(Default::default())
            .build()
    }
    .map_err(|e| format!("tracing exporter for {}: {e}", settings.endpoint))?;
    let exporter = Counted {
        inner: exporter,
        endpoint: settings.endpoint.clone(),
        failed: AtomicU64::new(0),
        warned: std::sync::Mutex::new(None),
    };
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_sampler(settings.sampler.clone())
        .with_resource(
            opentelemetry_sdk::Resource::builder().with_service_name(settings.service_name.clone()).build(),
        )
        .build())
}

/// The exporter, counting batches it could not send and saying so at most
/// once a minute: a collector that is down drops spans, never blocks a call.
#[derive(Debug)]
struct Counted<E> {
    inner: E,
    endpoint: String,
    failed: AtomicU64,
    warned: std::sync::Mutex<Option<Instant>>,
}

impl<E: SpanExporter> SpanExporter for Counted<E> {
    async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
        let spans = batch.len() as u64;
        let result = self.inner.export(batch).await;
        if let Err(e) = &result {
            let failed = self.failed.fetch_add(spans, Ordering::Relaxed) + spans;
            let mut warned = self.warned.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            if warned.is_none_or(|at| at.elapsed() > Duration::from_secs(60)) {
                *warned = Some(Instant::now());
                tracing::warn!(endpoint = %self.endpoint, error = %e, spans_dropped = failed, "cannot send spans; they are dropped");
            }
        }
        result
    }

    fn shutdown_with_timeout(&self, timeout: Duration) -> OTelSdkResult {
        self.inner.shutdown_with_timeout(timeout)
    }

    fn set_resource(&mut self, resource: &opentelemetry_sdk::Resource) {
        self.inner.set_resource(resource);
    }
}
