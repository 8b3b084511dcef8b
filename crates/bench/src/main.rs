//! `layotto-bench`: the load generator and same-run baselines behind
//! `cargo xtask bench`.
//!
//! - `noop-server`: the Runtime service doing nothing, the gRPC floor.
//! - `grpc-load`: GetState/SaveState against a Runtime server (layotto or noop).
//! - `redis-load`: the same loop sent straight to Redis with fred.
//! - `pubsub-load` / `pubsub-direct`: publish → deliver through the runtime
//!   (to an AppCallback server in this process) and straight to the broker.
//!
//! - `oss-load`: PutObject/GetObject MiB/s through the runtime or straight
//!   to the S3 server with aws-sdk-s3.
//!
//! Each load run prints one JSON line: ops_per_sec, p50_us, p99_us, ops, errors.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod config_push;
mod dapr;
mod email_delay;
mod etcd;
mod oss;
mod pubsub;
mod wasm;
mod zookeeper;

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand, ValueEnum};
use fred::bytes::Bytes;
use fred::prelude::{Builder, ClientLike, Config as RedisConfig, Expiration, KeysInterface, SetOptions};
use futures::Stream;
use hdrhistogram::Histogram;
use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::app_callback_client::AppCallbackClient;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use layotto_grpc::pb::runtime::runtime_server::{Runtime, RuntimeServer};
use serde::Serialize;
use tokio::time::Instant;
use tonic::transport::server::TcpIncoming;
use tonic::transport::{Channel, Endpoint};
use tonic::{Request, Response, Status, Streaming};

