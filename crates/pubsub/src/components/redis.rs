//! `redis`: Redis Streams with consumer groups, in the layout of Dapr's and
//! Layotto's Redis pub/sub, so Go Layotto and this runtime can share topics:
//! one stream per topic, the envelope in field `data`, one group per
//! `consumerID`.
//!
//! Publishing is `XADD` and returns once Redis has answered. Each
//! subscription reads with `XREADGROUP` on its own connection under a
//! consumer name unique to it, acknowledges with `XACK` after the handler
//! succeeded, and every `redeliverInterval` claims (`XAUTOCLAIM`) entries of
//! its group that have been pending longer than `processingTimeout`: its own
//! failed ones and those a crashed runtime had taken. A new group starts at
//! the beginning of the stream, so messages published before the first
//! subscription are delivered too.
//!
//! Metadata: the connection keys of every Redis component (`redisHost`,
//! `redisPassword`, …), `consumerID`, `concurrency` (handlers at once per
//! subscription, default 16), `processingTimeout` (default 60s),
//! `redeliverInterval` (default 15s; `0` turns reclaiming off),
//! `maxLenApprox` (trim streams to about this many entries; off by default),
//! `delayQueueKey` (the keys of delayed messages, default `layotto-delay`).
//!
//! Delayed messages (the DelayQueue API) wait in a sorted set scored by
//! their due time on Redis's clock; a script run by every runtime sharing
//! the Redis moves each due one into its topic's stream exactly once, so a
//! runtime restart loses nothing and two runtimes do not deliver twice.
//!
//! Redis Cluster (`redisType: cluster`): streams and groups work as on one
//! node. A script cannot write a topic's stream on another node, so delayed
//! messages move in two steps: a script leases the due ones (30 s), the
//! runtime adds them to their streams, then removes them; a runtime that
//! dies between the steps leaves them to be moved again when the lease ends
//! (at least once, like every delivery here). Their keys carry a hash tag,
//! `{layotto-delay}||queue`, so both live on one node.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, Health, Metadata, Result, settings};
use layotto_redis::fred::prelude::{ClientLike, StreamsInterface};
use layotto_redis::{RedisConn, RedisSettings, fred};
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::sync::{Semaphore, mpsc};
use tokio_util::sync::CancellationToken;

use crate::{Handler, Message, PubSub, PublishRequest, SubscribeRequest, Subscription, consumer_group};

pub struct RedisStreams {
    name: String,
    metadata: Metadata,
    conn: Arc<RedisConn>,
    max_len: Option<i64>,
    delay: Arc<DelayQueue>,
    /// Stops the mover of delayed messages with the component.
    stop: CancellationToken,
}

/// Delayed messages: a sorted set of `<id>|<topic>` scored by their due
/// time (Redis's clock) and a hash of their data, moved into the topic's
/// stream by a script that every runtime sharing the Redis runs: one move
/// per message, whoever runs it first; after a restart the next runtime
/// moves what was scheduled before.
struct DelayQueue {
    queue: String,
    data: String,
    schedule: fred::types::scripts::Script,
    mover: fred::types::scripts::Script,
    lease: fred::types::scripts::Script,
    done: fred::types::scripts::Script,
    /// Wakes the mover when a message was scheduled here.
    scheduled: tokio::sync::Notify,
}

/// KEYS: queue, data. ARGV: id, topic, delay in µs, data. Scores are
/// microseconds on Redis's clock (exact in a double until the year 2255).
const SCHEDULE_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
redis.call('HSET', KEYS[2], ARGV[1], ARGV[4])
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[3]), ARGV[1] .. '|' .. ARGV[2])
return 1
"#;

/// KEYS: queue, data. ARGV: most to move. Returns {moved, µs until the next is due or -1}.
const MOVE_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, member in ipairs(due) do
  local sep = string.find(member, '|', 1, true)
  local id = string.sub(member, 1, sep - 1)
  local topic = string.sub(member, sep + 1)
  local data = redis.call('HGET', KEYS[2], id)
  if data then
    redis.call('XADD', topic, '*', 'data', data)
  end
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[1], member)
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if next[2] then
  return {#due, tonumber(next[2]) - now}
end
return {#due, -1}
"#;

/// Redis Cluster's first step. KEYS: queue, data. ARGV: most to lease,
/// lease in µs. Returns {µs until the next is due or -1, member, data, …}.
const LEASE_SCRIPT: &str = r#"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {-1}
for _, member in ipairs(due) do
  local sep = string.find(member, '|', 1, true)
  local data = redis.call('HGET', KEYS[2], string.sub(member, 1, sep - 1))
  if data then
    redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), member)
    table.insert(out, member)
    table.insert(out, data)
  else
    redis.call('ZREM', KEYS[1], member)
  end
