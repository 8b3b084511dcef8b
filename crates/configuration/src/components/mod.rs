//! The configuration store components.

pub mod memory;

#[cfg(feature = "etcd")]
pub mod etcd;
#[cfg(feature = "postgresql")]
pub mod postgresql;
#[cfg(feature = "redis")]
pub mod redis;
