//! The Configuration API: items (`key`, `content`, `tags`, `metadata`) per
//! app, group and label, read, written, deleted, and watched.
//!
//! [`ConfigStore`] is the one trait every component implements. Components
//! live in [`components`]: `in-memory` is always built; `etcd`, `redis` and
//! `postgresql` behind features of the same names. Every component pushes
//! changes made by anyone (another runtime, Go Layotto, `etcdctl`,
//! `redis-cli`, `psql`) to its subscribers through a [`Hub`].
//!
//! Requests reach a component with blank group and label already replaced
//! by its defaults ([`DEFAULT_GROUP`], [`DEFAULT_LABEL`]) and a blank app id
//! by the runtime's. In `get`, `delete` and `subscribe`, `*` as group, label
//! or key matches any; no keys means every key. A deleted item is pushed
//! with empty content and metadata `deleted = "true"`.
//!
//! ```
//! # async fn demo() -> layotto_core::Result<()> {
//! use layotto_configuration::{components::memory::MemoryConfigStore, *};
//! let store = MemoryConfigStore::new("demo");
//! let mut watch = store.subscribe(Scope::new("app1", "default", "default", vec![])).await?;
//! let item = ConfigurationItem::new("default", "default", "timeout", "5s");
//! store.set(SaveRequest { app_id: "app1".into(), items: vec![item] }).await?;
//! let pushed = watch.changes.recv().await.unwrap();
//! assert_eq!(pushed[0].content, "5s");
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

pub mod components;
pub mod hub;

use std::collections::BTreeMap;

use async_trait::async_trait;
pub use hub::{Hub, Subscription};
pub use layotto_core::{Error, ErrorKind, Result};
use layotto_core::{Health, Registry};

/// The group of an item when a request leaves it blank.
pub const DEFAULT_GROUP: &str = "default";
/// The label of an item when a request leaves it blank.
pub const DEFAULT_LABEL: &str = "default";
/// Matches any group, label or key.
pub const WILDCARD: &str = "*";
/// The metadata key (value `"true"`) marking a pushed item as deleted.
pub const DELETED: &str = "deleted";

/// One configuration item.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ConfigurationItem {
    pub key: String,
    pub content: String,
    pub group: String,
    pub label: String,
    pub tags: BTreeMap<String, String>,
    pub metadata: BTreeMap<String, String>,
}

impl ConfigurationItem {
    pub fn new(group: &str, label: &str, key: &str, content: &str) -> Self {
        Self {
            key: key.to_owned(),
            content: content.to_owned(),
            group: group.to_owned(),
            label: label.to_owned(),
            ..Default::default()
        }
    }

    /// The item as pushed when it is deleted.
    pub fn deleted(group: &str, label: &str, key: &str) -> Self {
        let mut item = Self::new(group, label, key, "");
        item.metadata.insert(DELETED.to_owned(), "true".to_owned());
        item
    }

    pub fn is_deleted(&self) -> bool {
        self.metadata.get(DELETED).is_some_and(|v| v == "true")
    }
}

/// Which items a get, delete or subscription is about.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Scope {
    pub app_id: String,
    pub group: String,
    pub label: String,
    /// No keys: every key.
    pub keys: Vec<String>,
}

impl Scope {
    pub fn new(app_id: &str, group: &str, label: &str, keys: Vec<String>) -> Self {
        Self { app_id: app_id.to_owned(), group: group.to_owned(), label: label.to_owned(), keys }
    }

    /// Whether an item of `app_id` falls in this scope.
    pub fn matches(&self, app_id: &str, item: &ConfigurationItem) -> bool {
        let matches = |want: &str, have: &str| want == WILDCARD || want == have;
        self.app_id == app_id
            && matches(&self.group, &item.group)
            && matches(&self.label, &item.label)
            && (self.keys.is_empty() || self.keys.iter().any(|k| matches(k, &item.key)))
    }
}

/// Items to write, each in its own group and label.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SaveRequest {
    pub app_id: String,
    pub items: Vec<ConfigurationItem>,
}

/// What a component can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// Items survive a restart of the runtime (the backend holds them).
    pub durable: bool,
}

/// A configuration store component.
#[async_trait]
pub trait ConfigStore: Send + Sync {
    fn features(&self) -> Features {
        Features { durable: true }
    }

    /// The items in `scope`, sorted by group, label and key.
    async fn get(&self, scope: &Scope) -> Result<Vec<ConfigurationItem>>;

    /// Writes every item (replacing its content and tags) and pushes them.
    async fn set(&self, req: SaveRequest) -> Result<()>;

    /// Deletes the items in `scope` (no keys: every key of the group and
    /// label) and pushes their deletion.
    async fn delete(&self, scope: &Scope) -> Result<()>;

    /// Every later change in `scope`, until the subscription is dropped.
    async fn subscribe(&self, scope: Scope) -> Result<Subscription>;

    async fn health(&self) -> Health {
        Health::up()
    }
}

/// Keys, groups, labels and app ids name path segments in some backends.
pub fn check_segment(component: &str, field: &str, value: &str) -> Result<()> {
    if value.is_empty() || value.contains('/') {
        return Err(Error::invalid_argument(format!(
            "{component}: {field} '{}' must be non-empty and must not contain '/'",
            layotto_core::clip(value)
        )));
    }
    Ok(())
}

/// The configuration store types this build can construct (API name `config_store`).
pub fn registry() -> Registry<dyn ConfigStore> {
    let mut registry: Registry<dyn ConfigStore> = Registry::new("config_store");
    registry
        .register(components::memory::MemoryConfigStore::TYPE, components::memory::MemoryConfigStore::build);
    #[cfg(feature = "etcd")]
    registry.register(components::etcd::EtcdConfigStore::TYPE, components::etcd::EtcdConfigStore::build);
    #[cfg(feature = "redis")]
    registry.register(components::redis::RedisConfigStore::TYPE, components::redis::RedisConfigStore::build);
    #[cfg(feature = "postgresql")]
    registry.register(
        components::postgresql::PostgresConfigStore::TYPE,
        components::postgresql::PostgresConfigStore::build,
    );
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scopes_match_with_wildcards() {
        let item = ConfigurationItem::new("g", "l", "k", "v");
        assert!(Scope::new("a", "g", "l", vec![]).matches("a", &item));
        assert!(Scope::new("a", "*", "*", vec!["k".into()]).matches("a", &item));
        assert!(Scope::new("a", "g", "l", vec!["*".into()]).matches("a", &item));
        assert!(!Scope::new("b", "g", "l", vec![]).matches("a", &item));
        assert!(!Scope::new("a", "g", "other", vec![]).matches("a", &item));
        assert!(!Scope::new("a", "g", "l", vec!["x".into()]).matches("a", &item));
    }

    #[test]
    fn registry_has_the_built_types() {
        let types = registry().types();
        assert!(types.contains(&"in-memory"));
        assert_eq!(types.contains(&"etcd"), cfg!(feature = "etcd"));
        assert_eq!(types.contains(&"redis"), cfg!(feature = "redis"));
        assert_eq!(types.contains(&"postgresql"), cfg!(feature = "postgresql"));
    }
}
