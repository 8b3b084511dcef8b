//! Publish → deliver benchmarks: through the runtime (PublishEvent in,
//! AppCallback.OnTopicEvent out) and straight to the broker with its own
//! client (fred XADD/XREADGROUP/XACK, lapin publish-confirm/consume/ack).
//!
//! Every message carries `<run>|<seq>|<sent µs>`; the receiver measures
//! publish-to-delivery latency, ignores other runs and counts each seq once.

use std::collections::HashSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail};
use fred::prelude::{Builder, ClientLike, Config as RedisConfig, KeysInterface, StreamsInterface};
use hdrhistogram::Histogram;
use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::app_callback_server::{AppCallback, AppCallbackServer};
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::time::Instant;
use tonic::transport::Endpoint;
use tonic::{Request, Response, Status};

#[derive(Serialize)]
pub struct PubsubReport {
    /// Publishes acknowledged per second (by the runtime or the broker).
    pub publish_per_sec: f64,
    /// Messages delivered per second, from the first publish to the last delivery.
    pub delivered_per_sec: f64,
    /// Publish → delivery latency while saturated (mostly queueing).
    pub p50_us: f64,
    pub p99_us: f64,
    /// The same latency at a steady 500 messages/s, far below saturation.
    pub paced_p50_us: f64,
    pub paced_p99_us: f64,
    pub published: u64,
    pub delivered: u64,
    pub lost: u64,
    pub errors: u64,
    /// Every message published in the run, probes and the paced phase
    /// included: what a callgrind count of the whole run divides by.
    pub sent: u64,
}

fn now_us() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_micros() as u64)
}

fn message(run: &str, seq: u64, payload: usize) -> Vec<u8> {
    let mut m = format!("{run}|{seq}|{}|", now_us()).into_bytes();
    m.resize(m.len().max(payload), b'x');
    m
}

/// What the receiving side saw.
struct Received {
    run: String,
    seen: Mutex<(HashSet<u64>, Histogram<u64>, Option<Instant>)>,
    /// Latencies of the paced phase (seq ≥ PACED).
    paced: Mutex<Histogram<u64>>,
    count: AtomicU64,
    /// A `<run>|probe|…` message arrived: the subscription works.
    probed: std::sync::atomic::AtomicBool,
}

impl Received {
    fn new(run: &str) -> Result<Arc<Self>> {
        Ok(Arc::new(Self {
            run: run.to_owned(),
            seen: Mutex::new((HashSet::new(), crate::histogram()?, None)),
            paced: Mutex::new(crate::histogram()?),
            count: AtomicU64::new(0),
            probed: std::sync::atomic::AtomicBool::new(false),
        }))
    }

