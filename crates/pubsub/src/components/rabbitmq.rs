//! `rabbitmq`: AMQP 0.9.1 through lapin, in the layout of Dapr's RabbitMQ
//! pub/sub: a fanout exchange per topic, and per consumer group a queue
//! named `<consumerID>-<topic>` bound to it.
//!
//! Delayed messages (the DelayQueue API): Debian's broker has no delayed
//! message plugin, so a delayed message goes to a queue of its own delay
//! (`layotto-delay.<topic>.<ms>ms`, `x-message-ttl` = the delay) with no
//! consumer, which dead-letters it into the topic's exchange when it
//! expires. One queue per delay, not per-message TTLs in one queue: a
//! queue only expires its head, so a short delay would wait behind a long one.
//!
//! Publishing waits for the broker's publisher confirm, with persistent
//! messages on durable exchanges and queues by default, so an acknowledged
//! publish survives a broker restart. Consumers use manual acks: a handled
//! message is acked, a failed one is nacked and requeued after
//! `redeliverInterval`; unacked messages of a consumer that goes away are
//! requeued by the broker. Both sides reconnect by themselves.
//!
//! Metadata (Dapr's keys): `host` (`amqp://user:pass@host:port/vhost`,
//! default `amqp://guest:guest@localhost:5672`; alias `connectionString`),
//! `consumerID`, `durable` (default true), `deletedWhenUnused` (default
//! false), `deliveryMode` (2 = persistent, the default; 1 = transient),
//! `requeueInFailure` (default true), `prefetchCount` (default 16, also the
//! number of handlers at once), `redeliverInterval` (default 1s). TLS
//! (`amqps://`) is not built in.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt;
use lapin::options::{
    BasicAckOptions, BasicConsumeOptions, BasicNackOptions, BasicPublishOptions, BasicQosOptions,
    ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions, QueueDeclareOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties, ExchangeKind};
use layotto_core::{
    Backoff, ComponentContext, Error, ErrorKind, Health, Metadata, Result, redact_url, settings,
};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::{Handler, Message, PubSub, PublishRequest, SubscribeRequest, Subscription, consumer_group};

#[derive(Clone)]
struct Options {
    uri: String,
    durable: bool,
    auto_delete: bool,
    delivery_mode: u8,
    requeue: bool,
    prefetch: u16,
    redeliver: Duration,
}

pub struct RabbitMq {
    name: String,
    metadata: Metadata,
    options: Options,
    /// The publishing connection and its confirm-mode channel.
    publisher: tokio::sync::Mutex<Option<(Connection, Channel)>>,
    declared: Mutex<HashSet<String>>,
}

/// Dapr's RabbitMQ keys, per component and overridden per subscription.
#[derive(Debug, Default, Deserialize)]
struct RabbitSettings {
    #[serde(alias = "connectionString", default)]
    host: Option<String>,
    #[serde(rename = "consumerID", default)]
    _consumer_id: Option<String>,
    #[serde(default)]
    durable: Option<bool>,
    #[serde(rename = "deletedWhenUnused", default)]
    deleted_when_unused: Option<bool>,
    #[serde(rename = "requeueInFailure", default)]
    requeue_in_failure: Option<bool>,
    #[serde(rename = "deliveryMode", default)]
    delivery_mode: Option<u8>,
    #[serde(rename = "prefetchCount", default)]
    prefetch_count: Option<u16>,
    #[serde(rename = "redeliverInterval", default, deserialize_with = "settings::duration")]
    redeliver_interval: Option<Duration>,
}

impl RabbitMq {
    pub const TYPE: &'static str = "rabbitmq";

