//! Pub/Sub end to end: the runtime in-process, a tonic AppCallback server
//! inside the test as the app, and a tonic client publishing. Redis and
//! RabbitMQ come from `LAYOTTO_TEST_REDIS` / `LAYOTTO_TEST_RABBITMQ`.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::app_callback_server::{AppCallback, AppCallbackServer};
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use layotto_grpc::pb::runtime::topic_event_response::TopicEventResponseStatus as S;
use layotto_runtime::{ComponentConfig, Config, Registries, Running};
use parking_lot::Mutex;
use tokio_stream::StreamExt;
use tonic::transport::Channel;
use tonic::{Code, Request, Response, Status};

fn redis_url() -> String {
    std::env::var("LAYOTTO_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn rabbitmq_url() -> String {
    std::env::var("LAYOTTO_TEST_RABBITMQ")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

fn unique(what: &str) -> String {
    format!("e2e-{what}-{}", uuid::Uuid::new_v4().simple())
}

/// What the test app answers for the n-th attempt (from 1) of an event's data.
type Behaviour = Arc<dyn Fn(&pb::TopicEventRequest, u32) -> Result<S, Status> + Send + Sync>;

/// The app: lists `subscriptions`, records events it accepted.
#[derive(Clone)]
struct TestApp {
    subscriptions: Vec<pb::TopicSubscription>,
    behaviour: Behaviour,
    up: Arc<AtomicBool>,
    /// Events offered by the runtime, accepted or not.
    offered: Arc<std::sync::atomic::AtomicUsize>,
    attempts: Arc<Mutex<HashMap<Vec<u8>, u32>>>,
    accepted: Arc<Mutex<Vec<pb::TopicEventRequest>>>,
    /// The `dapr-api-token` of each event offered.
    tokens: Arc<Mutex<Vec<Option<String>>>>,
}

impl TestApp {
    fn new(subscriptions: &[(&str, &str)], behaviour: Behaviour) -> Self {
        Self {
            subscriptions: subscriptions
                .iter()
                .map(|(p, t)| pb::TopicSubscription {
                    pubsub_name: p.to_string(),
                    topic: t.to_string(),
                    metadata: HashMap::new(),
                })
                .collect(),
            behaviour,
            up: Arc::new(AtomicBool::new(true)),
            offered: Arc::default(),
            attempts: Arc::default(),
            accepted: Arc::default(),
            tokens: Arc::default(),
        }
    }

    fn ok(subscriptions: &[(&str, &str)]) -> Self {
        Self::new(subscriptions, Arc::new(|_, _| Ok(S::Success)))
    }

    /// What was accepted on `topic`, sorted, without the probes of [`until_subscribed`].
    fn accepted_data(&self, topic: &str) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = self
            .accepted
            .lock()
            .iter()
            .filter(|e| e.topic == topic && e.data != PROBE)
            .map(|e| e.data.clone())
            .collect();
        v.sort();
        v
    }

    /// Serves on a free port; returns the port.
    async fn serve(&self) -> u16 {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        self.serve_on(listener);
        port
    }

    fn serve_on(&self, listener: tokio::net::TcpListener) {
        let incoming = tokio_stream::wrappers::TcpListenerStream::new(listener);
        let app = self.clone();
        tokio::spawn(async move {
            tonic::transport::Server::builder()
                .add_service(AppCallbackServer::new(app))
                .serve_with_incoming(incoming)
                .await
                .unwrap();
        });
    }
}

#[tonic::async_trait]
impl AppCallback for TestApp {
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
        let token = request.metadata().get("dapr-api-token").and_then(|v| v.to_str().ok()).map(str::to_owned);
        self.tokens.lock().push(token);
        let event = request.into_inner();
        self.offered.fetch_add(1, Ordering::SeqCst);
        if !self.up.load(Ordering::SeqCst) {
            return Err(Status::unavailable("app is down"));
        }
        let attempt = {
            let mut a = self.attempts.lock();
            let n = a.entry(event.data.clone()).or_default();
            *n += 1;
            *n
        };
        let status = (self.behaviour)(&event, attempt)?;
        if status != S::Retry {
            self.accepted.lock().push(event);
        }
        Ok(Response::new(pb::TopicEventResponse { status: status.into() }))
    }
}

const PROBE: &[u8] = b"probe";

