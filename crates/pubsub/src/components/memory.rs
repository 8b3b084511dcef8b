//! `in-memory`: a broker inside the runtime process, with the semantics of
//! the real ones: each consumer group of a topic gets every message,
//! subscribers in one group share them, a message whose handler failed is
//! queued again after `redeliverInterval` (default 1s), and messages
//! published before anyone subscribed wait (up to `maxBacklog`, default
//! 10 000) for the first subscriber. Nothing survives a restart.
//!
//! Metadata: `consumerID`, `concurrency` (handlers running at once per
//! subscription, default 16), `redeliverInterval`, `maxBacklog` (messages
//! per topic without a subscriber), `maxBacklogBytes` (bytes such topics hold
//! together, default 64 MiB; past either, publish is RESOURCE_EXHAUSTED).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, ErrorKind, Metadata, Result, clip, settings};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{Handler, Message, PubSub, PublishRequest, SubscribeRequest, Subscription, consumer_group};

pub struct MemoryPubSub {
    name: String,
    metadata: Metadata,
    max_backlog: usize,
    max_backlog_bytes: usize,
    /// Bytes held in the backlogs of all topics.
    backlog_bytes: std::sync::atomic::AtomicUsize,
    topics: Mutex<HashMap<String, Topic>>,
}

#[derive(Default)]
struct Topic {
    groups: HashMap<String, Arc<Group>>,
    /// Messages published while the topic had no group.
    backlog: Vec<Message>,
}

struct Group {
    tx: mpsc::UnboundedSender<Message>,
    rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Message>>,
}

/// Per component, and (but for `maxBacklog`) overridden per subscription.
#[derive(Debug, Default, Deserialize)]
struct MemorySettings {
    #[serde(rename = "consumerID", default)]
    _consumer_id: Option<String>,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(rename = "redeliverInterval", default, deserialize_with = "settings::duration")]
    redeliver_interval: Option<Duration>,
    #[serde(rename = "maxBacklog", default)]
    max_backlog: Option<usize>,
    #[serde(rename = "maxBacklogBytes", default)]
    max_backlog_bytes: Option<usize>,
}

/// What a waiting message costs the backlog: its data and its topic name.
fn backlog_size(message: &Message) -> usize {
    message.data.len() + message.topic.len()
}

/// Bytes all topics without a subscriber may hold together, by default.
const DEFAULT_MAX_BACKLOG_BYTES: usize = 64 * 1024 * 1024;

impl MemoryPubSub {
    pub const TYPE: &'static str = "in-memory";

    /// The registry constructor.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn PubSub>> {
        ctx.settings::<MemorySettings>()?;
        Ok(Arc::new(Self::new(&ctx.name, &ctx.metadata)?))
    }

    pub fn new(name: &str, metadata: &Metadata) -> Result<Self> {
        let component = format!("pubsub '{name}' (in-memory)");
        let settings: MemorySettings = settings::parse(&component, metadata)?;
        let max_backlog = settings.max_backlog.unwrap_or(10_000);
        let max_backlog_bytes = settings.max_backlog_bytes.unwrap_or(DEFAULT_MAX_BACKLOG_BYTES);
        Ok(Self {
            name: name.to_owned(),
            metadata: metadata.clone(),
            max_backlog,
            max_backlog_bytes,
            backlog_bytes: std::sync::atomic::AtomicUsize::new(0),
            topics: Mutex::default(),
        })
    }

    fn group(&self, topic: &str, group: &str) -> Arc<Group> {
        let mut topics = self.topics.lock();
        let entry = topics.entry(topic.to_owned()).or_default();
        if let Some(g) = entry.groups.get(group) {
            return g.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        for message in entry.backlog.drain(..) {
            self.backlog_bytes.fetch_sub(backlog_size(&message), std::sync::atomic::Ordering::Relaxed);
            let _ = tx.send(message);
        }
        let g = Arc::new(Group { tx, rx: tokio::sync::Mutex::new(rx) });
        entry.groups.insert(group.to_owned(), g.clone());
        g
    }
}

