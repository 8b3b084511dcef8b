//! Sequencer components. Each module is one backend, named by its `TYPE`.

pub mod memory;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgresql")]
pub mod postgresql;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(any(feature = "postgresql", feature = "mysql"))]
mod sql;