/// Publishes probes until every app has been offered one: the runtimes have
/// subscribed (and a RabbitMQ queue exists) before the real messages go out.
async fn until_subscribed(c: &mut RuntimeClient<Channel>, pubsub: &str, topic: &str, apps: &[&TestApp]) {
    let deadline = Instant::now() + Duration::from_secs(15);
    while apps.iter().any(|a| a.offered.load(Ordering::SeqCst) == 0) {
        assert!(Instant::now() < deadline, "{pubsub}/{topic}: the runtimes never subscribed");
        publish(c, pubsub, topic, PROBE).await;
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn config(app_id: &str, callback_port: u16) -> Config {
    let mut config = Config::embedded_defaults();
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    config.app.id = app_id.into();
    config.app.callback_port = callback_port;
    let fast = |c: ComponentConfig| {
        c.with("deliveryRetryBackoff", "10ms")
            .with("deliveryMaxRetryBackoff", "50ms")
            .with("redeliverInterval", "300ms")
    };
    config.section_mut("pub_subs").insert("mem".into(), fast(ComponentConfig::new("in-memory")));
    config.section_mut("pub_subs").insert(
        "redis".into(),
        fast(ComponentConfig::new("redis").with("redisHost", &redis_url()).with("processingTimeout", "1s")),
    );
    config
        .section_mut("pub_subs")
        .insert("rabbit".into(), fast(ComponentConfig::new("rabbitmq").with("host", &rabbitmq_url())));
    config
}

async fn start(config: Config) -> (Running, RuntimeClient<Channel>) {
    let running = layotto_runtime::start(config, Registries::builtin()).await.expect("runtime starts");
    let client = RuntimeClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    (running, client)
}

const TRACEPARENT: &str = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01";

async fn publish(c: &mut RuntimeClient<Channel>, pubsub: &str, topic: &str, data: &[u8]) {
    let mut request = Request::new(pb::PublishEventRequest {
        pubsub_name: pubsub.into(),
        topic: topic.into(),
        data: data.to_vec(),
        data_content_type: "text/plain".into(),
        metadata: HashMap::new(),
    });
    request.metadata_mut().insert("traceparent", TRACEPARENT.parse().unwrap());
    c.publish_event(request).await.unwrap_or_else(|e| panic!("publish to {pubsub}/{topic}: {e}"));
}

async fn wait_until(what: &str, timeout: Duration, cond: impl Fn() -> bool) {
    let start = Instant::now();
    while !cond() {
        assert!(start.elapsed() < timeout, "timed out after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn numbered(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = (0..n).map(|i| format!("{prefix}{i:04}").into_bytes()).collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_callback_delivers_on_every_broker() {
    let topic = unique("t");
    let app = TestApp::ok(&[("mem", &topic), ("redis", &topic), ("rabbit", &topic), ("unknown", &topic)]);
    let port = app.serve().await;
    let (running, mut c) = start(config(&unique("app"), port)).await;
    for pubsub in ["mem", "redis", "rabbit"] {
        // Subscriptions are made in the background once the app has answered.
        let deadline = Instant::now() + Duration::from_secs(10);
        let data = format!("hello from {pubsub}");
        loop {
            publish(&mut c, pubsub, &topic, data.as_bytes()).await;
            tokio::time::sleep(Duration::from_millis(200)).await;
            if app.accepted.lock().iter().any(|e| e.pubsub_name == pubsub) {
                break;
            }
            assert!(Instant::now() < deadline, "{pubsub}: nothing delivered");
        }
        let event = app.accepted.lock().iter().find(|e| e.pubsub_name == pubsub).cloned().unwrap();
        assert_eq!(event.data, data.as_bytes());
        assert_eq!(event.topic, topic);
        assert_eq!(event.source, "runtime");
        assert_eq!(event.r#type, "com.runtime.event.sent");
        assert_eq!(event.spec_version, "1.0");
        assert_eq!(event.data_content_type, "text/plain");
        assert!(uuid::Uuid::parse_str(&event.id).is_ok());
        assert_eq!(event.metadata.get("traceparent").map(String::as_str), Some(TRACEPARENT), "{pubsub}");
    }
    running.shutdown().await;
}

/// The runtime starts first; the app comes up later and still gets what was
/// published in the meantime.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn app_that_starts_later_gets_earlier_messages() {
    let topic = unique("late");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    drop(listener);
    let (running, mut c) = start(config(&unique("app"), port)).await;
    let sent = numbered("early", 10);
    for m in &sent {
        publish(&mut c, "mem", &topic, m).await;
        publish(&mut c, "redis", &topic, m).await;
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let app = TestApp::ok(&[("mem", &topic), ("redis", &topic)]);
    app.serve_on(tokio::net::TcpListener::bind(("127.0.0.1", port)).await.unwrap());
    wait_until("20 early messages", Duration::from_secs(15), || app.accepted.lock().len() >= 20).await;
    let by = |p: &str| {
        let mut v: Vec<Vec<u8>> =
            app.accepted.lock().iter().filter(|e| e.pubsub_name == p).map(|e| e.data.clone()).collect();
        v.sort();
        v
    };
    assert_eq!(by("mem"), sent);
    assert_eq!(by("redis"), sent);
    running.shutdown().await;
}

/// RETRY, errors and a down app: everything arrives; DROP goes to the dead letter topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retry_errors_drop_and_dead_letter() {
    let (topic, dlq) = (unique("t"), unique("dlq"));
    let app = TestApp::new(
        &[("redis", &topic), ("redis", &dlq)],
        Arc::new(|e, attempt| {
            if e.data.starts_with(b"drop") {
                return Ok(S::Drop);
            }
            let n: usize = String::from_utf8_lossy(&e.data[1..]).parse().unwrap_or(0);
            if n.is_multiple_of(5) && attempt == 1 {
                return Err(Status::internal("app failed"));
            }
            Ok(if attempt <= 2 { S::Retry } else { S::Success })
        }),
    );
    let port = app.serve().await;
    let mut config = config(&unique("app"), port);
    let redis = config.section_mut("pub_subs").get_mut("redis").unwrap();
    redis.metadata.insert("deadLetterTopic".into(), dlq.clone());
    redis.metadata.insert("deliveryMaxRetries".into(), "4".into());
    let (running, mut c) = start(config).await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let sent = numbered("m", 30);
    for m in &sent {
        publish(&mut c, "redis", &topic, m).await;
    }
    publish(&mut c, "redis", &topic, b"drop-this").await;
    wait_until("30 + the dead letter", Duration::from_secs(20), || {
        app.accepted_data(&topic).len() >= 31 && !app.accepted_data(&dlq).is_empty()
    })
    .await;
    let mut got = app.accepted_data(&topic);
    got.retain(|d| !d.starts_with(b"drop"));
    assert_eq!(got, sent);
    // The dead letter carries the original event; the app drops it again there,
    // but a dead letter is never re-dead-lettered into a loop.
    assert_eq!(app.accepted_data(&dlq), vec![b"drop-this".to_vec()]);
    running.shutdown().await;
}

/// Two runtimes with one app id share the messages; another app id gets all.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn competing_consumers_across_runtimes() {
    for pubsub in ["redis", "rabbit"] {
        let topic = unique("cc");
        let shared_id = unique("app");
        let (a1, a2, other) = (
            TestApp::ok(&[(pubsub, &topic)]),
            TestApp::ok(&[(pubsub, &topic)]),
            TestApp::ok(&[(pubsub, &topic)]),
        );
        let (p1, p2, p3) = (a1.serve().await, a2.serve().await, other.serve().await);
        let (r1, mut c) = start(config(&shared_id, p1)).await;
        let (r2, _) = start(config(&shared_id, p2)).await;
        let (r3, _) = start(config(&unique("other"), p3)).await;
        // One of the two sharing runtimes seeing a probe is enough: their queue exists.
        let deadline = Instant::now() + Duration::from_secs(15);
        while a1.offered.load(Ordering::SeqCst) + a2.offered.load(Ordering::SeqCst) == 0
            || other.offered.load(Ordering::SeqCst) == 0
        {
            assert!(Instant::now() < deadline, "{pubsub}: the runtimes never subscribed");
            publish(&mut c, pubsub, &topic, PROBE).await;
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let sent = numbered("cc", 100);
        for m in &sent {
            publish(&mut c, pubsub, &topic, m).await;
        }
        wait_until("all messages", Duration::from_secs(20), || {
            a1.accepted.lock().len() + a2.accepted.lock().len() >= 100 && other.accepted.lock().len() >= 100
        })
        .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        let mut shared = a1.accepted_data(&topic);
        shared.extend(a2.accepted_data(&topic));
        shared.sort();
        assert_eq!(shared, sent, "{pubsub}: each message once among runtimes of one app id");
        assert_eq!(other.accepted_data(&topic), sent, "{pubsub}: another app id gets every message");
        for r in [r1, r2, r3] {
            r.shutdown().await;
        }
    }
}

/// Messages a runtime took but never got answered are delivered by the
/// next runtime of the app after it stops.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_runtime_with_unacked_messages_loses_none() {
    for pubsub in ["redis", "rabbit"] {
        let topic = unique("crash");
        let app_id = unique("app");
        let silent = TestApp::new(&[(pubsub, &topic)], Arc::new(|_, _| Err(Status::unavailable("busy"))));
        silent.up.store(false, Ordering::SeqCst);
        let port = silent.serve().await;
        let (first, mut c) = start(config(&app_id, port)).await;
        until_subscribed(&mut c, pubsub, &topic, &[&silent]).await;
        let sent = numbered("u", 20);
        for m in &sent {
            publish(&mut c, pubsub, &topic, m).await;
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        first.shutdown().await;
        let app = TestApp::ok(&[(pubsub, &topic)]);
        let port = app.serve().await;
        let (second, _) = start(config(&app_id, port)).await;
        wait_until("all 20 on the next runtime", Duration::from_secs(20), || {
            let mut d = app.accepted_data(&topic);
            d.dedup();
            d.len() >= 20
        })
        .await;
        let mut d = app.accepted_data(&topic);
        d.dedup();
        assert_eq!(d, sent, "{pubsub}");
        second.shutdown().await;
    }
}

fn initial(pubsub: &str, topic: &str) -> pb::SubscribeTopicEventsRequest {
    use pb::subscribe_topic_events_request::SubscribeTopicEventsRequestType as In;
    pb::SubscribeTopicEventsRequest {
        subscribe_topic_events_request_type: Some(In::InitialRequest(
            pb::SubscribeTopicEventsRequestInitial {
                pubsub_name: pubsub.into(),
                topic: topic.into(),
                ..Default::default()
            },
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn subscribe_topic_events_stream() {
    use pb::subscribe_topic_events_request::SubscribeTopicEventsRequestType as In;
    use pb::subscribe_topic_events_response::SubscribeTopicEventsResponseType as Out;
    let (running, mut c) = start(config(&unique("app"), 0)).await;
    for pubsub in ["mem", "redis", "rabbit"] {
        let topic = unique("stream");
        let (tx, rx) = tokio::sync::mpsc::channel(16);
        tx.send(initial(pubsub, &topic)).await.unwrap();
        let mut events = c
            .subscribe_topic_events(tokio_stream::wrappers::ReceiverStream::new(rx))
            .await
            .unwrap()
            .into_inner();
        let first = events.next().await.unwrap().unwrap();
        assert!(matches!(first.subscribe_topic_events_response_type, Some(Out::InitialResponse(_))));

        // A second stream for the same pubsub and topic is refused.
        let (tx2, rx2) = tokio::sync::mpsc::channel(1);
        tx2.send(initial(pubsub, &topic)).await.unwrap();
        let err =
            c.subscribe_topic_events(tokio_stream::wrappers::ReceiverStream::new(rx2)).await.unwrap_err();
        assert_eq!(err.code(), Code::AlreadyExists, "{pubsub}");
        assert!(err.message().contains(&topic));

        let mut publisher = c.clone();
        publish(&mut publisher, pubsub, &topic, b"one").await;
        publish(&mut publisher, pubsub, &topic, b"two").await;
        let mut got = Vec::new();
        let mut retried = false;
        while got.len() < 2 {
            let msg = tokio::time::timeout(Duration::from_secs(10), events.next())
                .await
                .unwrap_or_else(|_| panic!("{pubsub}: no event within 10 s; got {got:?}"))
                .unwrap()
                .unwrap();
            let Some(Out::EventMessage(event)) = msg.subscribe_topic_events_response_type else { panic!() };
            assert_eq!(event.topic, topic);
            // The first "two" is answered RETRY: it must come again.
            let status = if event.data == b"two" && !retried {
                retried = true;
                S::Retry
            } else {
                got.push(event.data.clone());
                S::Success
            };
            tx.send(pb::SubscribeTopicEventsRequest {
                subscribe_topic_events_request_type: Some(In::EventProcessed(
                    pb::SubscribeTopicEventsRequestProcessed {
                        id: event.id,
                        status: Some(pb::TopicEventResponse { status: status.into() }),
                    },
                )),
            })
            .await
            .unwrap();
        }
        got.sort();
        assert_eq!(got, vec![b"one".to_vec(), b"two".to_vec()], "{pubsub}");
        drop(tx);
        drop(events);
        // Once the stream is gone the topic can be subscribed again.
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let (tx3, rx3) = tokio::sync::mpsc::channel(1);
            tx3.send(initial(pubsub, &topic)).await.unwrap();
            match c.subscribe_topic_events(tokio_stream::wrappers::ReceiverStream::new(rx3)).await {
                Ok(_) => break,
                Err(e) => {
                    assert_eq!(e.code(), Code::AlreadyExists);
                    assert!(Instant::now() < deadline, "the closed stream still holds {pubsub}/{topic}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
    // The first message must be the initial request.
    let (tx, rx) = tokio::sync::mpsc::channel(1);
    tx.send(pb::SubscribeTopicEventsRequest {
        subscribe_topic_events_request_type: Some(In::EventProcessed(Default::default())),
    })
    .await
    .unwrap();
    let err = c.subscribe_topic_events(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("initial request is required"));
    running.shutdown().await;
}

#[tokio::test]
async fn publish_bad_input_is_invalid_argument_naming_the_field() {
    let (running, mut c) = start(config(&unique("app"), 0)).await;
    let cases = [
        ("", "t", "text/plain", &b"x"[..], "pubsub name is empty"),
        ("mem", "", "text/plain", b"x", "topic is empty"),
        ("nope", "t", "text/plain", b"x", "pubsub nope is not found"),
        ("mem", "t", "application/cloudevents+json", b"{not json", "not JSON"),
    ];
    for (pubsub, topic, ct, data, expected) in cases {
        let err = c
            .publish_event(pb::PublishEventRequest {
                pubsub_name: pubsub.into(),
                topic: topic.into(),
                data: data.to_vec(),
                data_content_type: ct.into(),
                metadata: HashMap::new(),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{expected}");
        assert!(err.message().contains(expected), "{} should say {expected}", err.message());
    }
    running.shutdown().await;
}

/// A broker that is down: publish is UNAVAILABLE, naming the pubsub; the rest keeps serving.
#[tokio::test]
async fn broker_down_is_unavailable() {
    let mut cfg = config(&unique("app"), 0);
    // Start with a private Redis, then stop it.
    let mut server = layotto_testkit::PrivateRedis::start();
    let port = server.port;
    cfg.section_mut("pub_subs").insert(
        "private".into(),
        ComponentConfig::new("redis").with("redisHost", &format!("127.0.0.1:{port}")),
    );
    let mut started = None;
    for _ in 0..50 {
        if let Ok(r) = layotto_runtime::start(cfg.clone(), Registries::builtin()).await {
            started = Some(r);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let running = started.expect("runtime with a private redis");
    let mut c = RuntimeClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    server.kill();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let err = c
        .publish_event(pb::PublishEventRequest {
            pubsub_name: "private".into(),
            topic: "t".into(),
            data: b"x".to_vec(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    assert!(err.message().contains("pubsub 'private'"), "{}", err.message());
    publish(&mut c, "mem", "still-serving", b"ok").await;
    let addr: SocketAddr = running.actuator_addr();
    let resp = reqwest::get(format!("http://{addr}/actuator/health/readiness")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 503);
    running.shutdown().await;
}

/// With API tokens: publishing needs the runtime's token, and the app gets
/// `APP_API_TOKEN` on every callback.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_guard_the_api_and_reach_the_app() {
    use layotto_grpc::token::ApiToken;
    let topic = unique("t");
    let app = TestApp::ok(&[("mem", &topic)]);
    let port = app.serve().await;
    let mut config = config(&unique("app"), port);
    config.server.api_token = Some(ApiToken::new("runtime-token"));
    config.app.api_token = Some(ApiToken::new("app-token"));
    let (running, mut c) = start(config).await;
    let request = |token: Option<&str>| {
        let mut request = Request::new(pb::PublishEventRequest {
            pubsub_name: "mem".into(),
            topic: topic.clone(),
            data: b"guarded".to_vec(),
            data_content_type: "text/plain".into(),
            ..Default::default()
        });
        if let Some(token) = token {
            request.metadata_mut().insert("dapr-api-token", token.parse().unwrap());
        }
        request
    };
    let refused = c.publish_event(request(None)).await.unwrap_err();
    assert_eq!(refused.code(), tonic::Code::Unauthenticated);
    let wrong = c.publish_event(request(Some("runtime-tokeN"))).await.unwrap_err();
    assert_eq!(wrong.code(), tonic::Code::Unauthenticated);
    let deadline = Instant::now() + Duration::from_secs(10);
    while app.accepted_data(&topic).is_empty() {
        assert!(Instant::now() < deadline, "nothing delivered");
        c.publish_event(request(Some("runtime-token"))).await.unwrap();
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let tokens = app.tokens.lock().clone();
    assert!(tokens.iter().all(|t| t.as_deref() == Some("app-token")), "{tokens:?}");
    running.shutdown().await;
}
