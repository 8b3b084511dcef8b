//! Layotto's services: message conversions and Layotto's wording of errors,
//! around the shared API layer.

mod lifecycle;
mod runtime;

pub use lifecycle::LifecycleService;
pub use runtime::RuntimeService;
