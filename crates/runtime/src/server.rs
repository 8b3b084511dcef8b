//! Startup and shutdown: components first (fail fast, naming the one that
//! failed), then the gRPC and actuator listeners.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use layotto_core::{ComponentContext, KeyPrefix};
use layotto_grpc::pb::runtime::lifecycle_server::LifecycleServer;
use layotto_grpc::pb::runtime::runtime_server::RuntimeServer;
use layotto_grpc::{
    AppCallback, Components, FILE_DESCRIPTOR_SET, LifecycleService, PubSubComponent, RuntimeService,
};
use layotto_lock::{LockStore, PrefixedLock};
use layotto_sequencer::SequencerService;
use layotto_state::{PrefixedStore, StateStore};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tonic::transport::server::TcpIncoming;
use tonic_health::ServingStatus;

use crate::Registries;
use crate::actuator::{self, Actuator};
use crate::config::{ComponentConfig, Config};
use crate::health::{self, ComponentProbe, Startup};

/// The consumer group of pub/sub components when neither `consumerID` nor an app id is set.
pub const DEFAULT_CONSUMER_ID: &str = "layotto";

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
    grpc_addr: SocketAddr,
    actuator_addr: SocketAddr,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    subscriptions: crate::subscriber::Subscriptions,
}

impl Running {
    pub fn grpc_addr(&self) -> SocketAddr {
        self.grpc_addr
    }

    pub fn actuator_addr(&self) -> SocketAddr {
        self.actuator_addr
    }

