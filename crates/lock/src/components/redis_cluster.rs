//! `redis_cluster`: Layotto's Redlock over independent Redis nodes
//! (`redisHosts`), each holding the lock as the standalone `redis` lock does
//! (the stored key holding the owner, with the lease as its TTL).
//!
//! - try_lock: `SET key owner NX PX` on every node at once; acquired when a
//!   strict majority said yes and lease is left after gathering it, less the
//!   clock drift Redlock allows for (1% of the lease and 2 ms). Layotto asks
//!   that gathering take under a tenth of the lease, which a short lease on a
//!   busy machine misses although the lock is sound. Otherwise what was taken
//!   is released again. When nodes that failed could have made
//!   the majority, the answer is UNAVAILABLE rather than "not acquired".
//! - unlock / keep_alive: the compare-and-delete / compare-and-extend script
//!   on every node; the status a majority of nodes gives wins.
//!
//! A node that comes back empty cannot hand the lock to a second owner: the
//! first owner still holds a majority of the others.
//!
//! Metadata (Layotto's keys): `redisHosts` (comma-separated `host:port`,
//! required, at least one), and what the `redis` lock takes for each node
//! (`redisPassword`, `redisDB`/`db`, `enableTLS`, `dialTimeout`, `timeout`,
//! `maxRetryBackoff`); `maxRetries` and `concurrency` are accepted.

use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use fred::prelude::{Expiration, KeysInterface, SetOptions, Value};
use fred::types::scripts::Script;
use futures::future::join_all;
use layotto_core::{ComponentContext, Error, Health, Result};
use layotto_redis::{RedisConn, RedisSettings, fred};
use serde::Deserialize;

use crate::{KeepAliveRequest, LockStatus, LockStore, TryLockRequest, UnlockRequest};

// Replies 0 = success, 1 = no such lock, 2 = another owner's.
const UNLOCK_SCRIPT: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return 1 end
if v ~= ARGV[1] then return 2 end
redis.call('DEL', KEYS[1])
return 0
"#;

const KEEP_ALIVE_SCRIPT: &str = r#"
local v = redis.call('GET', KEYS[1])
if not v then return 1 end
if v ~= ARGV[1] then return 2 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 0
"#;

/// Layotto's Redlock keys besides the per-node ones.
#[derive(Debug, Default, Deserialize)]
struct RedlockSettings {
    #[serde(rename = "redisHosts", default)]
    hosts: Option<String>,
    #[serde(rename = "maxRetries", default)]
    _max_retries: Option<String>,
    #[serde(default)]
    _concurrency: Option<String>,
}

pub struct RedisClusterLock {
    component: String,
    nodes: Vec<RedisConn>,
    unlock_script: Script,
    keep_alive_script: Script,
}

/// What one node said.
enum Reply<T> {
    Answer(T),
    Failed(Error),
}

impl RedisClusterLock {
    pub const TYPE: &'static str = "redis_cluster";

    /// The registry constructor: connects to every node, failing with a
    /// message naming the component and the node that cannot be reached.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn LockStore>> {
        let component = format!("lock store '{}' (redis_cluster)", ctx.name);
        let redlock: RedlockSettings = ctx.settings()?;
        let node: RedisSettings = ctx.settings()?;
        let hosts: Vec<String> = redlock
            .hosts
            .as_deref()
            .unwrap_or_default()
            .split(',')
            .map(str::trim)
            .filter(|h| !h.is_empty())
            .map(str::to_owned)
            .collect();
        if hosts.is_empty() {
            return Err(Error::config(format!(
                "{component}: metadata 'redisHosts' is required: the nodes, comma-separated host:port"
            )));
        }
        let mut nodes = Vec::with_capacity(hosts.len());
        for host in hosts {
            // Redlock's nodes are independent servers, each reached alone.
            let settings = RedisSettings { host: Some(host), hosts: None, redis_type: None, ..node.clone() };
            nodes.push(RedisConn::connect(&component, &settings, 1).await?);
        }
        Ok(Arc::new(Self {
            component,
            nodes,
            unlock_script: Script::from_lua(UNLOCK_SCRIPT),
            keep_alive_script: Script::from_lua(KEEP_ALIVE_SCRIPT),
        }))
    }

    fn majority(&self) -> usize {
        self.nodes.len() / 2 + 1
    }

    /// Runs `script` on every node.
    async fn on_every_node(&self, script: &Script, key: &str, args: Vec<Value>) -> Vec<Reply<LockStatus>> {
        let calls = self.nodes.iter().map(|node| {
            let args = args.clone();
            async move {
                let client = match node.client() {
                    Ok(client) => client,
                    Err(e) => return Reply::Failed(e),
                };
                match script.evalsha_with_reload::<i64, _, _>(client, vec![key.to_owned()], args).await {
                    Ok(0) => Reply::Answer(LockStatus::Success),
                    Ok(1) => Reply::Answer(LockStatus::LockUnexist),
                    Ok(_) => Reply::Answer(LockStatus::LockBelongToOthers),
                    Err(e) => Reply::Failed(node.error(&format!("lock '{key}'"), e)),
                }
            }
        });
        join_all(calls).await
    }

    /// The status a majority gave; else the first failure when failures
    /// could have changed the outcome; else "no such lock".
    fn decide(&self, replies: Vec<Reply<LockStatus>>) -> Result<LockStatus> {
        let count = |status: LockStatus| {
            replies.iter().filter(|r| matches!(r, Reply::Answer(s) if *s == status)).count()
        };
        for status in [LockStatus::Success, LockStatus::LockBelongToOthers, LockStatus::LockUnexist] {
            if count(status) >= self.majority() {
                return Ok(status);
            }
        }
        let failed: Vec<&Error> =
            replies.iter().filter_map(|r| if let Reply::Failed(e) = r { Some(e) } else { None }).collect();
        if let Some(first) = failed.first() {
            return Err(self.unavailable(failed.len(), first));
        }
        // Split answers (some nodes lost the key to expiry): the owner's if any node says so.
        Ok(if count(LockStatus::Success) > 0 { LockStatus::Success } else { LockStatus::LockUnexist })
    }

    fn unavailable(&self, failed: usize, first: &Error) -> Error {
        Error::unavailable(format!(
            "{}: {failed} of {} Redis nodes did not answer, so no majority ({}) could be formed; first: {first}",
            self.component,
            self.nodes.len(),
            self.majority()
        ))
    }
}

