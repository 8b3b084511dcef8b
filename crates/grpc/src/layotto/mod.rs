//! Layotto's services: message conversions and Layotto's wording of errors,
//! around the shared API layer.

mod convert;
mod lifecycle;
mod runtime;
mod wording;

pub use lifecycle::{LifecycleService, Reconfigure, ReconfigureError};
pub use runtime::RuntimeService;
