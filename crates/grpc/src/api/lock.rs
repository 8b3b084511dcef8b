//! The Lock API. Stores are already behind `PrefixedLock`, which validates
//! as Layotto does and builds Layotto's keys.

use std::sync::Arc;

use layotto_lock::{KeepAliveRequest, LockStatus, LockStore, TryLockRequest, UnlockRequest};

use super::{ApiResult, Named};

#[derive(Default)]
pub struct LockApi {
    pub components: Named<Arc<dyn LockStore>>,
}

impl LockApi {
    pub async fn try_lock(&self, store: &str, req: TryLockRequest) -> ApiResult<bool> {
        Ok(self.components.get(store)?.try_lock(req).await?)
    }

    pub async fn unlock(&self, store: &str, req: UnlockRequest) -> ApiResult<LockStatus> {
        Ok(self.components.get(store)?.unlock(req).await?)
    }

    pub async fn keep_alive(&self, store: &str, req: KeepAliveRequest) -> ApiResult<LockStatus> {
        Ok(self.components.get(store)?.keep_alive(req).await?)
    }
}
