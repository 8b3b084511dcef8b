//! Lock components. Each module is one backend, named by its `TYPE`.

pub mod memory;
#[cfg(feature = "postgresql")]
pub mod postgresql;
#[cfg(feature = "redis")]
pub mod redis;
