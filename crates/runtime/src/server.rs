//! Startup and shutdown: components first, walking the API list (fail fast,
//! naming the one that failed), then the gRPC and actuator listeners behind
//! the layer stack of [`crate::stack`].

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use layotto_actuator::{Actuator, ComponentProbe, Startup};
use layotto_core::{ComponentContext, Metadata};
use layotto_grpc::api::{ApiError, Limits, Lookup};
use layotto_grpc::dapr::{DaprInfo, DaprService, RegisteredComponent, dapr_type};
use layotto_grpc::pb::dapr::runtime::v1::dapr_server::DaprServer;
use layotto_grpc::pb::delay_queue::delay_queue_server::DelayQueueServer;
use layotto_grpc::pb::email::email_service_server::EmailServiceServer;
use layotto_grpc::pb::runtime::lifecycle_server::LifecycleServer;
use layotto_grpc::pb::runtime::runtime_server::RuntimeServer;
use layotto_grpc::pb::s3::object_storage_service_server::ObjectStorageServiceServer;
use layotto_grpc::{
    Apis, AppCallback, DelayQueueService, EmailServiceImpl, LifecycleService, ObjectStorage, Reconfigure,
    ReconfigureError, RuntimeService,
};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::apis::Registries;
use crate::config::{ComponentConfig, Config, ListenAddr, UnknownKeys};
use crate::listen::{GrpcListener, HttpLimits, bind, guarded, local_addr, serve_http, wait_for};
use crate::services::Services;

/// How long shutdown waits for in-flight calls.
/// Why the runtime did not start; the message names the component or listener.
#[derive(Debug)]
pub struct StartError(pub String);

impl fmt::Display for StartError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for StartError {}

/// A started runtime. Dropping it does not stop it; call [`Running::shutdown`].
pub struct Running {
    grpc_listen: ListenAddr,
    actuator_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    subscriptions: crate::subscriber::Subscriptions,
    dapr_http_addr: Option<SocketAddr>,
    wasm: WasmListeners,
    dapr: Arc<DaprInfo>,
    startup: Arc<Startup>,
    /// The actuator serves on through the drain (readiness 503), then stops.
    actuator: JoinHandle<()>,
    actuator_stop: watch::Sender<bool>,
    drain: Duration,
}

impl Running {
    /// The TCP address of the gRPC listener (unspecified for a Unix socket).
    pub fn grpc_addr(&self) -> SocketAddr {
        match &self.grpc_listen {
            ListenAddr::Tcp(addr) => *addr,
            ListenAddr::Unix(_) => SocketAddr::from(([0, 0, 0, 0], 0)),
        }
    }

    /// Where the gRPC listener is, TCP or Unix socket.
    pub fn grpc_listen(&self) -> &ListenAddr {
        &self.grpc_listen
    }

    pub fn actuator_addr(&self) -> SocketAddr {
        self.actuator_addr
    }

    /// The `/metrics` listener of `metrics.listen`, when configured.
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// Where Dapr's HTTP API listens, when it does.
    pub fn dapr_http_addr(&self) -> Option<SocketAddr> {
        self.dapr_http_addr
    }

    /// Where the WebAssembly functions are served, when `[wasm]` is configured.
    pub fn wasm_addr(&self) -> Option<SocketAddr> {
        self.wasm.functions
    }

    /// Where the functions' admin endpoints are, when `wasm.admin` is set.
    pub fn wasm_admin_addr(&self) -> Option<SocketAddr> {
        self.wasm.admin
    }

    /// Resolves when a client asked the runtime to stop (Dapr's Shutdown).
    pub async fn shutdown_requested(&self) {
        self.dapr.shutdown.notified().await
    }