end
local next = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
if next[2] then out[1] = tonumber(next[2]) - now end
return out
"#;

/// Redis Cluster's last step, once the messages are in their streams.
/// KEYS: queue, data. ARGV: member, id, member, id, ….
const DONE_SCRIPT: &str = r#"
for i = 1, #ARGV, 2 do
  redis.call('ZREM', KEYS[1], ARGV[i])
  redis.call('HDEL', KEYS[2], ARGV[i + 1])
end
return #ARGV / 2
"#;

/// Delayed messages moved per script run.
const MOVE_BATCH: i64 = 200;

/// How long a runtime in a Redis Cluster has to move the messages it leased.
const MOVE_LEASE: Duration = Duration::from_secs(30);

impl RedisStreams {
    pub const TYPE: &'static str = "redis";

    /// The registry constructor.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn PubSub>> {
        let redis: RedisSettings = ctx.settings()?;
        let streams: StreamSettings = ctx.settings()?;
        Ok(Arc::new(Self::with_settings(&ctx.name, &ctx.metadata, &redis, &streams).await?))
    }

    pub async fn connect(name: &str, metadata: &Metadata) -> Result<Self> {
        let component = format!("pubsub '{name}' (redis)");
        let redis = settings::parse(&component, metadata)?;
        let streams = settings::parse(&component, metadata)?;
        Self::with_settings(name, metadata, &redis, &streams).await
    }

    async fn with_settings(
        name: &str,
        metadata: &Metadata,
        redis: &RedisSettings,
        streams: &StreamSettings,
    ) -> Result<Self> {
        let component = format!("pubsub '{name}' (redis)");
        let conn = Arc::new(RedisConn::connect(&component, redis, 1).await?);
        let max_len = streams.max_len_approx.filter(|n| *n > 0);
        let prefix = streams
            .delay_queue_key
            .clone()
            .filter(|k| !k.is_empty())
            .unwrap_or_else(|| "layotto-delay".into());
        // In a cluster both keys must live in one slot.
        let tag = if conn.is_cluster() { format!("{{{prefix}}}") } else { prefix };
        let delay = Arc::new(DelayQueue {
            queue: format!("{tag}||queue"),
            data: format!("{tag}||data"),
            schedule: fred::types::scripts::Script::from_lua(SCHEDULE_SCRIPT),
            mover: fred::types::scripts::Script::from_lua(MOVE_SCRIPT),
            lease: fred::types::scripts::Script::from_lua(LEASE_SCRIPT),
            done: fred::types::scripts::Script::from_lua(DONE_SCRIPT),
            scheduled: tokio::sync::Notify::new(),
        });
        let stop = CancellationToken::new();
        tokio::spawn(move_delayed(component, conn.clone(), delay.clone(), stop.clone()));
        Ok(Self { name: name.to_owned(), metadata: metadata.clone(), conn, max_len, delay, stop })
    }

    fn component(&self, topic: &str) -> String {
        format!("pubsub '{}' (redis): topic '{topic}'", self.name)
    }
}

struct Settings {
    concurrency: usize,
    processing_timeout: Duration,
    redeliver_interval: Duration,
}

/// Stream settings, per component and overridden per subscription.
#[derive(Debug, Default, Deserialize)]
struct StreamSettings {
    #[serde(rename = "consumerID", default)]
    _consumer_id: Option<String>,
    #[serde(default)]
    concurrency: Option<usize>,
    #[serde(rename = "processingTimeout", default, deserialize_with = "settings::duration")]
    processing_timeout: Option<Duration>,
    /// `0` turns reclaiming off.
    #[serde(rename = "redeliverInterval", default, deserialize_with = "settings::seconds")]
    redeliver_interval: Option<Duration>,
    #[serde(rename = "maxLenApprox", default)]
    max_len_approx: Option<i64>,
    /// Names the keys of delayed messages (default `layotto-delay`).
    #[serde(rename = "delayQueueKey", default)]
    delay_queue_key: Option<String>,
}

