//! Tracing with OpenTelemetry: a span for every API call and every
//! component call, the caller's W3C `traceparent` as parent, and the
//! current span's context passed on to the app and to other runtimes.
//!
//! Spans are made only once the binary turned telemetry on ([`enable`]),
//! so with tracing off a call costs one relaxed load. They carry the
//! target [`TARGET`], which the exporter's layer takes and the log lines skip.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{LazyLock, RwLock};

use opentelemetry::propagation::{Extractor, Injector};

/// The `tracing` target of the runtime's telemetry spans.
pub const TARGET: &str = "otel";

static ENABLED: AtomicBool = AtomicBool::new(false);

/// Turns span making on (the binary does, once an exporter is installed).
pub fn enable() {
    ENABLED.store(true, Ordering::Release);
}

pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

struct Carrier(HashMap<String, String>);

impl Extractor for Carrier {
    fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    fn keys(&self) -> Vec<&str> {
        self.0.keys().map(String::as_str).collect()
    }
}

impl Injector for Carrier {
    fn set(&mut self, key: &str, value: String) {
        self.0.insert(key.to_owned(), value);
    }
}

/// The remote context in `traceparent` (and `tracestate`), made current
/// while the guard lives, so a span created meanwhile is its child (the
/// OpenTelemetry layer, activating contexts, takes the current context as
/// a new span's parent; the layer sits behind a reload, so the span
/// extension methods, which downcast to it, cannot be used).
fn attach_remote(traceparent: Option<&str>, tracestate: Option<&str>) -> Option<opentelemetry::ContextGuard> {
    let traceparent = traceparent?;
    let mut carrier = Carrier(HashMap::from([("traceparent".to_owned(), traceparent.to_owned())]));
    if let Some(state) = tracestate {
        carrier.0.insert("tracestate".to_owned(), state.to_owned());
    }
    let context = opentelemetry::global::get_text_map_propagator(|p| p.extract(&carrier));
    Some(context.attach())
}

/// A server span for a call `name` (a full gRPC method, an HTTP route).
pub fn server_span(
    protocol: &'static str,
    name: &str,
    traceparent: Option<&str>,
    tracestate: Option<&str>,
) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let _remote = attach_remote(traceparent, tracestate);
    tracing::info_span!(
        target: TARGET,
        "call",
        otel.name = name,
        otel.kind = "server",
        rpc.system = protocol,
        otel.status_code = tracing::field::Empty,
        rpc.grpc.status_code = tracing::field::Empty,
        http.response.status_code = tracing::field::Empty,
    )
}

/// Component types by api, then name, for the spans' `layotto.component.type`.
type ComponentTypes = HashMap<String, HashMap<String, String>>;
static COMPONENT_TYPES: LazyLock<RwLock<ComponentTypes>> = LazyLock::new(Default::default);

/// Records that component `name` of `api` is of type `kind` (at startup and reload).
pub fn register_component(api: &str, name: &str, kind: &str) {
    if let Ok(mut types) = COMPONENT_TYPES.write() {
        types.entry(api.to_owned()).or_default().insert(name.to_owned(), kind.to_owned());
    }
}

/// A span for one call into a component, a child of the current span.
pub fn component_span(api: &'static str, component: &str) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    // Looked up without allocating; the span copies the value it is given.
    let types = COMPONENT_TYPES.read().ok();
    let kind = types.as_ref().and_then(|t| t.get(api)?.get(component)).map_or("unknown", String::as_str);
    tracing::info_span!(
        target: TARGET,
        "component",
        otel.name = format!("{api} {component}"),
        otel.kind = "client",
        layotto.api = api,
        layotto.component = component,
        layotto.component.type = kind,
        otel.status_code = tracing::field::Empty,
    )
}

/// A span for delivering one pub/sub event to the app, a child of the
/// publisher's context carried in the event's `traceparent`.
pub fn delivery_span(pubsub: &str, topic: &str, traceparent: Option<&str>) -> tracing::Span {
    if !enabled() {
        return tracing::Span::none();
    }
    let _remote = attach_remote(traceparent, None);
    tracing::info_span!(
        target: TARGET,
        "deliver",
        otel.name = format!("deliver {topic}"),
        otel.kind = "consumer",
        messaging.system = "layotto",
        messaging.destination.name = topic,
        layotto.pubsub = pubsub,
        otel.status_code = tracing::field::Empty,
    )
}

/// Marks `span` failed (OTel's status ERROR).
pub fn record_error(span: &tracing::Span) {
    span.record("otel.status_code", "ERROR");
}

/// The current span's context as W3C headers (`traceparent`, and
/// `tracestate` when set), to pass on; nothing when tracing is off.
pub fn current_headers() -> Vec<(String, String)> {
    if !enabled() {
        return Vec::new();
    }
    // Entering a span makes its context current (context activation).
    let context = opentelemetry::Context::current();
    let mut carrier = Carrier(HashMap::new());
    opentelemetry::global::get_text_map_propagator(|p| p.inject_context(&context, &mut carrier));
    carrier.0.into_iter().collect()
}

/// The current span's `traceparent`, when tracing is on.
pub fn current_traceparent() -> Option<String> {
    current_headers().into_iter().find(|(k, _)| k == "traceparent").map(|(_, v)| v)
}