#[async_trait]
impl PubSub for MemoryPubSub {
    async fn publish(&self, req: PublishRequest) -> Result<()> {
        let message = Message {
            topic: req.topic.clone(),
            data: req.data,
            metadata: req.metadata,
            broker_id: uuid::Uuid::new_v4().to_string(),
        };
        let mut topics = self.topics.lock();
        let topic = topics.entry(req.topic.clone()).or_default();
        if topic.groups.is_empty() {
            if topic.backlog.len() >= self.max_backlog {
                return Err(Error::new(
                    ErrorKind::ResourceExhausted,
                    format!(
                        "pubsub '{}' (in-memory): topic '{}' has no subscriber and {} messages waiting (maxBacklog)",
                        self.name,
                        clip(&req.topic),
                        self.max_backlog
                    ),
                ));
            }
            let size = backlog_size(&message);
            let held = self.backlog_bytes.load(std::sync::atomic::Ordering::Relaxed);
            if held.saturating_add(size) > self.max_backlog_bytes {
                return Err(Error::new(
                    ErrorKind::ResourceExhausted,
                    format!(
                        "pubsub '{}' (in-memory): topics without a subscriber hold {held} bytes; a message of {size} \
                         bytes to '{}' would pass maxBacklogBytes = {}",
                        self.name,
                        clip(&req.topic),
                        self.max_backlog_bytes
                    ),
                ));
            }
            // Under the topics lock, so concurrent publishers cannot both pass the check.
            self.backlog_bytes.fetch_add(size, std::sync::atomic::Ordering::Relaxed);
            topic.backlog.push(message);
            return Ok(());
        }
        for group in topic.groups.values() {
            let _ = group.tx.send(message.clone());
        }
        Ok(())
    }

    async fn subscribe(&self, req: SubscribeRequest, handler: Handler) -> Result<Subscription> {
        let component = format!("pubsub '{}' (in-memory): topic '{}'", self.name, req.topic);
        let layers = [&self.metadata, &req.metadata];
        let mut concurrency = 16;
        let mut redeliver = Duration::from_secs(1);
        for meta in layers {
            let layer: MemorySettings = settings::parse_request(&component, meta)?;
            if let Some(n) = layer.concurrency {
                concurrency = n.max(1);
            }
            if let Some(d) = layer.redeliver_interval {
                redeliver = d;
            }
        }
        let group_name =
            consumer_group(&self.metadata, &req.metadata).unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let group = self.group(&req.topic, &group_name);
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            let permits = Arc::new(Semaphore::new(concurrency));
            loop {
                let Ok(permit) = permits.clone().acquire_owned().await else { break };
                let next = tokio::select! {
                    _ = stop.cancelled() => break,
                    m = async { group.rx.lock().await.recv().await } => m,
                };
                let Some(message) = next else { break };
                let (handler, group, stop) = (handler.clone(), group.clone(), stop.clone());
                tokio::spawn(async move {
                    let result = handler(message.clone()).await;
                    drop(permit);
                    if result.is_err() {
                        // Back to the group's queue, as a broker redelivers.
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = tokio::time::sleep(redeliver) => {}
                        }
                        let _ = group.tx.send(message);
                    }
                });
            }
        });
        Ok(Subscription::new(cancel, task))
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn publish(topic: &str, bytes: usize) -> PublishRequest {
        PublishRequest { topic: topic.into(), data: vec![7; bytes], metadata: Metadata::new() }
    }

    /// 40 messages of 5 MiB to a topic nobody subscribed to once grew the
    /// process by 900 MB: the backlog was capped in count only.
    #[tokio::test]
    async fn the_backlog_is_capped_in_bytes_across_topics() {
        let metadata = Metadata::from([("maxBacklogBytes".to_owned(), (16 << 20).to_string())]);
        let broker = MemoryPubSub::new("mem", &metadata).unwrap();
        for topic in ["a", "b", "c"] {
            broker.publish(publish(topic, 5 << 20)).await.unwrap();
        }
        let err = broker.publish(publish("d", 5 << 20)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceExhausted, "{err}");
        assert!(err.to_string().contains("maxBacklogBytes = 16777216"), "{err}");
        // A subscriber takes topic a's backlog: its bytes are free again.
        let handler: Handler = Arc::new(|_| Box::pin(async { Ok(()) }));
        let req = SubscribeRequest {
            topic: "a".into(),
            metadata: Metadata::from([("consumerID".to_owned(), "g".to_owned())]),
        };
        let sub = broker.subscribe(req, handler).await.unwrap();
        broker.publish(publish("d", 5 << 20)).await.unwrap();
        sub.close().await;
    }
}
