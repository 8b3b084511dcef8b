//! The State API: a key/value store with etags, TTLs and transactions.
//!
//! [`StateStore`] is the one trait every component implements. Components
//! live in [`components`]: `in-memory` is always built, `redis` behind the
//! `redis` feature. [`PrefixedStore`] adds Layotto's key-prefix strategies
//! and key validation on top of any store, so components see stored keys.
//!
//! ```
//! # async fn demo() -> layotto_core::Result<()> {
//! use layotto_state::{components::memory::MemoryStore, SetRequest, GetRequest, StateStore};
//! let store = MemoryStore::new("demo");
//! store.set(SetRequest::new("k", b"v".to_vec())).await?;
//! let item = store.get(GetRequest::new("k")).await?.expect("stored");
//! assert_eq!(item.data, b"v".to_vec());
//! # Ok(()) }
//! ```

pub mod components;
mod prefixed;
mod types;

pub use layotto_core::{Error, ErrorKind, Health, Metadata, Result};
pub use prefixed::PrefixedStore;
pub use types::*;

use async_trait::async_trait;

/// Metadata key that sets an item's time to live in seconds; `-1` removes it.
pub const TTL_METADATA_KEY: &str = "ttlInSeconds";
/// Metadata key returned by get with the RFC 3339 expiry of an item with a TTL.
pub const TTL_EXPIRE_TIME_KEY: &str = "ttlExpireTime";

/// A state store component.
///
/// Bulk methods have defaults built from the single-item ones; components
/// override them where the backend does better. A missing key is not an
/// error: `get` answers `Ok(None)`.
#[async_trait]
pub trait StateStore: Send + Sync {
    /// What this component supports, so callers can ask instead of failing.
    fn features(&self) -> Features;

    async fn get(&self, req: GetRequest) -> Result<Option<StateValue>>;

    /// Gets many keys; a per-key failure is reported inside its item.
    async fn bulk_get(&self, keys: Vec<String>, metadata: Metadata) -> Result<Vec<BulkGetItem>> {
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            let req = GetRequest { key: key.clone(), metadata: metadata.clone(), ..Default::default() };
            items.push(match self.get(req).await {
                Ok(value) => BulkGetItem { key, value, error: None },
                Err(e) => BulkGetItem { key, value: None, error: Some(e.to_string()) },
            });
        }
        Ok(items)
    }

    async fn set(&self, req: SetRequest) -> Result<()>;

    /// Sets every item; items that fail do not stop the others, and the
    /// error names each failed key.
    async fn bulk_set(&self, reqs: Vec<SetRequest>) -> Result<()> {
        let mut errors = Vec::new();
        for req in reqs {
            errors.extend(self.set(req).await.err());
        }
        join_errors(errors)
    }

    async fn delete(&self, req: DeleteRequest) -> Result<()>;

    async fn bulk_delete(&self, reqs: Vec<DeleteRequest>) -> Result<()> {
        let mut errors = Vec::new();
        for req in reqs {
            errors.extend(self.delete(req).await.err());
        }
        join_errors(errors)
    }

    /// Applies all operations in order, or none of them.
    async fn transact(&self, ops: Vec<Operation>, metadata: Metadata) -> Result<()>;

    /// Whether the backend is reachable; the actuator's readiness asks this.
    async fn health(&self) -> Health {
        Health::up()
    }
}

/// One error for several failed items: the first one's kind, every message.
pub fn join_errors(mut errors: Vec<Error>) -> Result<()> {
    match errors.len() {
        0 => Ok(()),
        1 => Err(errors.remove(0)),
        _ => {
            let kind = errors[0].kind();
            let message = errors.iter().map(|e| e.to_string()).collect::<Vec<_>>().join("; ");
            Err(Error::new(kind, message))
        }
    }
}

/// Every state component type this build has, keyed by Layotto's type names.
pub fn registry() -> layotto_core::Registry<dyn StateStore> {
    let mut registry: layotto_core::Registry<dyn StateStore> = layotto_core::Registry::new("state");
    registry.register(components::memory::MemoryStore::TYPE, components::memory::MemoryStore::build);
    #[cfg(feature = "redis")]
    registry.register(components::redis::RedisStore::TYPE, components::redis::RedisStore::build);
    #[cfg(feature = "zookeeper")]
    registry
        .register(components::zookeeper::ZookeeperStore::TYPE, components::zookeeper::ZookeeperStore::build);
    registry
}
