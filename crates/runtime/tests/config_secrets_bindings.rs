//! End to end over gRPC: the Configuration API (with changes made straight
//! in etcd, Redis and PostgreSQL by their own command-line clients reaching
//! a subscriber), Secrets, secret references in component config, output
//! bindings against a real HTTP server and Redis, Lifecycle, and a Layotto
//! JSON config using all three.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::HashMap;
use std::io::Write;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::lifecycle_client::LifecycleClient;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;
use layotto_runtime::config::SecretRef;
use layotto_runtime::{ComponentConfig, Config, Registries, Running};
use tonic::Code;
use tonic::transport::Channel;

fn env(var: &str, default: &str) -> String {
    std::env::var(var).unwrap_or_else(|_| default.to_owned())
}

fn redis_host() -> String {
    env("LAYOTTO_TEST_REDIS", "redis://127.0.0.1:6379").trim_start_matches("redis://").to_owned()
}

fn etcd() -> String {
    env("LAYOTTO_TEST_ETCD", "127.0.0.1:2379")
}

fn postgres() -> String {
    env("LAYOTTO_TEST_POSTGRES", "postgres://postgres@127.0.0.1:5432/test")
}

fn app() -> String {
    format!("cfg-{}", uuid::Uuid::new_v4().simple())
}

fn base(app_id: &str) -> Config {
    let mut config = Config::embedded_defaults();
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    config.app.id = app_id.to_owned();
    config
}

async fn start(config: Config) -> (Running, RuntimeClient<Channel>) {
    let running = layotto_runtime::start(config, Registries::builtin()).await.expect("runtime starts");
    let client = RuntimeClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    (running, client)
}

fn item(key: &str, content: &str) -> pb::ConfigurationItem {
    pb::ConfigurationItem { key: key.into(), content: content.into(), ..Default::default() }
}

type Pushes = tonic::Streaming<pb::SubscribeConfigurationResponse>;

