//! `snowflake`: ids made in the runtime as `timestamp ‖ worker id ‖ sequence`
//! with Go Layotto's bit widths and its MySQL tables, so no backend round trip
//! is needed per id.
//!
//! - The worker id is a new row of `<tableName>` (`ID` auto-increment,
//!   `HOST_NAME`, `PORT` = "<unix seconds>-<random>", `CREATED`) inserted
//!   at every start, so two runtimes never share one, and a restarted runtime
//!   never reissues an id even if the clock went back. When the row id no
//!   longer fits `workerBits`, startup fails saying the table is full.
//! - `<keyTableName>` (`SEQUENCER_KEY`, `WORKER_ID`, `TIMESTAMP`) is created
//!   as Layotto does; this component needs nothing from it.
//! - The timestamp is whole seconds since `startTime` (a UTC date); when a
//!   second's sequence is used up the key moves on to the next second ahead
//!   of the clock, and a clock that goes back never moves a key back.
//!
//! Ids per key strictly increase within one runtime, are unique across
//! runtimes, and are not dense (they start far above 1). No segments.
//!
//! Metadata (Layotto's keys): `mysqlHost` (`host:port`, required),
//! `databaseName`, `userName`, `password`, `tableName` (default
//! `layotto_sequencer_snowflake`), `keyTableName` (default
//! `layotto_sequencer_snowflake_key`), `timeBits` (28), `workerBits` (22),
//! `seqBits` (13), which with the sign bit must make 64, `startTime`
//! (`2022-01-01`); `reqTimeout` and `keyTimeout` are accepted and unused
//! (ids are made on the spot, and a key's state is a few bytes).

use std::collections::HashMap;
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, Health, Result};
use layotto_sql::PoolSettings;
use parking_lot::Mutex;
use serde::Deserialize;
use sqlx::AssertSqlSafe;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool};

use super::sql;
use crate::{Features, Sequencer};

const DEFAULT_TABLE: &str = "layotto_sequencer_snowflake";
const DEFAULT_KEY_TABLE: &str = "layotto_sequencer_snowflake_key";

/// Layotto's snowflake metadata keys.
#[derive(Debug, Default, Deserialize)]
struct SnowflakeSettings {
    #[serde(rename = "mysqlHost", default)]
    host: Option<String>,
    #[serde(rename = "databaseName", default)]
    database: Option<String>,
    #[serde(rename = "userName", default)]
    user: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(rename = "keyTableName", default)]
    key_table: Option<String>,
    #[serde(rename = "timeBits", default)]
    time_bits: Option<u32>,
    #[serde(rename = "workerBits", default)]
    worker_bits: Option<u32>,
    #[serde(rename = "seqBits", default)]
    seq_bits: Option<u32>,
    #[serde(rename = "startTime", default)]
    start_time: Option<String>,
    #[serde(rename = "reqTimeout", default)]
    _req_timeout: Option<String>,
    #[serde(rename = "keyTimeout", default)]
    _key_timeout: Option<String>,
}

/// How an id's 63 bits are split.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layout {
    pub time_bits: u32,
    pub worker_bits: u32,
    pub seq_bits: u32,
}

impl Layout {
    pub fn id(&self, timestamp: i64, worker: i64, seq: i64) -> i64 {
        (timestamp << (self.worker_bits + self.seq_bits)) | (worker << self.seq_bits) | seq
    }

    /// (timestamp, worker, sequence) of an id.
    pub fn split(&self, id: i64) -> (i64, i64, i64) {
        let mask = |bits: u32| (1_i64 << bits) - 1;
        (
            id >> (self.worker_bits + self.seq_bits),
            (id >> self.seq_bits) & mask(self.worker_bits),
            id & mask(self.seq_bits),
        )
    }

    fn max_worker(&self) -> i64 {
        (1_i64 << self.worker_bits) - 1
    }

    fn max_seq(&self) -> i64 {
        (1_i64 << self.seq_bits) - 1
    }

    fn max_timestamp(&self) -> i64 {
        (1_i64 << self.time_bits) - 1
    }
}

/// Where one key stands: the second it is in and the last sequence used there.
struct KeyClock {
    timestamp: i64,
    seq: i64,
}

pub struct SnowflakeSequencer {
    component: String,
    pool: MySqlPool,
    layout: Layout,
    worker: i64,
    /// `startTime` in Unix seconds.
    epoch: i64,
    keys: Mutex<HashMap<String, KeyClock>>,
}

impl SnowflakeSequencer {
    pub const TYPE: &'static str = "snowflake";

