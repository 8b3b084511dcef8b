//! Delivery of a subscription's messages to the app, at least once.
//!
//! Each message is decoded into a [`TopicEvent`] and handed to the [`App`].
//! `SUCCESS` acknowledges it. `RETRY`, an error or a timeout retries it in
//! this process with exponential backoff, up to `deliveryMaxRetries` times;
//! then it goes to the dead-letter topic if there is one, and otherwise back
//! to the broker unacknowledged, which delivers it again later. `DROP`
//! acknowledges it after a warning and sends it to the dead-letter topic if
//! there is one. A message is acknowledged only once it has been handled or
//! safely dead-lettered, so a crash at any point loses nothing.
//!
//! Policy metadata (component metadata, overridden per subscription):
//! `deadLetterTopic`, `deliveryMaxRetries` (default 3), `deliveryRetryBackoff`
//! (first wait, default 100ms, doubling up to `deliveryMaxRetryBackoff`, default
//! 5s) and `deliveryTimeout` (per call to the app, default 30s).

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{Backoff, Error, Metadata, Result, settings};
use serde::Deserialize;

use crate::cloudevent::{self, Decoded, TopicEvent};
use crate::{Handler, Message, PubSub, PublishRequest, SubscribeRequest, Subscription};

/// The app's answer to an event (`TopicEventResponse.status`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppStatus {
    Success,
    Retry,
    Drop,
}

/// The subscriber side: the app behind AppCallback or a streaming client.
#[async_trait]
pub trait App: Send + Sync {
    /// An error means the event was not handled and is retried.
    async fn on_event(&self, event: TopicEvent) -> Result<AppStatus>;
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryPolicy {
    pub max_retries: u32,
    pub backoff: Duration,
    pub max_backoff: Duration,
    pub timeout: Duration,
    pub dead_letter_topic: Option<String>,
}

impl Default for DeliveryPolicy {
    fn default() -> Self {
        Self {
            max_retries: 3,
            backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
            timeout: Duration::from_secs(30),
            dead_letter_topic: None,
        }
    }
}

/// The policy's metadata keys, per component and per subscription.
#[derive(Debug, Default, Deserialize)]
pub struct DeliverySettings {
    #[serde(rename = "deliveryMaxRetries", default)]
    max_retries: Option<u32>,
    #[serde(rename = "deliveryRetryBackoff", default, deserialize_with = "settings::duration")]
    backoff: Option<Duration>,
    #[serde(rename = "deliveryMaxRetryBackoff", default, deserialize_with = "settings::duration")]
    max_backoff: Option<Duration>,
    #[serde(rename = "deliveryTimeout", default, deserialize_with = "settings::duration")]
    timeout: Option<Duration>,
    #[serde(rename = "deadLetterTopic", default)]
    dead_letter_topic: Option<String>,
}

impl DeliveryPolicy {
    /// Reads the policy from component metadata, then subscription metadata.
    pub fn from_metadata(component: &str, layers: &[&Metadata]) -> Result<Self> {
        let mut policy = Self::default();
        for meta in layers {
            let layer: DeliverySettings = settings::parse_request(component, meta)?;
            policy.max_retries = layer.max_retries.unwrap_or(policy.max_retries);
            policy.backoff = layer.backoff.unwrap_or(policy.backoff);
            policy.max_backoff = layer.max_backoff.unwrap_or(policy.max_backoff);
            policy.timeout = layer.timeout.unwrap_or(policy.timeout);
            if let Some(topic) =
                layer.dead_letter_topic.map(|t| t.trim().to_owned()).filter(|t| !t.is_empty())
            {
                policy.dead_letter_topic = Some(topic);
            }
        }
        Ok(policy)
    }
}

/// Subscribes `app` to `topic` of the component named `pubsub_name`.
pub async fn subscribe_app(
    pubsub_name: &str,
    component: Arc<dyn PubSub>,
    topic: &str,
    metadata: Metadata,
    policy: DeliveryPolicy,
    app: Arc<dyn App>,
) -> Result<Subscription> {
    let raw = cloudevent::is_raw(&metadata);
    let deliverer = Arc::new(Deliverer {
        pubsub_name: pubsub_name.to_owned(),
        component: component.clone(),
        policy,
        app,
        raw,
    });
    let handler: Handler = Arc::new(move |message: Message| {
        let deliverer = deliverer.clone();
        Box::pin(async move { deliverer.deliver(message).await })
    });
    component.subscribe(SubscribeRequest { topic: topic.to_owned(), metadata }, handler).await
}

struct Deliverer {
    pubsub_name: String,
    component: Arc<dyn PubSub>,
    policy: DeliveryPolicy,
    app: Arc<dyn App>,
    raw: bool,
}

impl Deliverer {
    async fn deliver(&self, message: Message) -> Result<()> {
        let event = match cloudevent::decode(
            &self.pubsub_name,
            &message.topic,
            &message.data,
            self.raw,
            Metadata::new(),
        ) {
            Decoded::Event(event) => *event,
            Decoded::Expired { id } => {
                tracing::debug!(pubsub = %self.pubsub_name, topic = %message.topic, id, "expired message dropped");
                return Ok(());
            }
        };
        let span = layotto_core::telemetry::delivery_span(
            &self.pubsub_name,
            &message.topic,
            event.metadata.get("traceparent").map(String::as_str),
        );
        let delivered =
            tracing::Instrument::instrument(self.deliver_event(&message, &event), span.clone()).await;
        if delivered.is_err() {
            layotto_core::telemetry::record_error(&span);
        }
        delivered
    }

