//! State components. Each module is one backend, named by its `TYPE`.

pub mod memory;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "zookeeper")]
pub mod zookeeper;