    /// The registry constructor.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn crate::PubSub>> {
        ctx.settings::<RabbitSettings>()?;
        Ok(Arc::new(Self::connect(&ctx.name, &ctx.metadata).await?))
    }

    pub async fn connect(name: &str, metadata: &Metadata) -> Result<Self> {
        let component = format!("pubsub '{name}' (rabbitmq)");
        let options = Self::options(&component, metadata, &Metadata::new())?;
        let this = Self {
            name: name.to_owned(),
            metadata: metadata.clone(),
            options,
            publisher: tokio::sync::Mutex::new(None),
            declared: Mutex::new(HashSet::new()),
        };
        // Fail at startup, naming the broker, when it cannot be reached.
        this.publisher_channel().await?;
        Ok(this)
    }

    fn options(component: &str, defaults: &Metadata, subscription: &Metadata) -> Result<Options> {
        let mut o = Options {
            uri: "amqp://guest:guest@localhost:5672".to_owned(),
            durable: true,
            auto_delete: false,
            delivery_mode: 2,
            requeue: true,
            prefetch: 16,
            redeliver: Duration::from_secs(1),
        };
        for meta in [defaults, subscription] {
            let layer: RabbitSettings = settings::parse_request(component, meta)?;
            if let Some(uri) = layer.host.filter(|u| !u.trim().is_empty()) {
                o.uri = uri.trim().to_owned();
            }
            o.durable = layer.durable.unwrap_or(o.durable);
            o.auto_delete = layer.deleted_when_unused.unwrap_or(o.auto_delete);
            o.requeue = layer.requeue_in_failure.unwrap_or(o.requeue);
            if let Some(mode) = layer.delivery_mode {
                if !(1..=2).contains(&mode) {
                    return Err(Error::invalid_argument(format!(
                        "{component}: metadata 'deliveryMode' must be 1 or 2, got {mode}"
                    )));
                }
                o.delivery_mode = mode;
            }
            if let Some(n) = layer.prefetch_count {
                o.prefetch = n.max(1);
            }
            if let Some(d) = layer.redeliver_interval {
                o.redeliver = d;
            }
        }
        Ok(o)
    }

    fn error(&self, what: &str, e: lapin::Error) -> Error {
        Error::new(
            ErrorKind::Unavailable,
            format!("pubsub '{}' (rabbitmq) at {}: {what}: {e}", self.name, redact_url(&self.options.uri)),
        )
    }

    async fn publisher_channel(&self) -> Result<Channel> {
        let mut guard = self.publisher.lock().await;
        if let Some((conn, channel)) = guard.as_ref()
            && conn.status().connected()
            && channel.status().connected()
        {
            return Ok(channel.clone());
        }
        *guard = None;
        self.declared.lock().clear();
        let conn = Connection::connect(&self.options.uri, ConnectionProperties::default())
            .await
            .map_err(|e| self.error("cannot connect", e))?;
        let channel = conn.create_channel().await.map_err(|e| self.error("cannot open a channel", e))?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await
            .map_err(|e| self.error("cannot enable publisher confirms", e))?;
        *guard = Some((conn, channel.clone()));
        Ok(channel)
    }

    async fn publish_once(&self, req: &PublishRequest) -> Result<()> {
        let channel = self.publisher_channel().await?;
        if !self.declared.lock().contains(&req.topic) {
            declare_exchange(&channel, &req.topic, &self.options)
                .await
                .map_err(|e| self.error(&format!("topic '{}': declaring the exchange", req.topic), e))?;
            self.declared.lock().insert(req.topic.clone());
        }
        let mut properties = BasicProperties::default().with_delivery_mode(self.options.delivery_mode);
        if let Some(ttl) = req.metadata.get("ttlInSeconds").and_then(|t| t.trim().parse::<u64>().ok()) {
            properties = properties.with_expiration(ttl.saturating_mul(1000).to_string().into());
        }
        let confirm = channel
            .basic_publish(
                req.topic.as_str().into(),
                "".into(),
                BasicPublishOptions::default(),
                &req.data,
                properties,
            )
            .await
            .map_err(|e| self.error(&format!("topic '{}': publishing", req.topic), e))?
            .await
            .map_err(|e| {
                self.error(&format!("topic '{}': waiting for the publisher confirm", req.topic), e)
            })?;
        if !confirm.is_ack() {
            return Err(Error::unavailable(format!(
                "pubsub '{}' (rabbitmq): topic '{}': the broker refused the message (nack)",
                self.name, req.topic
            )));
        }
        Ok(())
    }
}

