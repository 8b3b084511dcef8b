//! Layotto's services: message conversions and Layotto's wording of errors,
//! around the shared API layer.

mod convert;
mod lifecycle;
mod runtime;
mod wording;

pub use lifecycle::LifecycleService;
pub use runtime::RuntimeService;
