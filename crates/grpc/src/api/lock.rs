//! The Lock API. Stores are already behind `PrefixedLock`, which validates
//! as Layotto does and builds Layotto's keys.

use std::sync::Arc;

use layotto_lock::{KeepAliveRequest, LockStatus, LockStore, TryLockRequest, UnlockRequest};

use super::{ApiResult, Limits, Named};

#[derive(Default)]
pub struct LockApi {
    pub components: Named<Arc<dyn LockStore>>,
    pub limits: Limits,
}

impl LockApi {
    /// The store, once its resource id and owner are within the key limit.
    fn store(&self, store: &str, resource_id: &str, owner: &str) -> ApiResult<Arc<dyn LockStore>> {
        let component = self.components.get(store)?;
        let name = || format!("lock store {store}");
        self.limits.check_key(name, "resource_id", resource_id)?;
        self.limits.check_key(name, "lock_owner", owner)?;
        Ok(component)
    }

    async fn call<T>(
        &self,
        store: &str,
        call: impl Future<Output = layotto_core::Result<T>>,
    ) -> ApiResult<T> {
        Ok(self.limits.deadline("lock", store, || format!("lock store {store}"), call).await?)
    }

    pub async fn try_lock(&self, store: &str, req: TryLockRequest) -> ApiResult<bool> {
        let component = self.store(store, &req.resource_id, &req.lock_owner)?;
        self.call(store, component.try_lock(req)).await
    }

    pub async fn unlock(&self, store: &str, req: UnlockRequest) -> ApiResult<LockStatus> {
        let component = self.store(store, &req.resource_id, &req.lock_owner)?;
        self.call(store, component.unlock(req)).await
    }

    pub async fn keep_alive(&self, store: &str, req: KeepAliveRequest) -> ApiResult<LockStatus> {
        let component = self.store(store, &req.resource_id, &req.lock_owner)?;
        self.call(store, component.keep_alive(req)).await
    }
}
