//! `redis`: ids from Redis counters, in Go Layotto's storage layout, so both
//! runtimes sharing one Redis hand out ids from the same counters.
//!
//! Storage: one string key per sequencer key (the stored key,
//! `sequencer|||<prefix>||<key>`) holding the last id handed out.
//! - next_id: `INCR key`;
//! - segment of `n`: `INCRBY key n`, the ids `v-n+1..=v`;
//! - ensure_bigger_than: a Lua "set if absent or smaller".
//!
//! Metadata (Layotto's keys): `redisHost` (`host:port` or a `redis://` URL,
//! default `localhost:6379`), `redisUsername`, `redisPassword`, `redisDB`
//! (alias `db`), `enableTLS`, `dialTimeout` and `timeout` (durations such as
//! `5s`), `maxRetryBackoff`, `poolSize` (default 1). A Redis that is down
//! makes calls fail with `Unavailable`.

use std::ops::RangeInclusive;
use std::sync::Arc;

use async_trait::async_trait;
use fred::prelude::{Error as FredError, KeysInterface, Value};
use fred::types::scripts::Script;
use layotto_core::{ComponentContext, Error, Health, Metadata, Result, settings};
use layotto_redis::{RedisConn, RedisSettings, fred};

use crate::Sequencer;

const ENSURE_SCRIPT: &str = r#"
local v = redis.call('GET', KEYS[1])
if (not v) or tonumber(v) < tonumber(ARGV[1]) then
  redis.call('SET', KEYS[1], ARGV[1])
end
return 1
"#;

const DEFAULT_POOL_SIZE: usize = 1;

pub struct RedisSequencer {
    conn: RedisConn,
    ensure_script: Script,
}

impl RedisSequencer {
    pub const TYPE: &'static str = "redis";

    /// The registry constructor: connects, failing with a message naming the
    /// component and the address when Redis cannot be reached.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn Sequencer>> {
        Ok(Arc::new(Self::with_settings(&ctx.name, &ctx.settings()?).await?))
    }

    pub async fn connect(name: &str, metadata: &Metadata) -> Result<Self> {
        let component = format!("sequencer store '{name}' (redis)");
        Self::with_settings(name, &settings::parse(&component, metadata)?).await
    }

    async fn with_settings(name: &str, redis: &RedisSettings) -> Result<Self> {
        let component = format!("sequencer store '{name}' (redis)");
        let conn = RedisConn::connect(&component, redis, DEFAULT_POOL_SIZE).await?;
        Ok(Self { conn, ensure_script: Script::from_lua(ENSURE_SCRIPT) })
    }

    fn error(&self, key: &str, e: FredError) -> Error {
        self.conn.error(&format!("key '{key}'"), e)
    }
}

#[async_trait]
impl Sequencer for RedisSequencer {
    async fn next_id(&self, key: &str) -> Result<i64> {
        self.conn.client()?.incr(key).await.map_err(|e| self.error(key, e))
    }

    async fn segment(&self, key: &str, size: u32) -> Result<Option<RangeInclusive<i64>>> {
        let size = i64::from(size);
        let last: i64 = self.conn.client()?.incr_by(key, size).await.map_err(|e| self.error(key, e))?;
        Ok(Some(last - size + 1..=last))
    }

    async fn ensure_bigger_than(&self, key: &str, min: i64) -> Result<()> {
        let client = self.conn.client()?;
        let _: Value = self
            .ensure_script
            .evalsha_with_reload(client, vec![key.to_owned()], vec![Value::from(min)])
            .await
            .map_err(|e| self.error(key, e))?;
        Ok(())
    }

    async fn health(&self) -> Health {
        self.conn.health().await
    }
}
