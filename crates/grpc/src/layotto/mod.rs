//! Layotto's services: message conversions and Layotto's wording of errors,
//! around the shared API layer.

pub(crate) mod convert;
mod extensions;
mod lifecycle;
mod oss;
mod runtime;
pub(crate) mod wording;

pub use extensions::{DelayQueueService, EmailServiceImpl};
pub use lifecycle::{LifecycleService, Reconfigure, ReconfigureError};
pub use oss::ObjectStorage;
pub use runtime::RuntimeService;
