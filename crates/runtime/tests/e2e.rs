//! End to end: the whole runtime in-process on free ports, called with a
//! tonic client generated from our protos, and its actuator over HTTP.
//! Redis comes from `LAYOTTO_TEST_REDIS` (default redis://127.0.0.1:6379);
//! the outage test runs its own private redis-server and kills it.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use layotto_runtime::{ComponentConfig, Config, Registries, Running};
use tonic::Code;
use tonic::transport::Channel;

fn redis_url() -> String {
    std::env::var("LAYOTTO_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
}

fn registries() -> Registries {
    Registries::builtin()
}

fn base_config() -> Config {
    let mut config = Config::embedded_defaults();
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    config.app.id = "app1".into();
    config
}

fn full_config() -> Config {
    let mut config = base_config();
    config
        .section_mut("state")
        .insert("redis".into(), ComponentConfig::new("redis").with("redisHost", &redis_url()));
    config
        .section_mut("state")
        .insert("by_app".into(), ComponentConfig::new("in-memory").with("keyPrefix", "appid"));
    config.section_mut("hellos").insert(
        "secretive".into(),
        ComponentConfig::new("helloworld").with("hello", "hi").with("apiToken", "hunter2-do-not-leak"),
    );
    // `apiToken` is no setting of helloworld: a warning, as for a Layotto JSON file.
    config.unknown_keys = layotto_runtime::UnknownKeys::Warn;
    config
}

async fn start(config: Config) -> (Running, RuntimeClient<Channel>) {
    let running = layotto_runtime::start(config, registries()).await.expect("runtime starts");
    let client = RuntimeClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    (running, client)
}

fn ns() -> String {
    format!("e2e-{}", uuid::Uuid::new_v4().simple())
}

fn item(key: &str, value: &[u8]) -> pb::StateItem {
    pb::StateItem { key: key.into(), value: value.to_vec(), ..Default::default() }
}

fn with_etag(mut item: pb::StateItem, etag: &str) -> pb::StateItem {
    item.etag = Some(pb::Etag { value: etag.into() });
    item
}

async fn save(
    c: &mut RuntimeClient<Channel>,
    store: &str,
    items: Vec<pb::StateItem>,
) -> Result<(), tonic::Status> {
    c.save_state(pb::SaveStateRequest { store_name: store.into(), states: items }).await.map(drop)
}

async fn get(
    c: &mut RuntimeClient<Channel>,
    store: &str,
    key: &str,
) -> Result<pb::GetStateResponse, tonic::Status> {
    let req = pb::GetStateRequest { store_name: store.into(), key: key.into(), ..Default::default() };
    c.get_state(req).await.map(|r| r.into_inner())
}

async fn http_get(addr: SocketAddr, path: &str) -> (u16, serde_json::Value) {
    let resp = reqwest::get(format!("http://{addr}{path}")).await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(serde_json::Value::Null))
}

