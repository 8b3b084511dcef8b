//! Component health as the actuator and the gRPC health service report it.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};

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

/// Whether the runtime finished starting, or is stopping; both probes
/// include it. While stopping (draining in-flight calls) readiness is DOWN
/// at once, so load balancers stop sending, while liveness stays UP, so
/// nothing restarts the process mid-drain.
#[derive(Default)]
pub struct Startup(AtomicU8);

const STARTING: u8 = 0;
const STARTED: u8 = 1;
const STOPPING: u8 = 2;

impl Startup {
    pub fn mark_started(&self) {
        let _ = self.0.compare_exchange(STARTING, STARTED, Ordering::AcqRel, Ordering::Acquire);
    }

    pub fn mark_stopping(&self) {
        self.0.store(STOPPING, Ordering::Release);
    }

    pub fn is_started(&self) -> bool {
        self.0.load(Ordering::Acquire) == STARTED
    }

    pub fn is_stopping(&self) -> bool {
        self.0.load(Ordering::Acquire) == STOPPING
    }

    fn indicator(&self, for_readiness: bool) -> Indicator {
        let (status, reason) = match self.0.load(Ordering::Acquire) {
            STARTING => (HealthStatus::Init, Some("starting")),
            STOPPING if for_readiness => (HealthStatus::Down, Some("shutting down")),
            _ => (HealthStatus::Up, None),
        };
        Indicator {
            status,
            details: reason.map(|r| BTreeMap::from([("reason", r.to_owned())])).unwrap_or_default(),
        }
    }
}

pub fn liveness(startup: &Startup) -> Report {
    aggregate(BTreeMap::from([("runtime_startup".to_owned(), startup.indicator(false))]))
}

/// Readiness: startup plus every component, probed concurrently.
pub async fn readiness(startup: &Startup, probes: &[ComponentProbe]) -> Report {
    let results = join_all(probes.iter().map(|p| (p.probe)())).await;
    let mut components = BTreeMap::from([("runtime_startup".to_owned(), startup.indicator(true))]);
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
