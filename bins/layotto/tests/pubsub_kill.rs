//! A runtime process killed with SIGKILL, or stopped with SIGTERM, while it
//! holds unacknowledged messages, or delayed messages not yet due: the next
//! runtime of the same app gets every one of them, on Redis Streams and on
//! RabbitMQ. The app is a tonic AppCallback server in this test that holds
//! events until the first runtime is gone.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use layotto_grpc::pb::delay_queue::DelayMessageRequest;
use layotto_grpc::pb::delay_queue::delay_queue_client::DelayQueueClient;
use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::app_callback_server::{AppCallback, AppCallbackServer};
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use std::sync::Mutex;

mod common;
use common::{BIN, Runtime, redis_host};
use tonic::{Request, Response, Status};

fn rabbitmq_url() -> String {
    std::env::var("LAYOTTO_TEST_RABBITMQ")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".to_owned())
}

#[derive(Clone)]
struct App {
    pubsub: String,
    topic: String,
    /// While false the app answers every event with an error (it is "busy").
    accepting: Arc<AtomicBool>,
    offered: Arc<Mutex<usize>>,
    accepted: Arc<Mutex<BTreeSet<Vec<u8>>>>,
}

#[tonic::async_trait]
impl AppCallback for App {
    async fn list_topic_subscriptions(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListTopicSubscriptionsResponse>, Status> {
        Ok(Response::new(pb::ListTopicSubscriptionsResponse {
            subscriptions: vec![pb::TopicSubscription {
                pubsub_name: self.pubsub.clone(),
                topic: self.topic.clone(),
                metadata: Default::default(),
            }],
        }))
    }

    async fn on_topic_event(
        &self,
        request: Request<pb::TopicEventRequest>,
    ) -> Result<Response<pb::TopicEventResponse>, Status> {
        *self.offered.lock().unwrap() += 1;
        if !self.accepting.load(Ordering::SeqCst) {
            // Hold the message: the runtime keeps it unacknowledged meanwhile.
            tokio::time::sleep(Duration::from_secs(30)).await;
            return Err(Status::unavailable("busy"));
        }
        self.accepted.lock().unwrap().insert(request.into_inner().data);
        Ok(Response::new(pb::TopicEventResponse { status: 0 }))
    }
}

/// The drain a SIGTERM waits for, shorter than the app's 30 s hold so the
/// runtime must hand the held deliveries back.
const DRAIN_SECONDS: u64 = 2;

fn spawn_runtime(dir: &std::path::Path, app_port: u16, pubsub_toml: &str) -> Runtime {
    let path = dir.join("layotto.toml");
    std::fs::write(
        &path,
        format!(
            "[app]\nid = \"kill-test\"\ncallback_port = {app_port}\n\n\
             [server]\ngrpc = \"127.0.0.1:0\"\nactuator = \"127.0.0.1:0\"\n\
             drain_timeout_seconds = {DRAIN_SECONDS}\n\n{pubsub_toml}"
        ),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--config").arg(&path);
    Runtime::start(cmd)
}

/// How the 20 messages are sent: published, or delayed 2 s (DelayQueue),
/// so the kill comes before they are due.
#[derive(Clone, Copy, PartialEq)]
enum Send {
    Publish,
    Delayed,
}

/// How the first runtime ends.
#[derive(Clone, Copy, PartialEq)]
enum Stop {
    Kill,
    /// SIGTERM: it must drain, hand back what the app still holds, and exit 0.
    Term,
}

async fn killed_runtime_loses_nothing(kind: &str, metadata: &str, how: Send) {
    stopped_runtime_loses_nothing(kind, metadata, how, Stop::Kill).await;
}

async fn stopped_runtime_loses_nothing(kind: &str, metadata: &str, how: Send, stop: Stop) {
    let topic = format!("kill-{}", uuid::Uuid::new_v4().simple());
    let pubsub_toml = format!("[pub_subs.ps]\ntype = \"{kind}\"\nmetadata = {{ {metadata} }}\n");
    let dir = tempfile::tempdir().unwrap();
    let app = App {
        pubsub: "ps".into(),
        topic: topic.clone(),
        accepting: Arc::new(AtomicBool::new(false)),
        offered: Arc::default(),
        accepted: Arc::default(),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = listener.local_addr().unwrap().port();
    let server = tonic::transport::Server::builder()
        .add_service(AppCallbackServer::new(app.clone()))
        .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener));
    tokio::spawn(server);

    let mut first = spawn_runtime(dir.path(), app_port, &pubsub_toml);
    let mut client = RuntimeClient::connect(format!("http://127.0.0.1:{}", first.grpc)).await.unwrap();
    // The subscription is made once the app has listed it: probe until the
    // app is offered something, so the real messages find it in place.
    let deadline = Instant::now() + Duration::from_secs(15);
    while *app.offered.lock().unwrap() == 0 {
        assert!(Instant::now() < deadline, "{kind}: the first runtime never subscribed");
        client
            .publish_event(pb::PublishEventRequest {
                pubsub_name: "ps".into(),
                topic: topic.clone(),
                data: b"probe".to_vec(),
                data_content_type: "text/plain".into(),
                metadata: Default::default(),
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let sent: BTreeSet<Vec<u8>> = (0..20).map(|i| format!("k{i:02}").into_bytes()).collect();
    if how == Send::Delayed {
        let mut delay_queue =
            DelayQueueClient::connect(format!("http://127.0.0.1:{}", first.grpc)).await.unwrap();
        for m in &sent {
            let request = DelayMessageRequest {
                component_name: "ps".into(),
                topic: topic.clone(),
                data: m.clone(),
                data_content_type: "text/plain".into(),
                delay_in_seconds: 2,
                metadata: Default::default(),
            };
            delay_queue.publish_delay_message(request).await.unwrap();
        }
    }
    for m in sent.iter().filter(|_| how == Send::Publish) {
        client
            .publish_event(pb::PublishEventRequest {
                pubsub_name: "ps".into(),
                topic: topic.clone(),
                data: m.clone(),
                data_content_type: "text/plain".into(),
                metadata: Default::default(),
            })
            .await
            .unwrap();
    }
    // Give the first runtime a moment to take the new messages too.
    tokio::time::sleep(Duration::from_millis(300)).await;
    match stop {
        Stop::Kill => {
            first.child.kill().unwrap();
            first.child.wait().unwrap();
        }
        Stop::Term => {
            let sent_at = Instant::now();
            let status = Command::new("kill").arg("-TERM").arg(first.child.id().to_string()).status();
            assert!(status.unwrap().success());
            let exit = first.child.wait().unwrap();
            assert!(exit.success(), "{kind}: SIGTERM with held deliveries exited with {exit}");
            let took = sent_at.elapsed();
            assert!(
                took < Duration::from_secs(DRAIN_SECONDS + 5),
                "{kind}: SIGTERM took {took:?}, the drain is {DRAIN_SECONDS} s"
            );
        }
    }
    app.accepting.store(true, Ordering::SeqCst);

    let _second = spawn_runtime(dir.path(), app_port, &pubsub_toml);
    let deadline = Instant::now() + Duration::from_secs(30);
    let real = |app: &App| app.accepted.lock().unwrap().iter().filter(|d| d.as_slice() != b"probe").count();
    while real(&app) < sent.len() {
        assert!(
            Instant::now() < deadline,
            "{kind}: after the kill only {} of {} arrived",
            real(&app),
            sent.len()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut accepted = app.accepted.lock().unwrap().clone();
    accepted.remove(b"probe".as_slice());
    assert_eq!(accepted, sent, "{kind}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runtime_loses_nothing_on_redis() {
    let metadata = format!(
        "redisHost = \"{}\", processingTimeout = \"2s\", redeliverInterval = \"500ms\"",
        redis_host()
    );
    killed_runtime_loses_nothing("redis", &metadata, Send::Publish).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runtime_loses_no_delayed_message_on_redis() {
    let metadata = format!(
        "redisHost = \"{}\", processingTimeout = \"2s\", redeliverInterval = \"500ms\"",
        redis_host()
    );
    killed_runtime_loses_nothing("redis", &metadata, Send::Delayed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runtime_loses_no_delayed_message_on_rabbitmq() {
    killed_runtime_loses_nothing("rabbitmq", &format!("host = \"{}\"", rabbitmq_url()), Send::Delayed).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_runtime_loses_nothing_on_rabbitmq() {
    killed_runtime_loses_nothing("rabbitmq", &format!("host = \"{}\"", rabbitmq_url()), Send::Publish).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_held_deliveries_back_on_redis() {
    let metadata = format!(
        "redisHost = \"{}\", processingTimeout = \"2s\", redeliverInterval = \"500ms\"",
        redis_host()
    );
    stopped_runtime_loses_nothing("redis", &metadata, Send::Publish, Stop::Term).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_hands_held_deliveries_back_on_rabbitmq() {
    let metadata = format!("host = \"{}\"", rabbitmq_url());
    stopped_runtime_loses_nothing("rabbitmq", &metadata, Send::Publish, Stop::Term).await;
}