#[tokio::test]
async fn say_hello_greets_and_echoes_data() {
    let (running, mut c) = start(full_config()).await;
    let data = prost_types::Any { type_url: "type.googleapis.com/x".into(), value: vec![1, 2, 3] };
    let reply = c
        .say_hello(pb::SayHelloRequest {
            service_name: "quick_start_demo".into(),
            name: "eva".into(),
            data: Some(data.clone()),
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.hello, "greeting, eva");
    assert_eq!(reply.data, Some(data));
    let err = c
        .say_hello(pb::SayHelloRequest { service_name: "nope".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unknown);
    assert!(err.message().contains("nope"), "{}", err.message());
    running.shutdown().await;
}

async fn state_round_trip(store: &str) {
    let (running, mut c) = start(full_config()).await;
    let ns = ns();
    let (k1, k2) = (format!("{ns}-1"), format!("{ns}-2"));

    let missing = get(&mut c, store, &k1).await.unwrap();
    assert!(missing.data.is_empty() && missing.etag.is_empty(), "missing key: empty data and OK");

    save(&mut c, store, vec![item(&k1, b"one"), item(&k2, &[0, 159, 146, 150])]).await.unwrap();
    let got = get(&mut c, store, &k1).await.unwrap();
    assert_eq!(got.data, b"one");
    assert!(!got.etag.is_empty());

    // Etag: the right one works, a stale one is ABORTED, garbage is INVALID_ARGUMENT.
    save(&mut c, store, vec![with_etag(item(&k1, b"two"), &got.etag)]).await.unwrap();
    let err = save(&mut c, store, vec![with_etag(item(&k1, b"three"), &got.etag)]).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted, "{}", err.message());
    assert!(err.message().contains(&k1), "{}", err.message());
    let err = save(&mut c, store, vec![with_etag(item(&k1, b"x"), "garbage")]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());

    // First-write through options.
    let mut fw = item(&k2, b"again");
    fw.options = Some(pb::StateOptions { concurrency: 1, consistency: 2 });
    let err = save(&mut c, store, vec![fw]).await.unwrap_err();
    assert_eq!(err.code(), Code::Aborted);

    // Consistency is accepted on reads.
    let req = pb::GetStateRequest {
        store_name: store.into(),
        key: k1.clone(),
        consistency: 2,
        ..Default::default()
    };
    assert_eq!(c.get_state(req).await.unwrap().into_inner().data, b"two");

    let bulk = c
        .get_bulk_state(pb::GetBulkStateRequest {
            store_name: store.into(),
            keys: vec![k1.clone(), k2.clone(), format!("{ns}-missing")],
            parallelism: 2,
            metadata: HashMap::new(),
        })
        .await
        .unwrap()
        .into_inner();
    let by_key: HashMap<_, _> = bulk.items.iter().map(|i| (i.key.clone(), i)).collect();
    assert_eq!(by_key[&k1].data, b"two");
    assert_eq!(by_key[&k2].data, vec![0, 159, 146, 150]);
    assert!(by_key[&format!("{ns}-missing")].data.is_empty());

    // Transaction: all or nothing.
    let op = |kind: &str, it: pb::StateItem| pb::TransactionalStateOperation {
        operation_type: kind.into(),
        request: Some(it),
    };
    let stale = get(&mut c, store, &k2).await.unwrap().etag;
    save(&mut c, store, vec![item(&k2, b"changed")]).await.unwrap();
    let tx = pb::ExecuteStateTransactionRequest {
        store_name: store.into(),
        operations: vec![op("delete", item(&k1, b"")), op("upsert", with_etag(item(&k2, b"tx"), &stale))],
        metadata: HashMap::new(),
    };
    assert_eq!(c.execute_state_transaction(tx).await.unwrap_err().code(), Code::Aborted);
    assert_eq!(get(&mut c, store, &k1).await.unwrap().data, b"two", "failed transaction applied nothing");
    let tx = pb::ExecuteStateTransactionRequest {
        store_name: store.into(),
        operations: vec![op("delete", item(&k1, b"")), op("upsert", item(&k2, b"tx"))],
        metadata: HashMap::new(),
    };
    c.execute_state_transaction(tx).await.unwrap();
    assert!(get(&mut c, store, &k1).await.unwrap().data.is_empty());
    assert_eq!(get(&mut c, store, &k2).await.unwrap().data, b"tx");
    let tx = pb::ExecuteStateTransactionRequest {
        store_name: store.into(),
        operations: vec![op("merge", item(&k2, b""))],
        metadata: HashMap::new(),
    };
    let err = c.execute_state_transaction(tx).await.unwrap_err();
    assert_eq!(err.code(), Code::Unimplemented);
    assert!(err.message().contains("merge"), "{}", err.message());

    // Delete with etag, then bulk delete.
    let current = get(&mut c, store, &k2).await.unwrap().etag;
    let del = pb::DeleteStateRequest {
        store_name: store.into(),
        key: k2.clone(),
        etag: Some(pb::Etag { value: "999999".into() }),
        ..Default::default()
    };
    assert_eq!(c.delete_state(del).await.unwrap_err().code(), Code::Aborted);
    let del = pb::DeleteStateRequest {
        store_name: store.into(),
        key: k2.clone(),
        etag: Some(pb::Etag { value: current }),
        ..Default::default()
    };
    c.delete_state(del).await.unwrap();
    save(&mut c, store, vec![item(&k1, b"a"), item(&k2, b"b")]).await.unwrap();
    c.delete_bulk_state(pb::DeleteBulkStateRequest {
        store_name: store.into(),
        states: vec![item(&k1, b""), item(&k2, b"")],
    })
    .await
    .unwrap();
    assert!(get(&mut c, store, &k1).await.unwrap().data.is_empty());
    assert!(get(&mut c, store, &k2).await.unwrap().data.is_empty());
    running.shutdown().await;
}

#[tokio::test]
async fn state_round_trip_in_memory() {
    state_round_trip("state_demo").await;
}

#[tokio::test]
async fn state_round_trip_redis() {
    state_round_trip("redis").await;
}

#[tokio::test]
async fn bad_input_gets_layotto_codes_naming_store_and_key() {
    let (running, mut c) = start(full_config()).await;
    let err = get(&mut c, "", "k").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    let err = get(&mut c, "no_such_store", "k").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("no_such_store"), "{}", err.message());
    let err = save(&mut c, "redis", vec![item("a||b", b"v")]).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("'redis'") && err.message().contains("a||b"), "{}", err.message());
    let err = get(&mut c, "state_demo", "").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    for ttl in ["-7", "soon"] {
        let mut it = item("ttl-key", b"v");
        it.metadata.insert("ttlInSeconds".into(), ttl.into());
        let err = save(&mut c, "redis", vec![it]).await.unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "ttl {ttl}");
        assert!(
            err.message().contains("ttl-key") && err.message().contains("ttlInSeconds"),
            "{}",
            err.message()
        );
    }
    // Over the 4 MiB limit: named store and key, never a panic.
    let err = save(&mut c, "state_demo", vec![item("huge", &vec![7u8; 5 * 1024 * 1024])]).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("state_demo") && err.message().contains("huge"), "{}", err.message());
    // Far over it, tonic's own limit answers.
    let err = save(&mut c, "state_demo", vec![item("huger", &vec![7u8; 9 * 1024 * 1024])]).await.unwrap_err();
    assert!(matches!(err.code(), Code::OutOfRange | Code::ResourceExhausted), "{err:?}");
    // The runtime still serves afterwards.
    save(&mut c, "state_demo", vec![item("after", b"ok")]).await.unwrap();
    running.shutdown().await;
}