    async fn deliver_event(&self, message: &Message, event: &TopicEvent) -> Result<()> {
        let metrics = layotto_core::metrics::metrics();
        let mut backoff = Backoff::new(self.policy.backoff, self.policy.max_backoff);
        let mut last_problem = String::new();
        for attempt in 0..=self.policy.max_retries {
            if attempt > 0 {
                metrics.delivery(&self.pubsub_name, "retried");
                backoff.wait().await;
            }
            match tokio::time::timeout(self.policy.timeout, self.app.on_event(event.clone())).await {
                Ok(Ok(AppStatus::Success)) => {
                    metrics.delivery(&self.pubsub_name, "delivered");
                    return Ok(());
                }
                Ok(Ok(AppStatus::Drop)) => {
                    metrics.delivery(&self.pubsub_name, "dropped");
                    tracing::warn!(
                        pubsub = %self.pubsub_name, topic = %message.topic, id = %event.id,
                        "the app answered DROP; the message is not delivered again"
                    );
                    return self.dead_letter(message, event, "the app answered DROP").await;
                }
                Ok(Ok(AppStatus::Retry)) => last_problem = "the app answered RETRY".to_owned(),
                Ok(Err(e)) => last_problem = e.to_string(),
                Err(_) => last_problem = format!("the app did not answer within {:?}", self.policy.timeout),
            }
            tracing::debug!(
                pubsub = %self.pubsub_name, topic = %message.topic, id = %event.id, attempt, %last_problem,
                "delivery will be retried"
            );
        }
        if self.policy.dead_letter_topic.is_some() {
            return self.dead_letter(message, event, &last_problem).await;
        }
        metrics.delivery(&self.pubsub_name, "returned");
        Err(Error::unavailable(format!(
            "pubsub '{}': topic '{}': event '{}' not handled after {} attempts ({last_problem}); the broker will deliver it again",
            self.pubsub_name,
            message.topic,
            event.id,
            self.policy.max_retries + 1
        )))
    }

    /// Publishes the original message to the dead-letter topic, if any; an
    /// error leaves the message with the broker.
    async fn dead_letter(&self, message: &Message, event: &TopicEvent, why: &str) -> Result<()> {
        let Some(topic) = &self.policy.dead_letter_topic else {
            return Ok(());
        };
        if topic == &message.topic {
            return Ok(());
        }
        self.component
            .publish(PublishRequest {
                topic: topic.clone(),
                data: message.data.clone(),
                metadata: Metadata::new(),
            })
            .await
            .map_err(|e| e.context(format!("dead-lettering event '{}'", event.id)))?;
        layotto_core::metrics::metrics().delivery(&self.pubsub_name, "dead_lettered");
        tracing::warn!(
            pubsub = %self.pubsub_name, topic = %message.topic, id = %event.id, dead_letter_topic = %topic, why,
            "message moved to the dead-letter topic"
        );
        Ok(())
    }
}
