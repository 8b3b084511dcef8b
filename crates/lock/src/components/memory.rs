//! `in-memory`: process-local locks, for tests and single-instance use.
//!
//! Metadata: none. Storage: a map from stored key to (owner, deadline).
//! Unlike Layotto's mock, an expired lock counts as absent everywhere:
//! `try_lock` takes it over, `unlock` and `keep_alive` answer `LockUnexist`.
//! Locks are gone when the process exits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use layotto_core::{ComponentContext, Result};
use parking_lot::Mutex;

use crate::{KeepAliveRequest, LockStatus, LockStore, TryLockRequest, UnlockRequest};

/// How many acquisitions pass between sweeps of expired locks.
const SWEEP_EVERY: u64 = 4096;

#[derive(Default)]
struct Inner {
    locks: HashMap<String, (String, Instant)>,
    acquisitions: u64,
}

impl Inner {
    /// The owner of a live lock on `key`.
    fn live_owner(&self, key: &str, now: Instant) -> Option<&str> {
        self.locks.get(key).filter(|(_, deadline)| *deadline > now).map(|(owner, _)| owner.as_str())
    }
}

#[derive(Default)]
pub struct MemoryLock {
    inner: Mutex<Inner>,
}

impl MemoryLock {
    pub const TYPE: &'static str = "in-memory";

    pub fn new() -> Self {
        Self::default()
    }

    /// A lock store whose expired locks are dropped every second, also when
    /// no call comes (needs a tokio runtime; `new` sweeps on calls only).
    pub fn with_sweeper() -> Arc<Self> {
        let lock = Arc::new(Self::new());
        layotto_core::spawn_sweeper(&lock, Self::sweep);
        lock
    }

    /// The registry constructor.
    pub async fn build(_ctx: ComponentContext) -> Result<Arc<dyn LockStore>> {
        Ok(Self::with_sweeper())
    }

    /// Drops every expired lock.
    fn sweep(&self) {
        let now = Instant::now();
        self.inner.lock().locks.retain(|_, (_, deadline)| *deadline > now);
    }

    /// A deadline `expire` from `now`; absurdly long leases saturate instead of overflowing.
    fn deadline(now: Instant, expire: Duration) -> Instant {
        now.checked_add(expire).unwrap_or_else(|| now + Duration::from_secs(100 * 365 * 24 * 3600))
    }
}

#[async_trait]
impl LockStore for MemoryLock {
    fn features(&self) -> crate::Features {
        crate::Features { keep_alive: true, durable: false, lease_step: std::time::Duration::from_millis(1) }
    }

    async fn try_lock(&self, req: TryLockRequest) -> Result<bool> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        if inner.live_owner(&req.resource_id, now).is_some() {
            return Ok(false);
        }
        inner.acquisitions += 1;
        if inner.acquisitions.is_multiple_of(SWEEP_EVERY) {
            inner.locks.retain(|_, (_, deadline)| *deadline > now);
        }
        inner.locks.insert(req.resource_id, (req.lock_owner, Self::deadline(now, req.expire)));
        Ok(true)
    }

    async fn unlock(&self, req: UnlockRequest) -> Result<LockStatus> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        match inner.live_owner(&req.resource_id, now) {
            None => {
                inner.locks.remove(&req.resource_id);
                Ok(LockStatus::LockUnexist)
            }
            Some(owner) if owner != req.lock_owner => Ok(LockStatus::LockBelongToOthers),
            Some(_) => {
                inner.locks.remove(&req.resource_id);
                Ok(LockStatus::Success)
            }
        }
    }

    async fn keep_alive(&self, req: KeepAliveRequest) -> Result<LockStatus> {
        let now = Instant::now();
        let mut inner = self.inner.lock();
        match inner.live_owner(&req.resource_id, now) {
            None => Ok(LockStatus::LockUnexist),
            Some(owner) if owner != req.lock_owner => Ok(LockStatus::LockBelongToOthers),
            Some(_) => {
                if let Some(entry) = inner.locks.get_mut(&req.resource_id) {
                    entry.1 = Self::deadline(now, req.expire);
                }
                Ok(LockStatus::Success)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// 40 expired locks with 5 MiB ids once held 215 MB until 4 096 more
    /// acquisitions came; now the sweeper frees them within a second or two.
    #[tokio::test]
    async fn expired_locks_are_freed_without_further_calls() {
        let lock = MemoryLock::with_sweeper();
        for i in 0..40 {
            let req = TryLockRequest {
                resource_id: format!("r{i}"),
                lock_owner: "o".into(),
                expire: Duration::from_millis(300),
            };
            assert!(lock.try_lock(req).await.unwrap());
        }
        assert_eq!(lock.inner.lock().locks.len(), 40);
        let deadline = Instant::now() + Duration::from_secs(10);
        while !lock.inner.lock().locks.is_empty() {
            assert!(Instant::now() < deadline, "expired locks were never freed");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}
