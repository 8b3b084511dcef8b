//! The Pub/Sub API: publishing with the CloudEvents envelope and opening
//! subscriptions; the wire side of delivery lives in `crate::pubsub`.

use std::sync::Arc;

use layotto_core::{Error, Metadata};
use layotto_pubsub::cloudevent::{PublishInput, envelope};
use layotto_pubsub::{App, PublishRequest, Subscription};

use super::{ApiResult, Limits, Lookup, Named};
use crate::pubsub::PubSubComponent;

#[derive(Default)]
pub struct PubSubApi {
    pub components: Named<PubSubComponent>,
    pub limits: Limits,
}

/// What a publisher sends, before the envelope.
#[derive(Debug, Clone, Default)]
pub struct Publish {
    pub pubsub_name: String,
    pub topic: String,
    pub data: Vec<u8>,
    pub data_content_type: String,
    pub metadata: Metadata,
    /// The W3C `traceparent` of the call, carried into the envelope.
    pub traceparent: Option<String>,
}

impl PubSubApi {
    /// The component for (`pubsub`, `topic`): both must be named.
    pub fn component(&self, pubsub: &str, topic: &str) -> ApiResult<PubSubComponent> {
        if pubsub.is_empty() {
            return Err(Lookup::NoName.into());
        }
        if topic.is_empty() {
            return Err(Error::invalid_argument(format!("topic is empty in pubsub {pubsub}")).into());
        }
        self.limits.check_key(|| format!("pubsub {pubsub}"), "topic", topic)?;
        match self.components.get(pubsub) {
            Err(Lookup::NotConfigured) => {
                Err(Lookup::NotFound { name: pubsub.to_owned(), known: Vec::new() }.into())
            }
            other => Ok(other?),
        }
    }

    /// Wraps the data in the CloudEvents envelope and publishes it; returns
    /// once the broker has accepted it.
    pub async fn publish(&self, publish: Publish) -> ApiResult<()> {
        let component = self.component(&publish.pubsub_name, &publish.topic)?;
        let input = PublishInput {
            pubsub_name: publish.pubsub_name,
            topic: publish.topic,
            data: publish.data,
            content_type: publish.data_content_type,
            metadata: publish.metadata,
            // With tracing on, this runtime's span (the caller's child) is the subscriber's parent.
            traceparent: layotto_core::telemetry::current_traceparent().or(publish.traceparent),
            broker_ttl: component.component.features().message_ttl,
            id: None,
        };
        let data = envelope(&input)?;
        let pubsub = input.pubsub_name;
        let req = PublishRequest { topic: input.topic, data, metadata: input.metadata };
        let call = component.component.publish(req);
        Ok(self.limits.deadline("pubsub", &pubsub, || format!("pubsub {pubsub}"), call).await?)
    }

    /// Schedules `publish` for its topic's subscribers `delay_in_seconds`
    /// from now (Layotto's DelayQueue), in the same envelope as a publish;
    /// the message id.
    pub async fn publish_delayed(&self, publish: Publish, delay_in_seconds: i32) -> ApiResult<String> {
        let component = self.component(&publish.pubsub_name, &publish.topic)?;
        let pubsub = publish.pubsub_name.clone();
        let delay = u64::try_from(delay_in_seconds).map_err(|_| {
            Error::invalid_argument(format!(
                "pubsub {pubsub}: delay_in_seconds must not be negative, got {delay_in_seconds}"
            ))
        })?;
        if !component.component.features().delayed {
            return Err(Error::new(
                layotto_core::ErrorKind::Unsupported,
                format!("pubsub {pubsub}: this component cannot delay messages"),
            )
            .into());
        }
        let id = uuid::Uuid::new_v4().to_string();
        let input = PublishInput {
            pubsub_name: publish.pubsub_name,
            topic: publish.topic,
            data: publish.data,
            content_type: publish.data_content_type,
            metadata: publish.metadata,
            // With tracing on, this runtime's span (the caller's child) is the subscriber's parent.
            traceparent: layotto_core::telemetry::current_traceparent().or(publish.traceparent),
            broker_ttl: component.component.features().message_ttl,
            id: Some(id.clone()),
        };
        let data = envelope(&input)?;
        let req = PublishRequest { topic: input.topic, data, metadata: input.metadata };
        let call = component.component.publish_delayed(req, std::time::Duration::from_secs(delay));
        self.limits.deadline("pubsub", &pubsub, || format!("pubsub {pubsub}"), call).await?;
        Ok(id)
    }

    /// Subscribes `app` to `topic` with the component's delivery policy.
    pub async fn subscribe(
        &self,
        pubsub: &str,
        topic: &str,
        metadata: Metadata,
        dead_letter_topic: Option<String>,
        app: Arc<dyn App>,
    ) -> ApiResult<Subscription> {
        let component = self.component(pubsub, topic)?;
        Ok(component.subscribe_app(pubsub, topic, metadata, dead_letter_topic, app).await?)
    }
}
