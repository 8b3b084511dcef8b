//! The pub/sub conformance suite: every case runs against every component
//! (in-memory always; Redis at `LAYOTTO_TEST_REDIS`, default
//! redis://127.0.0.1:6379; RabbitMQ at `LAYOTTO_TEST_RABBITMQ`, default
//! amqp://guest:guest@127.0.0.1:5672/%2f; `cargo xtask test` starts both).
//! A broker that cannot be reached fails its cases loudly; nothing is skipped.
//!
//! Cases follow Dapr's components-contrib pub/sub conformance tests: the
//! app answers RETRY or fails for the first attempts and on every 5th
//! message, and every message must still arrive.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use futures::future::BoxFuture;
use layotto_core::{ErrorKind, Metadata, Result};
use layotto_pubsub::components::memory::MemoryPubSub;
use layotto_pubsub::delivery::subscribe_app;
use layotto_pubsub::{
    App, AppStatus, DeliveryPolicy, PubSub, PublishInput, PublishRequest, Subscription, TopicEvent,
    cloudevent,
};
use parking_lot::Mutex;

type Make = Arc<dyn Fn(Metadata) -> BoxFuture<'static, Arc<dyn PubSub>> + Send + Sync>;

/// How a backend is built for a case.
#[derive(Clone)]
pub struct Backend {
    make: Make,
    /// Two instances share messages (a real broker); false for in-memory.
    shared: bool,
}

impl Backend {
    async fn instance(&self, group: &str) -> Arc<dyn PubSub> {
        (self.make)(meta(&[("consumerID", group)])).await
    }
}

