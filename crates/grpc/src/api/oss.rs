//! Object storage (ObjectStorageService and the File API): find the store,
//! check bucket and key, call the component (under the call deadline, but
//! for bodies, which take as long as the client streams them).

use std::sync::Arc;

use layotto_core::{Error, clip};
use layotto_oss::ObjectStore;

use super::{ApiResult, Limits, Named};

#[derive(Default)]
pub struct OssApi {
    pub components: Named<Arc<dyn ObjectStore>>,
    pub limits: Limits,
}

impl OssApi {
    pub fn store(&self, name: &str) -> ApiResult<Arc<dyn ObjectStore>> {
        Ok(self.components.get(name)?)
    }

    /// The store, once `bucket` and `key` (when given) are there and within the key limit.
    pub fn object_store(
        &self,
        name: &str,
        bucket: &str,
        key: Option<&str>,
    ) -> ApiResult<Arc<dyn ObjectStore>> {
        let store = self.store(name)?;
        let what = || format!("oss store '{name}'");
        if bucket.is_empty() {
            return Err(Error::invalid_argument(format!("{}: bucket is required", what())).into());
        }
        self.limits.check_key(what, "bucket", bucket)?;
        if let Some(key) = key {
            if key.is_empty() {
                return Err(Error::invalid_argument(format!(
                    "{}: bucket '{}': key is required",
                    what(),
                    clip(bucket)
                ))
                .into());
            }
            self.limits.check_key(what, "key", key)?;
        }
        Ok(store)
    }

    /// Runs a call without a body under the call deadline.
    pub async fn call<T>(
        &self,
        name: &str,
        call: impl Future<Output = layotto_core::Result<T>>,
    ) -> ApiResult<T> {
        Ok(self.limits.deadline("oss", name, || format!("oss store '{name}'"), call).await?)
    }
}
