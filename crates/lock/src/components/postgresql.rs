//! `postgresql`: locks as leases in a PostgreSQL table.
//!
//! Storage: one row per held (or expired, not yet reused) lock in
//! `<tableName>(lock_key TEXT PRIMARY KEY, lock_owner TEXT, expires_at TIMESTAMPTZ)`,
//! created `IF NOT EXISTS` when the component is built. Expiry is judged by
//! the database clock (`now()`), so runtimes whose clocks disagree still
//! agree on who holds a lock. Every operation is one statement:
//! - try_lock: `INSERT … ON CONFLICT (lock_key) DO UPDATE … WHERE expires_at <= now()`,
//!   so a live lease is never overwritten and an expired one is taken over;
//! - unlock: delete the caller's live row (and any expired row), reporting
//!   `LockUnexist` or `LockBelongToOthers` when nothing of the caller's was there;
//! - keep_alive: move the caller's live row's `expires_at` to `now() + expire`.
//!
//! Why a lease table and not `pg_advisory_lock`: an advisory lock belongs to a
//! database session, so it cannot expire after `expire` seconds, it cannot be
//! released by another connection of the pool (the same owner's unlock may run
//! on a different pooled connection), and it vanishes silently whenever the
//! pool recycles or loses that connection. A row with a deadline has none of
//! these problems and survives a runtime restart.
//!
//! Metadata: `connectionString` (required; a `postgres://` URL or a
//! `host=… user=… dbname=…` key/value string as Dapr's PostgreSQL components
//! take), `tableName` (default `layotto_lock`; an identifier, optionally
//! `schema.table`), `timeout` (acquiring a connection and answering, a
//! duration such as `5s`, default 5 s), `maxConns` (pool size, default 10).
//! An unreachable database fails the build with `Unavailable`; during an
//! outage calls fail with `Unavailable`.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, Health, Metadata, Result, settings};
use layotto_sql::PoolSettings;
use layotto_sql::postgres::PostgresSettings;
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Row, SqlSafeStr, SqlStr};

use crate::{KeepAliveRequest, LockStatus, LockStore, TryLockRequest, UnlockRequest};

const DEFAULT_TABLE: &str = "layotto_lock";

struct Statements {
    try_lock: SqlStr,
    unlock: SqlStr,
    keep_alive: SqlStr,
}

impl Statements {
    fn new(table: &str) -> Self {
        let sql = |s: String| AssertSqlSafe(s).into_sql_str();
        Self {
            try_lock: sql(format!(
                "INSERT INTO {table} AS t (lock_key, lock_owner, expires_at) \
                 VALUES ($1, $2, now() + make_interval(secs => $3)) \
                 ON CONFLICT (lock_key) DO UPDATE \
                 SET lock_owner = EXCLUDED.lock_owner, expires_at = EXCLUDED.expires_at \
                 WHERE t.expires_at <= now() \
                 RETURNING 1"
            )),
            // 0 = success, 1 = no live lock, 2 = another owner's live lock.
            unlock: sql(format!(
                "WITH del AS (DELETE FROM {table} \
                   WHERE lock_key = $1 AND (lock_owner = $2 OR expires_at <= now()) \
                   RETURNING lock_owner = $2 AND expires_at > now() AS mine) \
                 SELECT CASE \
                   WHEN EXISTS (SELECT 1 FROM del WHERE mine) THEN 0 \
                   WHEN EXISTS (SELECT 1 FROM del) THEN 1 \
                   WHEN EXISTS (SELECT 1 FROM {table} WHERE lock_key = $1 AND expires_at > now()) THEN 2 \
                   ELSE 1 END"
            )),
            keep_alive: sql(format!(
                "WITH upd AS (UPDATE {table} SET expires_at = now() + make_interval(secs => $3) \
                   WHERE lock_key = $1 AND lock_owner = $2 AND expires_at > now() RETURNING 1) \
                 SELECT CASE \
                   WHEN EXISTS (SELECT 1 FROM upd) THEN 0 \
                   WHEN EXISTS (SELECT 1 FROM {table} WHERE lock_key = $1 AND expires_at > now()) THEN 2 \
                   ELSE 1 END"
            )),
        }
    }
}

