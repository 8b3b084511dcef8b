//! `in-memory`: a broker inside the runtime process, with the semantics of
//! the real ones: each consumer group of a topic gets every message,
//! subscribers in one group share them, a message whose handler failed is
//! queued again after `redeliverInterval` (default 1s), and messages
//! published before anyone subscribed wait (up to `maxBacklog`, default
//! 10 000) for the first subscriber. Nothing survives a restart.
//!
//! Metadata: `consumerID`, `concurrency` (handlers running at once per
//! subscription, default 16), `redeliverInterval`, `maxBacklog` (messages
//! per topic without a subscriber), `maxBacklogBytes` (bytes waiting in the
//! whole broker, in backlogs and in the queues of groups, also of groups
//! whose subscribers left, and delayed messages; default 64 MiB), `maxTopics`
//! (default 10 000). Past any of them, publish is RESOURCE_EXHAUSTED.
//!
//! Delayed messages (the DelayQueue API) wait in one heap under one timer
//! task, and are published like any other message when they are due.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, ErrorKind, Metadata, Result, clip, settings};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{Handler, Message, PubSub, PublishRequest, SubscribeRequest, Subscription, consumer_group};

#[derive(Clone)]
pub struct MemoryPubSub {
    name: String,
    metadata: Metadata,
    max_backlog: usize,
    max_backlog_bytes: usize,
    max_topics: usize,
    /// Bytes of every message not yet taken by a subscriber: backlogs and group queues.
    waiting_bytes: Arc<AtomicUsize>,
    topics: Arc<Mutex<HashMap<String, Topic>>>,
    /// The timer of delayed messages, started by the first one.
    timer: Arc<std::sync::OnceLock<mpsc::UnboundedSender<Delayed>>>,
}

/// A message waiting for its time.
struct Delayed {
    due: tokio::time::Instant,
    /// Breaks ties, so messages due together keep their order.
    seq: u64,
    req: PublishRequest,
}

impl PartialEq for Delayed {
    fn eq(&self, other: &Self) -> bool {
        (self.due, self.seq) == (other.due, other.seq)
    }
}
impl Eq for Delayed {}
impl PartialOrd for Delayed {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Delayed {
    /// Reversed: the heap's top is the earliest.
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        (other.due, other.seq).cmp(&(self.due, self.seq))
    }
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

impl Group {
    /// Queues `message`, counting its bytes until a subscriber takes it.
    fn send(&self, message: Message, waiting: &AtomicUsize) {
        waiting.fetch_add(backlog_size(&message), Ordering::Relaxed);
        if let Err(returned) = self.tx.send(message) {
            waiting.fetch_sub(backlog_size(&returned.0), Ordering::Relaxed);
        }
    }
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
    #[serde(rename = "maxTopics", default)]
    max_topics: Option<usize>,
}

/// What a waiting message costs the backlog: its data and its topic name.
fn backlog_size(message: &Message) -> usize {
    message.data.len() + message.topic.len()
}

/// Bytes all waiting messages may hold together, by default.
const DEFAULT_MAX_BACKLOG_BYTES: usize = 64 * 1024 * 1024;

/// Topics one broker keeps, by default.
const DEFAULT_MAX_TOPICS: usize = 10_000;

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
            max_topics: settings.max_topics.unwrap_or(DEFAULT_MAX_TOPICS).max(1),
            waiting_bytes: Arc::default(),
            topics: Arc::default(),
            timer: Arc::default(),
        })
    }

    fn group(&self, topic: &str, group: &str) -> Arc<Group> {
        let mut topics = self.topics.lock();
        let entry = topics.entry(topic.to_owned()).or_default();
        if let Some(g) = entry.groups.get(group) {
            return g.clone();
        }
        let (tx, rx) = mpsc::unbounded_channel();
        // The backlog's bytes stay counted: they now wait in the group's queue.
        for message in entry.backlog.drain(..) {
            let _ = tx.send(message);
        }
        let g = Arc::new(Group { tx, rx: tokio::sync::Mutex::new(rx) });
        entry.groups.insert(group.to_owned(), g.clone());
        g
    }
}