    /// The registry constructor: connects, creates Layotto's tables and takes
    /// a new worker id, failing with a message naming the component.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn Sequencer>> {
        let component = format!("sequencer store '{}' (snowflake)", ctx.name);
        let pool_settings: PoolSettings = ctx.settings()?;
        let snowflake: SnowflakeSettings = ctx.settings()?;
        let bad = |what: String| Error::config(format!("{component}: {what}"));
        let layout = Layout {
            time_bits: snowflake.time_bits.unwrap_or(28),
            worker_bits: snowflake.worker_bits.unwrap_or(22),
            seq_bits: snowflake.seq_bits.unwrap_or(13),
        };
        let bits = [layout.time_bits, layout.worker_bits, layout.seq_bits];
        if bits.contains(&0) || bits.iter().sum::<u32>() != 63 {
            return Err(bad(format!(
                "metadata 'timeBits' + 'workerBits' + 'seqBits' must be 63 (the sign bit makes 64), each at least 1; \
                 got {} + {} + {}",
                layout.time_bits, layout.worker_bits, layout.seq_bits
            )));
        }
        let start =
            snowflake.start_time.as_deref().map(str::trim).filter(|s| !s.is_empty()).unwrap_or("2022-01-01");
        let epoch = unix_days(start)
            .map(|days| days * 86_400)
            .ok_or_else(|| bad(format!("metadata 'startTime' must be a date YYYY-MM-DD, got '{start}'")))?;
        let table = pool_settings.table(&component, DEFAULT_TABLE)?;
        let key_table = PoolSettings { table_name: snowflake.key_table.clone(), ..Default::default() }
            .table(&component, DEFAULT_KEY_TABLE)
            .map_err(|_| bad("metadata 'keyTableName' must be an SQL identifier".to_owned()))?;
        let options = connect_options(&component, &snowflake)?;
        let timeout = pool_settings.timeout();
        let pool = layotto_sql::open_pool(&component, "MySQL", options, &pool_settings).await?;
        for create in [
            format!(
                "CREATE TABLE IF NOT EXISTS {table} (ID BIGINT NOT NULL AUTO_INCREMENT, \
                 HOST_NAME VARCHAR(64) NOT NULL, PORT VARCHAR(64) NOT NULL, CREATED TIMESTAMP NOT NULL, \
                 PRIMARY KEY (ID))"
            ),
            format!(
                "CREATE TABLE IF NOT EXISTS {key_table} (SEQUENCER_KEY VARCHAR(64) NOT NULL, \
                 WORKER_ID VARCHAR(64) NOT NULL, TIMESTAMP VARCHAR(64) NOT NULL, UNIQUE INDEX (SEQUENCER_KEY))"
            ),
        ] {
            let run = sqlx::raw_sql(AssertSqlSafe(create)).execute(&pool);
            layotto_sql::create_table(&component, &table, timeout, async { run.await.map(drop) }).await?;
        }
        let worker = new_worker(&component, &pool, &table, timeout).await?;
        if worker > layout.max_worker() {
            return Err(bad(format!(
                "the worker-id table '{table}' is full: this start got id {worker}, but 'workerBits' = {} \
                 allows at most {}; delete old rows (each start adds one) or give workerBits more bits",
                layout.worker_bits,
                layout.max_worker()
            )));
        }
        tracing::info!(component = %component, worker, "snowflake worker id taken");
        Ok(Arc::new(Self { component, pool, layout, worker, epoch, keys: Mutex::default() }))
    }

    pub fn layout(&self) -> Layout {
        self.layout
    }

    pub fn worker(&self) -> i64 {
        self.worker
    }

    /// Seconds since `startTime` by the clock.
    fn now(&self) -> i64 {
        let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
        i64::try_from(unix).unwrap_or(i64::MAX).saturating_sub(self.epoch).max(0)
    }

    fn exhausted(&self) -> Error {
        Error::internal(format!(
            "{}: the timestamp no longer fits 'timeBits' = {}; set 'startTime' later or give timeBits more bits",
            self.component, self.layout.time_bits
        ))
    }
}

/// Inserts this start's row and returns its id.
async fn new_worker(component: &str, pool: &MySqlPool, table: &str, timeout: Duration) -> Result<i64> {
    let host =
        std::env::var("HOSTNAME").ok().filter(|h| !h.is_empty()).unwrap_or_else(|| "layotto-rs".to_owned());
    let unix = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs());
    let port = format!("{unix}-{}", rand_suffix());
    let insert = format!("INSERT INTO {table} (HOST_NAME, PORT, CREATED) VALUES (?, ?, NOW())");
    let query = sqlx::query(AssertSqlSafe(insert)).bind(host.chars().take(64).collect::<String>()).bind(port);
    let done = sql::run(component, "taking a worker id", timeout, query.execute(pool)).await?;
    i64::try_from(done.last_insert_id())
        .map_err(|_| Error::internal(format!("{component}: MySQL answered a worker id out of range")))
}