/// Opens a subscription stream; `requests` adds subscriptions to it.
async fn subscribe(
    c: &mut RuntimeClient<Channel>,
    first: pb::SubscribeConfigurationRequest,
) -> (tokio::sync::mpsc::Sender<pb::SubscribeConfigurationRequest>, Pushes) {
    let (tx, rx) = tokio::sync::mpsc::channel(8);
    tx.send(first).await.unwrap();
    let stream = c.subscribe_configuration(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap();
    (tx, stream.into_inner())
}

fn scope(store: &str, app_id: &str, keys: &[&str]) -> pb::SubscribeConfigurationRequest {
    pb::SubscribeConfigurationRequest {
        store_name: store.into(),
        app_id: app_id.into(),
        keys: keys.iter().map(|k| (*k).to_owned()).collect(),
        ..Default::default()
    }
}

/// Pushes until `key` arrives with `content` (or as deleted, when `content` is None).
async fn until(pushes: &mut Pushes, key: &str, content: Option<&str>) -> pb::SubscribeConfigurationResponse {
    loop {
        let push = tokio::time::timeout(Duration::from_secs(10), pushes.message())
            .await
            .unwrap_or_else(|_| panic!("no push of '{key}' within 10 s"))
            .unwrap()
            .expect("the stream ended");
        let hit = push.items.iter().any(|i| {
            i.key == key
                && match content {
                    Some(content) => i.content == content,
                    None => i.metadata.get("deleted").is_some_and(|d| d == "true"),
                }
        });
        if hit {
            return push;
        }
    }
}

#[tokio::test]
async fn configuration_on_the_embedded_default() {
    let app = app();
    let (running, mut c) = start(base(&app)).await;
    let (_subs, mut pushes) = subscribe(&mut c, scope("config_demo", "", &["timeout"])).await;
    let mut tagged = item("timeout", "5s");
    tagged.tags = HashMap::from([("team".to_owned(), "pay".to_owned())]);
    c.save_configuration(pb::SaveConfigurationRequest {
        store_name: "config_demo".into(),
        app_id: String::new(),
        items: vec![tagged, item("retries", "3")],
        metadata: HashMap::new(),
    })
    .await
    .unwrap();
    let push = until(&mut pushes, "timeout", Some("5s")).await;
    assert_eq!(push.store_name, "config_demo");
    assert_eq!(push.app_id, app, "a blank app id is the runtime's");
    assert_eq!(push.items.len(), 1, "only the subscribed key: {push:?}");
    assert_eq!(push.items[0].group, "default");
    assert_eq!(push.items[0].label, "default");
    let got = c
        .get_configuration(pb::GetConfigurationRequest {
            store_name: "config_demo".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    let mut keys: Vec<&str> = got.items.iter().map(|i| i.key.as_str()).collect();
    keys.sort();
    assert_eq!(keys, ["retries", "timeout"], "no keys means all of the app's");
    assert_eq!(got.items.iter().find(|i| i.key == "timeout").unwrap().tags["team"], "pay");
    c.delete_configuration(pb::DeleteConfigurationRequest {
        store_name: "config_demo".into(),
        keys: vec!["timeout".into()],
        ..Default::default()
    })
    .await
    .unwrap();
    until(&mut pushes, "timeout", None).await;
    running.shutdown().await;
}

#[tokio::test]
async fn configuration_bad_input_names_the_store() {
    let (running, mut c) = start(base(&app())).await;
    let err = c
        .get_configuration(pb::GetConfigurationRequest { store_name: "nope".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!((err.code(), err.message()), (Code::Unknown, "configure store [nope] don't support now"));
    let err = c
        .save_configuration(pb::SaveConfigurationRequest {
            store_name: "config_demo".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("config_demo") && err.message().contains("no items"), "{}", err.message());
    let (_subs, mut pushes) = subscribe(&mut c, scope("nope", "", &[])).await;
    let err = pushes.message().await.unwrap_err();
    assert_eq!(err.code(), Code::Unknown);
    assert!(err.message().contains("nope"), "{}", err.message());
    running.shutdown().await;
}

/// A change made with etcdctl, redis-cli and psql (another process, straight
/// in the backend) reaches a gRPC subscriber of the runtime.
#[tokio::test]
async fn a_change_made_with_the_backends_own_client_is_pushed() {
    let app = app();
    let mut config = base(&app);
    let stores = config.section_mut("config_store");
    stores.insert("etcd".into(), ComponentConfig::new("etcd").with("endpoints", &etcd()));
    stores.insert("redis".into(), ComponentConfig::new("redis").with("redisHost", &redis_host()));
    stores.insert(
        "pg".into(),
        ComponentConfig::new("postgresql")
            .with("connectionString", &postgres())
            .with("tableName", "layotto_configuration_e2e"),
    );
    let (running, mut c) = start(config).await;
    let (subs, mut pushes) = subscribe(&mut c, scope("etcd", &app, &[])).await;
    subs.send(scope("redis", &app, &[])).await.unwrap();
    subs.send(scope("pg", &app, &[])).await.unwrap();
    // The stream subscribes in the background: each subscription is in
    // place once a save through its store is pushed.
    for store in ["etcd", "redis", "pg"] {
        let mut attempt = 0;
        'probing: loop {
            attempt += 1;
            assert!(attempt < 50, "the subscription to {store} never got a push");
            let content = format!("{store}-{attempt}");
            c.save_configuration(pb::SaveConfigurationRequest {
                store_name: store.into(),
                app_id: app.clone(),
                items: vec![item("probe", &content)],
                metadata: HashMap::new(),
            })
            .await
            .unwrap();
            while let Ok(Ok(Some(push))) =
                tokio::time::timeout(Duration::from_millis(200), pushes.message()).await
            {
                if push.items.iter().any(|i| i.key == "probe" && i.content == content) {
                    break 'probing;
                }
            }
        }
    }
    let ok = |cmd: &mut Command| assert!(cmd.status().unwrap().success(), "{cmd:?} failed");
    ok(Command::new("etcdctl").env("ETCDCTL_API", "3").args([
        "--endpoints",
        &etcd(),
        "put",
        &format!("/{app}/default/default/from-etcdctl"),
        "e",
    ]));
    let push = until(&mut pushes, "from-etcdctl", Some("e")).await;
    assert_eq!(push.store_name, "etcd");
    let (host, port) = redis_host().rsplit_once(':').map(|(h, p)| (h.to_owned(), p.to_owned())).unwrap();
    ok(Command::new("redis-cli").args(["-h", &host, "-p", &port, "hset"]).args([
        &format!("configuration|||{app}||default||default"),
        "from-redis-cli",
        "r",
    ]));
    assert_eq!(until(&mut pushes, "from-redis-cli", Some("r")).await.store_name, "redis");
    ok(Command::new("psql").args([&postgres(), "-q", "-c"]).arg(format!(
        "INSERT INTO layotto_configuration_e2e (app_id, grp, label, key, content) \
         VALUES ('{app}', 'default', 'default', 'from-psql', 'p')"
    )));
    assert_eq!(until(&mut pushes, "from-psql", Some("p")).await.store_name, "pg");
    ok(Command::new("psql")
        .args([&postgres(), "-q", "-c"])
        .arg(format!("DELETE FROM layotto_configuration_e2e WHERE app_id = '{app}' AND key = 'from-psql'")));
    until(&mut pushes, "from-psql", None).await;
    running.shutdown().await;
}

#[tokio::test]
async fn a_config_store_that_goes_down_is_unavailable_and_readiness_names_it() {
    let mut etcd = layotto_testkit::PrivateEtcd::start();
    let mut config = base(&app());
    config
        .section_mut("config_store")
        .insert("etcd".into(), ComponentConfig::new("etcd").with("endpoints", &etcd.endpoint()));
    let (running, mut c) = start(config).await;
    etcd.kill();
    let err = c
        .get_configuration(pb::GetConfigurationRequest { store_name: "etcd".into(), ..Default::default() })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    assert!(err.message().contains("etcd"), "{}", err.message());
    let ready =
        reqwest::get(format!("http://{}/actuator/health/readiness", running.actuator_addr())).await.unwrap();
    assert_eq!(ready.status().as_u16(), 503);
    let body: serde_json::Value = ready.json().await.unwrap();
    assert_eq!(body["components"]["config_store/etcd"]["status"], "DOWN");
    // The rest keeps serving.
    let hello = pb::SayHelloRequest { service_name: "quick_start_demo".into(), ..Default::default() };
    c.say_hello(hello).await.unwrap();
    etcd.restart();
    running.shutdown().await;
}

fn secrets_file(dir: &std::path::Path, text: &str) -> std::path::PathBuf {
    let path = dir.join("secrets.json");
    std::fs::write(&path, text).unwrap();
    path
}

#[tokio::test]
async fn secrets_from_a_file_and_the_environment() {
    let dir = tempfile::tempdir().unwrap();
    let path = secrets_file(dir.path(), r#"{"db": {"user": "u", "password": "p"}, "token": "t"}"#);
    let mut config = base(&app());
    config.section_mut("secret_store").insert(
        "files".into(),
        ComponentConfig::new("local.file").with("secretsFile", path.to_str().unwrap()),
    );
    let (running, mut c) = start(config).await;
    let get = |store: &str, key: &str| pb::GetSecretRequest {
        store_name: store.into(),
        key: key.into(),
        ..Default::default()
    };
    let secret = c.get_secret(get("files", "db:password")).await.unwrap().into_inner();
    assert_eq!(secret.data, HashMap::from([("db:password".to_owned(), "p".to_owned())]));
    let path = std::env::var("PATH").unwrap();
    let secret = c.get_secret(get("secret_demo", "PATH")).await.unwrap().into_inner();
    assert_eq!(secret.data["PATH"], path, "the embedded default reads the environment");
    let bulk = c
        .get_bulk_secret(pb::GetBulkSecretRequest { store_name: "files".into(), ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(bulk.data["token"].secrets["token"], "t");
    assert_eq!(bulk.data.len(), 3);

    let err = c.get_secret(get("files", "missing")).await.unwrap_err();
    assert_eq!(err.code(), Code::Internal, "Layotto's code for a component error");
    assert!(err.message().contains("missing") && err.message().contains("files"), "{}", err.message());
    let err = c.get_secret(get("nope", "x")).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("nope"), "{}", err.message());
    running.shutdown().await;
}

/// A tracing writer the test can read back.
#[derive(Clone, Default)]
struct Captured(Arc<Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A Redis password kept in `local.file` reaches a password-protected
/// Redis through `secret_ref`, and appears in no log line and not in
/// `/actuator/info`.
#[tokio::test]
async fn secret_ref_reaches_the_component_and_never_the_logs() {
    const PASSWORD: &str = "s3cret-Pa55-never-logged";
    let redis = layotto_testkit::PrivateRedis::start_with(&[
        "--save",
        "",
        "--appendonly",
        "no",
        "--requirepass",
        PASSWORD,
    ]);
    let dir = tempfile::tempdir().unwrap();
    let path = secrets_file(dir.path(), &format!(r#"{{"redis": {{"password": "{PASSWORD}"}}}}"#));
    let mut config = base(&app());
    config.section_mut("secret_store").insert(
        "files".into(),
        ComponentConfig::new("local.file").with("secretsFile", path.to_str().unwrap()),
    );
    let mut store = ComponentConfig::new("redis").with("redisHost", &redis.host());
    store.secret_ref = vec![SecretRef {
        store_name: "files".into(),
        key: "redis:password".into(),
        sub_key: String::new(),
        inject_as: "redisPassword".into(),
    }];
    config.section_mut("state").insert("guarded".into(), store);
    config.server.grpc = "127.0.0.1:0".parse().unwrap();

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_writer(move || writer.clone())
        .with_ansi(false)
        .with_max_level(tracing::Level::DEBUG)
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let (running, mut c) = start(config.clone()).await;
    let item = pb::StateItem { key: "k".into(), value: b"v".to_vec(), ..Default::default() };
    c.save_state(pb::SaveStateRequest { store_name: "guarded".into(), states: vec![item] }).await.unwrap();
    let info = reqwest::get(format!("http://{}/actuator/info", running.actuator_addr()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(info.contains("guarded") && !info.contains(PASSWORD), "{info}");
    let debug = format!("{config:?}");
    assert!(!debug.contains(PASSWORD));
    running.shutdown().await;
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(logs.contains("guarded"), "the component is in the log: {logs}");
    assert!(!logs.contains(PASSWORD), "the password reached the log:\n{logs}");

    // Without the secret the same store cannot start, and says why.
    let mut wrong = config.clone();
    wrong.section_mut("state").get_mut("guarded").unwrap().secret_ref[0].key = "redis:nope".into();
    let err = layotto_runtime::start(wrong, Registries::builtin()).await.err().unwrap().to_string();
    assert!(err.contains("guarded") && err.contains("secret_ref[0]") && err.contains("redis:nope"), "{err}");
    assert!(!err.contains(PASSWORD));
    let mut unknown_store = config.clone();
    unknown_store.section_mut("state").get_mut("guarded").unwrap().secret_ref[0].store_name = "vault".into();
    let err = layotto_runtime::start(unknown_store, Registries::builtin()).await.err().unwrap().to_string();
    assert!(err.contains("'vault' is not configured") && err.contains("files"), "{err}");
    let mut sub_key = config;
    sub_key.section_mut("state").get_mut("guarded").unwrap().secret_ref[0].sub_key = "nothing".into();
    let err = layotto_runtime::start(sub_key, Registries::builtin()).await.err().unwrap().to_string();
    assert!(err.contains("no value 'nothing'"), "{err}");
}

#[tokio::test]
async fn component_ref_names_stores_that_exist() {
    let mut config = base(&app());
    let mut hello = ComponentConfig::new("helloworld");
    hello.component_ref = Some(layotto_runtime::config::ComponentRef {
        config_store: Some("config_demo".into()),
        secret_store: Some("secret_demo".into()),
    });
    config.section_mut("hellos").insert("refs".into(), hello.clone());
    let (running, _) = start(config.clone()).await;
    running.shutdown().await;
    hello.component_ref.as_mut().unwrap().config_store = Some("apollo".into());
    config.section_mut("hellos").insert("refs".into(), hello);
    let err = layotto_runtime::start(config, Registries::builtin()).await.err().unwrap().to_string();
    assert!(err.contains("refs") && err.contains("config_store 'apollo' is not configured"), "{err}");
}

/// A local HTTP server: echoes method, path, a header and the body; `/slow` hangs.
async fn http_target() -> std::net::SocketAddr {
    use axum::routing::any;
    async fn echo(
        method: axum::http::Method,
        uri: axum::http::Uri,
        headers: axum::http::HeaderMap,
        body: String,
    ) -> (axum::http::StatusCode, [(&'static str, String); 1], String) {
        if uri.path().ends_with("/missing") {
            return (axum::http::StatusCode::NOT_FOUND, [("x-seen", "404".into())], "no such thing".into());
        }
        if uri.path().ends_with("/slow") {
            tokio::time::sleep(Duration::from_secs(30)).await;
        }
        let seen = headers.get("x-client").and_then(|v| v.to_str().ok()).unwrap_or("").to_owned();
        (axum::http::StatusCode::OK, [("x-seen", seen)], format!("{method} {} {body}", uri.path()))
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, axum::Router::new().fallback(any(echo))).await });
    addr
}

#[tokio::test]
async fn http_and_redis_bindings() {
    let target = http_target().await;
    let mut config = base(&app());
    let bindings = config.section_mut("bindings");
    bindings.insert(
        "web".into(),
        ComponentConfig::new("http")
            .with("url", &format!("http://{target}/api"))
            .with("responseTimeout", "1s"),
    );
    bindings.insert("down".into(), ComponentConfig::new("http").with("url", "http://127.0.0.1:1/"));
    bindings.insert("cache".into(), ComponentConfig::new("redis").with("redisHost", &redis_host()));
    let (running, mut c) = start(config).await;
    let invoke =
        |name: &str, operation: &str, data: &[u8], metadata: &[(&str, &str)]| pb::InvokeBindingRequest {
            name: name.into(),
            data: data.to_vec(),
            operation: operation.into(),
            metadata: metadata.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        };
    let reply = c
        .invoke_binding(invoke("web", "post", b"hello", &[("path", "/orders"), ("X-Client", "me")]))
        .await
        .unwrap()
        .into_inner();
    assert_eq!(reply.data, b"POST /api/orders hello");
    assert_eq!(reply.metadata["statusCode"], "200");
    assert_eq!(reply.metadata["X-Seen"], "me", "upper-case metadata travels as headers");
    let reply = c.invoke_binding(invoke("web", "get", b"ignored", &[])).await.unwrap().into_inner();
    assert_eq!(reply.data, b"GET /api ", "GET sends no body");

    let err = c.invoke_binding(invoke("web", "get", b"", &[("path", "/missing")])).await.unwrap_err();
    assert!(err.message().contains("404") && err.message().contains("web"), "{}", err.message());
    let err = c.invoke_binding(invoke("web", "get", b"", &[("path", "/slow")])).await.unwrap_err();
    assert_eq!(err.code(), Code::DeadlineExceeded, "{}", err.message());
    assert!(err.message().contains("web") && err.message().contains("/slow"), "{}", err.message());
    let err = c.invoke_binding(invoke("down", "get", b"", &[])).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{}", err.message());
    assert!(err.message().contains("down") && err.message().contains("127.0.0.1:1"), "{}", err.message());
    let err = c.invoke_binding(invoke("web", "fetch", b"", &[])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("fetch") && err.message().contains("get, head, post"),
        "{}",
        err.message()
    );
    let err = c.invoke_binding(invoke("nope", "get", b"", &[])).await.unwrap_err();
    assert!(err.message().contains("nope"), "{}", err.message());

    let key = format!("binding-{}", uuid::Uuid::new_v4().simple());
    c.invoke_binding(invoke("cache", "create", b"stored", &[("key", &key), ("ttlInSeconds", "60")]))
        .await
        .unwrap();
    let got = c.invoke_binding(invoke("cache", "get", b"", &[("key", &key)])).await.unwrap().into_inner();
    assert_eq!(got.data, b"stored");
    c.invoke_binding(invoke("cache", "delete", b"", &[("key", &key)])).await.unwrap();
    let got = c.invoke_binding(invoke("cache", "get", b"", &[("key", &key)])).await.unwrap().into_inner();
    assert!(got.data.is_empty());
    let err = c.invoke_binding(invoke("cache", "create", b"x", &[])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(err.message().contains("'key'"), "{}", err.message());
    running.shutdown().await;
}

#[tokio::test]
async fn lifecycle_rebuilds_stateless_components() {
    let first = http_target().await;
    let mut config = base(&app());
    config
        .section_mut("bindings")
        .insert("web".into(), ComponentConfig::new("http").with("url", &format!("http://{first}/one")));
    let (running, mut c) = start(config).await;
    let mut lifecycle = LifecycleClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    let apply = |kind: &str, name: &str, metadata: &[(&str, &str)]| pb::DynamicConfiguration {
        component_config: Some(pb::ComponentConfig {
            kind: kind.into(),
            name: name.into(),
            metadata: metadata.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect(),
        }),
    };
    let get = pb::InvokeBindingRequest { name: "web".into(), operation: "get".into(), ..Default::default() };
    assert_eq!(c.invoke_binding(get.clone()).await.unwrap().into_inner().data, b"GET /one ");
    lifecycle
        .apply_configuration(apply("bindings", "web", &[("url", &format!("http://{first}/two"))]))
        .await
        .unwrap();
    assert_eq!(c.invoke_binding(get).await.unwrap().into_inner().data, b"GET /two ");

    lifecycle
        .apply_configuration(apply("hellos", "quick_start_demo", &[("hello", "goodbye")]))
        .await
        .unwrap();
    let hello =
        pb::SayHelloRequest { service_name: "quick_start_demo".into(), name: "eva".into(), data: None };
    assert_eq!(c.say_hello(hello).await.unwrap().into_inner().hello, "goodbye, eva");

    lifecycle.apply_configuration(apply("config_store", "config_demo", &[("x", "y")])).await.unwrap_err();
    let err =
        lifecycle.apply_configuration(apply("bindings", "web", &[("url", "not a url")])).await.unwrap_err();
    assert!(err.message().contains("url"), "{}", err.message());
    let err = lifecycle.apply_configuration(apply("state", "state_demo", &[("x", "y")])).await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    assert!(
        err.message().contains("state_demo") && err.message().contains("cannot be reconfigured"),
        "{}",
        err.message()
    );
    let err = lifecycle.apply_configuration(apply("bindings", "nope", &[("url", "x")])).await.unwrap_err();
    assert_eq!(err.message(), "component not found. kind: bindings , name: nope");
    running.shutdown().await;
}

/// Layotto's JSON with an etcd config store (its `address` and `timeout`
/// beside `type`), a `local.file` secret store whose file is relative to
/// the config file, a secret_ref and an http binding: every section is
/// served, nothing skipped.
#[tokio::test]
async fn a_layotto_json_config_with_config_store_secrets_and_bindings_loads_whole() {
    let target = http_target().await;
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir(dir.path().join("secret")).unwrap();
    std::fs::write(
        dir.path().join("secret/config_secret_local_file.json"),
        r#"{"db-user-pass": {"username": "devuser", "password": "redis123"}, "redisPassword": "redis123"}"#,
    )
    .unwrap();
    let json = serde_json::json!({"servers": [{"listeners": [
        {"name": "grpc", "address": "127.0.0.1:0", "bind_port": true,
         "filter_chains": [{"filters": [{"type": "grpc", "config": {"server_name": "runtime", "grpc_config": {
            "hellos": {"helloworld": {"type": "helloworld", "hello": "greeting",
                "secret_ref": [{"store_name": "local.file", "key": "db-user-pass:password",
                                "sub_key": "db-user-pass:password", "inject_as": "hello"}],
                "component_ref": {"config_store": "config_demo", "secret_store": "local.file"}}},
            "config_store": {"config_demo": {"type": "etcd", "address": [etcd()], "timeout": "10"}},
            "secret_store": {
                "local.file": {"type": "local.file", "metadata": {"secretsFile": "secret/config_secret_local_file.json"}},
                "local.env": {"type": "local.env", "metadata": {}}},
            "bindings": {"bindings_demo": {"type": "http", "metadata": {"url": format!("http://{target}/layotto")}}},
            "app": {"app_id": "app1", "grpc_callback_port": 0}
         }}}]}]},
        {"name": "actuator", "address": "127.0.0.1:0", "bind_port": true,
         "filter_chains": [{"filters": [{"type": "proxy", "config": {}}]}],
         "stream_filters": [{"type": "actuator_filter"}]}
    ]}]});
    let path = dir.path().join("config.json");
    std::fs::write(&path, json.to_string()).unwrap();

    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt().with_writer(move || writer.clone()).with_ansi(false).finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let config = Config::load(Some(&path)).unwrap();
    let (running, mut c) = start(config).await;
    let logs = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
    assert!(!logs.contains("skipping"), "a section was skipped:\n{logs}");
    assert!(!logs.contains("redis123"), "a secret reached the log:\n{logs}");
    let ready =
        reqwest::get(format!("http://{}/actuator/health/readiness", running.actuator_addr())).await.unwrap();
    assert_eq!(ready.status().as_u16(), 200);
    // secret_ref put the secret into the greeting: proof it was resolved.
    let hello = pb::SayHelloRequest { service_name: "helloworld".into(), name: String::new(), data: None };
    assert_eq!(c.say_hello(hello).await.unwrap().into_inner().hello, "redis123");
    let secret = pb::GetSecretRequest {
        store_name: "local.file".into(),
        key: "redisPassword".into(),
        ..Default::default()
    };
    assert_eq!(c.get_secret(secret).await.unwrap().into_inner().data["redisPassword"], "redis123");
    let get = pb::InvokeBindingRequest {
        name: "bindings_demo".into(),
        operation: "get".into(),
        ..Default::default()
    };
    assert_eq!(c.invoke_binding(get).await.unwrap().into_inner().data, b"GET /layotto ");
    let save = pb::SaveConfigurationRequest {
        store_name: "config_demo".into(),
        app_id: app(),
        items: vec![item("k", "v")],
        metadata: HashMap::new(),
    };
    c.save_configuration(save).await.unwrap();
    running.shutdown().await;
}
