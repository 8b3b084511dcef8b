//! `in-memory`: items in the runtime process, pushed to subscribers as they
//! change. Nothing survives a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Result};
use parking_lot::Mutex;

use crate::{ConfigStore, ConfigurationItem, Features, Hub, SaveRequest, Scope, Subscription};

/// (app, group, label, key)
type ItemKey = (String, String, String, String);

pub struct MemoryConfigStore {
    items: Mutex<BTreeMap<ItemKey, ConfigurationItem>>,
    hub: Hub,
}

impl MemoryConfigStore {
    pub const TYPE: &'static str = "in-memory";

    pub fn new(_name: &str) -> Self {
        Self { items: Mutex::default(), hub: Hub::default() }
    }

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn ConfigStore>> {
        ctx.settings::<NoSettings>()?;
        Ok(Arc::new(Self::new(&ctx.name)))
    }

    fn matching(&self, scope: &Scope) -> Vec<ConfigurationItem> {
        self.items
            .lock()
            .iter()
            .filter(|((app, ..), item)| scope.matches(app, item))
            .map(|(_, item)| item.clone())
            .collect()
    }
}

#[derive(serde::Deserialize)]
struct NoSettings {}

#[async_trait]
impl ConfigStore for MemoryConfigStore {
    fn features(&self) -> Features {
        Features { durable: false }
    }

    async fn get(&self, scope: &Scope) -> Result<Vec<ConfigurationItem>> {
        Ok(self.matching(scope))
    }

    async fn set(&self, req: SaveRequest) -> Result<()> {
        {
            let mut items = self.items.lock();
            for item in &req.items {
                let key = (req.app_id.clone(), item.group.clone(), item.label.clone(), item.key.clone());
                items.insert(key, item.clone());
            }
        }
        self.hub.publish(&req.app_id, &req.items);
        Ok(())
    }

    async fn delete(&self, scope: &Scope) -> Result<()> {
        let deleted: Vec<ConfigurationItem> = {
            let mut items = self.items.lock();
            let gone: Vec<ItemKey> = items
                .iter()
                .filter(|((app, ..), item)| scope.matches(app, item))
                .map(|(k, _)| k.clone())
                .collect();
            gone.iter()
                .filter_map(|k| items.remove(k))
                .map(|item| ConfigurationItem::deleted(&item.group, &item.label, &item.key))
                .collect()
        };
        self.hub.publish(&scope.app_id, &deleted);
        Ok(())
    }

    async fn subscribe(&self, scope: Scope) -> Result<Subscription> {
        Ok(self.hub.subscribe(scope))
    }
}