impl Drop for RedisStreams {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// Moves due delayed messages into their streams, sleeping until the next
/// is due (at most a second, so messages scheduled by other runtimes are
/// found), woken early when this runtime schedules one.
async fn move_delayed(
    component: String,
    conn: Arc<RedisConn>,
    delay: Arc<DelayQueue>,
    stop: CancellationToken,
) {
    let mut failing = false;
    loop {
        let moved = match conn.client() {
            Ok(client) if conn.is_cluster() => move_leased(client, &delay).await,
            Ok(client) => {
                let keys = vec![delay.queue.clone(), delay.data.clone()];
                delay
                    .mover
                    .evalsha_with_reload::<Vec<i64>, _, _>(client, keys, vec![MOVE_BATCH])
                    .await
                    .and_then(|reply| match reply.as_slice() {
                        [moved, next] => Ok((*moved, *next)),
                        _ => Err(fred::error::Error::new(fred::error::ErrorKind::Parse, "unexpected reply")),
                    })
            }
            Err(_) => {
                wait_or_stop(&stop, &delay, Duration::from_millis(500)).await;
                if stop.is_cancelled() {
                    return;
                }
                continue;
            }
        };
        let wait = match moved {
            Ok((moved, _)) if moved >= MOVE_BATCH => Duration::ZERO,
            Ok((_, next)) => {
                failing = false;
                if next >= 0 {
                    Duration::from_micros((next as u64).min(1_000_000))
                } else {
                    Duration::from_secs(1)
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!(component = %component, error = %e, "cannot move delayed messages; retrying");
                    failing = true;
                }
                Duration::from_millis(500)
            }
        };
        wait_or_stop(&stop, &delay, wait).await;
        if stop.is_cancelled() {
            return;
        }
    }
}

async fn wait_or_stop(stop: &CancellationToken, delay: &DelayQueue, wait: Duration) {
    tokio::select! {
        _ = stop.cancelled() => {}
        _ = tokio::time::sleep(wait) => {}
        _ = delay.scheduled.notified() => {}
    }
}

/// Redis Cluster: lease the due messages, add each to its stream, then
/// remove it. Returns (moved, µs until the next is due or -1).
async fn move_leased(
    client: &fred::prelude::Client,
    delay: &DelayQueue,
) -> std::result::Result<(i64, i64), fred::error::Error> {
    let keys = vec![delay.queue.clone(), delay.data.clone()];
    let lease = MOVE_LEASE.as_micros() as i64;
    let reply: Vec<fred::types::Value> =
        delay.lease.evalsha_with_reload(client, keys.clone(), vec![MOVE_BATCH, lease]).await?;
    let mut reply = reply.into_iter();
    let next = reply.next().and_then(|v| v.as_i64()).unwrap_or(-1);
    let mut leased = Vec::new();
    while let (Some(member), Some(data)) = (reply.next(), reply.next()) {
        let Some(member) = member.as_string() else { continue };
        if member.contains('|') {
            leased.push((member, data.into_owned_bytes().unwrap_or_default()));
        }
    }
    // The adds go out together (fred pipelines them), so a second's worth of
    // due messages costs about one round trip, not one per message.
    let added = futures::future::join_all(leased.iter().map(|(member, data)| async move {
        let topic = member.split_once('|').map_or("", |(_, topic)| topic);
        let added: std::result::Result<String, _> =
            client.xadd(topic, false, None, "*", vec![("data", data.clone())]).await;
        added.map(|_| member)
    }))
    .await;
    let mut done: Vec<fred::types::Value> = Vec::with_capacity(added.len() * 2);
    let mut failed = None;
    for result in added {
        match result {
            Ok(member) => {
                let id = member.split_once('|').map_or("", |(id, _)| id);
                done.push(member.as_str().into());
                done.push(id.into());
            }
            Err(e) => failed = Some(e),
        }
    }
    let moved = (done.len() / 2) as i64;
    if !done.is_empty() {
        let _: i64 = delay.done.evalsha_with_reload(client, keys, done).await?;
    }
    // What failed stays leased and is moved again when its lease ends.
    if let Some(e) = failed {
        return Err(e);
    }
    Ok((moved, next))
}

fn settings(component: &str, layers: [&Metadata; 2]) -> Result<Settings> {
    let mut s = Settings {
        concurrency: 16,
        processing_timeout: Duration::from_secs(60),
        redeliver_interval: Duration::from_secs(15),
    };
    for meta in layers {
        let layer: StreamSettings = settings::parse_request(component, meta)?;
        if let Some(n) = layer.concurrency {
            s.concurrency = n.max(1);
        }
        if let Some(d) = layer.processing_timeout {
            s.processing_timeout = d;
        }
        if let Some(d) = layer.redeliver_interval {
            s.redeliver_interval = d;
        }
    }
    Ok(s)
}

#[async_trait]
impl PubSub for RedisStreams {
    fn features(&self) -> crate::Features {
        crate::Features { delayed: true, ..Default::default() }
    }

