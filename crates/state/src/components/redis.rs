//! `redis`: state on Redis (fred), in the storage format of Dapr's and
//! Layotto's Redis state store: a hash per key with fields `data` and
//! `version`. The version is the etag, so etags survive a restart of the
//! runtime, and Go Layotto sharing the same Redis sees the same items.
//!
//! Every write is one Lua script, so etag checks and writes are atomic, and a
//! transaction is a single script: all of it applies, in order, or none.
//!
//! Writes also keep a field `expiresAt` = `<version>:<unix ms>` (`0` for no
//! TTL), so a read is one plain HMGET rather than a script (a script costs
//! Redis about ten times the work). The version in it tells whether the field
//! belongs to the current value: a key written by another client (Go Layotto,
//! Dapr) has no such field, or a stale one, and its read asks PTTL as well.
//!
//! In Redis Cluster (`redisType: cluster`) a script runs on one node, so a
//! transaction's keys must share a hash slot: put the same hash tag in them
//! (`{order-7}:items`, `{order-7}:total`). A transaction across slots is
//! refused naming two of its keys, never applied in part.
//!
//! Metadata (Layotto's keys): `redisHost` (`host:port` or a `redis://` URL,
//! default `localhost:6379`), `redisUsername`, `redisPassword`, `redisDB`,
//! `enableTLS`, `dialTimeout` and `timeout` (durations such as `5s`,
//! `500ms`), `maxRetryBackoff`, `poolSize` (connections, default 1: calls are
//! pipelined on each, spread over all), `redisType` (`node` or `cluster`),
//! `redisHosts`.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use fred::bytes::Bytes;
use fred::prelude::{Error as FredError, HashesInterface, KeysInterface, Value};
use fred::types::Key;
use fred::types::scripts::Script;
use layotto_core::{ComponentContext, Error, Health, Metadata, Result, settings};
use layotto_redis::{RedisConn, RedisSettings, fred, script_error};

use crate::{
    BulkGetItem, Concurrency, DeleteRequest, Features, GetRequest, Operation, SetRequest, StateStore,
    StateValue, already_exists, etag_mismatch, expiry_metadata, parse_etag, ttl_from_metadata,
};

// Replies: the new version, or an error starting with ETAG_MISMATCH or EXISTS.
// ARGV: etag ('' = none), data, first-write ('1'/'0'), ttl seconds (0 = none),
// expiry in unix ms (0 = none).
const SET_SCRIPT: &str = r#"
local ver = redis.call('HGET', KEYS[1], 'version')
if ARGV[1] ~= '' then
  if (not ver) or ver ~= ARGV[1] then return redis.error_reply('ETAG_MISMATCH') end
elseif ARGV[3] == '1' and ver then
  return redis.error_reply('EXISTS')
end
local v = (tonumber(ver) or 0) + 1
redis.call('HSET', KEYS[1], 'data', ARGV[2], 'version', v, 'expiresAt', v .. ':' .. ARGV[5])
if tonumber(ARGV[4]) > 0 then redis.call('EXPIRE', KEYS[1], ARGV[4]) else redis.call('PERSIST', KEYS[1]) end
return v
"#;

const DELETE_SCRIPT: &str = r#"
if ARGV[1] ~= '' then
  local ver = redis.call('HGET', KEYS[1], 'version')
  if (not ver) or ver ~= ARGV[1] then return redis.error_reply('ETAG_MISMATCH') end
end
return redis.call('DEL', KEYS[1])
"#;

// ARGV[1] = number of operations; then per operation six values:
// kind ('s' or 'd'), etag ('' = none), first-write ('1'/'0'), data, ttl seconds,
// expiry in unix ms.
// KEYS[j] is the key of operation j. Checks every step against the versions
// the earlier steps leave, then applies all: nothing is written on failure.
const TRANSACTION_SCRIPT: &str = r#"
local n = tonumber(ARGV[1])
local vers = {}
local function current(k)
  if vers[k] == nil then
    local v = redis.call('HGET', k, 'version')
    if v then vers[k] = tonumber(v) else vers[k] = false end
  end
  return vers[k]
end
for j = 1, n do
  local base = 2 + (j - 1) * 6
  local kind, etag, fw = ARGV[base], ARGV[base + 1], ARGV[base + 2]
  local v = current(KEYS[j])
  if etag ~= '' then
    if (not v) or tostring(v) ~= etag then return redis.error_reply('ETAG_MISMATCH ' .. j) end
  elseif kind == 's' and fw == '1' and v then
    return redis.error_reply('EXISTS ' .. j)
  end
  if kind == 's' then vers[KEYS[j]] = (v or 0) + 1 else vers[KEYS[j]] = false end
