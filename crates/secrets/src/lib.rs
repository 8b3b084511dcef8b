//! The Secrets API: read-only named secrets, each a map of strings (a
//! secret can have several values, e.g. `username` and `password`).
//!
//! [`SecretStore`] is the one trait every component implements. Components
//! live in [`components`], all always built: `local.file` (a JSON file,
//! nested objects flattened with `:` as Dapr and Layotto do) and
//! `local.env` (environment variables). Secret stores are built before every
//! other component, so component metadata can refer to them (`secret_ref`).
//!
//! ```
//! # async fn demo() -> layotto_core::Result<()> {
//! use layotto_secrets::{components::env::EnvSecrets, SecretStore};
//! let store = EnvSecrets::new("demo", "");
//! let path = store.get("PATH").await?;
//! assert!(path.contains_key("PATH"));
//! # Ok(()) }
//! # tokio::runtime::Runtime::new().unwrap().block_on(demo()).unwrap();
//! ```

pub mod components;

use std::collections::BTreeMap;

use async_trait::async_trait;
pub use layotto_core::{Error, ErrorKind, Result};
use layotto_core::{Health, Registry};

/// One secret: its values by name.
pub type Secret = BTreeMap<String, String>;

/// A secret store component.
#[async_trait]
pub trait SecretStore: Send + Sync {
    /// The secret called `key`; NotFound naming the store and key when there is none.
    async fn get(&self, key: &str) -> Result<Secret>;

    /// Every secret the store holds, by name.
    async fn bulk_get(&self) -> Result<BTreeMap<String, Secret>>;

    async fn health(&self) -> Health {
        Health::up()
    }
}

/// The secret store types this build can construct (API name `secret_store`).
pub fn registry() -> Registry<dyn SecretStore> {
    let mut registry: Registry<dyn SecretStore> = Registry::new("secret_store");
    registry.register(components::file::FileSecrets::TYPE, components::file::FileSecrets::build);
    registry.register(components::env::EnvSecrets::TYPE, components::env::EnvSecrets::build);
    registry
}

/// A missing secret, worded the same by every component.
pub fn not_found(store: &str, key: &str) -> Error {
    Error::new(
        ErrorKind::NotFound,
        format!("secret store '{store}': secret '{}' not found", layotto_core::clip(key)),
    )
}