fn meta(pairs: &[(&str, &str)]) -> Metadata {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

fn unique(what: &str) -> String {
    format!("conf-{what}-{}", uuid::Uuid::new_v4().simple())
}

/// What the test app does with the n-th attempt (from 1) of a message.
type Behaviour = Arc<dyn Fn(&TopicEvent, u32) -> Result<AppStatus> + Send + Sync>;

/// The app side of a test: records what arrives and answers per `behaviour`.
struct Recorder {
    behaviour: Behaviour,
    /// Work per event, so that competing consumers both get some.
    delay: Duration,
    attempts: Mutex<HashMap<Vec<u8>, u32>>,
    handled: Mutex<Vec<TopicEvent>>,
}

impl Recorder {
    fn new(behaviour: Behaviour) -> Arc<Self> {
        Arc::new(Self {
            behaviour,
            delay: Duration::ZERO,
            attempts: Mutex::default(),
            handled: Mutex::default(),
        })
    }

    fn slow(behaviour: Behaviour, delay: Duration) -> Arc<Self> {
        Arc::new(Self { behaviour, delay, attempts: Mutex::default(), handled: Mutex::default() })
    }

    fn ok() -> Arc<Self> {
        Self::new(Arc::new(|_, _| Ok(AppStatus::Success)))
    }

    fn handled_data(&self) -> Vec<Vec<u8>> {
        self.handled.lock().iter().map(|e| e.data.clone()).collect()
    }

    fn count(&self) -> usize {
        self.handled.lock().len()
    }
}

#[async_trait]
impl App for Recorder {
    async fn on_event(&self, event: TopicEvent) -> Result<AppStatus> {
        if !self.delay.is_zero() {
            tokio::time::sleep(self.delay).await;
        }
        let attempt = {
            let mut attempts = self.attempts.lock();
            let n = attempts.entry(event.data.clone()).or_default();
            *n += 1;
            *n
        };
        let answer = (self.behaviour)(&event, attempt);
        if matches!(answer, Ok(AppStatus::Success) | Ok(AppStatus::Drop)) {
            self.handled.lock().push(event);
        }
        answer
    }
}

fn fast_policy() -> DeliveryPolicy {
    DeliveryPolicy {
        max_retries: 5,
        backoff: Duration::from_millis(10),
        max_backoff: Duration::from_millis(50),
        timeout: Duration::from_secs(5),
        dead_letter_topic: None,
    }
}

async fn publish(broker: &dyn PubSub, pubsub: &str, topic: &str, data: &[u8], content_type: &str) {
    let envelope = cloudevent::envelope(&PublishInput {
        pubsub_name: pubsub.into(),
        topic: topic.into(),
        data: data.to_vec(),
        content_type: content_type.into(),
        ..Default::default()
    })
    .unwrap();
    broker
        .publish(PublishRequest { topic: topic.into(), data: envelope, metadata: Metadata::new() })
        .await
        .unwrap();
}

async fn subscribe(
    broker: &Arc<dyn PubSub>,
    topic: &str,
    policy: DeliveryPolicy,
    app: Arc<Recorder>,
) -> Subscription {
    subscribe_app("conf", broker.clone(), topic, Metadata::new(), policy, app).await.unwrap()
}

async fn wait_until(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn sorted(mut v: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    v.sort();
    v
}

fn numbered(n: usize) -> Vec<Vec<u8>> {
    (0..n).map(|i| format!("m{i:05}").into_bytes()).collect()
}

/// When each delayed message (its index in the data) arrived.
struct Arrivals {
    seen: Arc<Mutex<HashMap<usize, Instant>>>,
    _sub: Subscription,
}

impl Arrivals {
    async fn subscribe(broker: &Arc<dyn PubSub>, topic: &str, _expected: usize) -> Self {
        let seen: Arc<Mutex<HashMap<usize, Instant>>> = Arc::default();
        let record = seen.clone();
        let handler: layotto_pubsub::Handler = Arc::new(move |message| {
            let record = record.clone();
            Box::pin(async move {
                let index: usize = String::from_utf8_lossy(&message.data).parse().unwrap_or(usize::MAX);
                record.lock().entry(index).or_insert_with(Instant::now);
                Ok(())
            })
        });
        let req = layotto_pubsub::SubscribeRequest { topic: topic.to_owned(), metadata: Metadata::new() };
        let sub = broker.subscribe(req, handler).await.unwrap();
        Self { seen, _sub: sub }
    }

    /// Waits for every message; none may come before its earliest time.
    /// The lateness of each, after its latest possible due time.
    async fn wait(&self, sent: &[(Instant, Instant, u64)], within: Duration) -> Vec<Duration> {
        let deadline = Instant::now() + within;
        while self.seen.lock().len() < sent.len() {
            assert!(
                Instant::now() < deadline,
                "only {} of {} delayed messages arrived",
                self.seen.lock().len(),
                sent.len()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let seen = self.seen.lock();
        sent.iter()
            .enumerate()
            .map(|(i, (before, after, delay))| {
                let arrived = seen[&i];
                let delay = Duration::from_secs(*delay);
                assert!(
                    arrived >= *before + delay,
                    "message {i} came {:?} early",
                    (*before + delay) - arrived
                );
                arrived.saturating_duration_since(*after + delay)
            })
            .collect()
    }
}

/// Schedules one message per delay (its data its index), 16 at a time;
/// for each, the instants just before and after it was scheduled.
async fn schedule(broker: &Arc<dyn PubSub>, topic: &str, delays: &[u64]) -> Vec<(Instant, Instant, u64)> {
    let sent = Arc::new(Mutex::new(vec![None; delays.len()]));
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let delays: Arc<Vec<u64>> = Arc::new(delays.to_vec());
    let mut tasks = Vec::new();
    for _ in 0..16 {
        let (broker, sent, next, delays, topic) =
            (broker.clone(), sent.clone(), next.clone(), delays.clone(), topic.to_owned());
        tasks.push(tokio::spawn(async move {
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(delay) = delays.get(i).copied() else { return };
                let req = PublishRequest {
                    topic: topic.clone(),
                    data: i.to_string().into_bytes(),
                    metadata: Metadata::new(),
                };
                let before = Instant::now();
                broker.publish_delayed(req, Duration::from_secs(delay)).await.unwrap();
                sent.lock()[i] = Some((before, Instant::now(), delay));
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let sent = sent.lock();
    sent.iter().map(|s| s.unwrap()).collect()
}

layotto_testkit::conformance! {
    subject: Backend;
    components {
        // In-memory keeps nothing across instances, so the crash case is for brokers only.
        in_memory: async { memory() }, ["delayed"];
        #[cfg(feature = "redis")]
        redis: async { redis_backend::redis() }, ["durable", "delayed"];
        /// Redis Streams on a Redis Cluster (`redisType: cluster`).
        #[cfg(feature = "redis")]
        redis_in_cluster: async { redis_backend::in_cluster() }, ["durable", "delayed"];
        #[cfg(feature = "rabbitmq")]
        rabbitmq: async { rabbitmq_backend::rabbitmq() }, ["durable", "delayed"];
    }
    cases {

        /// Delayed messages (the DelayQueue API) arrive no earlier than
        /// their delay and within a second after it.
        #[needs("delayed")]
        async fn delayed_messages_arrive_on_time_never_early(b) {
            let broker = b.instance(&unique("g")).await;
            let topic = unique("t");
            let delays: Vec<u64> = (0..24).map(|i| i % 4).collect();
            let arrivals = Arrivals::subscribe(&broker, &topic, delays.len()).await;
            let sent = schedule(&broker, &topic, &delays).await;
            let lateness = arrivals.wait(&sent, Duration::from_secs(20)).await;
            let worst = lateness.iter().max().copied().unwrap_or_default();
            assert!(worst <= Duration::from_secs(1), "a message came {worst:?} after its time");
        }

        /// A short delay does not wait behind a longer one scheduled before it.
        #[needs("delayed")]
        async fn a_short_delay_does_not_wait_behind_a_long_one(b) {
            let broker = b.instance(&unique("g")).await;
            let topic = unique("t");
            let arrivals = Arrivals::subscribe(&broker, &topic, 2).await;
            let sent = schedule(&broker, &topic, &[4, 1]).await;
            let lateness = arrivals.wait(&sent, Duration::from_secs(15)).await;
            assert!(lateness[1] <= Duration::from_secs(1), "the 1 s message came {:?} late", lateness[1]);
        }

        /// 10 000 messages with delays from 0 to 30 s: none lost, none early.
        #[needs("delayed")]
        async fn ten_thousand_mixed_delays_none_lost_none_early(b) {
            let broker = b.instance(&unique("g")).await;
            let topic = unique("t");
            let delays: Vec<u64> = (0..10_000u64).map(|i| (i * 7919) % 31).collect();
            let arrivals = Arrivals::subscribe(&broker, &topic, delays.len()).await;
            let sent = schedule(&broker, &topic, &delays).await;
            let mut lateness = arrivals.wait(&sent, Duration::from_secs(90)).await;
            lateness.sort();
            let at = |q: f64| lateness[((lateness.len() - 1) as f64 * q) as usize];
            println!(
                "delayed lateness over {} messages: p50 {:?}, p99 {:?}, max {:?}",
                lateness.len(),
                at(0.5),
                at(0.99),
                at(1.0)
            );
            assert!(at(0.99) <= Duration::from_secs(1), "p99 lateness {:?}", at(0.99));
        }

        async fn round_trip_and_cloudevent_fields(b) {
            let broker = b.instance(&unique("g")).await;
            let topic = unique("t");
            let app = Recorder::ok();
            let sub = subscribe(&broker, &topic, fast_policy(), app.clone()).await;
            publish(&*broker, "conf", &topic, br#"{"n":1}"#, "application/json").await;
            publish(&*broker, "conf", &topic, b"plain", "").await;
            publish(&*broker, "conf", &topic, &[0, 255, 1], "application/octet-stream").await;
            wait_until("3 events", Duration::from_secs(10), || app.count() == 3).await;
            let events = app.handled.lock().clone();
            for e in &events {
                assert_eq!(e.topic, topic);
                assert_eq!(e.pubsub_name, "conf");
                assert_eq!(e.source, "runtime");
                assert_eq!(e.r#type, "com.runtime.event.sent");
                assert_eq!(e.spec_version, "1.0");
                assert!(uuid::Uuid::parse_str(&e.id).is_ok(), "id {}", e.id);
            }
            let by_ct: HashMap<&str, &[u8]> =
                events.iter().map(|e| (e.data_content_type.as_str(), e.data.as_slice())).collect();
            assert_eq!(by_ct["application/json"], br#"{"n":1}"#);
            assert_eq!(by_ct["text/plain"], b"plain");
            assert_eq!(by_ct["application/octet-stream"], &[0, 255, 1]);
            sub.close().await;
        }

        async fn raw_payload(b) {
            let broker = b.instance(&unique("g")).await;
            let topic = unique("t");
            let app = Recorder::ok();
            let sub = subscribe_app(
                "conf",
                broker.clone(),
                &topic,
                meta(&[("rawPayload", "true")]),
                fast_policy(),
                app.clone(),
            )
            .await
            .unwrap();
            broker
                .publish(PublishRequest {
                    topic: topic.clone(),
                    data: b"not an envelope".to_vec(),
                    metadata: meta(&[("rawPayload", "true")]),
                })
                .await
                .unwrap();
            wait_until("raw event", Duration::from_secs(10), || app.count() == 1).await;
            assert_eq!(app.handled_data(), vec![b"not an envelope".to_vec()]);
            sub.close().await;
        }

        async fn topics_reach_their_own_handler(b) {
            let broker = b.instance(&unique("g")).await;
            let (t1, t2) = (unique("a"), unique("b"));
            let (a1, a2) = (Recorder::ok(), Recorder::ok());
            let s1 = subscribe(&broker, &t1, fast_policy(), a1.clone()).await;
            let s2 = subscribe(&broker, &t2, fast_policy(), a2.clone()).await;
            for i in 0..10 {
                publish(&*broker, "conf", &t1, format!("a{i}").as_bytes(), "").await;
                publish(&*broker, "conf", &t2, format!("b{i}").as_bytes(), "").await;
            }
            wait_until("10 + 10 events", Duration::from_secs(10), || a1.count() == 10 && a2.count() == 10).await;
            assert!(a1.handled_data().iter().all(|d| d.starts_with(b"a")));
            assert!(a2.handled_data().iter().all(|d| d.starts_with(b"b")));
            assert!(a1.handled.lock().iter().all(|e| e.topic == t1));
            s1.close().await;
            s2.close().await;
        }

        /// RETRY for the first two attempts of every message, and an app error on
        /// the first attempt of every 5th: all arrive, each handled once.
        async fn at_least_once_with_retries_and_errors(b) {
            let broker = b.instance(&unique("g")).await;
            let topic = unique("t");
            let app = Recorder::new(Arc::new(|e: &TopicEvent, attempt| {
                let n: usize = String::from_utf8_lossy(&e.data[1..]).parse().unwrap_or(0);
                if n.is_multiple_of(5) && attempt == 1 {
                    return Err(layotto_core::Error::unavailable("app is busy"));
                }
                Ok(if attempt <= 2 { AppStatus::Retry } else { AppStatus::Success })
            }));
            let sub = subscribe(&broker, &topic, fast_policy(), app.clone()).await;
            let sent = numbered(50);
            for m in &sent {
                publish(&*broker, "conf", &topic, m, "").await;
            }
            wait_until("50 events", Duration::from_secs(20), || app.count() >= 50).await;
            assert_eq!(sorted(app.handled_data()), sent);
            sub.close().await;
        }

        /// Retries exhausted, no dead-letter topic: the broker delivers it again later.
        async fn exhausted_retries_go_back_to_the_broker(b) {
            let broker = b.instance(&unique("g")).await;
            let topic = unique("t");
            // Attempts 1-2 fail (policy allows 1 retry), so the broker must redeliver.
            let app = Recorder::new(Arc::new(|_, attempt| {
                Ok(if attempt <= 2 { AppStatus::Retry } else { AppStatus::Success })
            }));
            let policy = DeliveryPolicy { max_retries: 1, ..fast_policy() };
            let sub = subscribe(&broker, &topic, policy, app.clone()).await;
            publish(&*broker, "conf", &topic, b"stubborn", "").await;
            wait_until("redelivery by the broker", Duration::from_secs(15), || app.count() == 1).await;
            assert_eq!(app.attempts.lock()[&b"stubborn".to_vec()], 3);
            sub.close().await;
        }

        async fn drop_is_not_redelivered(b) {
            let broker = b.instance(&unique("g")).await;
            let topic = unique("t");
            let app = Recorder::new(Arc::new(|_, _| Ok(AppStatus::Drop)));
            let sub = subscribe(&broker, &topic, fast_policy(), app.clone()).await;
            publish(&*broker, "conf", &topic, b"unwanted", "").await;
            wait_until("the drop", Duration::from_secs(10), || app.count() == 1).await;
            tokio::time::sleep(Duration::from_millis(1500)).await;
            assert_eq!(app.attempts.lock()[&b"unwanted".to_vec()], 1, "a dropped message came back");
            sub.close().await;
        }

        async fn dead_letter_gets_dropped_and_exhausted(b) {
            let broker = b.instance(&unique("g")).await;
            let (topic, dlq) = (unique("t"), unique("dlq"));
            let app = Recorder::new(Arc::new(|e: &TopicEvent, _| {
                Ok(if e.data == b"drop-me" { AppStatus::Drop } else { AppStatus::Retry })
            }));
            let dead = Recorder::ok();
            let policy = DeliveryPolicy { max_retries: 2, dead_letter_topic: Some(dlq.clone()), ..fast_policy() };
            let sub = subscribe(&broker, &topic, policy, app.clone()).await;
            let dead_sub = subscribe(&broker, &dlq, fast_policy(), dead.clone()).await;
            publish(&*broker, "conf", &topic, b"drop-me", "").await;
            publish(&*broker, "conf", &topic, b"always-retry", "").await;
            wait_until("2 dead letters", Duration::from_secs(10), || dead.count() == 2).await;
            assert_eq!(sorted(dead.handled_data()), vec![b"always-retry".to_vec(), b"drop-me".to_vec()]);
            // The dead letter keeps its original event id and topic-independent fields.
            assert!(dead.handled.lock().iter().all(|e| e.source == "runtime"));
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(app.attempts.lock()[&b"always-retry".to_vec()], 3, "retried exactly max_retries times");
            sub.close().await;
            dead_sub.close().await;
        }

        /// Same consumer group: each message to one of them. Another group: all.
        async fn competing_consumers_and_groups(b) {
            let group = unique("g");
            let first = b.instance(&group).await;
            let second = if b.shared { b.instance(&group).await } else { first.clone() };
            let other_group = if b.shared { b.instance(&unique("other")).await } else { first.clone() };
            let topic = unique("t");
            let work = Duration::from_millis(5);
            let a1 = Recorder::slow(Arc::new(|_, _| Ok(AppStatus::Success)), work);
            let a2 = Recorder::slow(Arc::new(|_, _| Ok(AppStatus::Success)), work);
            let other = Recorder::ok();
            let s1 = subscribe(&first, &topic, fast_policy(), a1.clone()).await;
            let s2 = subscribe(&second, &topic, fast_policy(), a2.clone()).await;
            let s3 = if b.shared {
                subscribe(&other_group, &topic, fast_policy(), other.clone()).await
            } else {
                subscribe_app(
                    "conf",
                    other_group.clone(),
                    &topic,
                    meta(&[("consumerID", "other")]),
                    fast_policy(),
                    other.clone(),
                )
                .await
                .unwrap()
            };
            let sent = numbered(200);
            for m in &sent {
                publish(&*first, "conf", &topic, m, "").await;
            }
            wait_until("all in the group and all in the other", Duration::from_secs(20), || {
                a1.count() + a2.count() >= 200 && other.count() >= 200
            })
            .await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let mut shared = a1.handled_data();
            shared.extend(a2.handled_data());
            assert_eq!(sorted(shared), sent, "each message exactly once within the group");
            assert!(a1.count() > 0 && a2.count() > 0, "both consumers got work: {} / {}", a1.count(), a2.count());
            assert_eq!(sorted(other.handled_data()), sent);
            s1.close().await;
            s2.close().await;
            s3.close().await;
        }

        /// The app is down (errors) while messages are published; they arrive once it is up.
        async fn published_while_app_down(b) {
            let broker = b.instance(&unique("g")).await;
            let topic = unique("t");
            let up = Arc::new(AtomicBool::new(false));
            let app = {
                let up = up.clone();
                Recorder::new(Arc::new(move |_, _| {
                    if up.load(Ordering::SeqCst) {
                        Ok(AppStatus::Success)
                    } else {
                        Err(layotto_core::Error::unavailable("connection refused"))
                    }
                }))
            };
            let policy = DeliveryPolicy { max_retries: 1, ..fast_policy() };
            let sub = subscribe(&broker, &topic, policy, app.clone()).await;
            let sent = numbered(20);
            for m in &sent {
                publish(&*broker, "conf", &topic, m, "").await;
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
            assert_eq!(app.count(), 0);
            up.store(true, Ordering::SeqCst);
            wait_until("all 20 after the app came up", Duration::from_secs(20), || app.count() >= 20).await;
            assert_eq!(
                sorted(app.handled_data()).into_iter().collect::<std::collections::BTreeSet<_>>().len(),
                20
            );
            sub.close().await;
        }

        /// Messages published before anyone subscribed wait for the subscriber.
        async fn published_before_subscribing(b) {
            let group = unique("g");
            let broker = b.instance(&group).await;
            let topic = unique("t");
            if b.shared {
                // A broker keeps messages for a group that existed before: make it exist.
                let first = subscribe(&broker, &topic, fast_policy(), Recorder::ok()).await;
                first.close().await;
            }
            let sent = numbered(10);
            for m in &sent {
                publish(&*broker, "conf", &topic, m, "").await;
            }
            let app = Recorder::ok();
            let sub = subscribe(&broker, &topic, fast_policy(), app.clone()).await;
            wait_until("the 10 earlier messages", Duration::from_secs(15), || app.count() >= 10).await;
            assert_eq!(sorted(app.handled_data()), sent);
            sub.close().await;
        }

        async fn ten_thousand_none_lost(b) {
            let broker = b.instance(&unique("g")).await;
            let topic = unique("t");
            let app = Recorder::ok();
            let sub = subscribe(&broker, &topic, fast_policy(), app.clone()).await;
            let sent = numbered(10_000);
            let mut tasks = Vec::new();
            for chunk in sent.chunks(500) {
                let (broker, topic, chunk) = (broker.clone(), topic.clone(), chunk.to_vec());
                tasks.push(tokio::spawn(async move {
                    for m in chunk {
                        publish(&*broker, "conf", &topic, &m, "").await;
                    }
                }));
            }
            for t in tasks {
                t.await.unwrap();
            }
            wait_until("10 000 events", Duration::from_secs(60), || app.count() >= 10_000).await;
            let got = sorted(app.handled_data());
            let mut unique_got = got.clone();
            unique_got.dedup();
            assert_eq!(unique_got, sent);
            sub.close().await;
        }

        async fn reports_healthy(b) {
            let broker = b.instance(&unique("g")).await;
            assert!(broker.health().await.is_up());
        }

        /// A runtime that dies with messages taken but unacknowledged: another
        /// runtime of the same group gets them (durable brokers only).
        #[needs("durable")]
        async fn crashed_consumer_loses_nothing(b) {
            let group = unique("g");
            let topic = unique("t");
            let dying = b.instance(&group).await;
            let hang = Recorder::slow(
                Arc::new(|_, _| Err(layotto_core::Error::unavailable("never answers"))),
                Duration::from_millis(50),
            );
            let policy = DeliveryPolicy { max_retries: 0, ..fast_policy() };
            let sub = subscribe(&dying, &topic, policy.clone(), hang.clone()).await;
            let sent = numbered(20);
            for m in &sent {
                publish(&*dying, "conf", &topic, m, "").await;
            }
            wait_until("the dying consumer took messages", Duration::from_secs(10), || {
                !hang.attempts.lock().is_empty()
            })
            .await;
            sub.close().await;
            drop(dying);
            let survivor = b.instance(&group).await;
            let app = Recorder::ok();
            let sub = subscribe(&survivor, &topic, fast_policy(), app.clone()).await;
            wait_until("all 20 on the survivor", Duration::from_secs(20), || {
                let mut got = app.handled_data();
                got.sort();
                got.dedup();
                got.len() >= 20
            })
            .await;
            sub.close().await;
        }
    }
}

fn memory() -> Backend {
    let make: Make = Arc::new(|m: Metadata| {
        let mut m = m;
        m.insert("redeliverInterval".into(), "200ms".into());
        Box::pin(async move { Arc::new(MemoryPubSub::new("conf", &m).unwrap()) as Arc<dyn PubSub> })
    });
    Backend { make, shared: false }
}

#[cfg(feature = "redis")]
mod redis_backend {
    use super::*;
    use layotto_pubsub::components::redis::RedisStreams;

    pub fn url() -> String {
        std::env::var("LAYOTTO_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
    }

    pub fn redis() -> Backend {
        streams(&[("redisHost", &url())])
    }

    pub fn in_cluster() -> Backend {
        streams(&[("redisHost", &layotto_testkit::redis_cluster_hosts()), ("redisType", "cluster")])
    }

    fn streams(connection: &[(&str, &str)]) -> Backend {
        let connection: Vec<(String, String)> =
            connection.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        let make: Make = Arc::new(move |m: Metadata| {
            let mut m = m;
            m.extend(connection.clone());
            m.insert("processingTimeout".into(), "1s".into());
            m.insert("redeliverInterval".into(), "300ms".into());
            Box::pin(async move {
                Arc::new(
                    RedisStreams::connect("conf", &m).await.expect("Redis for the pub/sub conformance suite"),
                ) as Arc<dyn PubSub>
            })
        });
        Backend { make, shared: true }
    }

    /// A private Redis is stopped: publish fails with UNAVAILABLE at once,
    /// and delivery resumes by itself when it is back.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_is_unavailable_then_resumes() {
        let mut server = layotto_testkit::PrivateRedis::durable();
        let port = server.port;
        let m = meta(&[
            ("redisHost", &format!("127.0.0.1:{port}")),
            ("consumerID", "outage"),
            ("processingTimeout", "1s"),
            ("redeliverInterval", "300ms"),
        ]);
        let mut broker = None;
        for _ in 0..50 {
            if let Ok(b) = RedisStreams::connect("conf", &m).await {
                broker = Some(Arc::new(b) as Arc<dyn PubSub>);
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let broker = broker.expect("private redis-server started");
        let app = Recorder::ok();
        let sub = subscribe(&broker, "outage", fast_policy(), app.clone()).await;
        publish(&*broker, "conf", "outage", b"before", "").await;
        wait_until("first message", Duration::from_secs(10), || app.count() == 1).await;
        server.kill();
        tokio::time::sleep(Duration::from_millis(300)).await;
        let err = broker
            .publish(PublishRequest {
                topic: "outage".into(),
                data: b"x".to_vec(),
                metadata: Metadata::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("pubsub 'conf' (redis)"), "{err}");
        assert!(!broker.health().await.is_up());
        server.restart();
        let start_at = Instant::now();
        loop {
            let ok = broker
                .publish(PublishRequest {
                    topic: "outage".into(),
                    data: cloudevent::envelope(&PublishInput {
                        pubsub_name: "conf".into(),
                        topic: "outage".into(),
                        data: b"after".to_vec(),
                        ..Default::default()
                    })
                    .unwrap(),
                    metadata: Metadata::new(),
                })
                .await
                .is_ok();
            if ok {
                break;
            }
            assert!(start_at.elapsed() < Duration::from_secs(15), "Redis never came back");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_until("delivery after the outage", Duration::from_secs(15), || {
            app.handled_data().contains(&b"after".to_vec())
        })
        .await;
        sub.close().await;
        server.kill();
        let _ = std::fs::remove_file(std::env::temp_dir().join(format!("ps-{port}.aof")));
    }
}

#[cfg(feature = "rabbitmq")]
mod rabbitmq_backend {
    use super::*;
    use layotto_pubsub::components::rabbitmq::RabbitMq;

    pub fn url() -> String {
        std::env::var("LAYOTTO_TEST_RABBITMQ")
            .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
    }

    pub fn rabbitmq() -> Backend {
        let make: Make = Arc::new(|m: Metadata| {
            let mut m = m;
            m.insert("host".into(), url());
            m.insert("redeliverInterval".into(), "200ms".into());
            Box::pin(async move {
                Arc::new(
                    RabbitMq::connect("conf", &m).await.expect("RabbitMQ for the pub/sub conformance suite"),
                ) as Arc<dyn PubSub>
            })
        });
        Backend { make, shared: true }
    }

    /// The connection to RabbitMQ is cut: publish answers UNAVAILABLE at
    /// once, and when it is back both sides reconnect by themselves and
    /// nothing acknowledged is lost.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn outage_is_unavailable_then_resumes() {
        let url = url();
        let upstream = layotto_testkit::upstream_of(&url, "127.0.0.1:5672");
        let proxy = layotto_testkit::TcpProxy::start(&upstream).await;
        let host = proxy.via(&url, &upstream);
        let m = meta(&[("host", &host), ("consumerID", &unique("g")), ("redeliverInterval", "200ms")]);
        let broker: Arc<dyn PubSub> = Arc::new(RabbitMq::connect("conf", &m).await.unwrap());
        let topic = unique("outage");
        let app = Recorder::ok();
        let sub = subscribe(&broker, &topic, fast_policy(), app.clone()).await;
        publish(&*broker, "conf", &topic, b"before", "").await;
        wait_until("the first message", Duration::from_secs(10), || app.count() == 1).await;

        proxy.set(false);
        tokio::time::sleep(Duration::from_millis(300)).await;
        let err = broker
            .publish(PublishRequest { topic: topic.clone(), data: b"x".to_vec(), metadata: Metadata::new() })
            .await
            .unwrap_err();
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("pubsub 'conf' (rabbitmq)"), "{err}");
        assert!(!broker.health().await.is_up());

        proxy.set(true);
        let start = Instant::now();
        let envelope = cloudevent::envelope(&PublishInput {
            pubsub_name: "conf".into(),
            topic: topic.clone(),
            data: b"after".to_vec(),
            ..Default::default()
        })
        .unwrap();
        while broker
            .publish(PublishRequest {
                topic: topic.clone(),
                data: envelope.clone(),
                metadata: Metadata::new(),
            })
            .await
            .is_err()
        {
            assert!(start.elapsed() < Duration::from_secs(15), "publishing never recovered");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        wait_until("delivery after the outage", Duration::from_secs(15), || {
            app.handled_data().contains(&b"after".to_vec())
        })
        .await;
        assert!(broker.health().await.is_up());
        sub.close().await;
    }

    #[tokio::test]
    async fn unreachable_broker_is_unavailable() {
        let err =
            match RabbitMq::connect("conf", &meta(&[("host", "amqp://guest:guest@127.0.0.1:1/%2f")])).await {
                Ok(_) => panic!("connected to a closed port"),
                Err(e) => e,
            };
        assert_eq!(err.kind(), ErrorKind::Unavailable, "{err}");
        assert!(err.to_string().contains("pubsub 'conf' (rabbitmq)"), "{err}");
        assert!(!err.to_string().contains("guest:guest"), "credentials leaked: {err}");
    }
}
