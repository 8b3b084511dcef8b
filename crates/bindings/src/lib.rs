//! Output bindings: a call to an outside system by name, with an operation,
//! bytes and metadata in, bytes and metadata out (Layotto's and Dapr's
//! `InvokeBinding`).
//!
//! [`OutputBinding`] is the one trait every component implements; each says
//! which operations it has, and the API layer refuses any other naming them.
//! Components live in [`components`], behind features of their names:
//! `http` (Dapr's `bindings.http`) and `redis` (Dapr's `bindings.redis`).
//! There is no in-memory output binding: a binding needs a target.
//!
//! Input bindings ([`InputBinding`]) read events for the app; `cron`
//! (always built) fires on a schedule.

pub mod components;
pub mod input;

pub use input::{BindingEvent, BindingHandler, InputBinding, input_registry};

use async_trait::async_trait;
pub use layotto_core::{Error, ErrorKind, Result};
use layotto_core::{Health, Metadata, Registry};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvokeRequest {
    pub operation: String,
    pub data: Vec<u8>,
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvokeResponse {
    pub data: Vec<u8>,
    pub metadata: Metadata,
}

#[async_trait]
pub trait OutputBinding: Send + Sync {
    /// The operations `invoke` takes.
    fn operations(&self) -> &'static [&'static str];

    async fn invoke(&self, req: InvokeRequest) -> Result<InvokeResponse>;

    async fn health(&self) -> Health {
        Health::up()
    }
}

/// The binding types this build can construct (API name `bindings`).
pub fn registry() -> Registry<dyn OutputBinding> {
    #[allow(unused_mut)]
    let mut registry: Registry<dyn OutputBinding> = Registry::new("bindings");
    #[cfg(feature = "http")]
    registry.register(components::http::HttpBinding::TYPE, components::http::HttpBinding::build);
    #[cfg(feature = "redis")]
    registry.register(components::redis::RedisBinding::TYPE, components::redis::RedisBinding::build);
    registry
}