    /// Readiness turns DOWN at once; then stops accepting, stops consuming
    /// (unacknowledged messages go back to the brokers), lets in-flight calls
    /// finish within `server.drain_timeout_seconds`, and stops the actuator last.
    pub async fn shutdown(self) {
        self.startup.mark_stopping();
        let _ = self.shutdown.send(true);
        for subscription in self.subscriptions.lock().await.drain(..) {
            subscription.close().await;
        }
        // One deadline for all: a call that does not finish cannot hold the process for ever.
        let deadline = tokio::time::Instant::now() + self.drain;
        for mut task in self.tasks {
            if tokio::time::timeout_at(deadline, &mut task).await.is_err() {
                tracing::warn!(drain = ?self.drain, "calls still running after the drain time; closing their connections");
                task.abort();
            }
        }
        let _ = self.actuator_stop.send(true);
        let mut actuator = self.actuator;
        if tokio::time::timeout(Duration::from_secs(1), &mut actuator).await.is_err() {
            actuator.abort();
        }
        if let ListenAddr::Unix(path) = &self.grpc_listen {
            let _ = std::fs::remove_file(path);
        }
    }
}

/// The configured rate limits; a rule naming a method we do not serve is
/// kept (a later build may serve it) with a warning naming it.
fn rate_limits(config: &Config) -> Result<layotto_grpc::ratelimit::RateLimits, StartError> {
    let rules: Vec<_> = config.rate_limits.iter().map(crate::config::RateLimitConfig::rule).collect();
    let limits = layotto_grpc::ratelimit::RateLimits::new(&rules).map_err(StartError)?;
    for (method, prefix) in limits.methods() {
        if !prefix && !crate::services::serves(method) && !method.starts_with("/v1.0") {
            tracing::warn!(%method, "rate limit for a method this runtime does not serve; it never applies");
        }
    }
    if !limits.is_empty() {
        tracing::info!(rules = ?limits, "rate limits on");
    }
    Ok(limits)
}

