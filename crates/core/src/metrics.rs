//! The runtime's Prometheus metrics, one registry for the process (as
//! Prometheus clients keep one), so any crate records without plumbing: the
//! request layers, the API layer around component calls, pub/sub delivery,
//! the rate limiter and the listeners. [`render`] writes the text format
//! for `/metrics`, with process figures read from `/proc` at scrape time.

use std::cell::RefCell;
use std::collections::HashMap;
use std::sync::LazyLock;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use prometheus::{HistogramOpts, HistogramVec, IntCounterVec, IntGaugeVec, Opts, Registry, TextEncoder};

use crate::ErrorKind;

/// The metric handle types, for crates that keep children (see `component_call`).
pub use prometheus::{Histogram, IntCounter};

/// A map for per-thread handle caches, hashed with foldhash: these lookups
/// run on every call, where SipHash's cost shows.
pub type FastMap<K, V> = HashMap<K, V, foldhash::fast::FixedState>;

/// Latency buckets in seconds, from 100 µs (a cached read) to 10 s.
const BUCKETS: &[f64] =
    &[0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

pub struct Metrics {
    registry: Registry,
    /// `layotto_requests_total{protocol, service, method, code}`.
    pub requests: IntCounterVec,
    /// `layotto_request_duration_seconds{protocol, service, method}`: until the
    /// response headers (for a stream, until it opens).
    pub request_seconds: HistogramVec,
    /// `layotto_component_calls_total{api, component, outcome}`.
    pub component_calls: IntCounterVec,
    /// `layotto_component_call_duration_seconds{api, component}`.
    pub component_seconds: HistogramVec,
    /// `layotto_pubsub_deliveries_total{pubsub, outcome}`: delivered, retried, dropped, dead_lettered, returned.
    pub deliveries: IntCounterVec,
    /// `layotto_rate_limited_total{method}`.
    pub rate_limited: IntCounterVec,
    /// `layotto_open_connections{listener}`.
    pub connections: IntGaugeVec,
    /// `layotto_wasm_calls_total{id, outcome}`: ok, not_found, busy, trap, deadline, memory, stopped.
    pub wasm_calls: IntCounterVec,
    /// `layotto_wasm_call_duration_seconds{id}`.
    pub wasm_seconds: HistogramVec,
    /// MOSN's `grpc_metric` names, recorded once [`configure`] asks for them.
    pub mosn: MosnGrpcMetrics,
}

/// `grpc_request_total`, `grpc_response_succ_total`, `grpc_response_fail_total`
/// and the `grpc_cost_time` histogram, by `service` (the full method), as
/// Layotto's dashboards query them.
pub struct MosnGrpcMetrics {
    pub requests: IntCounterVec,
    pub succeeded: IntCounterVec,
    pub failed: IntCounterVec,
    pub cost_seconds: HistogramVec,
}

static RECORDING: AtomicBool = AtomicBool::new(true);
static MOSN_NAMES: AtomicBool = AtomicBool::new(false);

/// Whether request and component calls are recorded (`metrics.enabled`), and
/// whether MOSN's `grpc_metric` names are recorded too.
pub fn configure(recording: bool, mosn_grpc_names: bool) {
    RECORDING.store(recording, Ordering::Release);
    MOSN_NAMES.store(recording && mosn_grpc_names, Ordering::Release);
}

/// False when `metrics.enabled = false`: the request and component layers skip recording.
pub fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

pub fn mosn_grpc_names() -> bool {
    MOSN_NAMES.load(Ordering::Relaxed)
}

fn counter(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> IntCounterVec {
    let vec =
        IntCounterVec::new(Opts::new(name, help), labels).unwrap_or_else(|e| unreachable_metric(name, e));
    let _ = registry.register(Box::new(vec.clone()));
    vec
}

fn histogram(registry: &Registry, name: &str, help: &str, labels: &[&str]) -> HistogramVec {
    let opts = HistogramOpts::new(name, help).buckets(BUCKETS.to_vec());
    let vec = HistogramVec::new(opts, labels).unwrap_or_else(|e| unreachable_metric(name, e));
    let _ = registry.register(Box::new(vec.clone()));
    vec
}

/// The names and labels above are constants that prometheus accepts; a
/// failure here is a programming error caught by the tests, not input.
fn unreachable_metric(name: &str, e: prometheus::Error) -> ! {
    panic!("metric {name} is malformed: {e}")
}

static METRICS: LazyLock<Metrics> = LazyLock::new(|| {
    let registry = Registry::new();
    let connections = IntGaugeVec::new(
        Opts::new("layotto_open_connections", "Connections open now, per listener."),
        &["listener"],
    )
    .unwrap_or_else(|e| unreachable_metric("layotto_open_connections", e));
    let _ = registry.register(Box::new(connections.clone()));
    Metrics {
        requests: counter(
            &registry,
            "layotto_requests_total",
            "Calls answered, by protocol (grpc, http), service, method and code (gRPC code or HTTP status).",
            &["protocol", "service", "method", "code"],
        ),
        request_seconds: histogram(
            &registry,
            "layotto_request_duration_seconds",
            "Time to answer a call (to the response headers), by protocol, service and method.",
            &["protocol", "service", "method"],
        ),
        component_calls: counter(
            &registry,
            "layotto_component_calls_total",
            "Calls into components, by API, component and outcome (ok or the error kind).",
            &["api", "component", "outcome"],
        ),
        component_seconds: histogram(
            &registry,
            "layotto_component_call_duration_seconds",
            "Time components take to answer, by API and component.",
            &["api", "component"],
        ),
        deliveries: counter(
            &registry,
            "layotto_pubsub_deliveries_total",
            "Pub/sub deliveries to the app by pubsub and outcome: delivered, retried, dropped, dead_lettered, returned (to the broker).",
            &["pubsub", "outcome"],
        ),
        rate_limited: counter(
            &registry,
            "layotto_rate_limited_total",
            "Calls refused by a rate limit, by method or route.",
            &["method"],
        ),
        connections,
        wasm_calls: counter(
            &registry,
            "layotto_wasm_calls_total",
            "Calls into WebAssembly functions, by function id and outcome (ok, not_found, busy, trap, deadline, memory, stopped).",
            &["id", "outcome"],
        ),
        wasm_seconds: histogram(
            &registry,
            "layotto_wasm_call_duration_seconds",
            "Time WebAssembly functions take to answer, by function id.",
            &["id"],
        ),
        mosn: MosnGrpcMetrics {
            requests: counter(
                &registry,
                "grpc_request_total",
                "gRPC requests (MOSN grpc_metric).",
                &["service"],
            ),
            succeeded: counter(
                &registry,
                "grpc_response_succ_total",
                "gRPC responses with status OK (MOSN grpc_metric).",
                &["service"],
            ),
            failed: counter(
                &registry,
                "grpc_response_fail_total",
                "gRPC responses with another status (MOSN grpc_metric).",
                &["service"],
            ),
            cost_seconds: histogram(
                &registry,
                "grpc_cost_time",
                "Seconds to answer a gRPC request (MOSN grpc_metric).",
                &["service"],
            ),
        },
        registry,
    }
});

type ComponentHandles = FastMap<&'static str, FastMap<Box<str>, (IntCounter, Histogram)>>;

thread_local! {
    /// Bounded by the configured components.
    static COMPONENT_OK: RefCell<ComponentHandles> = RefCell::default();
}

pub fn metrics() -> &'static Metrics {
    &METRICS
}

impl Metrics {
    /// One component call: its outcome and how long it took.
    pub fn component_call(
        &self,
        api: &'static str,
        component: &str,
        outcome: Result<(), ErrorKind>,
        took: Duration,
    ) {
        if !recording() {
            return;
        }
        let seconds = took.as_secs_f64();
        if let Err(kind) = outcome {
            self.component_calls.with_label_values(&[api, component, kind.metric_label()]).inc();
            self.component_seconds.with_label_values(&[api, component]).observe(seconds);
            return;
        }
        // Successes are the hot path: their children are looked up once per thread.
        COMPONENT_OK.with_borrow_mut(|by_api| {
            let by_component = by_api.entry(api).or_default();
            let (calls, histogram) = match by_component.get(component) {
                Some(handles) => handles,
                None => by_component.entry(component.into()).or_insert_with(|| {
                    (
                        self.component_calls.with_label_values(&[api, component, "ok"]),
                        self.component_seconds.with_label_values(&[api, component]),
                    )
                }),
            };
            calls.inc();
            histogram.observe(seconds);
        });
    }

    /// One call into a WebAssembly function.
    pub fn wasm_call(&self, id: &str, outcome: &str, took: Duration) {
        if !recording() {
            return;
        }
        self.wasm_calls.with_label_values(&[id, outcome]).inc();
        self.wasm_seconds.with_label_values(&[id]).observe(took.as_secs_f64());
    }

    pub fn delivery(&self, pubsub: &str, outcome: &str) {
        self.deliveries.with_label_values(&[pubsub, outcome]).inc();
    }
}

/// Everything in the Prometheus text format, process figures included.
pub fn render() -> String {
    let mut out = TextEncoder::new().encode_to_string(&METRICS.registry.gather()).unwrap_or_default();
    process_metrics(&mut out);
    out
}

/// The process's CPU time, threads and RSS, read from `/proc/self/stat`.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct ProcessStat {
    pub cpu_seconds: f64,
    pub threads: f64,
    pub rss_bytes: f64,
}

