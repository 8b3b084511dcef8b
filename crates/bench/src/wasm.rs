//! What one more instance of a wasm function costs: time to cut it from the
//! compiled template (wasmtime's pre-instantiated module) and resident memory.

use std::path::Path;
use std::sync::Arc;
use std::time::Instant;

use anyhow::{Context, Result};
use layotto_wasm::{FunctionSpec, Functions, Host, Limits};

/// The runtime is not in this process: functions that call it get errors.
struct NoRuntime;

#[async_trait::async_trait]
impl Host for NoRuntime {
    async fn get_state(&self, _: &str, _: &str) -> layotto_core::Result<Option<Vec<u8>>> {
        Err(layotto_core::Error::new(layotto_core::ErrorKind::Unavailable, "no runtime in the bench"))
    }
    async fn save_state(&self, _: &str, _: &str, _: Vec<u8>) -> layotto_core::Result<()> {
        Err(layotto_core::Error::new(layotto_core::ErrorKind::Unavailable, "no runtime in the bench"))
    }
    async fn publish(&self, _: &str, _: &str, _: Vec<u8>) -> layotto_core::Result<()> {
        Err(layotto_core::Error::new(layotto_core::ErrorKind::Unavailable, "no runtime in the bench"))
    }
    async fn invoke(&self, _: &str, _: &str, _: Vec<u8>) -> layotto_core::Result<Vec<u8>> {
        Err(layotto_core::Error::new(layotto_core::ErrorKind::Unavailable, "no runtime in the bench"))
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap_or_default();
    line.split_whitespace().nth(1).and_then(|n| n.parse().ok()).unwrap_or(0)
}

/// Installs `module` (which compiles it and starts one instance), then
/// warms `count` more; prints `{"instantiate_us", "instance_kib", "compile_ms"}`.
pub async fn instances(module: &Path, count: usize) -> Result<()> {
    let limits = Limits { max_instances: count + 8, ..Limits::default() };
    let functions = Functions::new(limits, Arc::new(NoRuntime))?;
    let spec = FunctionSpec {
        name: "bench".into(),
        instance_num: count + 1,
        path: module.to_owned(),
        root_context_id: 1,
        ..Default::default()
    };
    let started = Instant::now();
    functions.install(spec).await.context("installing the module")?;
    let compile_ms = started.elapsed().as_secs_f64() * 1000.0;
    let before = rss_kib();
    let started = Instant::now();
    let built = functions.warm("bench", count + 1).await?;
    let took = started.elapsed();
    let after = rss_kib();
    anyhow::ensure!(built == count, "built {built} instances, not {count}");
    let report = serde_json::json!({
        "instances": count,
        "compile_ms": compile_ms,
        "instantiate_us": took.as_secs_f64() * 1e6 / count as f64,
        "instance_kib": after.saturating_sub(before) as f64 / count as f64,
    });
    println!("{report}");
    Ok(())
}
