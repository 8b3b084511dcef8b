//! The unmodified Dapr Python SDK drives the binary (tests/dapr_sdk.py):
//! state with etags, bulk and transactions, lock, metadata, secrets,
//! publish with delivery to a Dapr-style HTTP app and streaming
//! subscription, invocation of the app and of a second runtime's app (HTTP
//! servers in the script), an http binding, and configuration get and
//! subscribe, on the embedded defaults, started with daprd's own flags
//! (`--app-id`, `--app-port`, `--app-protocol http`). A second test runs a
//! gRPC app made with the SDK's `dapr.ext.grpc` (tests/dapr_grpc_app.py).

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use layotto_grpc::pb::runtime as pb;
use layotto_grpc::pb::runtime::runtime_client::RuntimeClient;

mod common;
use common::{Runtime, command};

/// The interpreter of the virtual environment with the `dapr` package
/// (`cargo xtask test` makes it: target/py-dapr).
fn python() -> String {
    std::env::var("LAYOTTO_TEST_DAPR_PYTHON")
        .unwrap_or_else(|_| format!("{}/../../target/py-dapr/bin/python", env!("CARGO_MANIFEST_DIR")))
}

async fn save_config(client: &mut RuntimeClient<tonic::transport::Channel>, key: &str, content: &str) {
    client
        .save_configuration(pb::SaveConfigurationRequest {
            store_name: "config_demo".into(),
            app_id: "dapr-sdk-app".into(),
            items: vec![pb::ConfigurationItem {
                key: key.into(),
                content: content.into(),
                ..Default::default()
            }],
            ..Default::default()
        })
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dapr_python_sdk_works_unmodified() {
    let port = || std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let (own_port, orders_port, sink_port) = (port(), port(), port());
    // The second runtime, in front of app `orders`.
    let mut orders = command();
    orders.args(["--app-id", "orders", "--app-protocol", "http", "--app-port", &orders_port.to_string()]);
    let orders = Runtime::start(orders);
    let orders_http = orders.dapr_http.expect("the second runtime serves Dapr's HTTP API");
    let mut cmd = command();
    cmd.args(["--app-id", "dapr-sdk-app", "--app-protocol", "http", "--app-port", &own_port.to_string()])
        .env("LAYOTTO_INVOKE__PEERS__orders", format!("127.0.0.1:{orders_http}"))
        .env("LAYOTTO_BINDINGS__web__TYPE", "http")
        .env("LAYOTTO_BINDINGS__web__METADATA__url", format!("http://127.0.0.1:{sink_port}/hook"));
    let rt = Runtime::start(cmd);
    let dapr_http = rt.dapr_http.expect("the Dapr HTTP API listens on embedded defaults");
    let mut client = RuntimeClient::connect(format!("http://127.0.0.1:{}", rt.grpc)).await.unwrap();
    let key = format!("sdk-{}", std::process::id());
    save_config(&mut client, &key, "before").await;

    let mut sdk = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dapr_sdk.py"))
        .arg(&key)
        .args([own_port, orders_port, sink_port].map(|p| p.to_string()))
        .env("DAPR_GRPC_PORT", rt.grpc.to_string())
        .env("DAPR_HTTP_PORT", dapr_http.to_string())
        .env("DAPR_HEALTH_TIMEOUT", "10")
        .env_remove("DAPR_API_TOKEN")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("python with the dapr package (cargo xtask test installs it; set LAYOTTO_TEST_DAPR_PYTHON)");
    let stdout = sdk.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut printed = Vec::new();
    let mut changed = false;
    while let Ok(line) = rx.recv_timeout(Duration::from_secs(60)) {
        if line == "SUBSCRIBED" && !changed {
            save_config(&mut client, &key, "after").await;
            changed = true;
        }
        printed.push(line);
    }
    let status = sdk.wait().unwrap();
    assert!(status.success(), "the SDK script failed ({status}); it printed {printed:?}");
    // The SDK prints its own lines too (a configuration watcher announces that it stopped).
    assert!(printed.iter().any(|line| line == "OK"), "the script did not finish its checks: {printed:?}");
    assert!(changed, "the script subscribed before finishing");
}

/// A gRPC app made with the SDK's `dapr.ext.grpc.App` (tests/dapr_grpc_app.py)
/// behind the binary: invocation, delivery by routing rule, and a cron input binding.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dapr_grpc_app_made_with_the_python_sdk_works_unmodified() {
    let app_port = std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port();
    let mut cmd = command();
    cmd.args(["--app-id", "dapr-grpc-app", "--app-protocol", "grpc", "--app-port", &app_port.to_string()])
        .env("LAYOTTO_INPUT_BINDINGS__tick__TYPE", "cron")
        .env("LAYOTTO_INPUT_BINDINGS__tick__METADATA__schedule", "@every 200ms");
    let rt = Runtime::start(cmd);
    let dapr_http = rt.dapr_http.expect("the Dapr HTTP API listens on embedded defaults");
    let output = Command::new(python())
        .arg(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/dapr_grpc_app.py"))
        .arg(app_port.to_string())
        .env("DAPR_GRPC_PORT", rt.grpc.to_string())
        .env("DAPR_HTTP_PORT", dapr_http.to_string())
        .env("DAPR_HEALTH_TIMEOUT", "10")
        .env_remove("DAPR_API_TOKEN")
        .stderr(Stdio::inherit())
        .output()
        .expect("python with the dapr package (cargo xtask test installs it; set LAYOTTO_TEST_DAPR_PYTHON)");
    let printed = String::from_utf8_lossy(&output.stdout);
    assert!(output.status.success(), "the SDK app failed ({}); it printed {printed}", output.status);
    assert_eq!(printed.lines().last(), Some("OK"), "{printed}");
}
