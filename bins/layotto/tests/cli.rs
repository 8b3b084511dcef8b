//! The real binary: started as users start it, with no config, with
//! Layotto's `start -c` form and a Layotto JSON config, and with bad configs.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::Write;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;

mod common;
use common::{BIN, Runtime, command, readiness, redis_host};

fn run_to_exit(args: &[&str], envs: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(BIN);
    cmd.args(args).stdin(Stdio::null());
    for (k, v) in envs {
        cmd.env(k, v);
    }
    let mut child = cmd.stdout(Stdio::piped()).stderr(Stdio::piped()).spawn().unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("layotto {args:?} kept running; it should have failed");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    child.wait_with_output().unwrap()
}

fn all_output(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test]
async fn runs_on_embedded_defaults_without_a_config() {
    let rt = Runtime::start(command());
    assert_eq!(readiness(rt.actuator).await.status(), 200);
    let mut client = RuntimeClient::connect(format!("http://127.0.0.1:{}", rt.grpc)).await.unwrap();
    let hello = client
        .say_hello(pb::SayHelloRequest {
            service_name: "quick_start_demo".into(),
            name: "eva".into(),
            data: None,
        })
        .await
        .unwrap();
    assert_eq!(hello.into_inner().hello, "greeting, eva");
    let item = pb::StateItem { key: "k".into(), value: b"v".to_vec(), ..Default::default() };
    client
        .save_state(pb::SaveStateRequest { store_name: "state_demo".into(), states: vec![item] })
        .await
        .unwrap();
    let got = client
        .get_state(pb::GetStateRequest {
            store_name: "state_demo".into(),
            key: "k".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(got.into_inner().data, b"v");
}

#[tokio::test]
async fn layotto_start_form_loads_a_layotto_json_config() {
    // The shape of Layotto's configs/config_redis.json.
    let json = format!(
        r#"{{
      "servers": [{{
        "default_log_path": "stdout",
        "default_log_level": "INFO",
        "routers": [{{"router_config_name": "actuator_dont_need_router"}}],
        "listeners": [
          {{"name": "grpc", "address": "127.0.0.1:0", "bind_port": true,
            "filter_chains": [{{"filters": [{{"type": "grpc", "config": {{"server_name": "runtime", "grpc_config": {{
              "hellos": {{"quick_start_demo": {{"type": "helloworld", "hello": "greeting"}}}},
              "state": {{"redis": {{"type": "redis", "metadata": {{"redisHost": "{redis}", "redisPassword": ""}}}}}},
              "sequencer": {{"redis": {{"type": "redis", "metadata": {{"redisHost": "{redis}"}}}}}},
              "lock": {{"redis": {{"type": "redis", "metadata": {{"redisHost": "{redis}"}}}}}},
              "pub_subs": {{"redis": {{"type": "redis", "metadata": {{"redisHost": "{redis}"}}}}}},
              "app": {{"app_id": "app1", "grpc_callback_port": 9999}}
            }}}}}}]}}]}},
          {{"name": "actuator", "address": "127.0.0.1:0", "bind_port": true,
            "filter_chains": [{{"filters": [{{"type": "proxy", "config": {{"downstream_protocol": "Http1", "upstream_protocol": "Http1", "router_config_name": "actuator_dont_need_router"}}}}]}}],
            "stream_filters": [{{"type": "actuator_filter"}}]}}
        ]
      }}],
      "metrics": {{"sinks": [{{"type": "prometheus", "config": {{"port": 34903}}}}]}}
    }}"#,
        redis = redis_host()
    );
    let mut file = tempfile::Builder::new().suffix(".json").tempfile().unwrap();
    file.write_all(json.as_bytes()).unwrap();
    let mut cmd = Command::new(BIN);
    cmd.arg("start").arg("-c").arg(file.path());
    let rt = Runtime::start(cmd);
    let mut client = RuntimeClient::connect(format!("http://127.0.0.1:{}", rt.grpc)).await.unwrap();
    let key = format!("cli-{}", std::process::id());
    let item = pb::StateItem { key: key.clone(), value: b"from-json-config".to_vec(), ..Default::default() };
    client.save_state(pb::SaveStateRequest { store_name: "redis".into(), states: vec![item] }).await.unwrap();
    let got = client
        .get_state(pb::GetStateRequest { store_name: "redis".into(), key, ..Default::default() })
        .await
        .unwrap()
        .into_inner();
    assert_eq!(got.data, b"from-json-config");
    let readiness: serde_json::Value = readiness(rt.actuator).await.json().await.unwrap();
    assert_eq!(readiness["components"]["state/redis"]["status"], "UP");
}

#[test]
fn unknown_config_key_exits_naming_the_key() {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(b"[server]\ngrpc = \"127.0.0.1:0\"\nactuatr = \"127.0.0.1:0\"\n").unwrap();
    let out = run_to_exit(&["--config", file.path().to_str().unwrap()], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(all_output(&out).contains("actuatr"), "{}", all_output(&out));
}

#[test]
fn unknown_component_type_exits_naming_api_component_and_types() {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    file.write_all(b"[server]\ngrpc = \"127.0.0.1:0\"\nactuator = \"127.0.0.1:0\"\n[state.orders]\ntype = \"cassandra\"\n").unwrap();
    let out = run_to_exit(&["--config", file.path().to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let text = all_output(&out);
    for needle in ["state", "orders", "cassandra", "in-memory", "redis"] {
        assert!(text.contains(needle), "missing {needle}: {text}");
    }
}

#[test]
fn component_that_cannot_start_stops_the_runtime() {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    let toml = "[server]\ngrpc = \"127.0.0.1:0\"\nactuator = \"127.0.0.1:0\"\n[state.cache]\ntype = \"redis\"\nmetadata = { redisHost = \"127.0.0.1:1\" }\n";
    file.write_all(toml.as_bytes()).unwrap();
    let out = run_to_exit(&["--config", file.path().to_str().unwrap()], &[]);
    assert!(!out.status.success());
    let text = all_output(&out);
    assert!(
        text.contains("cache") && text.contains("failed to start") && text.contains("127.0.0.1:1"),
        "{text}"
    );
}

#[test]
fn missing_config_file_is_named() {
    let out = run_to_exit(&["start", "-c", "/nonexistent/config.json"], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(all_output(&out).contains("/nonexistent/config.json"));
}