end
for j = 1, n do
  local base = 2 + (j - 1) * 6
  local k = KEYS[j]
  if ARGV[base] == 's' then
    local v = redis.call('HINCRBY', k, 'version', 1)
    redis.call('HSET', k, 'data', ARGV[base + 3], 'expiresAt', v .. ':' .. ARGV[base + 5])
    local ttl = tonumber(ARGV[base + 4])
    if ttl > 0 then redis.call('EXPIRE', k, ttl) else redis.call('PERSIST', k) end
  else
    redis.call('DEL', k)
  end
end
return n
"#;

// Static, so a read copies no field names.
const READ_FIELDS: [Key; 3] =
    [Key::from_static_str("data"), Key::from_static_str("version"), Key::from_static_str("expiresAt")];

// One connection pipelines best on small machines (measured by `cargo xtask bench`).
const DEFAULT_POOL_SIZE: usize = 1;

pub struct RedisStore {
    name: String,
    conn: RedisConn,
    set_script: Script,
    delete_script: Script,
    transaction_script: Script,
}

impl RedisStore {
    pub const TYPE: &'static str = "redis";

    /// The registry constructor: connects, failing with a message naming the
    /// component and the address when Redis cannot be reached.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn StateStore>> {
        Ok(Arc::new(Self::with_settings(&ctx.name, &ctx.settings()?).await?))
    }

    pub async fn connect(name: &str, metadata: &Metadata) -> Result<Self> {
        let component = format!("state store '{name}' (redis)");
        Self::with_settings(name, &settings::parse(&component, metadata)?).await
    }

    async fn with_settings(name: &str, redis: &RedisSettings) -> Result<Self> {
        let component = format!("state store '{name}' (redis)");
        let conn = RedisConn::connect(&component, redis, DEFAULT_POOL_SIZE).await?;
        Ok(Self {
            name: name.to_owned(),
            conn,
            set_script: Script::from_lua(SET_SCRIPT),
            delete_script: Script::from_lua(DELETE_SCRIPT),
            transaction_script: Script::from_lua(TRANSACTION_SCRIPT),
        })
    }

    /// A transaction is one script, and a script runs on one cluster node.
    fn check_one_slot(&self, keys: &[String]) -> Result<()> {
        let slot = |key: &String| fred::util::redis_keyslot(key.as_bytes());
        let Some(first) = keys.first() else { return Ok(()) };
        match keys.iter().find(|key| slot(key) != slot(first)) {
            None => Ok(()),
            Some(other) => Err(Error::invalid_argument(format!(
                "state store '{}' (redis cluster): transaction keys '{first}' and '{other}' are in different \
                 hash slots, and a transaction is atomic only within one: give its keys a common hash tag, \
                 such as {{order-1}}",
                self.name
            ))),
        }
    }

    fn connection(&self) -> Result<&fred::prelude::Client> {
        self.conn.client()
    }

    /// Every Redis error becomes one of ours here.
    fn error(&self, key: &str, e: FredError) -> Error {
        let details = script_error(&e);
        if details.starts_with("ETAG_MISMATCH") {
            return etag_mismatch(&self.name, key);
        }
        if details.starts_with("EXISTS") {
            return already_exists(&self.name, key);
        }
        self.conn.error(&format!("key '{key}'"), e)
    }

    async fn eval(&self, script: &Script, key: &str, keys: Vec<String>, args: Vec<Value>) -> Result<Value> {
        let client = self.connection()?;
        script.evalsha_with_reload(client, keys, args).await.map_err(|e| self.error(key, e))
    }

    fn write_args(&self, req: &SetRequest) -> Result<Vec<Value>> {
        let etag = match req.checked_etag() {
            Some(etag) => parse_etag(&self.name, &req.key, etag)?.to_string(),
            None => String::new(),
        };
        let first_write = if req.concurrency == Concurrency::FirstWrite { "1" } else { "0" };
        let ttl = ttl_from_metadata(&self.name, &req.key, &req.metadata)?;
        let expires_ms = ttl.map_or(0, |ttl| unix_ms(SystemTime::now() + ttl));
        Ok(vec![
            Value::from(etag),
            Value::Bytes(req.value.clone().into()),
            Value::from(first_write),
            // Integers go out as digits without a String per call.
            Value::Integer(ttl.map_or(0, |d| d.as_secs()) as i64),
            Value::Integer(expires_ms as i64),
        ])
    }

    fn delete_etag(&self, req: &DeleteRequest) -> Result<String> {
        Ok(match req.checked_etag() {
            Some(etag) => parse_etag(&self.name, &req.key, etag)?.to_string(),
            None => String::new(),
        })
    }

    /// One HMGET; PTTL as well only when the expiry field is missing or
    /// belongs to an older value (another client wrote the key).
    async fn read(&self, key: &str) -> Result<Option<StateValue>> {
        let client = self.connection()?;
        let (data, version, expires): (Option<Bytes>, Option<String>, Option<String>) =
            client.hmget(key, &READ_FIELDS).await.map_err(|e| self.error(key, e))?;
        let Some(data) = data else { return Ok(None) };
        let version = version.unwrap_or_else(|| "0".to_owned());
        let recorded = expires.as_deref().and_then(|field| {
            let (of_version, ms) = field.split_once(':')?;
            (of_version == version).then(|| ms.parse::<u64>().ok()).flatten()
        });
        let expires = match recorded {
            Some(0) => None,
            Some(ms) => Some(UNIX_EPOCH + Duration::from_millis(ms)),
            None => {
                let pttl: i64 = client.pttl(key).await.map_err(|e| self.error(key, e))?;
                (pttl > 0).then(|| SystemTime::now() + Duration::from_millis(pttl as u64))
            }
        };
        Ok(Some(StateValue { data: data.into(), etag: Some(version), metadata: expiry_metadata(expires) }))
    }
}

