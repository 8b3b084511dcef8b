//! The Secrets API.

use std::collections::BTreeMap;
use std::sync::Arc;

use layotto_secrets::{Secret, SecretStore};

use super::{ApiResult, Limits, Named};

#[derive(Default)]
pub struct SecretsApi {
    pub components: Named<Arc<dyn SecretStore>>,
    pub limits: Limits,
}

impl SecretsApi {
    pub async fn get(&self, store: &str, key: &str) -> ApiResult<Secret> {
        let component = self.components.get(store)?;
        self.limits.check_key(|| format!("secret store {store}"), "key", key)?;
        Ok(self
            .limits
            .deadline("secrets", store, || format!("secret store {store}"), component.get(key))
            .await?)
    }

    pub async fn bulk_get(&self, store: &str) -> ApiResult<BTreeMap<String, Secret>> {
        let component = self.components.get(store)?;
        Ok(self
            .limits
            .deadline("secrets", store, || format!("secret store {store}"), component.bulk_get())
            .await?)
    }
}