#[tokio::test]
async fn key_prefix_appid_is_applied_and_hidden() {
    let (running, mut c) = start(full_config()).await;
    let key = format!("{}-p", ns());
    save(&mut c, "by_app", vec![item(&key, b"v")]).await.unwrap();
    assert_eq!(get(&mut c, "by_app", &key).await.unwrap().data, b"v");
    let bulk = c
        .get_bulk_state(pb::GetBulkStateRequest {
            store_name: "by_app".into(),
            keys: vec![key.clone()],
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bulk.items[0].key, key);
    running.shutdown().await;
}

#[tokio::test]
async fn lifecycle_reconfigures_hello() {
    use layotto_grpc::pb::runtime::lifecycle_client::LifecycleClient;
    let (running, mut c) = start(full_config()).await;
    let mut lifecycle = LifecycleClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    let apply = |kind: &str, name: &str, hello: Option<&str>| pb::DynamicConfiguration {
        component_config: Some(pb::ComponentConfig {
            kind: kind.into(),
            name: name.into(),
            metadata: hello.map(|h| HashMap::from([("hello".to_owned(), h.to_owned())])).unwrap_or_default(),
        }),
    };
    lifecycle.apply_configuration(apply("hellos", "quick_start_demo", Some("goodbye"))).await.unwrap();
    let reply = c
        .say_hello(pb::SayHelloRequest {
            service_name: "quick_start_demo".into(),
            name: "eva".into(),
            data: None,
        })
        .await
        .unwrap();
    assert_eq!(reply.into_inner().hello, "goodbye, eva");
    let err = lifecycle.apply_configuration(apply("hellos", "quick_start_demo", None)).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("metadata"), "{}", err.message());
    let err = lifecycle.apply_configuration(apply("state", "state_demo", Some("x"))).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("state_demo"), "{}", err.message());
    running.shutdown().await;
}