fn unix_ms(at: SystemTime) -> u64 {
    at.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_millis() as u64)
}

#[async_trait]
impl StateStore for RedisStore {
    fn features(&self) -> Features {
        Features { etag: true, transactions: true, ttl: true, first_write: true }
    }

    async fn get(&self, req: GetRequest) -> Result<Option<StateValue>> {
        self.read(&req.key).await
    }

    async fn bulk_get(&self, keys: Vec<String>, _metadata: Metadata) -> Result<Vec<BulkGetItem>> {
        self.connection()?;
        // Concurrent calls are pipelined by fred.
        let gets = keys.into_iter().map(|key| async move {
            match self.get(GetRequest::new(key.clone())).await {
                Ok(value) => BulkGetItem { key, value, error: None },
                Err(e) => BulkGetItem { key, value: None, error: Some(e.to_string()) },
            }
        });
        Ok(futures::future::join_all(gets).await)
    }

    async fn set(&self, req: SetRequest) -> Result<()> {
        let args = self.write_args(&req)?;
        self.eval(&self.set_script, &req.key, vec![req.key.clone()], args).await.map(drop)
    }

    async fn delete(&self, req: DeleteRequest) -> Result<()> {
        let etag = self.delete_etag(&req)?;
        self.eval(&self.delete_script, &req.key, vec![req.key.clone()], vec![Value::from(etag)])
            .await
            .map(drop)
    }

    async fn transact(&self, ops: Vec<Operation>, _metadata: Metadata) -> Result<()> {
        if ops.is_empty() {
            return Ok(());
        }
        let mut keys = Vec::with_capacity(ops.len());
        let mut args = vec![Value::from(ops.len().to_string())];
        for op in &ops {
            keys.push(op.key().to_owned());
            match op {
                Operation::Upsert(req) => {
                    let [etag, data, first_write, ttl, expires]: [Value; 5] =
                        self.write_args(req)?.try_into().map_err(|_| Error::internal("write args"))?;
                    args.extend([Value::from("s"), etag, first_write, data, ttl, expires]);
                }
                Operation::Delete(req) => {
                    let etag = self.delete_etag(req)?;
                    args.extend([
                        Value::from("d"),
                        Value::from(etag),
                        Value::from("0"),
                        Value::from(""),
                        Value::from("0"),
                        Value::from("0"),
                    ]);
                }
            }
        }
        if self.conn.is_cluster() {
            self.check_one_slot(&keys)?;
        }
        let client = self.connection()?;
        let reply =
            self.transaction_script.evalsha_with_reload::<Value, _, _>(client, keys.clone(), args).await;
        reply.map(drop).map_err(|e| {
            // The script names the failing step; report its key.
            let step = script_error(&e).split_whitespace().nth(1).and_then(|j| j.parse::<usize>().ok());
            let key = step.and_then(|j| keys.get(j.wrapping_sub(1))).map_or("", String::as_str);
            self.error(key, e).context("transaction failed, nothing was applied")
        })
    }

    async fn health(&self) -> Health {
        self.conn.health().await
    }
}
