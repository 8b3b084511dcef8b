//! Layotto's actuator: `/actuator/health/liveness`, `/actuator/health/readiness`
//! and `/actuator/info` (reference §6), built from the probes the runtime
//! collects, one per component. Later `/metrics` and `/actuator/logger`
//! join here.

mod health;
mod http;

pub use health::{ComponentProbe, Indicator, Probe, Report, Startup, liveness, readiness};
pub use http::{Actuator, metrics_router, router};

/// When this build was compiled (RFC 3339), for `/actuator/info`.
pub const COMPILED: &str = env!("LAYOTTO_COMPILED");
