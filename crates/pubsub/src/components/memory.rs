//! `in-memory`: a broker inside the runtime process, with the semantics of
//! the real ones: each consumer group of a topic gets every message,
//! subscribers in one group share them, a message whose handler failed is
//! queued again after `redeliverInterval` (default 1s), and messages
//! published before anyone subscribed wait (up to `maxBacklog`, default
//! 10 000) for the first subscriber. Nothing survives a restart.
//!
//! Metadata: `consumerID`, `concurrency` (handlers running at once per
//! subscription, default 16), `redeliverInterval`, `maxBacklog`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, Metadata, Result, settings};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{Handler, Message, PubSub, PublishRequest, SubscribeRequest, Subscription, consumer_group};

pub struct MemoryPubSub {
    name: String,
    metadata: Metadata,
    max_backlog: usize,
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
}

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
        Ok(Self { name: name.to_owned(), metadata: metadata.clone(), max_backlog, topics: Mutex::default() })
    }

    fn group(&self, topic: &str, group: &str) -> Arc<Group> {
        let mut topics = self.topics.lock();
        let entry = topics.entry(topic.to_owned()).or_default();
        if let Some(g) = entry.groups.get(group) {
            return g.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        for message in entry.backlog.drain(..) {
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
                return Err(Error::unavailable(format!(
                    "pubsub '{}' (in-memory): topic '{}' has no subscriber and {} messages waiting (maxBacklog)",
                    self.name, req.topic, self.max_backlog
                )));
            }
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
