//! Operating the binary: JSON log lines, log levels changed at run time
//! through `/actuator/logger`, SIGTERM draining to exit 0, and a second
//! signal exiting at once.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

mod common;
use common::command;

/// The binary, killed when the test ends, pass or fail.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn signal(child: &Child, name: &str) {
    let status =
        std::process::Command::new("kill").arg(format!("-{name}")).arg(child.id().to_string()).status();
    assert!(status.unwrap().success());
}

/// Starts the binary with JSON logs; returns it, its log lines (as JSON) and
/// the actuator and Dapr HTTP addresses from its ready line.
fn start_json(mut cmd: std::process::Command) -> (Proc, mpsc::Receiver<serde_json::Value>, String, String) {
    let mut child = Proc(
        cmd.arg("--log-format")
            .arg("json")
            .env("LAYOTTO_LOG", "info")
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap(),
    );
    let (tx, rx) = mpsc::channel();
    let stdout = child.0.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let parsed: serde_json::Value =
                serde_json::from_str(&line).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {line}"));
            let _ = tx.send(parsed);
        }
    });
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let line =
            rx.recv_timeout(deadline.saturating_duration_since(Instant::now())).expect("no ready line");
        if line["fields"]["message"] == "layotto-rs is ready" {
            let actuator = line["fields"]["actuator"].as_str().unwrap().to_owned();
            let dapr_http = line["fields"]["dapr_http"].as_str().unwrap_or_default().to_owned();
            assert_eq!(line["level"], "INFO");
            return (child, rx, actuator, dapr_http);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_logs_levels_at_run_time_and_sigterm_exits_zero() {
    let (mut child, lines, actuator, _) = start_json(command());
    let http = reqwest::Client::new();
    let logger = format!("http://{actuator}/actuator/logger");
    let post = |body: &'static str| http.post(&logger).body(body).send();

    let ok = post(r#"{"component": "lock/redis", "level": "debug"}"#).await.unwrap();
    assert_eq!(ok.status(), 200);
    assert_eq!(ok.json::<serde_json::Value>().await.unwrap(), serde_json::json!({}));
    for (bad, says) in [
        (r#"{"component": "lock", "level": "loud"}"#, "loud"),
        (r#"{"component": "nonsense", "level": "debug"}"#, "nonsense"),
        ("not json", "body"),
    ] {
        let answer = post(bad).await.unwrap();
        assert_eq!(answer.status(), 500, "{bad}");
        let body: serde_json::Value = answer.json().await.unwrap();
        assert!(body["error"].as_str().unwrap().contains(says), "{bad}: {body}");
    }
    // Every logger to error: the INFO lines of the shutdown no longer appear.
    assert_eq!(post(r#"{"component": "", "level": "error"}"#).await.unwrap().status(), 200);
    while lines.try_recv().is_ok() {}
    signal(&child.0, "TERM");
    let deadline = Instant::now() + Duration::from_secs(15);
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "no exit within 15 s of SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(status.success(), "SIGTERM exits 0: {status}");
    let after: Vec<serde_json::Value> = lines.try_iter().collect();
    assert!(after.iter().all(|l| l["level"] == "ERROR"), "only errors after the level change: {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_signal_exits_without_waiting_for_the_drain() {
    use axum::routing::any;
    let app = axum::Router::new().route(
        "/slow",
        any(|| async {
            tokio::time::sleep(Duration::from_secs(30)).await;
            "late"
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    let mut cmd = command();
    cmd.args(["--app-id", "slow-app", "--app-protocol", "http", "--app-port", &port.to_string()])
        .env("LAYOTTO_SERVER__DRAIN_TIMEOUT_SECONDS", "60");
    let (mut child, _lines, _, dapr_http) = start_json(cmd);
    let call = tokio::spawn(reqwest::get(format!("http://{dapr_http}/v1.0/invoke/slow-app/method/slow")));
    tokio::time::sleep(Duration::from_millis(500)).await;
    signal(&child.0, "TERM");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(child.0.try_wait().unwrap().is_none(), "the first signal waits for the call in flight");
    let sent = Instant::now();
    signal(&child.0, "INT");
    let status = loop {
        if let Some(status) = child.0.try_wait().unwrap() {
            break status;
        }
        assert!(sent.elapsed() < Duration::from_secs(5), "the second signal did not end the process");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(130));
    call.abort();
}