impl MemoryPubSub {
    /// The one timer of this broker: a heap of delayed messages, earliest on
    /// top, and a task that sleeps until the top is due (not a task per message).
    fn timer(&self) -> &mpsc::UnboundedSender<Delayed> {
        self.timer.get_or_init(|| {
            let (tx, mut rx) = mpsc::unbounded_channel::<Delayed>();
            // Its own copy has no timer of its own, so the task ends with the component.
            let broker = MemoryPubSub { timer: Arc::default(), ..self.clone() };
            tokio::spawn(async move {
                let mut heap = std::collections::BinaryHeap::new();
                loop {
                    let next = heap.peek().map(|d: &Delayed| d.due);
                    tokio::select! {
                        delayed = rx.recv() => match delayed {
                            Some(delayed) => heap.push(delayed),
                            None => return,
                        },
                        _ = tokio::time::sleep_until(next.unwrap_or_else(tokio::time::Instant::now)), if next.is_some() => {
                            let now = tokio::time::Instant::now();
                            while heap.peek().is_some_and(|d| d.due <= now) {
                                let Some(due) = heap.pop() else { break };
                                broker.waiting_bytes.fetch_sub(due.req.data.len() + due.req.topic.len(), Ordering::Relaxed);
                                if let Err(e) = broker.publish(due.req).await {
                                    tracing::warn!(pubsub = %broker.name, error = %e, "a delayed message could not be published");
                                }
                            }
                        }
                    }
                }
            });
            tx
        })
    }
}

#[async_trait]
impl PubSub for MemoryPubSub {
    fn features(&self) -> crate::Features {
        crate::Features { delayed: true, ..Default::default() }
    }

    async fn publish_delayed(&self, req: PublishRequest, delay: Duration) -> Result<()> {
        let size = req.data.len() + req.topic.len();
        let held = self.waiting_bytes.load(Ordering::Relaxed);
        if held.saturating_add(size) > self.max_backlog_bytes {
            return Err(Error::new(
                ErrorKind::ResourceExhausted,
                format!(
                    "pubsub '{}' (in-memory): {held} bytes wait; a delayed message of {size} bytes would pass \
                     maxBacklogBytes = {}",
                    self.name, self.max_backlog_bytes
                ),
            ));
        }
        static SEQ: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
        let delayed = Delayed {
            due: tokio::time::Instant::now() + delay,
            seq: SEQ.fetch_add(1, Ordering::Relaxed),
            req,
        };
        self.waiting_bytes.fetch_add(size, Ordering::Relaxed);
        self.timer()
            .send(delayed)
            .map_err(|_| Error::internal(format!("pubsub '{}': the timer stopped", self.name)))
    }

