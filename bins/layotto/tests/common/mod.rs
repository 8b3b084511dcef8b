//! Helpers shared by the tests that run the real binary.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::process::Child;
use std::time::{Duration, Instant};

pub const BIN: &str = env!("CARGO_BIN_EXE_layotto");

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

pub fn redis_host() -> String {
    let url = std::env::var("LAYOTTO_TEST_REDIS").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    url.trim_start_matches("redis://").to_owned()
}

/// Kills the runtime when the test ends, pass or fail.
pub struct Runtime(pub Child);

impl Drop for Runtime {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

pub async fn wait_ready(actuator: u16) {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(resp) = reqwest::get(format!("http://127.0.0.1:{actuator}/actuator/health/readiness")).await
            && resp.status().as_u16() == 200
        {
            return;
        }
        assert!(Instant::now() < deadline, "runtime not ready after 20 s");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