/// Builds every component of `config` and starts serving.
pub async fn start(config: Config, registries: Registries) -> Result<Running, StartError> {
    let (apis, probes) = build_components(&config, &registries).await?;
    let reconfigure = Arc::new(Reconfigurer {
        registries: Arc::new(registries),
        config: Arc::new(config.clone()),
        apis: apis.clone(),
    });

    layotto_core::metrics::configure(config.metrics.enabled, config.metrics.grpc_metric_names);
    let grpc_listener = GrpcListener::bind(&config.server.grpc).await?;
    let actuator_listener = bind("actuator", config.server.actuator).await?;
    let metrics_listener = match config.metrics.listen {
        Some(addr) => Some(bind("metrics", addr).await?),
        None => None,
    };
    let dapr_http_listener = match config.server.dapr_http {
        Some(addr) => Some(bind("Dapr HTTP API", addr).await?),
        None => None,
    };
    let dapr_http_addr = dapr_http_listener.as_ref().map(|l| local_addr("Dapr HTTP API", l)).transpose()?;
    let dapr = Arc::new(dapr_info(&config, &apis));
    apis.invoke.set(Arc::new(invoker(&config).map_err(|e| StartError(e.to_string()))?));
    let grpc_listen = grpc_listener.local()?;
    let actuator_addr = local_addr("actuator", &actuator_listener)?;

    let startup = Arc::new(Startup::default());
    let probes = Arc::new(probes);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    let subscriptions = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    let has_inputs = !apis.bindings.inputs.is_empty();
    if config.app.callback_port != 0 && (!apis.pubsub.components.is_empty() || has_inputs) {
        let (host, port, token) =
            (&config.app.callback_host, config.app.callback_port, config.app.api_token.as_ref());
        let app = match config.app.protocol {
            crate::config::AppProtocol::Grpc => AppCallback::new(host, port)
                .and_then(|app| app.with_token(token))
                .map(crate::subscriber::SubscribingApp::Grpc),
            crate::config::AppProtocol::Http => crate::http_app::HttpSubscriber::new(host, port, token)
                .map(crate::subscriber::SubscribingApp::Http),
        }
        .map_err(|e| StartError(e.to_string()))?;
        if has_inputs {
            let routes = config
                .section("input_bindings")
                .filter_map(|(name, c)| c.metadata.get("route").map(|r| (name.clone(), r.clone())))
                .collect();
            tasks.push(tokio::spawn(crate::input_bindings::read_for_app(
                app.clone(),
                apis.clone(),
                routes,
                shutdown_rx.clone(),
            )));
        }
        if !apis.pubsub.components.is_empty() {
            tasks.push(tokio::spawn(crate::subscriber::subscribe_app(
                app,
                config.subscriptions.clone(),
                dapr.clone(),
                apis.clone(),
                subscriptions.clone(),
                shutdown_rx.clone(),
            )));
        }
    }

    let rate_limits = Arc::new(rate_limits(&config)?);
    let (reporter, health_service) = tonic_health::server::health_reporter();
    let mut services = Services::default();
    services.add(RuntimeServer::new(RuntimeService::new(apis.clone(), shutdown_rx.clone())));
    services.add(LifecycleServer::new(LifecycleService::new(reconfigure)));
    services.add(EmailServiceServer::new(EmailServiceImpl::new(apis.clone())));
    services.add(DelayQueueServer::new(DelayQueueService::new(apis.clone())));
    services.add(ObjectStorageServiceServer::new(ObjectStorage::new(apis.clone())));
    services.add(DaprServer::new(DaprService::new(apis.clone(), dapr.clone(), shutdown_rx.clone())));
    for name in services.names.clone() {
        reporter.set_service_status(name, ServingStatus::Serving).await;
    }
    services.add(health_service);
    let routes = services.finish().map_err(StartError)?;
    let server = crate::stack::grpc_server(&config.server, rate_limits.clone())?.add_routes(routes);
    let stop = wait_for(shutdown_rx.clone());
    let (max_connections, handshake) =
        (config.server.max_connections, Duration::from_secs(config.server.handshake_timeout_seconds));
    let dump = config.traffic_dump.as_ref().map(crate::dump::Dump::start).transpose()?;
    let grpc_dump = dump.clone();
    tasks.push(tokio::spawn(async move {
        let served = match grpc_listener {
            GrpcListener::Tcp(listener) => {
                let incoming = Box::pin(TcpIncoming::from(listener).with_nodelay(Some(true)));
                server
                    .serve_with_incoming_shutdown(
                        guarded(incoming, max_connections, handshake, grpc_dump),
                        stop,
                    )
                    .await
            }
            GrpcListener::Unix(listener, _) => {
                let incoming = tokio_stream::wrappers::UnixListenerStream::new(listener);
                server
                    .serve_with_incoming_shutdown(
                        guarded(incoming, max_connections, handshake, grpc_dump),
                        stop,
                    )
                    .await
            }
        };
        if let Err(e) = served {
            tracing::error!(error = %e, "gRPC server stopped");
        }
    }));

    let actuator = Arc::new(Actuator { startup: startup.clone(), probes: probes.clone() });
    let router = crate::stack::http(layotto_actuator::router(actuator).merge(crate::dump::router(dump)));
    let tls = config.server.actuator_tls.as_ref().map(|tls| tls.actuator()).transpose()?;
    let (actuator_stop, actuator_stop_rx) = watch::channel(false);
    let actuator_task = tokio::spawn(serve_http(
        actuator_listener,
        router,
        actuator_stop_rx,
        HttpLimits {
            header_timeout: Duration::from_secs(config.server.handshake_timeout_seconds),
            max_connections: config.server.max_connections,
            tls,
            http2: false,
            name: "actuator",
        },
    ));

    let metrics_addr = metrics_listener.as_ref().map(|l| local_addr("metrics", l)).transpose()?;
    if let (Some(listener), Some(addr)) = (metrics_listener, metrics_addr) {
        tracing::info!(%addr, "serving /metrics");
        tasks.push(tokio::spawn(serve_http(
            listener,
            crate::stack::http(layotto_actuator::metrics_router()),
            shutdown_rx.clone(),
            HttpLimits {
                header_timeout: Duration::from_secs(config.server.handshake_timeout_seconds),
                max_connections: config.server.max_connections,
                tls: None,
                http2: false,
                name: "metrics",
            },
        )));
    }

    if let Some(listener) = dapr_http_listener {
        let dapr_http = Arc::new(crate::dapr_http::DaprHttp {
            apis: apis.clone(),
            info: dapr.clone(),
            startup: startup.clone(),
            max_body_bytes: config.server.max_request_bytes,
            app: match (config.app.protocol, config.app.callback_port) {
                (crate::config::AppProtocol::Http, port) if port != 0 => Some(
                    crate::http_app::HttpSubscriber::new(
                        &config.app.callback_host,
                        port,
                        config.app.api_token.as_ref(),
                    )
                    .map_err(|e| StartError(e.to_string()))?,
                ),
                _ => None,
            },
            config_subscriptions: Default::default(),
        });
        tasks.push(tokio::spawn(serve_http(
            listener,
            crate::stack::dapr_http(
                crate::dapr_http::router(dapr_http),
                config.server.api_token.clone(),
                rate_limits.clone(),
            ),
            shutdown_rx.clone(),
            HttpLimits {
                header_timeout: Duration::from_secs(config.server.handshake_timeout_seconds),
                max_connections: config.server.max_connections,
                tls: None,
                http2: true,
                name: "dapr_http",
            },
        )));
    }

    let wasm = start_wasm(&config, &apis, &shutdown_rx, &mut tasks).await?;
    tasks.push(tokio::spawn(report_grpc_health(reporter, startup.clone(), probes, shutdown_rx)));

    startup.mark_started();
    match dapr_http_addr {
        Some(dapr_http) => tracing::info!(
            grpc = %grpc_listen, actuator = %actuator_addr, dapr_http = %dapr_http, "layotto-rs is ready"
        ),
        None => tracing::info!(grpc = %grpc_listen, actuator = %actuator_addr, "layotto-rs is ready"),
    }
    Ok(Running {
        grpc_listen,
        actuator_addr,
        metrics_addr,
        shutdown,
        tasks,
        subscriptions,
        dapr_http_addr,
        wasm,
        dapr,
        startup,
        actuator: actuator_task,
        actuator_stop,
        drain: Duration::from_secs(config.server.drain_timeout_seconds),
    })
}

