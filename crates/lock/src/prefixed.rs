use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, Health, KEY_SEPARATOR, KeyPrefix, Result, clip};

use crate::{KeepAliveRequest, LockStatus, LockStore, TryLockRequest, UnlockRequest};

/// Layotto's lock key: `lock|||<prefix>||<resource_id>`, or
/// `lock|||<resource_id>` without a prefix (reference §3.4).
pub fn lock_key(prefix: Option<&str>, resource_id: &str) -> String {
    match prefix {
        Some(prefix) => format!("lock|||{prefix}{KEY_SEPARATOR}{resource_id}"),
        None => format!("lock|||{resource_id}"),
    }
}

/// Validates requests as Layotto does and hands the component the stored key.
///
/// Every configured lock store is wrapped in one, so components never see a
/// user resource id. The default prefix strategy for locks is the app id.
pub struct PrefixedLock {
    name: String,
    prefix: Option<String>,
    inner: Arc<dyn LockStore>,
}

impl PrefixedLock {
    pub fn new(inner: Arc<dyn LockStore>, store_name: &str, prefix: Option<String>) -> Self {
        Self { name: store_name.to_owned(), prefix, inner }
    }

    /// Reads the `keyPrefix` strategy from the component metadata (default `appid`).
    pub fn from_context(inner: Arc<dyn LockStore>, ctx: &ComponentContext) -> Result<Self> {
        let strategy = KeyPrefix::from_context(ctx, KeyPrefix::AppId)?;
        Ok(Self::new(inner, &ctx.name, strategy.resolve(&ctx.app_id, &ctx.name)))
    }

    /// The store name used in messages.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Checks in Layotto's order (resource id, owner, expire), then builds the key.
    fn key(&self, resource_id: &str, lock_owner: &str, expire: Option<Duration>) -> Result<String> {
        let name = &self.name;
        if resource_id.is_empty() {
            return Err(Error::invalid_argument(format!("ResourceId is empty in lock store {name}")));
        }
        if lock_owner.is_empty() {
            return Err(Error::invalid_argument(format!("LockOwner is empty in lock store {name}")));
        }
        if expire.is_some_and(|e| e.is_zero()) {
            return Err(Error::invalid_argument(format!("Expire is not positive in lock store {name}")));
        }
        if resource_id.contains(KEY_SEPARATOR) {
            return Err(Error::invalid_argument(format!(
                "lock store {name}: resource_id '{}' must not contain '||'",
                clip(resource_id)
            )));
        }
        Ok(lock_key(self.prefix.as_deref(), resource_id))
    }
}

#[async_trait]
impl LockStore for PrefixedLock {
    fn features(&self) -> crate::Features {
        self.inner.features()
    }

    async fn try_lock(&self, mut req: TryLockRequest) -> Result<bool> {
        req.resource_id = self.key(&req.resource_id, &req.lock_owner, Some(req.expire))?;
        self.inner.try_lock(req).await
    }

    async fn unlock(&self, mut req: UnlockRequest) -> Result<LockStatus> {
        req.resource_id = self.key(&req.resource_id, &req.lock_owner, None)?;
        self.inner.unlock(req).await
    }

    async fn keep_alive(&self, mut req: KeepAliveRequest) -> Result<LockStatus> {
        req.resource_id = self.key(&req.resource_id, &req.lock_owner, Some(req.expire))?;
        self.inner.keep_alive(req).await
    }

    async fn health(&self) -> Health {
        self.inner.health().await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use layotto_core::Metadata;

    #[test]
    fn keys_follow_layotto() {
        assert_eq!(lock_key(Some("app1"), "res"), "lock|||app1||res");
        assert_eq!(lock_key(None, "res"), "lock|||res");
    }

    #[test]
    fn prefix_from_context() {
        let inner: Arc<dyn LockStore> = Arc::new(crate::components::memory::MemoryLock::new());
        let mut ctx = ComponentContext {
            api: "lock".into(),
            name: "locks".into(),
            kind: "in-memory".into(),
            metadata: Metadata::new(),
            app_id: "app1".into(),
            ..Default::default()
        };
        let lock = PrefixedLock::from_context(inner.clone(), &ctx).unwrap();
        assert_eq!(lock.prefix.as_deref(), Some("app1"));
        ctx.metadata.insert("keyPrefix".into(), "name".into());
        assert_eq!(PrefixedLock::from_context(inner.clone(), &ctx).unwrap().prefix.as_deref(), Some("locks"));
        ctx.metadata.insert("keyPrefix".into(), "none".into());
        assert_eq!(PrefixedLock::from_context(inner.clone(), &ctx).unwrap().prefix, None);
        ctx.metadata.insert("keyPrefix".into(), "a||b".into());
        assert!(PrefixedLock::from_context(inner, &ctx).is_err());
    }
}
