//! Faults under load, with a client-side ledger. The real binary serves
//! state on a private Redis (fsync on every write, killed with SIGKILL and
//! restarted), pub/sub on RabbitMQ and locks on PostgreSQL, each behind a TCP
//! proxy whose connections the test cuts (the shared servers are never
//! stopped). 32 clients write state, publish and take locks meanwhile.
//!
//! The ledger then proves: no acknowledged write or publish was lost,
//! nothing was delivered that was not published, no lock had two holders,
//! the runtime never died, and each kind of call succeeded again within
//! 1 s of its backend's return. `LAYOTTO_FAULT_SECONDS` sets the length
//! (default 60).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::app_callback_server::{AppCallback, AppCallbackServer};
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use layotto_testkit::{PrivateRedis, TcpProxy, upstream_of};
use tonic::transport::Channel;
use tonic::{Request, Response, Status};

mod common;
use common::{BIN, Runtime};

const CALL_DEADLINE: Duration = Duration::from_secs(3);
const LOCK_EXPIRE_SECONDS: i32 = 10;
const RESOURCES: usize = 4;

fn env_url(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

#[derive(Clone, Default)]
struct App {
    topic: String,
    delivered: Arc<Mutex<BTreeSet<String>>>,
}

#[tonic::async_trait]
impl AppCallback for App {
    async fn list_topic_subscriptions(
        &self,
        _: Request<()>,
    ) -> Result<Response<pb::ListTopicSubscriptionsResponse>, Status> {
        Ok(Response::new(pb::ListTopicSubscriptionsResponse {
            subscriptions: vec![pb::TopicSubscription {
                pubsub_name: "events".into(),
                topic: self.topic.clone(),
                metadata: Default::default(),
            }],
        }))
    }

    async fn on_topic_event(
        &self,
        request: Request<pb::TopicEventRequest>,
    ) -> Result<Response<pb::TopicEventResponse>, Status> {
        let data = String::from_utf8_lossy(&request.into_inner().data).into_owned();
        self.delivered.lock().unwrap().insert(data);
        Ok(Response::new(pb::TopicEventResponse { status: 0 }))
    }
}

/// What the clients saw. Every entry is written by the client that made the call.
#[derive(Default)]
struct Ledger {
    /// Per state key: the highest value acknowledged, the highest attempted.
    writes: Mutex<HashMap<String, (Option<u64>, u64)>>,
    published_attempted: Mutex<BTreeSet<String>>,
    published_acked: Mutex<BTreeSet<String>>,
    /// Times of successful calls, per kind of call.
    successes: Mutex<BTreeMap<&'static str, Vec<Instant>>>,
    failures: AtomicUsize,
    /// Two holders of one lock at once.
    double_holds: AtomicUsize,
    holders: [AtomicUsize; RESOURCES],
}

impl Ledger {
    fn success(&self, kind: &'static str) {
        self.successes.lock().unwrap().entry(kind).or_default().push(Instant::now());
    }

    fn successes_between(&self, kind: &'static str, from: Instant, to: Instant) -> usize {
        let successes = self.successes.lock().unwrap();
        successes.get(kind).map_or(0, |times| times.iter().filter(|t| **t >= from && **t <= to).count())
    }

    fn first_success_after(&self, kind: &'static str, at: Instant) -> Option<Duration> {
        let successes = self.successes.lock().unwrap();
        successes.get(kind)?.iter().find(|t| **t >= at).map(|t| t.duration_since(at))
    }
}

fn request<T>(message: T) -> Request<T> {
    let mut request = Request::new(message);
    request.set_timeout(CALL_DEADLINE);
    request
}

async fn state_writer(
    id: usize,
    mut client: RuntimeClient<Channel>,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) {
    let mut seq = 0u64;
    while !stop.load(Ordering::Relaxed) {
        seq += 1;
        let key = format!("w{id}-k{}", seq % 5);
        ledger.writes.lock().unwrap().entry(key.clone()).or_default().1 = seq;
        let item =
            pb::StateItem { key: key.clone(), value: seq.to_string().into_bytes(), ..Default::default() };
        let save = client
            .save_state(request(pb::SaveStateRequest { store_name: "orders".into(), states: vec![item] }))
            .await;
        match save {
            Ok(_) => {
                ledger.writes.lock().unwrap().entry(key).or_default().0 = Some(seq);
                ledger.success("state");
            }
            Err(_) => {
                ledger.failures.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn publisher(
    id: usize,
    topic: String,
    mut client: RuntimeClient<Channel>,
    ledger: Arc<Ledger>,
    stop: Arc<AtomicBool>,
) {
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let data = format!("p{id}-{n}");
        ledger.published_attempted.lock().unwrap().insert(data.clone());
        let publish = client
            .publish_event(request(pb::PublishEventRequest {
                pubsub_name: "events".into(),
                topic: topic.clone(),
                data: data.clone().into_bytes(),
                data_content_type: "text/plain".into(),
                metadata: Default::default(),
            }))
            .await;
        match publish {
            Ok(_) => {
                ledger.published_acked.lock().unwrap().insert(data);
                ledger.success("publish");
            }
            Err(_) => {
                ledger.failures.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

async fn locker(id: usize, mut client: RuntimeClient<Channel>, ledger: Arc<Ledger>, stop: Arc<AtomicBool>) {
    let mut n = 0usize;
    while !stop.load(Ordering::Relaxed) {
        n += 1;
        let resource = (id + n) % RESOURCES;
        let owner = format!("locker{id}-{n}");
        let try_lock = client
            .try_lock(request(pb::TryLockRequest {
                store_name: "locks".into(),
                resource_id: format!("r{resource}"),
                lock_owner: owner.clone(),
                expire: LOCK_EXPIRE_SECONDS,
            }))
            .await;
        match try_lock {
            Ok(answer) => {
                ledger.success("lock");
                if !answer.into_inner().success {
                    tokio::time::sleep(Duration::from_millis(2)).await;
                    continue;
                }
                if ledger.holders[resource].fetch_add(1, Ordering::SeqCst) != 0 {
                    ledger.double_holds.fetch_add(1, Ordering::SeqCst);
                }
                tokio::time::sleep(Duration::from_millis(2)).await;
                ledger.holders[resource].fetch_sub(1, Ordering::SeqCst);
                let unlock = pb::UnlockRequest {
                    store_name: "locks".into(),
                    resource_id: format!("r{resource}"),
                    lock_owner: owner,
                };
                if client.unlock(request(unlock)).await.is_err() {
                    ledger.failures.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(_) => {
                ledger.failures.fetch_add(1, Ordering::Relaxed);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        }
    }
}

/// One outage: which backend, and when it came back.
struct Outage {
    kind: &'static str,
    down_at: Instant,
    back_at: Instant,
    /// The only backend down at the time.
    alone: bool,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn faults_under_load_lose_nothing() {
    let seconds: u64 = std::env::var("LAYOTTO_FAULT_SECONDS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
    let rabbit_url = env_url("LAYOTTO_TEST_RABBITMQ", "amqp://guest:guest@127.0.0.1:5672/%2f");
    let postgres_url = env_url("LAYOTTO_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test");
    let mut redis = PrivateRedis::durable();
    let rabbit_upstream = upstream_of(&rabbit_url, "127.0.0.1:5672");
    let rabbit = TcpProxy::start(&rabbit_upstream).await;
    let postgres_upstream = upstream_of(&postgres_url, "127.0.0.1:5432");
    let postgres = TcpProxy::start(&postgres_upstream).await;

    let run = uuid::Uuid::new_v4().simple().to_string();
    let topic = format!("faults-{run}");
    let app = App { topic: topic.clone(), ..Default::default() };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let app_port = listener.local_addr().unwrap().port();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(AppCallbackServer::new(app.clone()))
            .serve_with_incoming(tokio_stream::wrappers::TcpListenerStream::new(listener)),
    );

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("faults.toml");
    std::fs::write(
        &config,
        format!(
            r#"[app]
id = "faults-{run}"
callback_port = {app_port}

[server]
grpc = "127.0.0.1:0"
actuator = "127.0.0.1:0"

[state.orders]
type = "redis"
metadata = {{ redisHost = "{redis}", timeout = "1s", dialTimeout = "1s" }}

[pub_subs.events]
type = "rabbitmq"
metadata = {{ host = "{rabbit}" }}

[lock.locks]
type = "postgresql"
metadata = {{ connectionString = "{postgres}", tableName = "layotto_faults_{run}", timeout = "1s" }}
"#,
            redis = redis.host(),
            rabbit = rabbit.via(&rabbit_url, &rabbit_upstream),
            postgres = postgres.via(&postgres_url, &postgres_upstream),
        ),
    )
    .unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("--config").arg(&config);
    let mut runtime = Runtime::start(cmd);
    let channel = Channel::from_shared(format!("http://127.0.0.1:{}", runtime.grpc)).unwrap();
    let channels: Vec<Channel> = {
        let mut channels = Vec::new();
        for _ in 0..4 {
            channels.push(channel.clone().connect().await.unwrap());
        }
        channels
    };

    // The subscription is in place once the app has seen a probe.
    let mut client = RuntimeClient::new(channels[0].clone());
    let deadline = Instant::now() + Duration::from_secs(20);
    while app.delivered.lock().unwrap().is_empty() {
        assert!(Instant::now() < deadline, "the runtime never subscribed the app");
        let probe = pb::PublishEventRequest {
            pubsub_name: "events".into(),
            topic: topic.clone(),
            data: b"probe".to_vec(),
            data_content_type: "text/plain".into(),
            metadata: Default::default(),
        };
        client.publish_event(probe).await.unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let ledger = Arc::new(Ledger::default());
    let stop = Arc::new(AtomicBool::new(false));
    let mut clients = Vec::new();
    for id in 0..32 {
        let client = RuntimeClient::new(channels[id % channels.len()].clone());
        let (ledger, stop) = (ledger.clone(), stop.clone());
        clients.push(match id % 3 {
            0 => tokio::spawn(state_writer(id, client, ledger, stop)),
            1 => tokio::spawn(publisher(id, topic.clone(), client, ledger, stop)),
            _ => tokio::spawn(locker(id, client, ledger, stop)),
        });
    }

    // Faults: each backend alone, then all three at once, each 3 s long,
    // spread over the run; the last one ends well before the end.
    let start = Instant::now();
    let slot = Duration::from_secs(seconds) / 6;
    let mut outages = Vec::new();
    for (round, kinds) in
        [&["state"][..], &["publish"], &["lock"], &["state", "publish", "lock"]].iter().enumerate()
    {
        tokio::time::sleep_until((start + slot * (round as u32 + 1)).into()).await;
        let down_at = Instant::now();
        for kind in *kinds {
            match *kind {
                "state" => redis.kill(),
                "publish" => rabbit.set(false),
                _ => postgres.set(false),
            }
        }
        tokio::time::sleep(Duration::from_secs(3)).await;
        for kind in *kinds {
            match *kind {
                "state" => tokio::task::block_in_place(|| redis.restart()),
                "publish" => rabbit.set(true),
                _ => postgres.set(true),
            }
            outages.push(Outage { kind, down_at, back_at: Instant::now(), alone: kinds.len() == 1 });
        }
        assert!(runtime.child.try_wait().unwrap().is_none(), "the runtime died during the {kinds:?} outage");
    }
    tokio::time::sleep_until((start + Duration::from_secs(seconds)).into()).await;
    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert!(runtime.child.try_wait().unwrap().is_none(), "the runtime died under load");

    // Every acknowledged write is there; a value is never one nobody wrote.
    let writes = ledger.writes.lock().unwrap().clone();
    let mut checked = 0;
    for (key, (acked, attempted)) in &writes {
        let got = client
            .get_state(pb::GetStateRequest {
                store_name: "orders".into(),
                key: key.clone(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        let value: Option<u64> = if got.data.is_empty() {
            None
        } else {
            Some(String::from_utf8(got.data).unwrap().parse().unwrap())
        };
        assert!(value >= *acked, "{key}: acknowledged {acked:?} but the store has {value:?}");
        assert!(
            value.is_none_or(|v| v <= *attempted),
            "{key}: {value:?} was never written (last {attempted})"
        );
        checked += 1;
    }

    // Every acknowledged publish arrives; nothing arrives that was not published.
    let acked = ledger.published_acked.lock().unwrap().clone();
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let missing = acked.difference(&app.delivered.lock().unwrap()).count();
        if missing == 0 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{missing} of {} acknowledged messages never arrived",
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let attempted = ledger.published_attempted.lock().unwrap().clone();
    let delivered = app.delivered.lock().unwrap().clone();
    let strangers: Vec<&String> =
        delivered.iter().filter(|d| *d != "probe" && !attempted.contains(*d)).collect();
    assert!(strangers.is_empty(), "delivered but never published: {strangers:?}");

    assert_eq!(ledger.double_holds.load(Ordering::SeqCst), 0, "a lock had two holders at once");

    let mut recovery = Vec::new();
    for outage in outages.iter().filter(|o| o.alone) {
        for other in ["state", "publish", "lock"].into_iter().filter(|k| *k != outage.kind) {
            let served = ledger.successes_between(other, outage.down_at, outage.back_at);
            assert!(served > 0, "{other} calls stopped while only the {} backend was down", outage.kind);
        }
    }
    for outage in &outages {
        let after = ledger.first_success_after(outage.kind, outage.back_at);
        recovery.push(format!("{} {:?}", outage.kind, after));
        let after = after.unwrap_or_else(|| panic!("{} calls never succeeded after the outage", outage.kind));
        assert!(after <= Duration::from_secs(1), "{} calls took {after:?} to succeed again", outage.kind);
    }
    let successes: usize = ledger.successes.lock().unwrap().values().map(Vec::len).sum();
    println!(
        "faults: {seconds} s, {successes} calls acknowledged, {} failed during outages; {checked} keys checked, \
         {} publishes acknowledged and delivered ({} delivered in all), 0 double lock holds; recovery: {}",
        ledger.failures.load(Ordering::Relaxed),
        acked.len(),
        delivered.len(),
        recovery.join(", ")
    );
    assert!(runtime.child.try_wait().unwrap().is_none(), "the runtime died");
    drop(runtime);
}