/// The WebAssembly functions' listeners, when configured.
#[derive(Debug, Clone, Copy, Default)]
struct WasmListeners {
    functions: Option<SocketAddr>,
    admin: Option<SocketAddr>,
}

/// Loads `[wasm]`'s functions (failing on the first that does not load) and
/// serves them, their admin endpoints and the hot-reload poll.
#[cfg(feature = "wasm")]
async fn start_wasm(
    config: &Config,
    apis: &Arc<Apis>,
    shutdown: &watch::Receiver<bool>,
    tasks: &mut Vec<JoinHandle<()>>,
) -> Result<WasmListeners, StartError> {
    let Some(wasm) = &config.wasm else { return Ok(WasmListeners::default()) };
    let functions = crate::wasm::start(config, wasm, apis.clone()).await.map_err(StartError)?;
    let limits = |name| HttpLimits {
        header_timeout: Duration::from_secs(config.server.handshake_timeout_seconds),
        max_connections: config.server.max_connections,
        tls: None,
        http2: false,
        name,
    };
    let listener = bind("wasm", wasm.listen).await?;
    let addr = local_addr("wasm", &listener)?;
    let router = crate::wasm::router(functions.clone(), config.server.max_request_bytes);
    tasks.push(tokio::spawn(serve_http(listener, router, shutdown.clone(), limits("wasm"))));
    let admin = match wasm.admin {
        Some(admin_addr) => {
            let listener = bind("wasm admin", admin_addr).await?;
            let admin_addr = local_addr("wasm admin", &listener)?;
            let modules_dir = match (&wasm.modules_dir, &config.base_dir) {
                (Some(dir), _) => dir.clone(),
                (None, Some(base)) if !base.as_os_str().is_empty() => base.clone(),
                _ => std::env::current_dir()
                    .map_err(|e| StartError(format!("wasm admin: no working directory: {e}")))?,
            };
            let router = crate::stack::http(crate::wasm::admin_router(crate::wasm::Admin {
                functions: functions.clone(),
                modules_dir,
            }));
            tasks.push(tokio::spawn(serve_http(listener, router, shutdown.clone(), limits("wasm_admin"))));
            Some(admin_addr)
        }
        None => None,
    };
    if wasm.reload_poll_ms > 0 {
        let period = Duration::from_millis(wasm.reload_poll_ms);
        tasks.push(tokio::spawn(crate::wasm::watch_files(functions.clone(), period, shutdown.clone())));
    }
    tracing::info!(%addr, admin = ?admin, functions = ?functions.names(), "serving wasm functions");
    Ok(WasmListeners { functions: Some(addr), admin })
}