/// A lease in whole milliseconds, at least one.
fn millis(expire: Duration) -> i64 {
    i64::try_from(expire.as_millis()).unwrap_or(i64::MAX).max(1)
}

#[async_trait]
impl LockStore for RedisClusterLock {
    async fn try_lock(&self, req: TryLockRequest) -> Result<bool> {
        let started = Instant::now();
        let key = req.resource_id.as_str();
        let owner = req.lock_owner.as_str();
        let calls = self.nodes.iter().map(|node| async move {
            let client = match node.client() {
                Ok(client) => client,
                Err(e) => return Reply::Failed(e),
            };
            let set: std::result::Result<Option<String>, _> = client
                .set(key, owner, Some(Expiration::PX(millis(req.expire))), Some(SetOptions::NX), false)
                .await;
            match set {
                Ok(reply) => Reply::Answer(reply.is_some()),
                Err(e) => Reply::Failed(node.error(&format!("lock '{key}'"), e)),
            }
        });
        let replies = join_all(calls).await;
        let acquired = replies.iter().filter(|r| matches!(r, Reply::Answer(true))).count();
        let refused = replies.iter().filter(|r| matches!(r, Reply::Answer(false))).count();
        let drift = req.expire / 100 + Duration::from_millis(2);
        if acquired >= self.majority() && started.elapsed() + drift < req.expire {
            return Ok(true);
        }
        if acquired > 0 {
            // Give back what was taken; a node that misses this lets it expire.
            let _ = self.on_every_node(&self.unlock_script, key, vec![Value::from(owner)]).await;
        }
        if acquired >= self.majority() {
            return Err(Error::unavailable(format!(
                "{}: lock '{key}': gathering a majority took {:?}, which leaves nothing of the lease {:?}",
                self.component,
                started.elapsed(),
                req.expire
            )));
        }
        let failed: Vec<&Error> =
            replies.iter().filter_map(|r| if let Reply::Failed(e) = r { Some(e) } else { None }).collect();
        match failed.first() {
            // The nodes that failed could have made the majority: we cannot tell.
            Some(first) if refused < self.majority() => Err(self.unavailable(failed.len(), first)),
            _ => Ok(false),
        }
    }

    async fn unlock(&self, req: UnlockRequest) -> Result<LockStatus> {
        let replies = self
            .on_every_node(&self.unlock_script, &req.resource_id, vec![Value::from(req.lock_owner)])
            .await;
        self.decide(replies)
    }

    async fn keep_alive(&self, req: KeepAliveRequest) -> Result<LockStatus> {
        let args = vec![Value::from(req.lock_owner), Value::from(millis(req.expire))];
        let replies = self.on_every_node(&self.keep_alive_script, &req.resource_id, args).await;
        self.decide(replies)
    }

    async fn health(&self) -> Health {
        let healths = join_all(self.nodes.iter().map(RedisConn::health)).await;
        let up = healths.iter().filter(|h| h.is_up()).count();
        if up >= self.majority() {
            Health::up()
        } else {
            let down: Vec<String> = healths.iter().filter(|h| !h.is_up()).map(|h| format!("{h:?}")).collect();
            Health::down(format!(
                "{} of {} Redis nodes up, {} needed: {}",
                up,
                self.nodes.len(),
                self.majority(),
                down.join("; ")
            ))
        }
    }
}
