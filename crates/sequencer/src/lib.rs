//! The Sequencer API: unique, increasing 64-bit ids per key.
//!
//! [`Sequencer`] is the one trait every component implements; components
//! live in [`components`]: `in-memory` is always built, `redis`,
//! `postgresql`, `mysql`, `etcd`, `zookeeper` and `snowflake` behind features of the same names.
//! [`PrefixedSequencer`] is what the runtime (or an embedding program) calls:
//! it validates keys, stores them under Layotto's key
//! (`sequencer|||<prefix>||<key>`, reference §3.4), applies `biggerThan`, and
//! serves `WEAK` requests from a Leaf-style segment cache so most ids cost no
//! backend round trip.
//!
//! Embedding without gRPC:
//!
//! ```
//! # async fn demo() -> layotto_core::Result<()> {
//! use std::{collections::BTreeMap, sync::Arc};
//! use layotto_core::ComponentContext;
//! use layotto_sequencer::{components::memory::MemorySequencer, Increment, PrefixedSequencer};
//!
//! let ctx = ComponentContext { name: "ids".into(), app_id: "app1".into(), ..Default::default() };
//! let bigger_than = BTreeMap::from([("order".to_owned(), 1000)]);
//! let ids = PrefixedSequencer::new(Arc::new(MemorySequencer::new()), &ctx, &bigger_than).await?;
//! let first = ids.next_id("order", Increment::Weak).await?;
//! let second = ids.next_id("order", Increment::Strong).await?;
//! assert!(first > 1000 && second > first);
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

pub mod components;
mod prefixed;

pub use layotto_core::{Error, ErrorKind, Result};
pub use prefixed::PrefixedSequencer;

use std::ops::RangeInclusive;

use async_trait::async_trait;
use layotto_core::{Health, KEY_SEPARATOR, Registry};

/// What a sequencer component can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Features {
    /// `segment` reserves ranges, so WEAK ids come from the cache.
    pub segments: bool,
    /// Counters survive a restart of the runtime (the backend holds them).
    pub durable: bool,
}

/// A sequencer component. Keys it receives are already prefixed and validated.
#[async_trait]
pub trait Sequencer: Send + Sync {
    fn features(&self) -> Features {
        Features { segments: true, durable: true }
    }

    /// next id for an already-prefixed key; strictly increasing per key; ids start at 1 (or above bigger_than)
    async fn next_id(&self, key: &str) -> Result<i64>;

    /// Reserves `size` ids and returns the range (first..=last); Ok(None) when the component has no segment support
    async fn segment(&self, key: &str, size: u32) -> Result<Option<RangeInclusive<i64>>>;

    /// Makes every later id for `key` exceed `min` (set-if-absent-or-smaller); called at startup
    async fn ensure_bigger_than(&self, key: &str, min: i64) -> Result<()>;

    /// Whether the backend is reachable; the actuator's readiness asks this.
    async fn health(&self) -> Health {
        Health::up()
    }
}

/// `SequencerOptions.increment` of `GetNextId`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Increment {
    /// Unique and trend-increasing; served from the segment cache.
    #[default]
    Weak,
    /// Unique and strictly increasing across runtimes: one backend call per id.
    Strong,
}

/// Layotto's sequencer key: `sequencer|||<prefix>||<key>`, or
/// `sequencer|||<key>` without a prefix (reference §3.4).
pub fn sequencer_key(prefix: Option<&str>, key: &str) -> String {
    match prefix {
        Some(prefix) => format!("sequencer|||{prefix}{KEY_SEPARATOR}{key}"),
        None => format!("sequencer|||{key}"),
    }
}

/// The sequencer component types this build can construct (API name `sequencer`).
pub fn registry() -> Registry<dyn Sequencer> {
    let mut registry: Registry<dyn Sequencer> = Registry::new("sequencer");
    registry.register(components::memory::MemorySequencer::TYPE, components::memory::MemorySequencer::build);
    #[cfg(feature = "redis")]
    registry.register(components::redis::RedisSequencer::TYPE, components::redis::RedisSequencer::build);
    #[cfg(feature = "postgresql")]
    registry.register(
        components::postgresql::PostgresSequencer::TYPE,
        components::postgresql::PostgresSequencer::build,
    );
    #[cfg(feature = "etcd")]
    registry.register(components::etcd::EtcdSequencer::TYPE, components::etcd::EtcdSequencer::build);
    #[cfg(feature = "zookeeper")]
    registry.register(
        components::zookeeper::ZookeeperSequencer::TYPE,
        components::zookeeper::ZookeeperSequencer::build,
    );
    #[cfg(feature = "snowflake")]
    registry.register(
        components::snowflake::SnowflakeSequencer::TYPE,
        components::snowflake::SnowflakeSequencer::build,
    );
    #[cfg(feature = "mysql")]
    registry.register(components::mysql::MySqlSequencer::TYPE, components::mysql::MySqlSequencer::build);
    registry
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_follow_layotto() {
        assert_eq!(sequencer_key(Some("app1"), "k"), "sequencer|||app1||k");
        assert_eq!(sequencer_key(None, "k"), "sequencer|||k");
    }

    #[test]
    fn registry_has_the_built_types() {
        let types = registry().types();
        assert!(types.contains(&"in-memory"));
        assert_eq!(types.contains(&"redis"), cfg!(feature = "redis"));
        assert_eq!(types.contains(&"postgresql"), cfg!(feature = "postgresql"));
        assert_eq!(types.contains(&"mysql"), cfg!(feature = "mysql"));
        assert_eq!(types.contains(&"etcd"), cfg!(feature = "etcd"));
        assert_eq!(types.contains(&"snowflake"), cfg!(feature = "snowflake"));
        assert_eq!(types.contains(&"zookeeper"), cfg!(feature = "zookeeper"));
    }
}