/// Without the `wasm` feature, configured functions are an error in our
/// TOML and a warning in Layotto's JSON, like a section this build lacks.
#[cfg(not(feature = "wasm"))]
async fn start_wasm(
    config: &Config,
    _apis: &Arc<Apis>,
    _shutdown: &watch::Receiver<bool>,
    _tasks: &mut Vec<JoinHandle<()>>,
) -> Result<WasmListeners, StartError> {
    if let Some(wasm) = &config.wasm {
        let names: Vec<&String> = wasm.functions.keys().collect();
        let message =
            format!("[wasm] is configured (functions {names:?}) but this build has no 'wasm' feature");
        match config.unknown_keys {
            UnknownKeys::Deny => return Err(StartError(message)),
            UnknownKeys::Warn => tracing::warn!("{message}; skipped"),
        }
    }
    Ok(WasmListeners::default())
}

/// Walks the API list: checks every type first (so a typo fails before
/// anything connects), then builds each component, failing fast with a
/// message naming it, and reports metadata keys no setting of it knows.
async fn build_components(
    config: &Config,
    registries: &Registries,
) -> Result<(Arc<Apis>, Vec<ComponentProbe>), StartError> {
    for section in config.components.keys() {
        if registries.find(section).is_none() {
            return Err(StartError(format!(
                "config section '{section}' names an API this build does not serve"
            )));
        }
    }
    for api in &registries.apis {
        for (name, c) in config.section(api.section()) {
            api.check_type(name, &c.kind).map_err(|e| StartError(e.to_string()))?;
        }
    }
    let mut apis = Apis::default();
    apis.apply_limits(Limits {
        max_response_bytes: config.server.max_response_bytes,
        max_key_bytes: config.server.max_key_bytes,
        max_bulk_items: config.server.max_bulk_items,
        call_timeout: Duration::from_secs(config.server.call_timeout_seconds),
    });
    apis.configuration.app_id = config.app.id.clone();
    let apis = Arc::new(apis);
    let mut probes = Vec::new();
    for api in &registries.apis {
        let section = api.section();
        for (name, c) in config.section(section) {
            let ctx = context(section, name, c, config, &apis, registries)
                .await
                .map_err(|reason| failed(section, name, c, reason))?;
            let built = api.build(ctx.clone(), &c.options).await;
            let unknown = ctx.keys.unknown(&ctx.metadata);
            let built = match built {
                Ok(built) => built,
                Err(e) => {
                    let hints: Vec<String> = unknown.iter().map(ToString::to_string).collect();
                    let hint =
                        if hints.is_empty() { String::new() } else { format!(" ({})", hints.join("; ")) };
                    return Err(failed(section, name, c, format!("{e}{hint}")));
                }
            };
            for key in &unknown {
                match config.unknown_keys {
                    UnknownKeys::Deny => return Err(failed(section, name, c, key.to_string())),
                    UnknownKeys::Warn => {
                        tracing::warn!(api = section, name, r#type = %c.kind, "{key}; ignored")
                    }
                }
            }
            tracing::info!(api = section, name, r#type = %c.kind, "component ok");
            layotto_core::telemetry::register_component(api_label(section), name, &c.kind);
            (built.install)(&apis);
            probes.push(api.probe(apis.clone(), name, &c.kind));
        }
    }
    Ok((apis, probes))
}

/// The `api` label of metrics and spans for a config section.
fn api_label(section: &'static str) -> &'static str {
    match section {
        "pub_subs" => "pubsub",
        "secret_store" => "secrets",
        "config_store" => "configuration",
        "hellos" => "hello",
        other => other,
    }
}

/// What a component is built from: its metadata after it passed the one
/// place where references resolve (`secret_ref` values from secret stores,
/// `component_ref` stores), which never logs a resolved value.
async fn context(
    api: &str,
    name: &str,
    c: &ComponentConfig,
    config: &Config,
    apis: &Apis,
    registries: &Registries,
) -> Result<ComponentContext, String> {
    let mut ctx = ComponentContext {
        api: api.to_owned(),
        name: name.to_owned(),
        kind: c.kind.clone(),
        metadata: c.metadata.clone(),
        app_id: config.app.id.clone(),
        base_dir: config.base_dir.clone(),
        ..Default::default()
    };
    if !c.secret_ref.is_empty() && api == "secret_store" {
        return Err("secret stores cannot take secret_ref".to_owned());
    }
    for (i, r) in c.secret_ref.iter().enumerate() {
        let at = format!("secret_ref[{i}] (store '{}', key '{}')", r.store_name, r.key);
        let secret = apis.secrets.get(&r.store_name, &r.key).await.map_err(|e| match e {
            ApiError::Lookup(Lookup::NotConfigured) => format!("{at}: no secret store is configured"),
            ApiError::Lookup(_) => {
                let known: Vec<String> = config.section("secret_store").map(|(n, _)| n.clone()).collect();
                format!(
                    "{at}: secret store '{}' is not configured (configured: {})",
                    r.store_name,
                    known.join(", ")
                )
            }
            ApiError::Call(e) => format!("{at}: {e}"),
        })?;
        let sub_key = if r.sub_key.is_empty() { &r.key } else { &r.sub_key };
        let Some(value) = secret.get(sub_key) else {
            let has: Vec<&String> = secret.keys().collect();
            return Err(format!("{at}: the secret has no value '{sub_key}' (it has: {has:?})"));
        };
        let target = if r.inject_as.is_empty() { sub_key } else { &r.inject_as };
        ctx.metadata.insert(target.clone(), value.clone());
    }
    if let Some(refs) = &c.component_ref {
        for (role, section, wanted) in [
            ("config_store", "config_store", &refs.config_store),
            ("secret_store", "secret_store", &refs.secret_store),
        ] {
            let Some(wanted) = wanted.as_deref().filter(|w| !w.is_empty()) else { continue };
            let component = registries
                .find(section)
                .and_then(|api| api.component(apis, wanted))
                .ok_or_else(|| format!("component_ref: {role} '{wanted}' is not configured"))?;
            ctx.refs.insert(role, (wanted.to_owned(), component));
        }
    }
    Ok(ctx)
}

/// Lifecycle's ApplyConfiguration: rebuilds one component from its config
/// with the new metadata (references resolved again) and swaps it in.
struct Reconfigurer {
    registries: Arc<Registries>,
    config: Arc<Config>,
    apis: Arc<Apis>,
}

impl Reconfigure for Reconfigurer {
    fn apply<'a>(
        &'a self,
        kind: &'a str,
        name: &'a str,
        metadata: Metadata,
    ) -> BoxFuture<'a, Result<(), ReconfigureError>> {
        Box::pin(async move {
            let api = self.registries.find(kind).ok_or(ReconfigureError::NotFound)?;
            let section = api.section();
            let (_, current) =
                self.config.section(section).find(|(n, _)| *n == name).ok_or(ReconfigureError::NotFound)?;
            if !api.reconfigurable() {
                return Err(ReconfigureError::NotReconfigurable);
            }
            let mut next = current.clone();
            next.metadata = metadata;
            let ctx = context(section, name, &next, &self.config, &self.apis, &self.registries)
                .await
                .map_err(|reason| ReconfigureError::Failed(layotto_core::Error::invalid_argument(reason)))?;
            let built = api.build(ctx.clone(), &next.options).await.map_err(ReconfigureError::Failed)?;
            for key in ctx.keys.unknown(&ctx.metadata) {
                match self.config.unknown_keys {
                    UnknownKeys::Deny => {
                        let message = format!("{section} component '{name}': {key}");
                        return Err(ReconfigureError::Failed(layotto_core::Error::invalid_argument(message)));
                    }
                    UnknownKeys::Warn => tracing::warn!(api = section, name, "{key}; ignored"),
                }
            }
            (built.install)(&self.apis);
            tracing::info!(api = section, name, r#type = %next.kind, "component reconfigured");
            Ok(())
        })
    }
}

fn failed(api: &str, name: &str, c: &ComponentConfig, reason: String) -> StartError {
    tracing::error!(api, name, r#type = %c.kind, reason = %reason, "component failed");
    StartError(format!("{api} component '{name}' ({}) failed to start: {reason}", c.kind))
}

/// Keeps `grpc.health.v1.Health` for the whole server ("") in step with readiness.
async fn report_grpc_health(
    reporter: tonic_health::server::HealthReporter,
    startup: Arc<Startup>,
    probes: Arc<Vec<ComponentProbe>>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut last = None;
    loop {
        let status = if layotto_actuator::readiness(&startup, &probes).await.is_up() {
            ServingStatus::Serving
        } else {
            ServingStatus::NotServing
        };
        if last != Some(status) {
            reporter.set_service_status("", status).await;
            last = Some(status);
        }
        tokio::select! {
            _ = tokio::time::sleep(Duration::from_secs(2)) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// The runtime as Dapr's GetMetadata describes it: the app id and every
/// configured component with Dapr's type name.
fn dapr_info(config: &Config, apis: &layotto_grpc::Apis) -> DaprInfo {
    // Dapr's capability names, where our features say the same thing.
    let capabilities = |section: &str, name: &str| -> Vec<String> {
        let Some(store) = (section == "state").then(|| apis.state.components.get(name).ok()).flatten() else {
            return Vec::new();
        };
        let features = store.features();
        [(features.etag, "ETAG"), (features.transactions, "TRANSACTIONAL"), (features.ttl, "TTL")]
            .into_iter()
            .filter(|(has, _)| *has)
            .map(|(_, capability)| capability.to_owned())
            .collect()
    };
    let components = config
        .components
        .iter()
        .flat_map(|(section, components)| {
            components.iter().map(move |(name, c)| RegisteredComponent {
                name: name.clone(),
                kind: dapr_type(section, &c.kind),
                version: "v1".to_owned(),
                capabilities: capabilities(section, name),
            })
        })
        .collect();
    DaprInfo {
        app_id: config.app.id.clone(),
        runtime_version: env!("CARGO_PKG_VERSION").to_owned(),
        components,
        ..Default::default()
    }
}

/// Service invocation: the app on `app.callback_port` by `app.protocol`,
/// other apps through their runtimes by `[invoke]`'s resolver.
fn invoker(config: &Config) -> layotto_core::Result<layotto_invoke::Invoker> {
    use crate::config::AppProtocol;
    use layotto_invoke::{AppChannel, DnsResolver, HttpApp, Resolver, StaticResolver};
    let app: Option<Arc<dyn AppChannel>> = match (config.app.callback_port, config.app.protocol) {
        (0, _) => None,
        (port, AppProtocol::Http) => Some(Arc::new(HttpApp::new(&config.app.callback_host, port)?)),
        (port, AppProtocol::Grpc) => Some(Arc::new(layotto_grpc::dapr::DaprGrpcApp::new(
            &config.app.callback_host,
            port,
            config.app.api_token.as_ref(),
        )?)),
    };
    let invoke = &config.invoke;
    let resolver: Arc<dyn Resolver> = match invoke.resolver.as_str() {
        "static" => Arc::new(StaticResolver { peers: invoke.peers.clone() }),
        "dns" => Arc::new(DnsResolver {
            template: invoke.dns_template.clone(),
            namespace: invoke.namespace.clone(),
        }),
        other => {
            return Err(layotto_core::Error::config(format!(
                "invoke.resolver must be 'static' or 'dns', not '{}'",
                layotto_core::clip(other)
            )));
        }
    };
    layotto_invoke::Invoker::new(
        &config.app.id,
        app,
        resolver,
        config.server.api_token.as_ref().map(|t| t.secret().to_owned()),
        Duration::from_secs(invoke.timeout_seconds.max(1)),
    )
}
