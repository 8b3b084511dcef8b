//! The component model every layotto-rs API shares.
//!
//! An API crate (state, pubsub, …) defines one trait; its components are
//! built from configuration through a [`Registry`] keyed by the component
//! type string (`"redis"`, `"in-memory"`). Errors carry an [`ErrorKind`] that
//! the gRPC layer maps to a status code in one place.

mod backoff;
mod error;
mod health;
mod key_prefix;
pub mod log_control;
mod metadata;
pub mod metrics;
mod redact;
mod registry;
pub mod settings;
mod sweeper;
pub mod telemetry;

pub use backoff::Backoff;
pub use error::{Error, ErrorKind, Result};
pub use health::{Health, HealthStatus};
pub use key_prefix::{KEY_SEPARATOR, KeyPrefix};
pub use metadata::Metadata;
pub use redact::{MAX_ECHO_CHARS, clip, redact_url};
pub use registry::{ComponentContext, Factory, Registry};
pub use settings::{KeyTracker, UnknownKey};
pub use sweeper::{SWEEP_INTERVAL, spawn_sweeper};
