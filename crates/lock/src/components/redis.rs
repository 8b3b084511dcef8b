//! `redis`: locks on a standalone Redis, in Go Layotto's storage layout, so
//! both runtimes sharing one Redis see each other's locks.
//!
//! Storage: one string key per lock, the stored key (`lock|||<prefix>||<id>`)
//! holding the owner, with the lease as the key's TTL.
//! - try_lock: `SET key owner NX PX <ms>` (Layotto uses `EX <s>`; milliseconds
//!   keep sub-second leases exact and are the same key and value);
//! - unlock: a Lua compare-and-delete (missing → `LockUnexist`, another owner →
//!   `LockBelongToOthers`, else `DEL` → `Success`);
//! - keep_alive: the same compare, then `PEXPIRE`.
//!
//! Metadata (Layotto's keys): `redisHost` (`host:port` or a `redis://` URL,
//! default `localhost:6379`), `redisUsername`, `redisPassword`, `redisDB`
//! (alias `db`), `enableTLS`, `dialTimeout` and `timeout` (durations such as
//! `5s`), `maxRetryBackoff`, `poolSize` (default 1). A Redis that is down makes
//! calls fail with `Unavailable`, never a false "not acquired".

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use fred::prelude::{Error as FredError, Expiration, KeysInterface, SetOptions, Value};
use fred::types::scripts::Script;
use layotto_core::{ComponentContext, Error, Health, Metadata, Result, settings};
use layotto_redis::{RedisConn, RedisSettings, fred};

use crate::{KeepAliveRequest, LockStatus, LockStore, TryLockRequest, UnlockRequest};

// Replies 0 = success, 1 = lock does not exist, 2 = belongs to another owner.
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

const DEFAULT_POOL_SIZE: usize = 1;

pub struct RedisLock {
    component: String,
    conn: RedisConn,
    unlock_script: Script,
    keep_alive_script: Script,
}

impl RedisLock {
    pub const TYPE: &'static str = "redis";

    /// The registry constructor: connects, failing with a message naming the
    /// component and the address when Redis cannot be reached.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn LockStore>> {
        Ok(Arc::new(Self::with_settings(&ctx.name, &ctx.settings()?).await?))
    }

    pub async fn connect(name: &str, metadata: &Metadata) -> Result<Self> {
        let component = format!("lock store '{name}' (redis)");
        Self::with_settings(name, &settings::parse(&component, metadata)?).await
    }

    async fn with_settings(name: &str, redis: &RedisSettings) -> Result<Self> {
        let component = format!("lock store '{name}' (redis)");
        let conn = RedisConn::connect(&component, redis, DEFAULT_POOL_SIZE).await?;
        Ok(Self {
            component,
            conn,
            unlock_script: Script::from_lua(UNLOCK_SCRIPT),
            keep_alive_script: Script::from_lua(KEEP_ALIVE_SCRIPT),
        })
    }

    fn error(&self, key: &str, e: FredError) -> Error {
        self.conn.error(&format!("lock '{key}'"), e)
    }

    async fn compare_script(&self, script: &Script, key: &str, args: Vec<Value>) -> Result<LockStatus> {
        let client = self.conn.client()?;
        let reply: i64 = script
            .evalsha_with_reload(client, vec![key.to_owned()], args)
            .await
            .map_err(|e| self.error(key, e))?;
        match reply {
            0 => Ok(LockStatus::Success),
            1 => Ok(LockStatus::LockUnexist),
            2 => Ok(LockStatus::LockBelongToOthers),
            other => Err(Error::internal(format!(
                "{}: lock '{key}': unexpected script reply {other}",
                self.component
            ))),
        }
    }
}

/// A lease in whole milliseconds, at least one.
fn millis(expire: Duration) -> i64 {
    i64::try_from(expire.as_millis()).unwrap_or(i64::MAX).max(1)
}

#[async_trait]
impl LockStore for RedisLock {
    async fn try_lock(&self, req: TryLockRequest) -> Result<bool> {
        let client = self.conn.client()?;
        let reply: Option<String> = client
            .set(
                req.resource_id.as_str(),
                req.lock_owner.as_str(),
                Some(Expiration::PX(millis(req.expire))),
                Some(SetOptions::NX),
                false,
            )
            .await
            .map_err(|e| self.error(&req.resource_id, e))?;
        Ok(reply.is_some())
    }

    async fn unlock(&self, req: UnlockRequest) -> Result<LockStatus> {
        self.compare_script(&self.unlock_script, &req.resource_id, vec![Value::from(req.lock_owner)]).await
    }

    async fn keep_alive(&self, req: KeepAliveRequest) -> Result<LockStatus> {
        let args = vec![Value::from(req.lock_owner), Value::from(millis(req.expire))];
        self.compare_script(&self.keep_alive_script, &req.resource_id, args).await
    }

    async fn health(&self) -> Health {
        self.conn.health().await
    }
}