    fn record(&self, data: &[u8]) {
        let text = String::from_utf8_lossy(data);
        let mut parts = text.splitn(4, '|');
        let (Some(run), Some(seq), Some(sent)) = (parts.next(), parts.next(), parts.next()) else { return };
        if run != self.run {
            return;
        }
        if seq == "probe" {
            self.probed.store(true, Ordering::Relaxed);
            return;
        }
        let (Ok(seq), Ok(sent)) = (seq.parse::<u64>(), sent.parse::<u64>()) else { return };
        if seq >= PACED {
            self.paced.lock().saturating_record(now_us().saturating_sub(sent).max(1));
            return;
        }
        let mut seen = self.seen.lock();
        if seen.0.insert(seq) {
            seen.1.saturating_record(now_us().saturating_sub(sent).max(1));
            seen.2 = Some(Instant::now());
            self.count.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Sequence numbers of the paced phase start here.
const PACED: u64 = 1 << 40;
const PACED_RATE: u64 = 500;
const PACED_SECS: u64 = 3;

/// After the saturated phase: one message every 2 ms for a few seconds,
/// so latency is measured without queueing.
async fn paced<F, Fut>(received: &Received, publish: F)
where
    F: Fn(u64) -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut tick = tokio::time::interval(Duration::from_micros(1_000_000 / PACED_RATE));
    for i in 0..PACED_RATE * PACED_SECS {
        tick.tick().await;
        let _ = publish(PACED + i).await;
    }
    let deadline = Instant::now() + Duration::from_secs(5);
    while received.paced.lock().len() < PACED_RATE * PACED_SECS && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Publishers: `concurrency` tasks publishing back to back for `duration`.
async fn publish_for<F, Fut>(concurrency: usize, duration: Duration, publish: F) -> (u64, u64)
where
    F: Fn(u64) -> Fut + Clone + Send + Sync + 'static,
    Fut: Future<Output = Result<(), String>> + Send,
{
    let seq = Arc::new(AtomicU64::new(0));
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (publish, seq) = (publish.clone(), seq.clone());
        tasks.push(tokio::spawn(async move {
            let (mut ok, mut errors) = (0u64, 0u64);
            while Instant::now() < deadline {
                match publish(seq.fetch_add(1, Ordering::Relaxed)).await {
                    Ok(()) => ok += 1,
                    Err(e) => {
                        if errors == 0 {
                            eprintln!("layotto-bench: publish error: {e}");
                        }
                        errors += 1;
                    }
                }
            }
            (ok, errors)
        }));
    }
    let (mut ok, mut errors) = (0, 0);
    for t in tasks {
        if let Ok((o, e)) = t.await {
            ok += o;
            errors += e;
        }
    }
    (ok, errors)
}

/// Waits until everything published was delivered (or nothing arrived for 20 s).
async fn drain(received: &Received, published: u64) {
    let mut last = received.count.load(Ordering::Relaxed);
    let mut quiet_since = Instant::now();
    while received.count.load(Ordering::Relaxed) < published
        && quiet_since.elapsed() < Duration::from_secs(20)
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
        let now = received.count.load(Ordering::Relaxed);
        if now != last {
            last = now;
            quiet_since = Instant::now();
        }
    }
}

/// Summarises both phases.
fn finish(
    received: &Received,
    started: Instant,
    duration: Duration,
    published: u64,
    errors: u64,
) -> PubsubReport {
    let seen = received.seen.lock();
    let paced = received.paced.lock();
    let delivered = received.count.load(Ordering::Relaxed);
    let span = seen.2.map_or(duration, |t| t.duration_since(started)).as_secs_f64().max(0.001);
    PubsubReport {
        publish_per_sec: published as f64 / duration.as_secs_f64(),
        delivered_per_sec: delivered as f64 / span,
        p50_us: seen.1.value_at_quantile(0.5) as f64,
        p99_us: seen.1.value_at_quantile(0.99) as f64,
        paced_p50_us: paced.value_at_quantile(0.5) as f64,
        paced_p99_us: paced.value_at_quantile(0.99) as f64,
        published,
        delivered,
        lost: published.saturating_sub(delivered),
        errors,
        sent: published + errors + PACED_RATE * PACED_SECS,
    }
}

#[derive(Clone)]
struct BenchApp {
    subscriptions: Vec<pb::TopicSubscription>,
    received: Arc<Received>,
}

#[tonic::async_trait]
impl AppCallback for BenchApp {
    async fn list_topic_subscriptions(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListTopicSubscriptionsResponse>, Status> {
        Ok(Response::new(pb::ListTopicSubscriptionsResponse { subscriptions: self.subscriptions.clone() }))
    }

    async fn on_topic_event(
        &self,
        request: Request<pb::TopicEventRequest>,
    ) -> Result<Response<pb::TopicEventResponse>, Status> {
        self.received.record(&request.into_inner().data);
        Ok(Response::new(pb::TopicEventResponse { status: 0 }))
    }
}

pub struct RuntimeRun<'a> {
    pub target: &'a str,
    pub callback: SocketAddr,
    /// Every pubsub the runtime should subscribe (it asks the app once).
    pub subscribe: &'a [String],
    pub pubsub: &'a str,
    pub topic: &'a str,
    pub concurrency: usize,
    pub connections: usize,
    pub duration: Duration,
    pub payload: usize,
}

/// Through the runtime: PublishEvent, delivered to our AppCallback server.
pub async fn through_runtime(run: RuntimeRun<'_>) -> Result<PubsubReport> {
    let run_id = format!("r{}", now_us());
    let received = Received::new(&run_id)?;
    let app = BenchApp {
        subscriptions: run
            .subscribe
            .iter()
            .map(|p| pb::TopicSubscription {
                pubsub_name: p.clone(),
                topic: run.topic.to_owned(),
                metadata: Default::default(),
            })
            .collect(),
        received: received.clone(),
    };
    let listener = tokio::net::TcpListener::bind(run.callback)
        .await
        .with_context(|| format!("cannot listen for AppCallback on {}", run.callback))?;
    // TCP_NODELAY as every real gRPC server sets it (Go's net does by default):
    // without it Nagle holds back replies to pipelined deliveries until the
    // runtime's delayed ACK, and a drain runs at a few ms per round.
    let incoming = tonic::transport::server::TcpIncoming::from(listener).with_nodelay(Some(true));
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AppCallbackServer::new(app))
            .serve_with_incoming(incoming),
    );

    let endpoint =
        Endpoint::from_shared(run.target.to_owned())?.tcp_nodelay(true).timeout(Duration::from_secs(10));
    let mut clients = Vec::new();
    for _ in 0..run.connections.max(1) {
        clients.push(RuntimeClient::new(
            endpoint.connect().await.with_context(|| format!("connect {}", run.target))?,
        ));
    }
    let publish_one = {
        let (pubsub, topic) = (run.pubsub.to_owned(), run.topic.to_owned());
        move |client: &mut RuntimeClient<tonic::transport::Channel>, data: Vec<u8>| {
            let req = pb::PublishEventRequest {
                pubsub_name: pubsub.clone(),
                topic: topic.clone(),
                data,
                data_content_type: "text/plain".into(),
                metadata: Default::default(),
            };
            let mut client = client.clone();
            async move { client.publish_event(req).await.map(drop).map_err(|e| e.to_string()) }
        }
    };
    // Wait until the runtime has subscribed: a probe message comes back.
    let ready_by = Instant::now() + Duration::from_secs(60);
    let probe = format!("{run_id}|probe|0|").into_bytes();
    let mut probes = 0;
    loop {
        probes += 1;
        publish_one(&mut clients[0], probe.clone())
            .await
            .map_err(anyhow::Error::msg)
            .context("probe publish")?;
        tokio::time::sleep(Duration::from_millis(200)).await;
        if received.probed.load(Ordering::Relaxed) {
            break;
        }
        if Instant::now() > ready_by {
            bail!("the runtime never delivered to the bench app on {}: is it subscribed?", run.callback);
        }
    }
    let started = Instant::now();
    let clients = Arc::new(clients);
    let counter = Arc::new(AtomicU64::new(0));
    let (payload, run_for_pub) = (run.payload, run_id.clone());
    let publish = move |seq| {
        let clients = clients.clone();
        let i = counter.fetch_add(1, Ordering::Relaxed) as usize;
        let publish_one = publish_one.clone();
        let data = message(&run_for_pub, seq, payload);
        async move {
            let mut client = clients[i % clients.len()].clone();
            publish_one(&mut client, data).await
        }
    };
    let (published, errors) = publish_for(run.concurrency, run.duration, publish.clone()).await;
    drain(&received, published).await;
    paced(&received, publish).await;
    let mut report = finish(&received, started, run.duration, published, errors);
    report.sent += probes;
    Ok(report)
}

