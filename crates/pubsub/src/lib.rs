//! Pub/Sub API of layotto-rs.
//!
//! A [`PubSub`] component moves opaque bytes between publishers and
//! subscribers with at-least-once delivery: a message a handler did not
//! finish is delivered again. On top of it this crate gives what Layotto's
//! API promises, independent of gRPC:
//! - [`cloudevent`]: the CloudEvents 1.0 envelope `PublishEvent` wraps data in,
//!   and the decoding of a delivered message into a [`TopicEvent`];
//! - [`delivery`]: the subscriber loop that hands events to an [`App`],
//!   retries with backoff on `RETRY` or an error, and dead-letters what is
//!   dropped or keeps failing.
//!
//! Embedding without gRPC:
//! ```
//! # use std::sync::Arc;
//! # use layotto_pubsub::{*, components::memory::MemoryPubSub};
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> layotto_core::Result<()> {
//! struct Printer;
//! #[async_trait::async_trait]
//! impl App for Printer {
//!     async fn on_event(&self, event: TopicEvent) -> layotto_core::Result<AppStatus> {
//!         println!("{} got {:?}", event.topic, String::from_utf8_lossy(&event.data));
//!         Ok(AppStatus::Success)
//!     }
//! }
//! let broker: Arc<dyn PubSub> = Arc::new(MemoryPubSub::new("orders", &Default::default())?);
//! let sub = delivery::subscribe_app(
//!     "orders", broker.clone(), "created", Default::default(), DeliveryPolicy::default(), Arc::new(Printer),
//! ).await?;
//! let envelope = cloudevent::envelope(&PublishInput {
//!     pubsub_name: "orders".into(), topic: "created".into(), data: b"42".to_vec(),
//!     content_type: "text/plain".into(), ..Default::default()
//! })?;
//! broker.publish(PublishRequest { topic: "created".into(), data: envelope, metadata: Default::default() }).await?;
//! # sub.close().await; Ok(()) }
//! ```

pub mod cloudevent;
pub mod components;
pub mod delivery;
pub mod routing;

use std::sync::Arc;

use async_trait::async_trait;
use futures::future::BoxFuture;
use layotto_core::{Health, Metadata, Registry, Result};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use cloudevent::{PublishInput, TopicEvent};
pub use delivery::{App, AppStatus, DeliveryPolicy};
pub use layotto_core::{Error, ErrorKind};

/// Bytes to publish on a topic; `data` is usually a CloudEvent envelope.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PublishRequest {
    pub topic: String,
    pub data: Vec<u8>,
    pub metadata: Metadata,
}

/// A message as a component hands it to a subscriber.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Message {
    pub topic: String,
    pub data: Vec<u8>,
    pub metadata: Metadata,
    /// The broker's id of the message (stream entry id, delivery tag), for logs.
    pub broker_id: String,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubscribeRequest {
    pub topic: String,
    /// Per-subscription metadata; `consumerID` here overrides the component's.
    pub metadata: Metadata,
}

/// Handles one message. `Ok` acknowledges it; an error leaves it with the
/// broker, which delivers it again later.
pub type Handler = Arc<dyn Fn(Message) -> BoxFuture<'static, Result<()>> + Send + Sync>;

/// A running subscription; dropping or closing it stops consuming.
/// Messages being handled when it stops are not acknowledged, so the broker
/// delivers them again.
#[derive(Debug)]
pub struct Subscription {
    cancel: CancellationToken,
    task: Option<JoinHandle<()>>,
}

impl Subscription {
    pub fn new(cancel: CancellationToken, task: JoinHandle<()>) -> Self {
        Self { cancel, task: Some(task) }
    }

    /// Stops consuming and waits until the consumer loop has ended.
    pub async fn close(mut self) {
        self.cancel.cancel();
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    pub fn is_finished(&self) -> bool {
        self.task.as_ref().is_none_or(JoinHandle::is_finished)
    }
}

impl Drop for Subscription {
    fn drop(&mut self) {
        self.cancel.cancel();
    }
}

/// What a component can do natively.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    /// The broker expires messages itself (`ttlInSeconds`); otherwise the
    /// envelope carries an `expiration` that delivery checks.
    pub message_ttl: bool,
    /// `publish_delayed` works (Layotto's DelayQueue).
    pub delayed: bool,
}

/// A message broker behind the Pub/Sub API.
#[async_trait]
pub trait PubSub: Send + Sync {
    fn features(&self) -> Features {
        Features::default()
    }

    /// Returns once the broker has accepted the message.
    async fn publish(&self, req: PublishRequest) -> Result<()>;

    /// Publishes a message that subscribers get no earlier than `delay`
    /// from now, at least once. Returns once it is scheduled (durably, for
    /// a broker that keeps messages).
    async fn publish_delayed(&self, _req: PublishRequest, _delay: std::time::Duration) -> Result<()> {
        Err(Error::new(ErrorKind::Unsupported, "this pub/sub component cannot delay messages"))
    }

    /// Starts consuming `req.topic` as the consumer group `consumerID`:
    /// subscribers in one group share the messages, each group gets all.
    async fn subscribe(&self, req: SubscribeRequest, handler: Handler) -> Result<Subscription>;

    async fn health(&self) -> Health {
        Health::up()
    }
}

/// Every pub/sub component type this build has, keyed by Layotto's type names.
pub fn registry() -> Registry<dyn PubSub> {
    let mut registry: Registry<dyn PubSub> = Registry::new("pub_subs");
    registry.register(components::memory::MemoryPubSub::TYPE, components::memory::MemoryPubSub::build);
    #[cfg(feature = "redis")]
    registry.register(components::redis::RedisStreams::TYPE, components::redis::RedisStreams::build);
    #[cfg(feature = "rabbitmq")]
    registry.register(components::rabbitmq::RabbitMq::TYPE, components::rabbitmq::RabbitMq::build);
    registry
}

/// The consumer group of a subscription: its own `consumerID`, else the
/// component's (which the runtime defaults to the app id).
pub fn consumer_group(component: &Metadata, subscription: &Metadata) -> Option<String> {
    subscription
        .get("consumerID")
        .or_else(|| component.get("consumerID"))
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
}
