//! The Configuration API: blank group and label become the defaults, a
//! blank app id the runtime's, keys and counts are checked, then the store
//! is called.

use std::sync::Arc;

use layotto_configuration::{
    ConfigStore, ConfigurationItem, DEFAULT_GROUP, DEFAULT_LABEL, SaveRequest, Scope, Subscription,
};
use layotto_core::Error;

use super::{ApiResult, Limits, Named};

/// The app id of requests that name none when the runtime has none either.
pub const DEFAULT_APP_ID: &str = "default";

#[derive(Default)]
pub struct ConfigurationApi {
    pub components: Named<Arc<dyn ConfigStore>>,
    pub limits: Limits,
    /// The runtime's app id (`app.id`), for requests that name none.
    pub app_id: String,
}

fn or_default<'a>(value: &'a str, default: &'a str) -> &'a str {
    if value.trim().is_empty() { default } else { value }
}

impl ConfigurationApi {
    pub fn app_id<'a>(&'a self, requested: &'a str) -> &'a str {
        or_default(requested, or_default(&self.app_id, DEFAULT_APP_ID))
    }

    /// The scope of a request, with defaults, once its keys are within the limits.
    pub fn scope(
        &self,
        store: &str,
        app_id: &str,
        group: &str,
        label: &str,
        keys: Vec<String>,
    ) -> ApiResult<Scope> {
        let name = || format!("config store {store}");
        self.limits.check_bulk(name, "keys", keys.len())?;
        for key in &keys {
            self.limits.check_key(name, "key", key)?;
        }
        Ok(Scope::new(
            self.app_id(app_id),
            or_default(group, DEFAULT_GROUP),
            or_default(label, DEFAULT_LABEL),
            keys,
        ))
    }

    async fn call<T>(
        &self,
        store: &str,
        call: impl Future<Output = layotto_core::Result<T>>,
    ) -> ApiResult<T> {
        Ok(self.limits.deadline("configuration", store, || format!("config store {store}"), call).await?)
    }

    pub async fn get(&self, store: &str, scope: Scope) -> ApiResult<Vec<ConfigurationItem>> {
        let component = self.components.get(store)?;
        self.call(store, component.get(&scope)).await
    }

    pub async fn save(&self, store: &str, app_id: &str, mut items: Vec<ConfigurationItem>) -> ApiResult<()> {
        let component = self.components.get(store)?;
        if items.is_empty() {
            return Err(Error::invalid_argument(format!("config store {store}: no items to save")).into());
        }
        let name = || format!("config store {store}");
        self.limits.check_bulk(name, "items", items.len())?;
        for item in &mut items {
            if item.key.is_empty() {
                return Err(Error::invalid_argument(format!(
                    "config store {store}: an item has an empty key"
                ))
                .into());
            }
            self.limits.check_key(name, "key", &item.key)?;
            item.group = or_default(&item.group, DEFAULT_GROUP).to_owned();
            item.label = or_default(&item.label, DEFAULT_LABEL).to_owned();
        }
        let req = SaveRequest { app_id: self.app_id(app_id).to_owned(), items };
        self.call(store, component.set(req)).await
    }

    pub async fn delete(&self, store: &str, scope: Scope) -> ApiResult<()> {
        let component = self.components.get(store)?;
        self.call(store, component.delete(&scope)).await
    }

    pub async fn subscribe(&self, store: &str, scope: Scope) -> ApiResult<Subscription> {
        let component = self.components.get(store)?;
        self.call(store, component.subscribe(scope)).await
    }
}