impl ProcessStat {
    /// None where `/proc` is not there (not Linux).
    pub fn read() -> Option<Self> {
        // Linux fixes USER_HZ at 100 for /proc; pages are 4 KiB on the platforms we build for.
        const TICKS_PER_SECOND: f64 = 100.0;
        const PAGE_BYTES: f64 = 4096.0;
        let stat = std::fs::read_to_string("/proc/self/stat").ok()?;
        // Fields after the command name, which is in parentheses and may hold spaces.
        let (_, rest) = stat.rsplit_once(')')?;
        let fields: Vec<&str> = rest.split_whitespace().collect();
        let field = |n: usize| fields.get(n - 3).and_then(|v| v.parse::<f64>().ok());
        Some(Self {
            cpu_seconds: (field(14)? + field(15)?) / TICKS_PER_SECOND,
            threads: field(20)?,
            rss_bytes: field(24)? * PAGE_BYTES,
        })
    }
}

/// RSS, CPU time, open file descriptors and threads from `/proc/self`
/// (what Prometheus' process collector reports, under its names).
fn process_metrics(out: &mut String) {
    let mut gauge = |name: &str, kind: &str, help: &str, value: f64| {
        out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n{name} {value}\n"));
    };
    if let Some(stat) = ProcessStat::read() {
        gauge(
            "process_cpu_seconds_total",
            "counter",
            "User and system CPU time spent, in seconds.",
            stat.cpu_seconds,
        );
        gauge("process_threads", "gauge", "Threads of the process.", stat.threads);
        gauge("process_resident_memory_bytes", "gauge", "Resident memory size in bytes.", stat.rss_bytes);
    }
    if let Ok(fds) = std::fs::read_dir("/proc/self/fd") {
        gauge("process_open_fds", "gauge", "Open file descriptors.", fds.count() as f64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_what_was_recorded_and_the_process() {
        let m = metrics();
        m.requests.with_label_values(&["grpc", "svc", "Get", "OK"]).inc();
        m.component_call("state", "redis", Err(ErrorKind::Unavailable), Duration::from_millis(3));
        m.component_call("state", "redis", Ok(()), Duration::from_millis(1));
        let text = render();
        assert!(
            text.contains(
                r#"layotto_requests_total{code="OK",method="Get",protocol="grpc",service="svc"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"layotto_component_calls_total{api="state",component="redis",outcome="unavailable"} 1"#
            ),
            "{text}"
        );
        assert!(
            text.contains(
                r#"layotto_component_call_duration_seconds_count{api="state",component="redis"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains("process_resident_memory_bytes "), "{text}");
        assert!(text.contains("process_cpu_seconds_total "), "{text}");
    }
}
