//! Input bindings: an outside source (a schedule, a queue) whose events the
//! runtime hands to the app (Dapr's `OnBindingEvent`, or a POST to the
//! binding's route on an HTTP app).

use std::sync::Arc;

use async_trait::async_trait;
use layotto_core::{Health, Metadata, Registry, Result};

/// One event read from an input binding.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BindingEvent {
    pub data: Vec<u8>,
    pub metadata: Metadata,
}

/// Where an input binding hands its events: the app, through the runtime.
#[async_trait]
pub trait BindingHandler: Send + Sync {
    /// `Ok` once the app has taken the event; an error means it did not.
    async fn on_event(&self, event: BindingEvent) -> Result<()>;
}

#[async_trait]
pub trait InputBinding: Send + Sync {
    /// Reads events and hands each to `handler`, until the returned future
    /// is dropped. Returns only when the source ends or fails for good.
    async fn read(&self, handler: Arc<dyn BindingHandler>) -> Result<()>;

    async fn health(&self) -> Health {
        Health::up()
    }
}

/// The input binding types this build can construct (API name `input_bindings`).
pub fn input_registry() -> Registry<dyn InputBinding> {
    let mut registry: Registry<dyn InputBinding> = Registry::new("input_bindings");
    registry
        .register(crate::components::cron::CronBinding::TYPE, crate::components::cron::CronBinding::build);
    registry
}