    async fn publish_delayed(&self, req: PublishRequest, delay: Duration) -> Result<()> {
        let client = self.conn.client()?;
        let id = uuid::Uuid::new_v4().simple().to_string();
        let keys = vec![self.delay.queue.clone(), self.delay.data.clone()];
        let micros = i64::try_from(delay.as_micros()).unwrap_or(i64::MAX);
        let args: Vec<fred::types::Value> = vec![
            id.into(),
            req.topic.as_str().into(),
            micros.into(),
            fred::types::Value::Bytes(req.data.into()),
        ];
        let _: i64 = self.delay.schedule.evalsha_with_reload(client, keys, args).await.map_err(|e| {
            self.conn.error(&format!("topic '{}': scheduling a delayed message", req.topic), e)
        })?;
        if delay.is_zero() {
            self.delay.scheduled.notify_one();
        }
        Ok(())
    }

    async fn publish(&self, req: PublishRequest) -> Result<()> {
        let client = self.conn.client()?;
        let cap = match self.max_len {
            Some(n) => fred::types::streams::XCap::try_from(("MAXLEN", "~", n))
                .map_err(|e| self.conn.error(&format!("topic '{}'", req.topic), e))?,
            None => None::<()>.into(),
        };
        let _: String = client
            .xadd(req.topic.as_str(), false, cap, "*", vec![("data", req.data)])
            .await
            .map_err(|e| self.conn.error(&format!("topic '{}'", req.topic), e))?;
        Ok(())
    }

    async fn subscribe(&self, req: SubscribeRequest, handler: Handler) -> Result<Subscription> {
        let component = self.component(&req.topic);
        let settings = settings(&component, [&self.metadata, &req.metadata])?;
        let group = consumer_group(&self.metadata, &req.metadata).ok_or_else(|| {
            Error::invalid_argument(format!("{component}: metadata 'consumerID' is required"))
        })?;
        let consumer = format!("{group}-{}", &uuid::Uuid::new_v4().simple().to_string()[..12]);
        let client = self.conn.client()?;
        match client.xgroup_create::<(), _, _, _>(req.topic.as_str(), group.as_str(), "0", true).await {
            Ok(()) => {}
            Err(e) if e.details().contains("BUSYGROUP") => {}
            Err(e) => {
                return Err(self.conn.error(&format!("topic '{}': creating group '{group}'", req.topic), e));
            }
        }
        // Blocking reads get a connection of their own.
        let reader = self.conn.pool().next().clone_new();
        reader.init().await.map_err(|e| self.conn.error("opening a reader connection", e))?;
        let cancel = CancellationToken::new();
        let consumer_loop = ConsumerLoop {
            component,
            topic: req.topic.clone(),
            group: group.clone(),
            consumer,
            conn: self.conn.clone(),
            reader,
            handler,
            permits: Arc::new(Semaphore::new(settings.concurrency)),
            in_flight: Arc::new(Mutex::new(HashSet::new())),
            cancel: cancel.clone(),
            settings,
            acks: spawn_acker(
                self.conn.clone(),
                self.component(&req.topic),
                req.topic.clone(),
                group.clone(),
            ),
        };
        let task = tokio::spawn(consumer_loop.run());
        Ok(Subscription::new(cancel, task))
    }