    async fn publish(&self, req: PublishRequest) -> Result<()> {
        let message = Message {
            topic: req.topic.clone(),
            data: req.data,
            metadata: req.metadata,
            broker_id: uuid::Uuid::new_v4().to_string(),
        };
        let exhausted = |what: String| Err(Error::new(ErrorKind::ResourceExhausted, what));
        let size = backlog_size(&message);
        let held = self.waiting_bytes.load(Ordering::Relaxed);
        let mut topics = self.topics.lock();
        if !topics.contains_key(&req.topic) && topics.len() >= self.max_topics {
            // Topics nobody subscribes to and nothing waits in are free to forget.
            topics.retain(|_, t| !t.groups.is_empty() || !t.backlog.is_empty());
            if topics.len() >= self.max_topics {
                return exhausted(format!(
                    "pubsub '{}' (in-memory): topic '{}' would be topic number {} (maxTopics = {})",
                    self.name,
                    clip(&req.topic),
                    topics.len() + 1,
                    self.max_topics
                ));
            }
        }
        let groups = topics.get(&req.topic).map_or(0, |t| t.groups.len()).max(1);
        // Under the topics lock, so concurrent publishers cannot both pass the check.
        if held.saturating_add(size.saturating_mul(groups)) > self.max_backlog_bytes {
            return exhausted(format!(
                "pubsub '{}' (in-memory): {held} bytes wait for subscribers; a message of {size} bytes to '{}' \
                 would pass maxBacklogBytes = {}",
                self.name,
                clip(&req.topic),
                self.max_backlog_bytes
            ));
        }
        let topic = topics.entry(req.topic.clone()).or_default();
        if topic.groups.is_empty() {
            if topic.backlog.len() >= self.max_backlog {
                return exhausted(format!(
                    "pubsub '{}' (in-memory): topic '{}' has no subscriber and {} messages waiting (maxBacklog)",
                    self.name,
                    clip(&req.topic),
                    self.max_backlog
                ));
            }
            self.waiting_bytes.fetch_add(size, Ordering::Relaxed);
            topic.backlog.push(message);
            return Ok(());
        }
        for group in topic.groups.values() {
            group.send(message.clone(), &self.waiting_bytes);
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
        // A subscription without a consumer group gets one of its own, which
        // nobody can join again: it goes away with the subscription.
        let named = consumer_group(&self.metadata, &req.metadata);
        let anonymous = named.is_none();
        let group_name = named.unwrap_or_else(|| uuid::Uuid::new_v4().to_string());
        let group = self.group(&req.topic, &group_name);
        let (topics, topic) = (self.topics.clone(), req.topic.clone());
        let waiting = self.waiting_bytes.clone();
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
                waiting.fetch_sub(backlog_size(&message), Ordering::Relaxed);
                let (handler, group, stop, waiting) =
                    (handler.clone(), group.clone(), stop.clone(), waiting.clone());
                tokio::spawn(async move {
                    let result = handler(message.clone()).await;
                    drop(permit);
                    if result.is_err() {
                        // Back to the group's queue, as a broker redelivers.
                        tokio::select! {
                            _ = stop.cancelled() => {}
                            _ = tokio::time::sleep(redeliver) => {}
                        }
                        group.send(message, &waiting);
                    }
                });
            }
            if anonymous {
                if let Some(t) = topics.lock().get_mut(&topic) {
                    t.groups.remove(&group_name);
                }
                let mut rx = group.rx.lock().await;
                while let Ok(message) = rx.try_recv() {
                    waiting.fetch_sub(backlog_size(&message), Ordering::Relaxed);
                }
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
        assert!(broker.topics.lock().get("d").is_none(), "a refused publish leaves no topic behind");
        // A subscriber takes topic a's backlog: its bytes are free again.
        let handler: Handler = Arc::new(|_| Box::pin(async { Ok(()) }));
        let req = SubscribeRequest {
            topic: "a".into(),
            metadata: Metadata::from([("consumerID".to_owned(), "g".to_owned())]),
        };
        let sub = broker.subscribe(req, handler).await.unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        while broker.publish(publish("d", 5 << 20)).await.is_err() {
            assert!(std::time::Instant::now() < deadline, "the subscriber's bytes were never freed");
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        sub.close().await;
    }

    /// A group whose subscriber left keeps its messages (as a durable queue
    /// does), but they count against maxBacklogBytes like any waiting message.
    #[tokio::test]
    async fn messages_for_a_group_without_subscribers_are_capped_too() {
        let metadata = Metadata::from([("maxBacklogBytes".to_owned(), (8 << 20).to_string())]);
        let broker = MemoryPubSub::new("mem", &metadata).unwrap();
        let handler: Handler = Arc::new(|_| Box::pin(async { Ok(()) }));
        let req = SubscribeRequest {
            topic: "t".into(),
            metadata: Metadata::from([("consumerID".to_owned(), "g".to_owned())]),
        };
        broker.subscribe(req, handler).await.unwrap().close().await;
        broker.publish(publish("t", 5 << 20)).await.unwrap();
        let err = broker.publish(publish("t", 5 << 20)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceExhausted, "{err}");
    }

    #[tokio::test]
    async fn topics_are_capped_and_empty_ones_forgotten() {
        let metadata = Metadata::from([("maxTopics".to_owned(), "2".to_owned())]);
        let broker = MemoryPubSub::new("mem", &metadata).unwrap();
        broker.publish(publish("a", 1)).await.unwrap();
        broker.publish(publish("b", 1)).await.unwrap();
        let err = broker.publish(publish("c", 1)).await.unwrap_err();
        assert_eq!(err.kind(), ErrorKind::ResourceExhausted, "{err}");
        assert!(err.to_string().contains("maxTopics = 2"), "{err}");
        // A topic with a named group keeps its place; one whose anonymous
        // subscriber left, with nothing waiting, is forgotten.
        let handler: Handler = Arc::new(|_| Box::pin(async { Ok(()) }));
        let named = SubscribeRequest {
            topic: "a".into(),
            metadata: Metadata::from([("consumerID".to_owned(), "g".to_owned())]),
        };
        broker.subscribe(named, handler.clone()).await.unwrap().close().await;
        let anonymous = SubscribeRequest { topic: "b".into(), metadata: Metadata::new() };
        broker.subscribe(anonymous, handler).await.unwrap().close().await;
        broker.publish(publish("c", 1)).await.unwrap();
        assert!(broker.publish(publish("d", 1)).await.is_err(), "a and c remain");
    }
}