pub struct PostgresLock {
    component: String,
    pool: PgPool,
    timeout: Duration,
    sql: Statements,
}

impl PostgresLock {
    pub const TYPE: &'static str = "postgresql";

    /// The registry constructor.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn LockStore>> {
        Ok(Arc::new(Self::with_settings(&ctx.name, &ctx.settings()?, &ctx.settings()?).await?))
    }

    /// Connects (failing with `Unavailable` naming the component when the
    /// database cannot be reached) and creates the table if it is missing.
    pub async fn connect(name: &str, metadata: &Metadata) -> Result<Self> {
        let component = format!("lock store '{name}' (postgresql)");
        let pool = settings::parse(&component, metadata)?;
        Self::with_settings(name, &pool, &settings::parse(&component, metadata)?).await
    }

    async fn with_settings(name: &str, pool: &PoolSettings, pg: &PostgresSettings) -> Result<Self> {
        let component = format!("lock store '{name}' (postgresql)");
        let table = pool.table(&component, DEFAULT_TABLE)?;
        let options = layotto_sql::postgres::connect_options(&component, pg)?;
        let timeout = pool.timeout();
        let pool = layotto_sql::open_pool(&component, "PostgreSQL", options, pool).await?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
               lock_key TEXT NOT NULL PRIMARY KEY, \
               lock_owner TEXT NOT NULL, \
               expires_at TIMESTAMPTZ NOT NULL)"
        );
        let run = sqlx::raw_sql(AssertSqlSafe(create)).execute(&pool);
        layotto_sql::create_table(&component, &table, timeout, async { run.await.map(drop) }).await?;
        Ok(Self { component, pool, timeout, sql: Statements::new(&table) })
    }

    /// Runs one database call within the timeout, mapping its errors.
    async fn run<T>(&self, what: &str, call: impl Future<Output = sqlx::Result<T>>) -> Result<T> {
        layotto_sql::run(&self.component, what, self.timeout, call).await
    }

    async fn status(
        &self,
        what: &str,
        sql: &SqlStr,
        key: &str,
        owner: &str,
        secs: Option<f64>,
    ) -> Result<LockStatus> {
        let mut query = sqlx::query(sql.clone()).bind(key).bind(owner);
        if let Some(secs) = secs {
            query = query.bind(secs);
        }
        let row = self.run(what, query.fetch_one(&self.pool)).await?;
        let code: i32 = row.try_get(0).map_err(|e| layotto_sql::sql_error(&self.component, what, e))?;
        match code {
            0 => Ok(LockStatus::Success),
            1 => Ok(LockStatus::LockUnexist),
            2 => Ok(LockStatus::LockBelongToOthers),
            other => Err(Error::internal(format!("{}: {what}: unexpected status {other}", self.component))),
        }
    }
}

#[async_trait]
impl LockStore for PostgresLock {
    async fn try_lock(&self, req: TryLockRequest) -> Result<bool> {
        let what = format!("lock '{}'", req.resource_id);
        let query = sqlx::query(self.sql.try_lock.clone())
            .bind(&req.resource_id)
            .bind(&req.lock_owner)
            .bind(req.expire.as_secs_f64());
        Ok(self.run(&what, query.fetch_optional(&self.pool)).await?.is_some())
    }

    async fn unlock(&self, req: UnlockRequest) -> Result<LockStatus> {
        let what = format!("lock '{}'", req.resource_id);
        self.status(&what, &self.sql.unlock, &req.resource_id, &req.lock_owner, None).await
    }

    async fn keep_alive(&self, req: KeepAliveRequest) -> Result<LockStatus> {
        let what = format!("lock '{}'", req.resource_id);
        let secs = Some(req.expire.as_secs_f64());
        self.status(&what, &self.sql.keep_alive, &req.resource_id, &req.lock_owner, secs).await
    }

    async fn health(&self) -> Health {
        layotto_sql::health("PostgreSQL", async {
            sqlx::query("SELECT 1").execute(&self.pool).await.map(drop)
        })
        .await
    }
}