#[tokio::test]
async fn invoking_an_app_that_resolves_nowhere_is_not_found() {
    let (running, mut c) = start(full_config()).await;
    let err = c
        .invoke_service(pb::InvokeServiceRequest { id: "billing".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert!(err.code() == Code::NotFound && err.message().contains("billing"), "{}", err.message());
    let err = c.invoke_service(pb::InvokeServiceRequest::default()).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
    running.shutdown().await;
}

#[tokio::test]
async fn no_state_store_configured_is_failed_precondition() {
    let mut config = base_config();
    config.section_mut("state").clear();
    let (running, mut c) = start(config).await;
    assert_eq!(get(&mut c, "any", "k").await.unwrap_err().code(), Code::FailedPrecondition);
    running.shutdown().await;
}

#[tokio::test]
async fn grpc_health_and_reflection() {
    use tonic_health::pb::health_client::HealthClient;
    use tonic_reflection::pb::v1::ServerReflectionRequest;
    use tonic_reflection::pb::v1::server_reflection_client::ServerReflectionClient;
    use tonic_reflection::pb::v1::server_reflection_request::MessageRequest;
    use tonic_reflection::pb::v1::server_reflection_response::MessageResponse;

    let (running, _) = start(full_config()).await;
    let url = format!("http://{}", running.grpc_addr());
    let channel = Channel::from_shared(url).unwrap().connect().await.unwrap();
    let mut health = HealthClient::new(channel.clone());
    for service in ["", "spec.proto.runtime.v1.Runtime"] {
        let reply = health
            .check(tonic_health::pb::HealthCheckRequest { service: service.into() })
            .await
            .unwrap()
            .into_inner();
        assert_eq!(
            reply.status,
            tonic_health::pb::health_check_response::ServingStatus::Serving as i32,
            "{service:?}"
        );
    }
    let mut reflection = ServerReflectionClient::new(channel);
    let request = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut stream =
        reflection.server_reflection_info(tokio_stream::iter(vec![request])).await.unwrap().into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) =
        stream.message().await.unwrap().unwrap().message_response
    else {
        panic!("expected a service list");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"spec.proto.runtime.v1.Runtime".to_owned()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");
    assert!(names.contains(&"spec.proto.runtime.v1.Lifecycle".to_owned()), "{names:?}");
    assert!(
        !names.iter().any(|n| n.ends_with("AppCallback")),
        "the app serves AppCallback, not us: {names:?}"
    );
    running.shutdown().await;
}

#[tokio::test]
async fn actuator_health_and_info_shapes() {
    let (running, _) = start(full_config()).await;
    let addr = running.actuator_addr();
    let (code, live) = http_get(addr, "/actuator/health/liveness").await;
    assert_eq!(code, 200);
    assert_eq!(live["status"], "UP");
    assert_eq!(live["components"]["runtime_startup"]["status"], "UP");
    let (code, ready) = http_get(addr, "/actuator/health/readiness").await;
    assert_eq!(code, 200, "{ready}");
    assert_eq!(ready["components"]["state/redis"]["status"], "UP");
    assert_eq!(ready["components"]["state/redis"]["details"]["type"], "redis");
    let (code, info) = http_get(addr, "/actuator/info").await;
    assert_eq!(code, 200);
    assert_eq!(info["app"]["name"], "Layotto");
    assert!(info["app"]["compiled"].as_str().unwrap().ends_with('Z'));
    let text = info.to_string();
    assert!(
        text.contains("secretive") && !text.contains("hunter2"),
        "metadata values never reach info: {text}"
    );
    let (code, overall) = http_get(addr, "/actuator/health").await;
    assert_eq!(code, 200, "/actuator/health alone is the overall readiness: {overall}");
    assert_eq!(overall["components"]["state/redis"]["status"], "UP");
    let (code, unknown) = http_get(addr, "/actuator/health/foo").await;
    assert_eq!(code, 404, "an unknown health type is the client's mistake: {unknown}");
    assert!(unknown["error"].as_str().unwrap().contains("'foo'"), "{unknown}");
    let resp = reqwest::get(format!("http://{addr}/actuator/nope")).await.unwrap();
    assert_eq!(resp.status().as_u16(), 404);
    running.shutdown().await;
}

#[tokio::test]
async fn redis_outage_gives_unavailable_then_recovers_without_losing_writes() {
    let mut redis = layotto_testkit::PrivateRedis::durable();
    let mut config = base_config();
    let host = format!("127.0.0.1:{}", redis.port);
    config
        .section_mut("state")
        .insert("flaky".into(), ComponentConfig::new("redis").with("redisHost", &host).with("timeout", "1s"));
    let (running, mut c) = start(config).await;
    let actuator = running.actuator_addr();

    let acknowledged: Vec<String> = (0..20).map(|i| format!("ack-{i}")).collect();
    for key in &acknowledged {
        save(&mut c, "flaky", vec![item(key, key.as_bytes())]).await.unwrap();
    }

    redis.kill();
    let deadline = Instant::now() + Duration::from_secs(10);
    let status = loop {
        match get(&mut c, "flaky", "ack-0").await {
            Err(status) => break status,
            Ok(_) => {
                assert!(Instant::now() < deadline, "state calls still succeed 10 s after Redis died");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };
    assert_eq!(status.code(), Code::Unavailable, "{status:?}");
    assert!(status.message().contains("flaky"), "{}", status.message());
    let err = save(&mut c, "flaky", vec![item("during-outage", b"x")]).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");

    // The rest keeps serving.
    save(&mut c, "state_demo", vec![item("mem-during-outage", b"fine")]).await.unwrap();
    assert_eq!(get(&mut c, "state_demo", "mem-during-outage").await.unwrap().data, b"fine");

    let (code, ready) = http_get(actuator, "/actuator/health/readiness").await;
    assert_eq!(code, 503, "{ready}");
    assert_eq!(ready["status"], "DOWN");
    assert_eq!(ready["components"]["state/flaky"]["status"], "DOWN");
    assert!(ready["components"]["state/flaky"]["details"]["reason"].as_str().unwrap().contains(&host));
    assert_eq!(ready["components"]["state/state_demo"]["status"], "UP");
    let (code, _) = http_get(actuator, "/actuator/health/liveness").await;
    assert_eq!(code, 200, "liveness stays up during a backend outage");

    redis.restart();
    let deadline = Instant::now() + Duration::from_secs(20);
    while save(&mut c, "flaky", vec![item("after-restart", b"back")]).await.is_err() {
        assert!(Instant::now() < deadline, "no recovery 20 s after Redis came back");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    for key in &acknowledged {
        assert_eq!(
            get(&mut c, "flaky", key).await.unwrap().data,
            key.as_bytes(),
            "acknowledged write {key} lost"
        );
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let (code, body) = http_get(actuator, "/actuator/health/readiness").await;
        if code == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "readiness still {code} after recovery: {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    running.shutdown().await;
}

#[tokio::test]
async fn startup_fails_naming_the_component() {
    let mut config = base_config();
    config.section_mut("state").insert("cache".into(), ComponentConfig::new("mongodb"));
    let err = layotto_runtime::start(config, registries()).await.err().expect("unknown type fails");
    let msg = err.to_string();
    assert!(msg.contains("state") && msg.contains("cache") && msg.contains("mongodb"), "{msg}");
    assert!(msg.contains("in-memory") && msg.contains("redis"), "lists the types we have: {msg}");

    let mut config = base_config();
    config
        .section_mut("state")
        .insert("cache".into(), ComponentConfig::new("redis").with("redisHost", "127.0.0.1:1"));
    let msg = layotto_runtime::start(config, registries()).await.err().expect("dead redis fails").to_string();
    assert!(msg.contains("cache") && msg.contains("127.0.0.1:1"), "{msg}");
}