    async fn health(&self) -> Health {
        self.conn.health().await
    }
}

struct ConsumerLoop {
    component: String,
    topic: String,
    group: String,
    consumer: String,
    conn: Arc<RedisConn>,
    reader: fred::prelude::Client,
    handler: Handler,
    permits: Arc<Semaphore>,
    /// Entry ids being handled here, so a reclaim does not start them twice.
    in_flight: Arc<Mutex<HashSet<String>>>,
    cancel: CancellationToken,
    settings: Settings,
    /// Ids of handled entries, acknowledged in batches by the acker task.
    acks: mpsc::UnboundedSender<String>,
}

/// Acknowledges handled entries with one `XACK` per batch instead of one
/// per message. It ends when the subscription's last sender is dropped. An
/// ack that fails leaves the entry pending, so it is delivered again.
fn spawn_acker(
    conn: Arc<RedisConn>,
    component: String,
    topic: String,
    group: String,
) -> mpsc::UnboundedSender<String> {
    let (tx, mut rx) = mpsc::unbounded_channel::<String>();
    tokio::spawn(async move {
        while let Some(first) = rx.recv().await {
            let mut ids = vec![first];
            while ids.len() < 512 {
                match rx.try_recv() {
                    Ok(id) => ids.push(id),
                    Err(_) => break,
                }
            }
            let acked: Result<i64, _> = match conn.client() {
                Ok(client) => client.xack(topic.as_str(), group.as_str(), ids).await,
                Err(e) => {
                    tracing::warn!(%component, error = %e, "cannot acknowledge; the messages will be delivered again");
                    continue;
                }
            };
            if let Err(e) = acked {
                tracing::warn!(%component, error = %e, "XACK failed; the messages will be delivered again");
            }
        }
    });
    tx
}

/// Stream entries as delivery needs them: (entry id, its `data` field).
type Entries = Vec<(String, Vec<u8>)>;

/// The entries of an `XREADGROUP` reply on one stream, walked as they come
/// (RESP2 arrays or RESP3 maps) rather than converted into maps per entry.
fn read_entries(reply: fred::types::Value) -> Entries {
    use fred::types::Value;
    let lists: Vec<Value> = match reply {
        // [[stream, entries], …]
        Value::Array(streams) => streams
            .into_iter()
            .filter_map(|stream| match stream {
                Value::Array(mut pair) if pair.len() == 2 => pair.pop(),
                _ => None,
            })
            .collect(),
        Value::Map(streams) => streams.inner().into_values().collect(),
        // Nil: the blocking read timed out.
        _ => Vec::new(),
    };
    let mut entries = Vec::new();
    for list in lists {
        let Value::Array(list) = list else { continue };
        entries.reserve(list.len());
        for entry in list {
            // [id, [field, value, …]]
            let Value::Array(mut entry) = entry else { continue };
            if entry.len() != 2 {
                continue;
            }
            let fields = entry.pop();
            let Some(id) = entry.pop().and_then(|id| id.as_str().map(|id| id.into_owned())) else { continue };
            let data = match fields {
                Some(Value::Array(fields)) => data_field(fields.into_iter()),
                Some(Value::Map(fields)) => {
                    data_field(fields.inner().into_iter().flat_map(|(k, v)| [Value::from(k), v]))
                }
                _ => None,
            };
            entries.push((id, data.unwrap_or_default()));
        }
    }
    entries
}

/// The value of field `data` in alternating field, value items.
fn data_field(mut fields: impl Iterator<Item = fred::types::Value>) -> Option<Vec<u8>> {
    while let (Some(field), Some(value)) = (fields.next(), fields.next()) {
        if field.as_bytes() == Some(b"data") {
            return value.into_owned_bytes();
        }
    }
    None
}

impl ConsumerLoop {
    async fn run(self) {
        let this = Arc::new(self);
        let reclaim =
            (this.settings.redeliver_interval > Duration::ZERO).then(|| tokio::spawn(this.clone().reclaim()));
        let mut warned = false;
        while !this.cancel.is_cancelled() {
            // Read in batches: when busy, wait until a quarter of the slots are
            // free rather than paying one XREADGROUP round trip per message.
            let free = this.permits.available_permits();
            let batch = (this.settings.concurrency / 4).max(1);
            if free < batch {
                tokio::select! {
                    _ = this.cancel.cancelled() => break,
                    p = this.permits.acquire_many(batch as u32) => drop(p),
                }
                continue;
            }
            let read: Result<fred::types::Value, _> = this
                .reader
                .xreadgroup(
                    this.group.as_str(),
                    this.consumer.as_str(),
                    Some(free.min(256) as u64),
                    Some(1000),
                    false,
                    this.topic.as_str(),
                    ">",
                )
                .await;
            match read {
                Ok(reply) => {
                    if warned {
                        tracing::info!(component = %this.component, "reading from Redis again");
                        warned = false;
                    }
                    this.dispatch(read_entries(reply)).await;
                }
                Err(e) if e.details().contains("NOGROUP") => {
                    // The stream was deleted: recreate it and the group.
                    let _ = this
                        .reader
                        .xgroup_create::<(), _, _, _>(this.topic.as_str(), this.group.as_str(), "0", true)
                        .await;
                }
                Err(e) => {
                    if !warned {
                        tracing::warn!(component = %this.component, error = %e, "cannot read from Redis; retrying until it is back");
                        warned = true;
                    }
                    tokio::select! {
                        _ = this.cancel.cancelled() => break,
                        _ = tokio::time::sleep(Duration::from_millis(250)) => {}
                    }
                }
            }
        }
        if let Some(reclaim) = reclaim {
            reclaim.abort();
        }
        let _ = this.reader.quit().await;
    }

