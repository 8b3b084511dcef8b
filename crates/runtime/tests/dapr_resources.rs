//! Dapr resource files (`--resources-path`): components in Dapr's YAML run
//! as ours (Redis state, in-memory pub/sub, local.file secrets, a secret
//! reference), declarative subscriptions reach the app, and a type we do
//! not have fails naming the file, the component and our types.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use layotto_grpc::pb::dapr::common::v1 as common;
use layotto_grpc::pb::dapr::runtime::v1 as pb;
use layotto_grpc::pb::dapr::runtime::v1::dapr_client::DaprClient;
use layotto_runtime::config::SecretRef;
use layotto_runtime::{Config, Registries};
use parking_lot::Mutex;

fn redis_host() -> String {
    std::env::var("LAYOTTO_TEST_REDIS")
        .unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned())
        .trim_start_matches("redis://")
        .to_owned()
}

fn base() -> Config {
    let mut config = Config::empty();
    config.server.grpc = "127.0.0.1:0".parse().unwrap();
    config.server.actuator = "127.0.0.1:0".parse().unwrap();
    config.app.id = "resources-app".into();
    config
}

fn write(dir: &std::path::Path, name: &str, text: &str) {
    std::fs::write(dir.join(name), text).unwrap();
}

#[tokio::test]
async fn dapr_component_files_run_as_components() {
    let dir = tempfile::tempdir().unwrap();
    let secrets = dir.path().join("secrets.json");
    std::fs::write(&secrets, r#"{"redis-host": "HOST", "plain": "value"}"#.replace("HOST", &redis_host()))
        .unwrap();
    write(
        dir.path(),
        "components.yaml",
        &format!(
            r#"apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: localsecrets
spec:
  type: secretstores.local.file
  version: v1
  metadata:
  - name: secretsFile
    value: {secrets}
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: statestore
spec:
  type: state.redis
  version: v1
  metadata:
  - name: redisHost
    secretKeyRef:
      name: redis-host
  - name: enableTLS
    value: false
auth:
  secretStore: localsecrets
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: pubsub
spec:
  type: pubsub.in-memory
  version: v1
---
apiVersion: dapr.io/v1alpha1
kind: Component
metadata:
  name: other-apps-store
spec:
  type: state.in-memory
  version: v1
scopes:
- someone-else
"#,
            secrets = secrets.display()
        ),
    );
    let mut config = base();
    config.load_dapr_resources(dir.path()).unwrap();
    let state: Vec<_> = config.section("state").collect();
    assert_eq!(state.len(), 1, "the scoped component is not this app's");
    assert_eq!(state[0].1.kind, "redis");
    assert_eq!(
        state[0].1.secret_ref,
        vec![SecretRef {
            store_name: "localsecrets".into(),
            key: "redis-host".into(),
            sub_key: "redis-host".into(),
            inject_as: "redisHost".into()
        }]
    );
    assert_eq!(state[0].1.metadata.get("enableTLS").map(String::as_str), Some("false"));

    let running = layotto_runtime::start(config, Registries::builtin()).await.expect("starts from Dapr YAML");
    let mut c = DaprClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    let key = format!("yaml-{}", uuid::Uuid::new_v4().simple());
    c.save_state(pb::SaveStateRequest {
        store_name: "statestore".into(),
        states: vec![common::StateItem {
            key: key.clone(),
            value: b"from yaml".to_vec(),
            ..Default::default()
        }],
    })
    .await
    .unwrap();
    let got = c
        .get_state(pb::GetStateRequest { store_name: "statestore".into(), key, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.data, b"from yaml");
    let secret = c
        .get_secret(pb::GetSecretRequest {
            store_name: "localsecrets".into(),
            key: "plain".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(secret.data.get("plain").map(String::as_str), Some("value"));
    c.publish_event(pb::PublishEventRequest {
        pubsub_name: "pubsub".into(),
        topic: "t".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    running.shutdown().await;
}

#[test]
fn unknown_types_name_the_file_the_component_and_our_types() {
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "cosmos.yaml",
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: orders\nspec:\n  type: state.azure.cosmosdb\n  version: v1\n",
    );
    let err = base().load_dapr_resources(dir.path()).unwrap_err().to_string();
    assert!(err.contains("cosmos.yaml") && err.contains("orders") && err.contains("azure.cosmosdb"), "{err}");
    assert!(err.contains("redis") && err.contains("in-memory"), "lists the types we have: {err}");

    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "actors.yaml",
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: w\nspec:\n  type: workflowbackend.actors\n  version: v1\n",
    );
    let err = base().load_dapr_resources(dir.path()).unwrap_err().to_string();
    assert!(err.contains("actors.yaml") && err.contains("workflowbackend.actors"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "rules.yaml",
        "apiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: s\nspec:\n  topic: t\n  pubsubname: p\n  routes:\n    rules:\n    - match: size(event.data) > 2\n      path: /big\n",
    );
    let err = base().load_dapr_resources(dir.path()).unwrap_err().to_string();
    assert!(err.contains("rules.yaml") && err.contains("size(event.data) > 2"), "{err}");

    // `bindings.cron` is an input binding: it lands in our input_bindings section.
    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "cron.yaml",
        "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: tick\nspec:\n  type: bindings.cron\n  version: v1\n  metadata:\n  - name: schedule\n    value: \"@every 1s\"\n",
    );
    let mut config = base();
    config.load_dapr_resources(dir.path()).unwrap();
    let inputs: Vec<_> =
        config.section("input_bindings").map(|(name, c)| (name.clone(), c.kind.clone())).collect();
    assert_eq!(inputs, vec![("tick".to_owned(), "cron".to_owned())]);
    assert_eq!(config.section("bindings").count(), 0);
}

/// A `kind: Subscription` file subscribes the app (here an HTTP app whose
/// /dapr/subscribe lists nothing) to a topic on a route.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn declarative_subscriptions_reach_the_app() {
    use axum::routing::{get, post};
    let topic = format!("declared-{}", uuid::Uuid::new_v4().simple());
    let received: Arc<Mutex<Vec<(String, serde_json::Value)>>> = Arc::default();
    let sink = received.clone();
    let app = axum::Router::new()
        .route("/dapr/subscribe", get(|| async { axum::Json(serde_json::json!([])) }))
        .route(
            "/{route}",
            post(move |uri: axum::http::Uri, body: String| async move {
                sink.lock().push((uri.path().to_owned(), serde_json::from_str(&body).unwrap()));
                axum::Json(serde_json::json!({"status": "SUCCESS"}))
            }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });

    let dir = tempfile::tempdir().unwrap();
    write(
        dir.path(),
        "pubsub.yaml",
        &format!(
            "apiVersion: dapr.io/v1alpha1\nkind: Component\nmetadata:\n  name: pubsub\nspec:\n  type: pubsub.in-memory\n  version: v1\n\
             ---\napiVersion: dapr.io/v2alpha1\nkind: Subscription\nmetadata:\n  name: orders\nspec:\n  topic: {topic}\n  routes:\n    rules:\n    - match: event.data == \"urgent\"\n      path: /urgent\n    default: /declared\n  pubsubname: pubsub\n"
        ),
    );
    let mut config = base();
    config.app.callback_port = port;
    config.app.protocol = layotto_runtime::config::AppProtocol::Http;
    config.load_dapr_resources(dir.path()).unwrap();
    let running = layotto_runtime::start(config, Registries::builtin()).await.unwrap();
    let mut c = DaprClient::connect(format!("http://{}", running.grpc_addr())).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while received.lock().is_empty() {
        assert!(Instant::now() < deadline, "the declared subscription delivered nothing");
        c.publish_event(pb::PublishEventRequest {
            pubsub_name: "pubsub".into(),
            topic: topic.clone(),
            data: b"declared".to_vec(),
            data_content_type: "text/plain".into(),
            ..Default::default()
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let first = received.lock()[0].clone();
    assert_eq!((first.0.as_str(), &first.1["data"]), ("/declared", &serde_json::json!("declared")));
    // The subscription's rule sends what matches it to its own route.
    c.publish_event(pb::PublishEventRequest {
        pubsub_name: "pubsub".into(),
        topic: topic.clone(),
        data: b"urgent".to_vec(),
        data_content_type: "text/plain".into(),
        ..Default::default()
    })
    .await
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !received.lock().iter().any(|(_, e)| e["data"] == "urgent") {
        assert!(Instant::now() < deadline, "the urgent event never arrived");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let urgent = received.lock().iter().find(|(_, e)| e["data"] == "urgent").cloned().unwrap();
    assert_eq!(urgent.0, "/urgent");
    running.shutdown().await;
}
