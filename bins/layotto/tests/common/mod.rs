//! Helpers shared by the tests that run the real binary.
//!
//! The runtime is started on port 0 and the tests read the addresses it
//! bound from its "ready" log line: picking "free" ports in the test and
//! handing them over races with every other test on the machine.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

pub const BIN: &str = env!("CARGO_BIN_EXE_layotto");

pub fn etcd_endpoint() -> String {
    std::env::var("LAYOTTO_TEST_ETCD").unwrap_or_else(|_| "127.0.0.1:2379".to_owned())
}

pub fn zookeeper_endpoint() -> String {
    std::env::var("LAYOTTO_TEST_ZOOKEEPER").unwrap_or_else(|_| "127.0.0.1:2181".to_owned())
}

pub fn redis_host() -> String {
    let url = std::env::var("LAYOTTO_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    url.trim_start_matches("redis://").to_owned()
}

/// A running binary, killed when the test ends, pass or fail.
pub struct Runtime {
    pub child: Child,
    pub grpc: u16,
    pub actuator: u16,
    /// Dapr's HTTP API, when it listens.
    pub dapr_http: Option<u16>,
    /// What it printed before it was ready (component lines, warnings).
    pub startup: String,
}

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Runtime {
    /// Starts `cmd` (the binary with its arguments, listening on port 0) and
    /// waits for its ready line. If it exits or stays silent for 30 s, the
    /// test fails with everything it printed.
    pub fn start(mut cmd: Command) -> Self {
        let mut child = cmd
            .env("LAYOTTO_LOG", "info")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel::<String>();
        for pipe in [
            Box::new(child.stdout.take().unwrap()) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().unwrap()),
        ] {
            let tx = tx.clone();
            // Keeps draining after startup, so the runtime never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(pipe).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        drop(tx);
        let mut printed = String::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(30);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => {
                    if line.contains("layotto-rs is ready") {
                        let (grpc, actuator) = (port_of(&line, "grpc="), port_of(&line, "actuator="));
                        let dapr_http = line.contains("dapr_http=").then(|| port_of(&line, "dapr_http="));
                        // The rest of the output goes to the test's own stderr.
                        std::thread::spawn(move || rx.iter().for_each(|l| eprintln!("layotto: {l}")));
                        return Self { child, grpc, actuator, dapr_http, startup: printed };
                    }
                    printed.push_str(&line);
                    printed.push('\n');
                }
                Err(_) => {
                    let _ = child.kill();
                    let status = child.wait().ok();
                    panic!("the runtime did not become ready (exit: {status:?}); it printed:\n{printed}");
                }
            }
        }
    }
}

fn port_of(line: &str, field: &str) -> u16 {
    let at = line.find(field).unwrap_or_else(|| panic!("no {field} in {line:?}")) + field.len();
    let addr: String = line[at..].chars().take_while(|c| !c.is_whitespace()).collect();
    addr.rsplit(':').next().and_then(|p| p.parse().ok()).unwrap_or_else(|| panic!("bad {field} in {line:?}"))
}

/// The binary with embedded defaults on port 0.
pub fn command() -> Command {
    let mut cmd = Command::new(BIN);
    cmd.env("LAYOTTO_SERVER__GRPC", "127.0.0.1:0")
        .env("LAYOTTO_SERVER__ACTUATOR", "127.0.0.1:0")
        .env("LAYOTTO_SERVER__DAPR_HTTP", "127.0.0.1:0");
    cmd
}

pub async fn readiness(actuator: u16) -> reqwest::Response {
    reqwest::get(format!("http://127.0.0.1:{actuator}/actuator/health/readiness")).await.unwrap()
}