/// Straight to Redis Streams with fred: XADD by the publishers, one consumer
/// reading batches with XREADGROUP and acknowledging them with XACK.
pub async fn redis_direct(
    url: &str,
    concurrency: usize,
    duration: Duration,
    payload: usize,
) -> Result<PubsubReport> {
    let run_id = format!("d{}", now_us());
    let stream = format!("bench-direct-{run_id}");
    let config = RedisConfig::from_url(url)?;
    let pool = Builder::from_config(config.clone())
        .with_connection_config(|c| c.tcp.nodelay = Some(true))
        .build_pool(1)?;
    pool.init().await.context("connect to Redis")?;
    let reader =
        Builder::from_config(config).with_connection_config(|c| c.tcp.nodelay = Some(true)).build()?;
    reader.init().await?;
    pool.xgroup_create::<(), _, _, _>(stream.as_str(), "g", "$", true).await?;
    let received = Received::new(&run_id)?;
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let consumer = {
        let (received, stream, stop, pool) = (received.clone(), stream.clone(), stop.clone(), pool.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::Relaxed) {
                let read: Result<fred::types::streams::XReadResponse<String, String, String, Vec<u8>>, _> =
                    reader.xreadgroup_map("g", "c", Some(512), Some(100), false, stream.as_str(), ">").await;
                let Ok(mut streams) = read else { continue };
                let entries = streams.remove(&stream).unwrap_or_default();
                let mut ids = Vec::with_capacity(entries.len());
                for (id, fields) in entries {
                    if let Some(data) = fields.get("data") {
                        received.record(data);
                    }
                    ids.push(id);
                }
                if !ids.is_empty() {
                    let _: Result<i64, _> = pool.xack(stream.as_str(), "g", ids).await;
                }
            }
        })
    };
    let started = Instant::now();
    let publish = {
        let (pool, stream, run_id) = (pool.clone(), stream.clone(), run_id.clone());
        move |seq| {
            let (pool, stream) = (pool.clone(), stream.clone());
            let data = message(&run_id, seq, payload);
            async move {
                pool.xadd::<String, _, _, _, _>(stream.as_str(), false, None::<()>, "*", vec![("data", data)])
                    .await
                    .map(drop)
                    .map_err(|e| e.to_string())
            }
        }
    };
    let (published, errors) = publish_for(concurrency, duration, publish.clone()).await;
    drain(&received, published).await;
    paced(&received, publish).await;
    let report = finish(&received, started, duration, published, errors);
    stop.store(true, Ordering::Relaxed);
    let _ = consumer.await;
    let _: Result<i64, _> = pool.del(stream.as_str()).await;
    Ok(report)
}

