//! `in-memory`: items in the runtime process, pushed to subscribers as they
//! change. Nothing survives a restart.

use std::collections::BTreeMap;
use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Result};
use parking_lot::RwLock;

use crate::{ConfigStore, ConfigurationItem, Features, Hub, SaveRequest, Scope, Subscription, WILDCARD};

/// (app, group, label, key)
type ItemKey = (String, String, String, String);

pub struct MemoryConfigStore {
    items: RwLock<BTreeMap<ItemKey, ConfigurationItem>>,
    hub: Hub,
}

impl MemoryConfigStore {
    pub const TYPE: &'static str = "in-memory";

    pub fn new(_name: &str) -> Self {
        Self { items: RwLock::default(), hub: Hub::default() }
    }

    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn ConfigStore>> {
        ctx.settings::<NoSettings>()?;
        Ok(Arc::new(Self::new(&ctx.name)))
    }

    /// Looks keys up directly when the scope names them exactly, else
    /// walks only the app (and group and label) it is about.
    fn matching(&self, scope: &Scope) -> Vec<ConfigurationItem> {
        let items = self.items.read();
        let exact = |v: &str| v != WILDCARD;
        if exact(&scope.group)
            && exact(&scope.label)
            && !scope.keys.is_empty()
            && scope.keys.iter().all(|k| exact(k))
        {
            let id =
                |key: &String| (scope.app_id.clone(), scope.group.clone(), scope.label.clone(), key.clone());
            return scope.keys.iter().filter_map(|key| items.get(&id(key)).cloned()).collect();
        }
        let from = (scope.app_id.clone(), String::new(), String::new(), String::new());
        items
            .range(from..)
            .take_while(|((app, ..), _)| *app == scope.app_id)
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
            let mut items = self.items.write();
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
            let mut items = self.items.write();
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
