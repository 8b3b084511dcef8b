//! Component health as the actuator and the gRPC health service report it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use futures::future::{BoxFuture, join_all};
use layotto_core::{Health, HealthStatus};
use serde::Serialize;

/// Asks one component how it is.
pub type Probe = Arc<dyn Fn() -> BoxFuture<'static, Health> + Send + Sync>;

pub struct ComponentProbe {
    pub api: &'static str,
    pub name: String,
    pub kind: String,
    pub probe: Probe,
}

impl ComponentProbe {
    pub fn new<F>(api: &'static str, name: &str, kind: &str, probe: F) -> Self
    where
        F: Fn() -> BoxFuture<'static, Health> + Send + Sync + 'static,
    {
        Self { api, name: name.to_owned(), kind: kind.to_owned(), probe: Arc::new(probe) }
    }
}

#[derive(Debug, Serialize)]
pub struct Indicator {
    pub status: HealthStatus,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub details: BTreeMap<&'static str, String>,
}

/// Layotto's health JSON: `{"status": …, "components": {name: {status, details}}}`.
#[derive(Debug, Serialize)]
pub struct Report {
    pub status: HealthStatus,
    pub components: BTreeMap<String, Indicator>,
}

impl Report {
    pub fn is_up(&self) -> bool {
        self.status == HealthStatus::Up
    }
}

/// Whether the runtime finished starting; both probes include it.
#[derive(Default)]
pub struct Startup(AtomicBool);

impl Startup {
    pub fn mark_started(&self) {
        self.0.store(true, Ordering::Release);
    }

    pub fn is_started(&self) -> bool {
        self.0.load(Ordering::Acquire)
    }

    fn indicator(&self) -> Indicator {
        if self.0.load(Ordering::Acquire) {
            Indicator { status: HealthStatus::Up, details: BTreeMap::new() }
        } else {
            Indicator {
                status: HealthStatus::Init,
                details: BTreeMap::from([("reason", "starting".to_owned())]),
            }
        }
    }
}

pub fn liveness(startup: &Startup) -> Report {
    aggregate(BTreeMap::from([("runtime_startup".to_owned(), startup.indicator())]))
}

/// Readiness: startup plus every component, probed concurrently.
pub async fn readiness(startup: &Startup, probes: &[ComponentProbe]) -> Report {
    let results = join_all(probes.iter().map(|p| (p.probe)())).await;
    let mut components = BTreeMap::from([("runtime_startup".to_owned(), startup.indicator())]);
    for (probe, health) in probes.iter().zip(results) {
        let mut details = BTreeMap::from([("type", probe.kind.clone())]);
        if !health.reason.is_empty() {
            details.insert("reason", health.reason);
        }
        components
            .insert(format!("{}/{}", probe.api, probe.name), Indicator { status: health.status, details });
    }
    aggregate(components)
}

fn aggregate(components: BTreeMap<String, Indicator>) -> Report {
    let statuses = || components.values().map(|i| i.status);
    let status = if statuses().any(|s| s == HealthStatus::Down) {
        HealthStatus::Down
    } else if statuses().any(|s| s == HealthStatus::Init) {
        HealthStatus::Init
    } else {
        HealthStatus::Up
    };
    Report { status, components }
}