    async fn dispatch(self: &Arc<Self>, entries: Entries) {
        for (id, data) in entries {
            if !self.in_flight.lock().insert(id.clone()) {
                continue;
            }
            let Ok(permit) = self.permits.clone().acquire_owned().await else { return };
            let message =
                Message { topic: self.topic.clone(), data, metadata: Metadata::new(), broker_id: id.clone() };
            let this = self.clone();
            tokio::spawn(async move {
                if (this.handler)(message).await.is_ok() {
                    let _ = this.acks.send(id.clone());
                }
                this.in_flight.lock().remove(&id);
                drop(permit);
            });
        }
    }

    /// Claims entries idle for longer than `processingTimeout`.
    async fn reclaim(self: Arc<Self>) {
        let min_idle = self.settings.processing_timeout.as_millis() as u64;
        loop {
            tokio::time::sleep(self.settings.redeliver_interval).await;
            let mut cursor = "0-0".to_owned();
            loop {
                let Ok(client) = self.conn.client() else { break };
                type Claimed = Vec<(String, std::collections::HashMap<String, Vec<u8>>)>;
                let claimed: Result<(String, Claimed), _> = client
                    .xautoclaim_values(
                        self.topic.as_str(),
                        self.group.as_str(),
                        self.consumer.as_str(),
                        min_idle,
                        cursor.as_str(),
                        Some(100),
                        false,
                    )
                    .await;
                match claimed {
                    Ok((next, entries)) => {
                        if !entries.is_empty() {
                            tracing::debug!(component = %self.component, count = entries.len(), "redelivering pending messages");
                        }
                        let entries = entries
                            .into_iter()
                            .map(|(id, mut fields)| (id, fields.remove("data").unwrap_or_default()))
                            .collect();
                        self.dispatch(entries).await;
                        if next == "0-0" {
                            break;
                        }
                        cursor = next;
                    }
                    Err(e) => {
                        tracing::debug!(component = %self.component, error = %e, "XAUTOCLAIM failed");
                        break;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::expect_used)]
    use super::*;
    use fred::types::Value;

    fn s(text: &str) -> Value {
        Value::String(text.into())
    }

    #[test]
    fn read_entries_takes_ids_and_data_from_both_reply_shapes() {
        let entry = |id: &str, fields: Vec<Value>| Value::Array(vec![s(id), Value::Array(fields)]);
        let resp2 = Value::Array(vec![Value::Array(vec![
            s("orders"),
            Value::Array(vec![
                entry("1-0", vec![s("data"), s("{\"a\":1}")]),
                entry("1-1", vec![s("other"), s("x"), s("data"), Value::Bytes(vec![0xff, 0].into())]),
                // A deleted entry still pending: no fields.
                Value::Array(vec![s("1-2"), Value::Null]),
            ]),
        ])]);
        assert_eq!(
            read_entries(resp2),
            vec![
                ("1-0".to_owned(), b"{\"a\":1}".to_vec()),
                ("1-1".to_owned(), vec![0xff, 0]),
                ("1-2".to_owned(), Vec::new()),
            ]
        );
        let mut streams = std::collections::HashMap::new();
        streams.insert(
            fred::types::Key::from("orders"),
            Value::Array(vec![entry("2-0", vec![s("data"), s("hello")])]),
        );
        let resp3 = Value::Map(fred::types::Map::try_from(streams).expect("a map"));
        assert_eq!(read_entries(resp3), vec![("2-0".to_owned(), b"hello".to_vec())]);
        // A blocking read that timed out.
        assert!(read_entries(Value::Null).is_empty());
    }
}
