//! Sequencer components. Each module is one backend, named by its `TYPE`.

#[cfg(feature = "etcd")]
pub mod etcd;
pub mod memory;
#[cfg(feature = "mysql")]
pub mod mysql;
#[cfg(feature = "postgresql")]
pub mod postgresql;
#[cfg(feature = "redis")]
pub mod redis;
#[cfg(feature = "snowflake")]
pub mod snowflake;
#[cfg(any(feature = "postgresql", feature = "mysql"))]
mod sql;
#[cfg(feature = "zookeeper")]
pub mod zookeeper;