    /// Stops accepting, lets in-flight calls finish, and waits for the listeners.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        // Stop consuming first: unacknowledged messages go back to the brokers.
        for subscription in self.subscriptions.lock().await.drain(..) {
            subscription.close().await;
        }
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

/// Builds every component of `config` and starts serving.
pub async fn start(config: Config, registries: Registries) -> Result<Running, StartError> {
    // Check every type before connecting to anything, so a typo fails at once.
    for (name, c) in &config.hellos {
        registries.hellos.check(name, &c.kind).map_err(|e| StartError(e.to_string()))?;
    }
    for (name, c) in &config.state {
        registries.state.check(name, &c.kind).map_err(|e| StartError(e.to_string()))?;
    }
    for (name, c) in &config.pub_subs {
        registries.pub_subs.check(name, &c.kind).map_err(|e| StartError(e.to_string()))?;
    }
    for (name, c) in &config.lock {
        registries.lock.check(name, &c.kind).map_err(|e| StartError(e.to_string()))?;
    }
    for (name, c) in &config.sequencer {
        registries.sequencer.check(name, &c.kind).map_err(|e| StartError(e.to_string()))?;
    }
    let sections = [
        ("hellos", &config.hellos),
        ("state", &config.state),
        ("pub_subs", &config.pub_subs),
        ("lock", &config.lock),
    ];
    for (api, section) in sections {
        if let Some((name, _)) = section.iter().find(|(_, c)| !c.bigger_than.is_empty()) {
            return Err(StartError(format!(
                "{api} component '{name}': only sequencer components take bigger_than"
            )));
        }
    }

    let mut components = Components::default();
    let mut probes = Vec::new();
    for (name, c) in &config.hellos {
        let hello = registries
            .hellos
            .build(context("hellos", name, c, &config))
            .await
            .map_err(failed("hellos", name, c))?;
        started("hellos", name, c);
        probes.push(ComponentProbe::always_up("hellos", name, &c.kind));
        components.hellos.insert(name.clone(), hello);
    }
    for (name, c) in &config.state {
        let store = build_state(&registries, &config, name, c).await.map_err(failed("state", name, c))?;
        started("state", name, c);
        probes.push(ComponentProbe::state(name, &c.kind, store.clone()));
        components.state.insert(name.clone(), store);
    }
    for (name, c) in &config.pub_subs {
        let mut ctx = context("pub_subs", name, c, &config);
        // As Layotto: runtimes of one app id share the messages of a topic.
        let consumer = ctx.metadata.entry("consumerID".to_owned()).or_default();
        if consumer.trim().is_empty() {
            *consumer =
                if config.app.id.is_empty() { DEFAULT_CONSUMER_ID.to_owned() } else { config.app.id.clone() };
        }
        let metadata = ctx.metadata.clone();
        let pubsub = registries.pub_subs.build(ctx).await.map_err(failed("pub_subs", name, c))?;
        started("pub_subs", name, c);
        probes.push(ComponentProbe::new("pub_subs", name, &c.kind, {
            let pubsub = pubsub.clone();
            move || {
                let pubsub = pubsub.clone();
                Box::pin(async move { pubsub.health().await })
            }
        }));
        components.pubsubs.insert(name.clone(), PubSubComponent { component: pubsub, metadata });
    }
    for (name, c) in &config.lock {
        let ctx = context("lock", name, c, &config);
        let build = async {
            let inner = registries.lock.build(ctx.clone()).await?;
            PrefixedLock::from_context(inner, &ctx)
        };
        let lock: Arc<dyn LockStore> = Arc::new(build.await.map_err(failed("lock", name, c))?);
        started("lock", name, c);
        probes.push(ComponentProbe::new("lock", name, &c.kind, {
            let lock = lock.clone();
            move || {
                let lock = lock.clone();
                Box::pin(async move { lock.health().await })
            }
        }));
        components.locks.insert(name.clone(), lock);
    }
    for (name, c) in &config.sequencer {
        let ctx = context("sequencer", name, c, &config);
        let build = async {
            let inner = registries.sequencer.build(ctx.clone()).await?;
            SequencerService::new(inner, &ctx, &c.bigger_than).await
        };
        let sequencer = Arc::new(build.await.map_err(failed("sequencer", name, c))?);
        started("sequencer", name, c);
        probes.push(ComponentProbe::new("sequencer", name, &c.kind, {
            let sequencer = sequencer.clone();
            move || {
                let sequencer = sequencer.clone();
                Box::pin(async move { sequencer.health().await })
            }
        }));
        components.sequencers.insert(name.clone(), sequencer);
    }

    let grpc_listener = bind("gRPC", config.server.grpc).await?;
    let actuator_listener = bind("actuator", config.server.actuator).await?;
    let grpc_addr = local_addr("gRPC", &grpc_listener)?;
    let actuator_addr = local_addr("actuator", &actuator_listener)?;

    let startup = Arc::new(Startup::default());
    let probes = Arc::new(probes);
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();

    let components = Arc::new(components);
    let subscriptions = Arc::new(tokio::sync::Mutex::new(Vec::new()));
    if config.app.callback_port != 0 && !components.pubsubs.is_empty() {
        let app = AppCallback::new(&config.app.callback_host, config.app.callback_port)
            .map_err(|e| StartError(e.to_string()))?;
        tasks.push(tokio::spawn(crate::subscriber::subscribe_app(
            app,
            components.clone(),
            subscriptions.clone(),
            shutdown_rx.clone(),
        )));
    }
    let lifecycle = LifecycleService::new(components.clone());
    let runtime = RuntimeService::new(components, config.server.max_request_bytes);
    // Let slightly oversized requests through to the service, which names the store and key.
    let decode_limit = config.server.max_request_bytes.saturating_mul(2);
    let (reporter, health_service) = tonic_health::server::health_reporter();
    reporter.set_serving::<RuntimeServer<RuntimeService>>().await;
    reporter.set_serving::<LifecycleServer<LifecycleService>>().await;
    // Advertise what we serve; AppCallback is in our protos but served by the app.
    let reflection = |b: tonic_reflection::server::Builder<'static>, reflection_service: &str| {
        b.register_encoded_file_descriptor_set(FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
            .with_service_name("spec.proto.runtime.v1.Runtime")
            .with_service_name("spec.proto.runtime.v1.Lifecycle")
            .with_service_name("grpc.health.v1.Health")
            .with_service_name(reflection_service)
    };
    let reflection_v1 =
        reflection(tonic_reflection::server::Builder::configure(), "grpc.reflection.v1.ServerReflection")
            .build_v1()
            .map_err(|e| StartError(format!("gRPC reflection: {e}")))?;
    let reflection_v1alpha = reflection(
        tonic_reflection::server::Builder::configure(),
        "grpc.reflection.v1alpha.ServerReflection",
    )
    .build_v1alpha()
    .map_err(|e| StartError(format!("gRPC reflection: {e}")))?;
    let grpc = tonic::transport::Server::builder()
        .add_service(RuntimeServer::new(runtime).max_decoding_message_size(decode_limit))
        .add_service(LifecycleServer::new(lifecycle))
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .serve_with_incoming_shutdown(
            TcpIncoming::from(grpc_listener).with_nodelay(Some(true)),
            wait_for(shutdown_rx.clone()),
        );
    tasks.push(tokio::spawn(async move {
        if let Err(e) = grpc.await {
            tracing::error!(error = %e, "gRPC server stopped");
        }
    }));

    let actuator = Arc::new(Actuator {
        startup: startup.clone(),
        probes: probes.clone(),
        started_at: SystemTime::now(),
    });
    let http = axum::serve(actuator_listener, actuator::router(actuator))
        .with_graceful_shutdown(wait_for(shutdown_rx.clone()));
    tasks.push(tokio::spawn(async move {
        if let Err(e) = http.await {
            tracing::error!(error = %e, "actuator server stopped");
        }
    }));

    tasks.push(tokio::spawn(report_grpc_health(reporter, startup.clone(), probes, shutdown_rx)));

    startup.mark_started();
    tracing::info!(grpc = %grpc_addr, actuator = %actuator_addr, "layotto-rs is ready");
    Ok(Running { grpc_addr, actuator_addr, shutdown, tasks, subscriptions })
}

fn context(api: &str, name: &str, c: &ComponentConfig, config: &Config) -> ComponentContext {
    ComponentContext {
        api: api.to_owned(),
        name: name.to_owned(),
        kind: c.kind.clone(),
        metadata: c.metadata.clone(),
        app_id: config.app.id.clone(),
    }
}

async fn build_state(
    registries: &Registries,
    config: &Config,
    name: &str,
    c: &ComponentConfig,
) -> layotto_core::Result<Arc<dyn StateStore>> {
    let label = format!("state component '{name}' ({})", c.kind);
    let prefix = KeyPrefix::from_metadata(&label, &c.metadata, KeyPrefix::None)?;
    let inner = registries.state.build(context("state", name, c, config)).await?;
    Ok(Arc::new(PrefixedStore::new(name, prefix.resolve(&config.app.id, name), inner)))
}

fn started(api: &str, name: &str, c: &ComponentConfig) {
    tracing::info!(api, name, r#type = %c.kind, "component ok");
}

fn failed<'a>(
    api: &'a str,
    name: &'a str,
    c: &'a ComponentConfig,
) -> impl FnOnce(layotto_core::Error) -> StartError + 'a {
    move |e| {
        tracing::error!(api, name, r#type = %c.kind, reason = %e, "component failed");
        StartError(format!("{api} component '{name}' ({}) failed to start: {e}", c.kind))
    }
}

async fn bind(what: &str, addr: SocketAddr) -> Result<TcpListener, StartError> {
    TcpListener::bind(addr).await.map_err(|e| StartError(format!("cannot listen for {what} on {addr}: {e}")))
}

fn local_addr(what: &str, listener: &TcpListener) -> Result<SocketAddr, StartError> {
    listener.local_addr().map_err(|e| StartError(format!("{what} listener: {e}")))
}

async fn wait_for(mut shutdown: watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
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
        let status = if health::readiness(&startup, &probes).await.is_up() {
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