/// Straight to RabbitMQ with lapin: publisher confirms on one channel, a
/// consumer with manual acks on another, a fanout exchange and one queue.
pub async fn rabbitmq_direct(
    url: &str,
    concurrency: usize,
    duration: Duration,
    payload: usize,
) -> Result<PubsubReport> {
    use futures::StreamExt;
    use lapin::options::*;
    use lapin::types::FieldTable;
    use lapin::{BasicProperties, Connection, ConnectionProperties, ExchangeKind};

    let run_id = format!("d{}", now_us());
    let exchange = format!("bench-direct-{run_id}");
    let conn =
        Connection::connect(url, ConnectionProperties::default()).await.context("connect to RabbitMQ")?;
    let publisher = conn.create_channel().await?;
    publisher.confirm_select(ConfirmSelectOptions::default()).await?;
    publisher
        .exchange_declare(
            exchange.as_str().into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions { durable: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    let consumer_channel = conn.create_channel().await?;
    consumer_channel.basic_qos(256, BasicQosOptions::default()).await?;
    let queue = consumer_channel
        .queue_declare(
            exchange.as_str().into(),
            QueueDeclareOptions { durable: true, auto_delete: true, ..Default::default() },
            FieldTable::default(),
        )
        .await?;
    consumer_channel
        .queue_bind(
            queue.name().clone(),
            exchange.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    let mut consumer = consumer_channel
        .basic_consume(queue.name().clone(), "".into(), BasicConsumeOptions::default(), FieldTable::default())
        .await?;
    let received = Received::new(&run_id)?;
    let consuming = {
        let received = received.clone();
        tokio::spawn(async move {
            while let Some(Ok(delivery)) = consumer.next().await {
                received.record(&delivery.data);
                let _ = delivery.acker.ack(BasicAckOptions::default()).await;
            }
        })
    };
    let started = Instant::now();
    let publish = {
        let (publisher, exchange, run_id) = (publisher.clone(), exchange.clone(), run_id.clone());
        move |seq| {
            let (publisher, exchange) = (publisher.clone(), exchange.clone());
            let data = message(&run_id, seq, payload);
            async move {
                let confirm = publisher
                    .basic_publish(
                        exchange.as_str().into(),
                        "".into(),
                        BasicPublishOptions::default(),
                        &data,
                        BasicProperties::default().with_delivery_mode(2),
                    )
                    .await
                    .map_err(|e| e.to_string())?
                    .await
                    .map_err(|e| e.to_string())?;
                if confirm.is_ack() { Ok(()) } else { Err("nack".to_owned()) }
            }
        }
    };
    let (published, errors) = publish_for(concurrency, duration, publish.clone()).await;
    drain(&received, published).await;
    paced(&received, publish).await;
    let report = finish(&received, started, duration, published, errors);
    let _ = publisher.exchange_delete(exchange.as_str().into(), ExchangeDeleteOptions::default()).await;
    let _ = conn.close(200, "done".into()).await;
    consuming.abort();
    Ok(report)
}