#[derive(Parser)]
#[command(about = "Load generator and baselines for `cargo xtask bench`")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// A Runtime server that answers GetState with a fixed payload and SaveState with Ok.
    NoopServer {
        #[arg(long)]
        addr: SocketAddr,
        #[arg(long, default_value_t = 256)]
        payload: usize,
        /// PublishEvent calls this AppCallback's OnTopicEvent directly, with
        /// no broker: the two-hop floor of publish → deliver.
        #[arg(long)]
        callback: Option<SocketAddr>,
    },
    /// GetState/SaveState in a loop against a Runtime server.
    GrpcLoad {
        #[arg(long)]
        target: String,
        #[arg(long)]
        op: GrpcOp,
        #[arg(long)]
        store: String,
        #[command(flatten)]
        load: Load,
    },
    /// Publish → deliver through the runtime, with an AppCallback server here.
    PubsubLoad {
        #[arg(long)]
        target: String,
        /// Where this process serves AppCallback (the runtime's app.callback_port).
        #[arg(long)]
        callback: SocketAddr,
        /// Pubsubs the bench app lists (the runtime asks once, so list all).
        #[arg(long, value_delimiter = ',')]
        subscribe: Vec<String>,
        #[arg(long)]
        pubsub: String,
        #[arg(long, default_value = "bench")]
        topic: String,
        #[command(flatten)]
        load: Load,
    },
    /// Publish → deliver straight to a broker with its own client.
    PubsubDirect {
        #[arg(long)]
        broker: Broker,
        #[arg(long)]
        url: String,
        #[command(flatten)]
        load: Load,
    },
    /// Time from a change made straight in a backend to its push: through a
    /// runtime's SubscribeConfiguration (`--target`), or (`--direct`) through
    /// the backend's own watch, the same run's baseline.
    ConfigPush {
        #[arg(long)]
        backend: config_push::Backend,
        /// etcd `host:port`, a Redis or a PostgreSQL URL.
        #[arg(long)]
        url: String,
        /// The runtime; with none, the backend's own watch is measured.
        #[arg(long)]
        target: Option<String>,
        /// The runtime's config store name.
        #[arg(long, default_value = "bench")]
        store: String,
        #[arg(long, default_value_t = 200)]
        changes: usize,
    },
    /// SendEmail through the runtime's email `--component`.
    EmailLoad {
        #[arg(long)]
        target: String,
        #[arg(long, default_value = "smtp")]
        component: String,
        #[command(flatten)]
        load: Load,
    },
    /// The same message sent straight to the SMTP server with lettre.
    EmailDirect {
        #[arg(long)]
        host: String,
        #[arg(long)]
        port: u16,
        #[command(flatten)]
        load: Load,
    },
    /// Delayed messages scheduled through DelayQueue: the rate, and their
    /// lateness at a subscriber (errors counts any that came early).
    DelayLoad {
        #[arg(long)]
        target: String,
        #[arg(long)]
        pubsub: String,
        #[arg(long, default_value_t = 5000)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        delay_secs: u64,
        #[arg(long, default_value_t = 32)]
        concurrency: usize,
    },
    /// `count` objects of `size` bytes put (or got) through the runtime's
    /// `store` (`--target`), or straight to the S3 server with aws-sdk-s3.
    OssLoad {
        #[arg(long)]
        endpoint: String,
        #[arg(long)]
        target: Option<String>,
        #[arg(long, default_value = "s3")]
        store: String,
        #[arg(long)]
        op: oss::Op,
        #[arg(long)]
        size: usize,
        #[arg(long)]
        count: usize,
        #[arg(long, default_value_t = 1)]
        concurrency: usize,
    },
    /// The etcd lock's and sequencer's operations straight to etcd.
    EtcdLoad {
        #[arg(long, default_value = "127.0.0.1:2379")]
        endpoint: String,
        #[arg(long)]
        op: etcd::Op,
        #[command(flatten)]
        load: Load,
    },
    /// The ZooKeeper lock's and sequencer's operations straight to ZooKeeper.
    ZkLoad {
        #[arg(long, default_value = "127.0.0.1:2181")]
        hosts: String,
        #[arg(long)]
        op: zookeeper::Op,
        #[command(flatten)]
        load: Load,
    },
    /// Dapr's GetState over gRPC against a runtime's `store`.
    DaprGrpcLoad {
        #[arg(long)]
        target: String,
        #[arg(long)]
        store: String,
        #[command(flatten)]
        load: Load,
    },
    /// GETs of `--url`; with `--state-store`, Dapr's HTTP GetState of populated keys (`--url` ends in `/`).
    HttpLoad {
        #[arg(long)]
        url: String,
        #[arg(long)]
        state_store: Option<String>,
        /// `name: value`, repeatable (a function's `id`).
        #[arg(long)]
        header: Vec<String>,
        #[command(flatten)]
        load: Load,
    },
    /// Cold instantiation of a wasm module from its compiled template:
    /// microseconds and resident KiB per instance, over `count` instances.
    WasmInstances {
        #[arg(long)]
        module: std::path::PathBuf,
        #[arg(long, default_value_t = 64)]
        count: usize,
    },
    /// An HTTP app answering every request (the invocation baseline's target).
    EchoServer {
        #[arg(long)]
        addr: SocketAddr,
    },
    /// An OTLP/HTTP collector that accepts and drops every export (the tracing rows' sink).
    OtlpSink {
        #[arg(long)]
        addr: SocketAddr,
    },
    /// GET/SET in a loop straight to Redis.
    RedisLoad {
        #[arg(long, default_value = "redis://127.0.0.1:6379")]
        url: String,
        #[arg(long)]
        op: RedisOp,
        #[command(flatten)]
        load: Load,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum Broker {
    Redis,
    Rabbitmq,
}

#[derive(Clone, Copy, ValueEnum)]
enum GrpcOp {
    Get,
    Save,
    /// TryLock then Unlock of the same resource: one op is the pair.
    Lock,
    NextIdWeak,
    NextIdStrong,
    /// GetConfiguration of one key.
    GetConfig,
}

#[derive(Clone, Copy, ValueEnum)]
enum RedisOp {
    Get,
    Set,
    /// SET NX PX then a compare-and-delete script, as the lock component does.
    Lock,
    /// INCR, as the STRONG sequencer does.
    Incr,
}

#[derive(Args, Clone)]
struct Load {
    /// Tasks issuing calls, each one at a time.
    #[arg(long, default_value_t = 64)]
    concurrency: usize,
    /// Separate connections the tasks are spread over.
    #[arg(long, default_value_t = 4)]
    connections: usize,
    #[arg(long, default_value_t = 10)]
    duration_secs: u64,
    #[arg(long, default_value_t = 2)]
    warmup_secs: u64,
    #[arg(long, default_value_t = 256)]
    payload: usize,
    #[arg(long, default_value_t = 1000)]
    keys: usize,
}

#[derive(Serialize)]
struct Report {
    ops_per_sec: f64,
    p50_us: f64,
    p99_us: f64,
    ops: u64,
    errors: u64,
}

#[tokio::main]
async fn main() -> Result<()> {
    match Cli::parse().command {
        Command::NoopServer { addr, payload, callback } => noop_server(addr, payload, callback).await,
        Command::GrpcLoad { target, op, store, load } => {
            let report = grpc_load(&target, op, &store, &load).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::PubsubLoad { target, callback, subscribe, pubsub, topic, load } => {
            let report = pubsub::through_runtime(pubsub::RuntimeRun {
                target: &target,
                callback,
                subscribe: &subscribe,
                pubsub: &pubsub,
                topic: &topic,
                concurrency: load.concurrency,
                connections: load.connections,
                duration: Duration::from_secs(load.duration_secs),
                payload: load.payload,
            })
            .await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::PubsubDirect { broker, url, load } => {
            let duration = Duration::from_secs(load.duration_secs);
            let report = match broker {
                Broker::Redis => pubsub::redis_direct(&url, load.concurrency, duration, load.payload).await?,
                Broker::Rabbitmq => {
                    pubsub::rabbitmq_direct(&url, load.concurrency, duration, load.payload).await?
                }
            };
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::ConfigPush { backend, url, target, store, changes } => {
            let report = config_push::run(backend, &url, target.as_deref(), &store, changes).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::EmailLoad { target, component, load } => {
            println!(
                "{}",
                serde_json::to_string(&email_delay::email_load(&target, &component, &load).await?)?
            );
            Ok(())
        }
        Command::EmailDirect { host, port, load } => {
            println!("{}", serde_json::to_string(&email_delay::email_direct(&host, port, &load).await?)?);
            Ok(())
        }
        Command::DelayLoad { target, pubsub, count, delay_secs, concurrency } => {
            let report = email_delay::delay_load(&target, &pubsub, count, delay_secs, concurrency).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::OssLoad { endpoint, target, store, op, size, count, concurrency } => {
            let run = oss::Run { endpoint, target, store, op, size, count, concurrency };
            println!("{}", serde_json::to_string(&oss::load(run).await?)?);
            Ok(())
        }
        Command::EtcdLoad { endpoint, op, load } => {
            println!("{}", serde_json::to_string(&etcd::load(&endpoint, op, &load).await?)?);
            Ok(())
        }
        Command::ZkLoad { hosts, op, load } => {
            println!("{}", serde_json::to_string(&zookeeper::load(&hosts, op, &load).await?)?);
            Ok(())
        }
        Command::DaprGrpcLoad { target, store, load } => {
            let report = dapr::grpc_get(&target, &store, &load).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::WasmInstances { module, count } => wasm::instances(&module, count).await,
        Command::HttpLoad { url, state_store, header, load } => {
            let report = dapr::http_get(&url, state_store.as_deref(), &header, &load).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
        Command::EchoServer { addr } => dapr::echo_server(addr).await,
        Command::OtlpSink { addr } => dapr::otlp_sink(addr).await,
        Command::RedisLoad { url, op, load } => {
            let report = redis_load(&url, op, &load).await?;
            println!("{}", serde_json::to_string(&report)?);
            Ok(())
        }
    }
}

fn check(load: &Load) -> Result<()> {
    if load.concurrency == 0 || load.connections == 0 || load.keys == 0 || load.duration_secs == 0 {
        bail!("--concurrency, --connections, --keys and --duration-secs must be at least 1");
    }
    Ok(())
}

/// Upper bound for setup steps (connect, pre-populate), so a run never hangs.
const SETUP_TIMEOUT: Duration = Duration::from_secs(30);

async fn grpc_load(target: &str, op: GrpcOp, store: &str, load: &Load) -> Result<Report> {
    check(load)?;
    let endpoint = Endpoint::from_shared(target.to_owned())?
        .tcp_nodelay(true)
        .connect_timeout(Duration::from_secs(5))
        .timeout(Duration::from_secs(10));
    let mut clients = Vec::with_capacity(load.connections);
    for _ in 0..load.connections {
        // Each connect() is its own HTTP/2 connection.
        let channel = tokio::time::timeout(SETUP_TIMEOUT, endpoint.connect())
            .await
            .context("connect timed out")?
            .with_context(|| format!("cannot connect to {target}"))?;
        clients.push(RuntimeClient::new(channel));
    }
    let keys = key_names("bench-", load.keys);
    let payload = vec![b'x'; load.payload];
    if matches!(op, GrpcOp::Get) {
        tokio::time::timeout(SETUP_TIMEOUT, populate_grpc(&clients, store, &keys, &payload))
            .await
            .context("pre-populating the keys timed out")??;
    }
    if matches!(op, GrpcOp::GetConfig) {
        let items = keys
            .iter()
            .map(|key| pb::ConfigurationItem {
                key: key.clone(),
                content: String::from_utf8_lossy(&payload).into_owned(),
                ..Default::default()
            })
            .collect();
        let save = pb::SaveConfigurationRequest {
            store_name: store.to_owned(),
            app_id: "bench".into(),
            items,
            metadata: Default::default(),
        };
        // The noop server has nothing to save: it answers every key anyway.
        let _ = clients[0].clone().save_configuration(save).await;
    }
    let store = Arc::new(store.to_owned());
    let payload = Arc::new(payload);
    drive(load, clients, keys, move |mut client: RuntimeClient<Channel>, key: String| {
        let store = store.clone();
        let payload = payload.clone();
        async move {
            match op {
                GrpcOp::Get => {
                    let req = pb::GetStateRequest { store_name: (*store).clone(), key, ..Default::default() };
                    client.get_state(req).await.map(drop).map_err(|e| e.to_string())
                }
                GrpcOp::Save => {
                    let item = pb::StateItem { key, value: (*payload).clone(), ..Default::default() };
                    let req = pb::SaveStateRequest { store_name: (*store).clone(), states: vec![item] };
                    client.save_state(req).await.map(drop).map_err(|e| e.to_string())
                }
                GrpcOp::Lock => {
                    // A resource of its own per pair, so tasks never contend.
                    let n = LOCK_SEQ.fetch_add(1, Ordering::Relaxed);
                    let (key, owner) = (format!("{key}-{n}"), format!("owner-{n}"));
                    let req = pb::TryLockRequest {
                        store_name: (*store).clone(),
                        resource_id: key.clone(),
                        lock_owner: owner.clone(),
                        expire: 10,
                    };
                    let locked = client.try_lock(req).await.map_err(|e| e.to_string())?.into_inner().success;
                    if !locked {
                        return Err(format!("lock {key} was not free"));
                    }
                    let req = pb::UnlockRequest {
                        store_name: (*store).clone(),
                        resource_id: key,
                        lock_owner: owner,
                    };
                    let status = client.unlock(req).await.map_err(|e| e.to_string())?.into_inner().status;
                    if status != 0 { Err(format!("unlock status {status}")) } else { Ok(()) }
                }
                GrpcOp::NextIdWeak | GrpcOp::NextIdStrong => {
                    let increment = if matches!(op, GrpcOp::NextIdStrong) { 1 } else { 0 };
                    let req = pb::GetNextIdRequest {
                        store_name: (*store).clone(),
                        key,
                        options: Some(pb::SequencerOptions { increment }),
                        metadata: Default::default(),
                    };
                    client.get_next_id(req).await.map(drop).map_err(|e| e.to_string())
                }
                GrpcOp::GetConfig => {
                    let req = pb::GetConfigurationRequest {
                        store_name: (*store).clone(),
                        app_id: "bench".into(),
                        keys: vec![key],
                        ..Default::default()
                    };
                    let items =
                        client.get_configuration(req).await.map_err(|e| e.to_string())?.into_inner().items;
                    if items.len() == 1 { Ok(()) } else { Err(format!("{} items instead of 1", items.len())) }
                }
            }
        }
    })
    .await
}

async fn populate_grpc(
    clients: &[RuntimeClient<Channel>],
    store: &str,
    keys: &[String],
    payload: &[u8],
) -> Result<()> {
    for (i, key) in keys.iter().enumerate() {
        let mut client = clients[i % clients.len()].clone();
        let item = pb::StateItem { key: key.clone(), value: payload.to_vec(), ..Default::default() };
        client
            .save_state(pb::SaveStateRequest { store_name: store.to_owned(), states: vec![item] })
            .await
            .with_context(|| format!("pre-populating {key} in store {store}"))?;
    }
    Ok(())
}

async fn redis_load(url: &str, op: RedisOp, load: &Load) -> Result<Report> {
    check(load)?;
    let config = RedisConfig::from_url(url).with_context(|| format!("bad Redis url {url}"))?;
    let pool = Builder::from_config(config)
        .with_connection_config(|c| {
            c.connection_timeout = Duration::from_secs(5);
            c.tcp.nodelay = Some(true);
        })
        .with_performance_config(|p| p.default_command_timeout = Duration::from_secs(10))
        .build_pool(load.connections)?;
    tokio::time::timeout(SETUP_TIMEOUT, pool.init())
        .await
        .context("connecting to Redis timed out")?
        .with_context(|| format!("cannot connect to Redis at {url}"))?;
    // INCR needs keys that hold integers, so each op has its own key space.
    let prefix = match op {
        RedisOp::Get | RedisOp::Set => "bench-direct-",
        RedisOp::Lock => "bench-direct-lock-",
        RedisOp::Incr => "bench-direct-incr-",
    };
    let keys = key_names(prefix, load.keys);
    let payload = Bytes::from(vec![b'x'; load.payload]);
    if matches!(op, RedisOp::Get) {
        let populate = async {
            for key in keys.iter() {
                pool.set::<(), _, _>(key.as_str(), payload.clone(), None, None, false).await?;
            }
            Ok::<_, fred::prelude::Error>(())
        };
        tokio::time::timeout(SETUP_TIMEOUT, populate)
            .await
            .context("pre-populating the keys timed out")?
            .context("pre-populating the keys")?;
    }
    let clients = pool.clients().to_vec();
    let unlock = Arc::new(fred::types::scripts::Script::from_lua(UNLOCK_SCRIPT));
    let report = drive(load, clients, keys, move |client: fred::prelude::Client, key: String| {
        let payload = payload.clone();
        let unlock = unlock.clone();
        async move {
            match op {
                RedisOp::Get => client.get::<Option<Bytes>, _>(key).await.map(drop),
                RedisOp::Set => client.set::<(), _, _>(key, payload, None, None, false).await,
                RedisOp::Incr => client.incr::<i64, _>(key).await.map(drop),
                RedisOp::Lock => {
                    let n = LOCK_SEQ.fetch_add(1, Ordering::Relaxed);
                    let (key, owner) = (format!("{key}-{n}"), format!("owner-{n}"));
                    let set: Option<String> = client
                        .set(
                            key.as_str(),
                            owner.as_str(),
                            Some(Expiration::PX(10_000)),
                            Some(SetOptions::NX),
                            false,
                        )
                        .await
                        .map_err(|e| e.to_string())?;
                    if set.is_none() {
                        return Err(format!("lock {key} was not free"));
                    }
                    unlock.evalsha_with_reload::<i64, _, _>(&client, vec![key], vec![owner]).await.map(drop)
                }
            }
            .map_err(|e| e.to_string())
        }
    })
    .await;
    let _ = pool.quit().await;
    report
}

static LOCK_SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// Compare-and-delete, as the Redis lock component's unlock.
const UNLOCK_SCRIPT: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return 1 end
if v ~= ARGV[1] then return 2 end
redis.call('DEL', KEYS[1])
return 0
"#;

/// Latencies from 1 ns to 60 s at 3 significant digits.
fn histogram() -> Result<Histogram<u64>> {
    Histogram::new_with_bounds(1, 60_000_000_000, 3).context("creating a latency histogram")
}

fn key_names(prefix: &str, count: usize) -> Arc<Vec<String>> {
    Arc::new((0..count).map(|i| format!("{prefix}{i}")).collect())
}

/// Runs `concurrency` tasks, spread over `clients`, each calling `call` back to
/// back until the deadline; only calls started after the warmup are measured.
async fn drive<C, F, Fut>(load: &Load, clients: Vec<C>, keys: Arc<Vec<String>>, call: F) -> Result<Report>
where
    C: Clone + Send + 'static,
    F: Fn(C, String) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let start = Instant::now();
    let measure_from = start + Duration::from_secs(load.warmup_secs);
    let deadline = measure_from + Duration::from_secs(load.duration_secs);
    let first_error = Arc::new(AtomicBool::new(false));
    let concurrency = load.concurrency;
    let mut tasks = Vec::with_capacity(concurrency);
    for task in 0..concurrency {
        let client = clients[task % clients.len()].clone();
        let call = call.clone();
        let keys = keys.clone();
        let first_error = first_error.clone();
        let hist = histogram()?;
        tasks.push(tokio::spawn(async move {
            let mut hist = hist;
            let mut errors = 0u64;
            // Strided so tasks walk different keys.
            let mut i = task;
            loop {
                let begin = Instant::now();
                if begin >= deadline {
                    break;
                }
                let result = call(client.clone(), keys[i % keys.len()].clone()).await;
                let took = begin.elapsed();
                i = i.wrapping_add(concurrency);
                let measured = begin >= measure_from;
                match result {
                    Ok(()) if measured => hist.saturating_record(took.as_nanos().max(1) as u64),
                    Ok(()) => {}
                    Err(e) => {
                        if !first_error.swap(true, Ordering::Relaxed) {
                            eprintln!("layotto-bench: first error: {e}");
                        }
                        if measured {
                            errors += 1;
                        }
                    }
                }
            }
            (hist, errors)
        }));
    }

    let mut total = histogram()?;
    let mut errors = 0;
    // Calls in flight at the deadline get the client timeout plus a margin, no more.
    let grace = deadline + Duration::from_secs(15);
    for task in tasks {
        let abort = task.abort_handle();
        match tokio::time::timeout_at(grace, task).await {
            Ok(joined) => {
                let (hist, task_errors) = joined.context("load task panicked")?;
                total.add(&hist).context("merging histograms")?;
                errors += task_errors;
            }
            Err(_) => {
                abort.abort();
                bail!("a call did not finish within 15 s of the deadline");
            }
        }
    }

    let secs = load.duration_secs as f64;
    let ops = total.len();
    Ok(Report {
        ops_per_sec: ops as f64 / secs,
        p50_us: total.value_at_quantile(0.50) as f64 / 1000.0,
        p99_us: total.value_at_quantile(0.99) as f64 / 1000.0,
        ops,
        errors,
    })
}

async fn noop_server(addr: SocketAddr, payload: usize, callback: Option<SocketAddr>) -> Result<()> {
    let incoming =
        TcpIncoming::bind(addr).with_context(|| format!("cannot listen on {addr}"))?.with_nodelay(Some(true));
    eprintln!("layotto-bench: noop server listening on {addr}");
    let app = match callback {
        Some(callback) => Some(AppCallbackClient::new(
            Endpoint::from_shared(format!("http://{callback}"))?.tcp_nodelay(true).connect_lazy(),
        )),
        None => None,
    };
    tonic::transport::Server::builder()
        .add_service(RuntimeServer::new(Noop { data: vec![b'x'; payload], next_id: Default::default(), app }))
        .serve_with_incoming_shutdown(incoming, async {
            let _ = tokio::signal::ctrl_c().await;
        })
        .await?;
    Ok(())
}

/// The Runtime service with no work behind it: the gRPC floor.
struct Noop {
    data: Vec<u8>,
    next_id: std::sync::atomic::AtomicU64,
    /// Set for the two-hop floor: where PublishEvent delivers.
    app: Option<AppCallbackClient<Channel>>,
}

type Reply<T> = Result<Response<T>, Status>;
type BoxStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send + 'static>>;

fn unimplemented<T>() -> Reply<T> {
    Err(Status::unimplemented("not served by the noop benchmark server"))
}

#[tonic::async_trait]
impl Runtime for Noop {
    async fn say_hello(&self, _: Request<pb::SayHelloRequest>) -> Reply<pb::SayHelloResponse> {
        unimplemented()
    }

    async fn get_state(&self, _: Request<pb::GetStateRequest>) -> Reply<pb::GetStateResponse> {
        Ok(Response::new(pb::GetStateResponse {
            data: self.data.clone(),
            etag: "1".to_owned(),
            metadata: Default::default(),
        }))
    }

    async fn get_bulk_state(&self, _: Request<pb::GetBulkStateRequest>) -> Reply<pb::GetBulkStateResponse> {
        unimplemented()
    }

    async fn save_state(&self, _: Request<pb::SaveStateRequest>) -> Reply<()> {
        Ok(Response::new(()))
    }

    async fn delete_state(&self, _: Request<pb::DeleteStateRequest>) -> Reply<()> {
        unimplemented()
    }

    async fn delete_bulk_state(&self, _: Request<pb::DeleteBulkStateRequest>) -> Reply<()> {
        unimplemented()
    }

    async fn execute_state_transaction(&self, _: Request<pb::ExecuteStateTransactionRequest>) -> Reply<()> {
        unimplemented()
    }

    async fn invoke_service(&self, _: Request<pb::InvokeServiceRequest>) -> Reply<pb::InvokeResponse> {
        unimplemented()
    }

    async fn get_configuration(
        &self,
        request: Request<pb::GetConfigurationRequest>,
    ) -> Reply<pb::GetConfigurationResponse> {
        let req = request.into_inner();
        let content = String::from_utf8_lossy(&self.data).into_owned();
        let items = req
            .keys
            .into_iter()
            .map(|key| pb::ConfigurationItem {
                key,
                content: content.clone(),
                group: "default".into(),
                label: "default".into(),
                ..Default::default()
            })
            .collect();
        Ok(Response::new(pb::GetConfigurationResponse { items }))
    }

    async fn save_configuration(&self, _: Request<pb::SaveConfigurationRequest>) -> Reply<()> {
        unimplemented()
    }

    async fn delete_configuration(&self, _: Request<pb::DeleteConfigurationRequest>) -> Reply<()> {
        unimplemented()
    }

    type SubscribeConfigurationStream = BoxStream<pb::SubscribeConfigurationResponse>;

    async fn subscribe_configuration(
        &self,
        _: Request<Streaming<pb::SubscribeConfigurationRequest>>,
    ) -> Reply<Self::SubscribeConfigurationStream> {
        unimplemented()
    }

    async fn try_lock(&self, _: Request<pb::TryLockRequest>) -> Reply<pb::TryLockResponse> {
        Ok(Response::new(pb::TryLockResponse { success: true }))
    }

    async fn unlock(&self, _: Request<pb::UnlockRequest>) -> Reply<pb::UnlockResponse> {
        Ok(Response::new(pb::UnlockResponse { status: 0 }))
    }

    async fn lock_keep_alive(
        &self,
        _: Request<pb::LockKeepAliveRequest>,
    ) -> Reply<pb::LockKeepAliveResponse> {
        unimplemented()
    }

    async fn get_next_id(&self, _: Request<pb::GetNextIdRequest>) -> Reply<pb::GetNextIdResponse> {
        let next_id = self.next_id.fetch_add(1, Ordering::Relaxed) as i64;
        Ok(Response::new(pb::GetNextIdResponse { next_id }))
    }

    async fn publish_event(&self, request: Request<pb::PublishEventRequest>) -> Reply<()> {
        let Some(app) = &self.app else { return Ok(Response::new(())) };
        let req = request.into_inner();
        let event = pb::TopicEventRequest {
            id: self.next_id.fetch_add(1, Ordering::Relaxed).to_string(),
            source: "noop".into(),
            r#type: "com.dapr.event.sent".into(),
            spec_version: "1.0".into(),
            data_content_type: req.data_content_type,
            data: req.data,
            topic: req.topic,
            pubsub_name: req.pubsub_name,
            metadata: Default::default(),
        };
        app.clone().on_topic_event(event).await?;
        Ok(Response::new(()))
    }

    type SubscribeTopicEventsStream = BoxStream<pb::SubscribeTopicEventsResponse>;

    async fn subscribe_topic_events(
        &self,
        _: Request<Streaming<pb::SubscribeTopicEventsRequest>>,
    ) -> Reply<Self::SubscribeTopicEventsStream> {
        unimplemented()
    }

    type GetFileStream = BoxStream<pb::GetFileResponse>;

    async fn get_file(&self, _: Request<pb::GetFileRequest>) -> Reply<Self::GetFileStream> {
        unimplemented()
    }

    async fn put_file(&self, _: Request<Streaming<pb::PutFileRequest>>) -> Reply<()> {
        unimplemented()
    }

    async fn list_file(&self, _: Request<pb::ListFileRequest>) -> Reply<pb::ListFileResp> {
        unimplemented()
    }

    async fn del_file(&self, _: Request<pb::DelFileRequest>) -> Reply<()> {
        unimplemented()
    }

    async fn get_file_meta(&self, _: Request<pb::GetFileMetaRequest>) -> Reply<pb::GetFileMetaResponse> {
        unimplemented()
    }

    async fn invoke_binding(&self, _: Request<pb::InvokeBindingRequest>) -> Reply<pb::InvokeBindingResponse> {
        unimplemented()
    }

    async fn get_secret(&self, _: Request<pb::GetSecretRequest>) -> Reply<pb::GetSecretResponse> {
        unimplemented()
    }

    async fn get_bulk_secret(
        &self,
        _: Request<pb::GetBulkSecretRequest>,
    ) -> Reply<pb::GetBulkSecretResponse> {
        unimplemented()
    }
}