/// A few random digits, as Layotto's `PORT` column has.
fn rand_suffix() -> u32 {
    let nanos = SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    (nanos ^ std::process::id().rotate_left(16)) % 100_000
}

/// Days since 1970-01-01 of a `YYYY-MM-DD` date.
fn unix_days(date: &str) -> Option<i64> {
    let mut parts = date.splitn(3, '-');
    let (y, m, d): (i64, i64, i64) =
        (parts.next()?.parse().ok()?, parts.next()?.parse().ok()?, parts.next()?.parse().ok()?);
    if !(1..=12).contains(&m) || !(1..=31).contains(&d) {
        return None;
    }
    // Howard Hinnant's days-from-civil.
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    Some(era * 146_097 + doe - 719_468)
}

fn connect_options(component: &str, settings: &SnowflakeSettings) -> Result<MySqlConnectOptions> {
    let bad = |what: String| Error::config(format!("{component}: {what}"));
    let host = settings
        .host
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("metadata 'mysqlHost' (host:port) is required".to_owned()))?;
    let mut options = super::mysql::host_port(MySqlConnectOptions::new(), host)
        .map_err(|_| bad(format!("metadata 'mysqlHost' has an invalid port: '{host}'")))?;
    let database = settings
        .database
        .as_deref()
        .filter(|d| !d.is_empty())
        .ok_or_else(|| bad("metadata 'databaseName' is required".to_owned()))?;
    options = options.database(database);
    if let Some(user) = settings.user.as_deref().filter(|u| !u.is_empty()) {
        options = options.username(user);
    }
    if let Some(password) = settings.password.as_deref().filter(|p| !p.is_empty()) {
        options = options.password(password);
    }
    Ok(options)
}

#[async_trait]
impl Sequencer for SnowflakeSequencer {
    fn features(&self) -> Features {
        Features { segments: false, durable: true }
    }

    async fn next_id(&self, key: &str) -> Result<i64> {
        let now = self.now();
        let mut keys = self.keys.lock();
        let clock = keys.entry(key.to_owned()).or_insert(KeyClock { timestamp: now, seq: -1 });
        if now > clock.timestamp {
            *clock = KeyClock { timestamp: now, seq: 0 };
        } else if clock.seq < self.layout.max_seq() {
            clock.seq += 1;
        } else {
            // This second is used up: borrow the next one.
            *clock = KeyClock { timestamp: clock.timestamp + 1, seq: 0 };
        }
        if clock.timestamp > self.layout.max_timestamp() {
            return Err(self.exhausted());
        }
        Ok(self.layout.id(clock.timestamp, self.worker, clock.seq))
    }

    async fn segment(&self, _key: &str, _size: u32) -> Result<Option<RangeInclusive<i64>>> {
        Ok(None)
    }

    async fn ensure_bigger_than(&self, key: &str, min: i64) -> Result<()> {
        let first = self.layout.id(self.now(), self.worker, 0);
        if first > min {
            return Ok(());
        }
        Err(Error::config(format!(
            "{}: biggerThan {min} for key '{key}' is above the ids snowflake makes now (from {first}); \
             set 'startTime' earlier",
            self.component
        )))
    }

    async fn health(&self) -> Health {
        sql::health("MySQL", async { sqlx::query("SELECT 1").execute(&self.pool).await.map(drop) }).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn layout_round_trips() {
        let layout = Layout { time_bits: 28, worker_bits: 22, seq_bits: 13 };
        let id = layout.id(123_456, 4_000_000, 8_191);
        assert!(id > 0);
        assert_eq!(layout.split(id), (123_456, 4_000_000, 8_191));
        assert_eq!(layout.max_worker(), 4_194_303);
    }

    #[test]
    fn dates_count_days_from_the_unix_epoch() {
        assert_eq!(unix_days("1970-01-01"), Some(0));
        assert_eq!(unix_days("2022-01-01"), Some(18_993));
        assert_eq!(unix_days("2000-03-01"), Some(11_017));
        assert_eq!(unix_days("2022-13-01"), None);
        assert_eq!(unix_days("yesterday"), None);
    }
}