impl RabbitMq {
    /// A delayed message waits in a queue of its own delay (`ttl` for every
    /// message in it, so none waits behind a longer one), which dead-letters
    /// it into the topic's exchange when it expires. The queue is declared
    /// on every use, so it outlives its last message (`x-expires` = delay +
    /// 60 s after that), and the publish is mandatory: a message that
    /// finds no queue comes back as an error instead of vanishing.
    async fn publish_delayed_once(&self, req: &PublishRequest, delay: Duration) -> Result<()> {
        use lapin::types::{AMQPValue, ShortString};
        let millis = u32::try_from(delay.as_millis()).map_err(|_| {
            Error::invalid_argument(format!(
                "pubsub '{}' (rabbitmq): a delay of {delay:?} is longer than RabbitMQ can hold a message (about 49 days)",
                self.name
            ))
        })?;
        let what = |step: &str| format!("topic '{}': delayed message: {step}", req.topic);
        let channel = self.publisher_channel().await?;
        declare_exchange(&channel, &req.topic, &self.options)
            .await
            .map_err(|e| self.error(&what("declaring the exchange"), e))?;
        let queue = format!("layotto-delay.{}.{millis}ms", req.topic);
        let mut arguments = FieldTable::default();
        arguments.insert(ShortString::from("x-message-ttl"), AMQPValue::LongUInt(millis));
        arguments.insert(
            ShortString::from("x-dead-letter-exchange"),
            AMQPValue::LongString(req.topic.as_str().into()),
        );
        arguments.insert(ShortString::from("x-expires"), AMQPValue::LongUInt(millis.saturating_add(60_000)));
        channel
            .queue_declare(
                queue.as_str().into(),
                QueueDeclareOptions { durable: self.options.durable, ..Default::default() },
                arguments,
            )
            .await
            .map_err(|e| self.error(&what("declaring its queue"), e))?;
        let properties = BasicProperties::default().with_delivery_mode(self.options.delivery_mode);
        let confirm = channel
            .basic_publish(
                "".into(),
                queue.as_str().into(),
                BasicPublishOptions { mandatory: true, ..Default::default() },
                &req.data,
                properties,
            )
            .await
            .map_err(|e| self.error(&what("publishing"), e))?
            .await
            .map_err(|e| self.error(&what("waiting for the publisher confirm"), e))?;
        // An ack with the message returned: it found no queue.
        match (confirm.is_ack(), confirm.take_message()) {
            (true, None) => Ok(()),
            _ => Err(Error::unavailable(format!(
                "pubsub '{}' (rabbitmq): {}: the broker did not take it",
                self.name,
                what("publishing")
            ))),
        }
    }
}

async fn declare_exchange(channel: &Channel, topic: &str, o: &Options) -> lapin::Result<()> {
    channel
        .exchange_declare(
            topic.into(),
            ExchangeKind::Fanout,
            ExchangeDeclareOptions { durable: o.durable, auto_delete: false, ..Default::default() },
            FieldTable::default(),
        )
        .await
}

#[async_trait]
impl PubSub for RabbitMq {
    fn features(&self) -> crate::Features {
        crate::Features { message_ttl: true, delayed: true }
    }

    async fn publish_delayed(&self, req: PublishRequest, delay: Duration) -> Result<()> {
        if delay.is_zero() {
            return self.publish(req).await;
        }
        match self.publish_delayed_once(&req, delay).await {
            Ok(()) => Ok(()),
            Err(_) => {
                // A stale connection gets one fresh attempt, as for publish.
                *self.publisher.lock().await = None;
                self.publish_delayed_once(&req, delay).await
            }
        }
    }

    async fn publish(&self, req: PublishRequest) -> Result<()> {
        match self.publish_once(&req).await {
            Ok(()) => Ok(()),
            Err(first) => {
                // A stale connection (broker restarted) gets one fresh attempt;
                // a broker that is down fails at once.
                *self.publisher.lock().await = None;
                self.publish_once(&req).await.map_err(|_| first)
            }
        }
    }

    async fn subscribe(&self, req: SubscribeRequest, handler: Handler) -> Result<Subscription> {
        let component = format!("pubsub '{}' (rabbitmq): topic '{}'", self.name, req.topic);
        let options = Self::options(&component, &self.metadata, &req.metadata)?;
        let group = consumer_group(&self.metadata, &req.metadata).ok_or_else(|| {
            Error::invalid_argument(format!("{component}: metadata 'consumerID' is required"))
        })?;
        let queue = format!("{group}-{}", req.topic);
        let consumer = Consumer {
            component,
            uri_shown: redact_url(&options.uri),
            topic: req.topic,
            queue,
            options,
            handler,
        };
        // The first connection is made here so that a broker that is down
        // fails the subscription with a clear error.
        let stream = consumer.open().await?;
        let cancel = CancellationToken::new();
        let task = tokio::spawn(consumer.run(stream, cancel.clone()));
        Ok(Subscription::new(cancel, task))
    }

