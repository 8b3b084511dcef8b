//! The Distributed Lock API: non-blocking, lease-based locks with an owner.
//!
//! [`LockStore`] is the one trait every component implements. Components
//! live in [`components`]: `in-memory` is always built, `redis`,
//! `postgresql`, `etcd` and `zookeeper` behind features of the same names. [`PrefixedLock`] validates
//! requests and stores every lock under Layotto's key
//! (`lock|||<prefix>||<resource_id>`, reference §3.4), so a component only
//! sees stored keys and Go Layotto sharing the backend sees the same locks.
//!
//! Embedding without gRPC: build a component, wrap it in [`PrefixedLock`],
//! and call it.
//!
//! ```
//! # async fn demo() -> layotto_core::Result<()> {
//! use std::{sync::Arc, time::Duration};
//! use layotto_lock::{components::memory::MemoryLock, LockStatus, LockStore, PrefixedLock};
//! use layotto_lock::{TryLockRequest, UnlockRequest};
//!
//! let lock = PrefixedLock::new(Arc::new(MemoryLock::new()), "demo", Some("app1".into()));
//! let req = |owner: &str| TryLockRequest {
//!     resource_id: "order-42".into(),
//!     lock_owner: owner.into(),
//!     expire: Duration::from_secs(10),
//! };
//! assert!(lock.try_lock(req("worker-a")).await?);
//! assert!(!lock.try_lock(req("worker-b")).await?, "held by worker-a");
//! let unlock = UnlockRequest { resource_id: "order-42".into(), lock_owner: "worker-a".into() };
//! assert_eq!(lock.unlock(unlock).await?, LockStatus::Success);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

pub mod components;
mod prefixed;

pub use layotto_core::{Error, ErrorKind, Result};
pub use prefixed::{PrefixedLock, lock_key};

use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{Health, Registry};

/// Acquire `resource_id` for `lock_owner` for `expire`, without waiting.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TryLockRequest {
    pub resource_id: String,
    pub lock_owner: String,
    pub expire: Duration,
}

/// Release `resource_id` if `lock_owner` holds it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnlockRequest {
    pub resource_id: String,
    pub lock_owner: String,
}

/// Extend the lease of `lock_owner` on `resource_id` to `expire` from now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeepAliveRequest {
    pub resource_id: String,
    pub lock_owner: String,
    pub expire: Duration,
}

/// Outcome of unlock and keep-alive, as Layotto's `UnlockResponse.Status`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LockStatus {
    Success,
    /// No live lock on the resource (never taken, released, or expired).
    LockUnexist,
    /// Another owner holds the lock.
    LockBelongToOthers,
}

/// What a lock component can do, so callers (and the conformance suite) can
/// ask instead of finding out by failure.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `keep_alive` really extends a lease.
    pub keep_alive: bool,
    /// Locks survive a restart of the runtime (the backend holds them).
    pub durable: bool,
    /// The smallest step a lease moves in: a shorter `expire` is rounded up
    /// to it (etcd leases are whole seconds).
    pub lease_step: Duration,
}

/// A lock store component. Keys it receives are already prefixed and
/// validated (see [`PrefixedLock`]). Locks are not reentrant: a second
/// `try_lock` by the same owner while the lock is held answers `false`.
#[async_trait]
pub trait LockStore: Send + Sync {
    fn features(&self) -> Features {
        Features { keep_alive: true, durable: true, lease_step: Duration::from_millis(1) }
    }

    /// true = acquired; false = held by another owner (not an error)
    async fn try_lock(&self, req: TryLockRequest) -> Result<bool>;

    async fn unlock(&self, req: UnlockRequest) -> Result<LockStatus>;

    /// Really extends the lease for its owner; LockUnexist if gone/expired, LockBelongToOthers if another owner holds it.
    async fn keep_alive(&self, req: KeepAliveRequest) -> Result<LockStatus>;

    /// Whether the backend is reachable; the actuator's readiness asks this.
    async fn health(&self) -> Health {
        Health::up()
    }
}

/// The lock component types this build can construct (API name `lock`).
pub fn registry() -> Registry<dyn LockStore> {
    let mut registry: Registry<dyn LockStore> = Registry::new("lock");
    registry.register(components::memory::MemoryLock::TYPE, components::memory::MemoryLock::build);
    #[cfg(feature = "redis")]
    registry.register(components::redis::RedisLock::TYPE, components::redis::RedisLock::build);
    #[cfg(feature = "redis")]
    registry.register(
        components::redis_cluster::RedisClusterLock::TYPE,
        components::redis_cluster::RedisClusterLock::build,
    );
    #[cfg(feature = "etcd")]
    registry.register(components::etcd::EtcdLock::TYPE, components::etcd::EtcdLock::build);
    #[cfg(feature = "zookeeper")]
    registry
        .register(components::zookeeper::ZookeeperLock::TYPE, components::zookeeper::ZookeeperLock::build);
    #[cfg(feature = "postgresql")]
    registry
        .register(components::postgresql::PostgresLock::TYPE, components::postgresql::PostgresLock::build);
    registry
}

#[cfg(test)]
mod tests {
    #[test]
    fn registry_has_the_built_types() {
        let types = super::registry().types();
        assert!(types.contains(&"in-memory"));
        assert_eq!(types.contains(&"redis"), cfg!(feature = "redis"));
        assert_eq!(types.contains(&"redis_cluster"), cfg!(feature = "redis"));
        assert_eq!(types.contains(&"postgresql"), cfg!(feature = "postgresql"));
        assert_eq!(types.contains(&"etcd"), cfg!(feature = "etcd"));
        assert_eq!(types.contains(&"zookeeper"), cfg!(feature = "zookeeper"));
    }
}