    async fn health(&self) -> Health {
        match tokio::time::timeout(Duration::from_secs(2), self.publisher_channel()).await {
            Ok(Ok(_)) => Health::up(),
            Ok(Err(e)) => Health::down(e.to_string()),
            Err(_) => {
                Health::down(format!("connecting to RabbitMQ at {} timed out", redact_url(&self.options.uri)))
            }
        }
    }
}

struct Consumer {
    component: String,
    uri_shown: String,
    topic: String,
    queue: String,
    options: Options,
    handler: Handler,
}

impl Consumer {
    async fn open(&self) -> Result<(Connection, lapin::Consumer)> {
        let fail = |what: &str, e: lapin::Error| {
            Error::unavailable(format!("{} at {}: {what}: {e}", self.component, self.uri_shown))
        };
        let conn = Connection::connect(&self.options.uri, ConnectionProperties::default())
            .await
            .map_err(|e| fail("cannot connect", e))?;
        let channel = conn.create_channel().await.map_err(|e| fail("cannot open a channel", e))?;
        channel
            .basic_qos(self.options.prefetch, BasicQosOptions::default())
            .await
            .map_err(|e| fail("basic.qos", e))?;
        declare_exchange(&channel, &self.topic, &self.options)
            .await
            .map_err(|e| fail("declaring the exchange", e))?;
        channel
            .queue_declare(
                self.queue.as_str().into(),
                QueueDeclareOptions {
                    durable: self.options.durable,
                    auto_delete: self.options.auto_delete,
                    ..Default::default()
                },
                FieldTable::default(),
            )
            .await
            .map_err(|e| fail(&format!("declaring queue '{}'", self.queue), e))?;
        channel
            .queue_bind(
                self.queue.as_str().into(),
                self.topic.as_str().into(),
                "".into(),
                QueueBindOptions::default(),
                FieldTable::default(),
            )
            .await
            .map_err(|e| fail(&format!("binding queue '{}'", self.queue), e))?;
        let consumer = channel
            .basic_consume(
                self.queue.as_str().into(),
                "".into(),
                BasicConsumeOptions { no_ack: false, ..Default::default() },
                FieldTable::default(),
            )
            .await
            .map_err(|e| fail("basic.consume", e))?;
        Ok((conn, consumer))
    }

    async fn run(self, first: (Connection, lapin::Consumer), cancel: CancellationToken) {
        let this = Arc::new(self);
        let mut current = Some(first);
        // At most 500 ms apart, so consuming resumes soon after the broker is back.
        let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_millis(500));
        while !cancel.is_cancelled() {
            let (conn, mut stream) = match current.take() {
                Some(open) => open,
                None => match this.open().await {
                    Ok(open) => {
                        tracing::info!(component = %this.component, "consuming from RabbitMQ again");
                        backoff.reset();
                        open
                    }
                    Err(e) => {
                        tracing::debug!(component = %this.component, error = %e, "reconnect failed");
                        tokio::select! {
                            _ = cancel.cancelled() => break,
                            _ = backoff.wait() => {}
                        }
                        continue;
                    }
                },
            };
            loop {
                let next = tokio::select! {
                    _ = cancel.cancelled() => None,
                    d = stream.next() => d,
                };
                match next {
                    Some(Ok(delivery)) => {
                        let this = this.clone();
                        tokio::spawn(async move {
                            let message = Message {
                                topic: this.topic.clone(),
                                data: delivery.data,
                                metadata: Metadata::new(),
                                broker_id: delivery.delivery_tag.to_string(),
                            };
                            if (this.handler)(message).await.is_ok() {
                                let _ = delivery.acker.ack(BasicAckOptions::default()).await;
                            } else {
                                tokio::time::sleep(this.options.redeliver).await;
                                let _ = delivery
                                    .acker
                                    .nack(BasicNackOptions {
                                        requeue: this.options.requeue,
                                        ..Default::default()
                                    })
                                    .await;
                            }
                        });
                    }
                    Some(Err(e)) => {
                        tracing::warn!(component = %this.component, error = %e, "lost the RabbitMQ connection; reconnecting");
                        break;
                    }
                    None => break,
                }
            }
            // Unacked messages go back to the queue when the connection closes.
            let _ = conn.close(200, "subscription closed".into()).await;
        }
    }
}
