//! `postgresql`: ids from a counter table in PostgreSQL.
//!
//! Storage: `<tableName>(sequencer_key TEXT PRIMARY KEY, sequencer_value BIGINT,
//! version BIGINT)`, created `IF NOT EXISTS` when the component is built; the
//! same columns as the `mysql` component (and Go Layotto's MySQL sequencer).
//! `sequencer_value` is the last id handed out; `version` counts updates.
//! Every operation is one atomic statement:
//! - next_id / segment of `n`: `INSERT … VALUES (key, n) ON CONFLICT (sequencer_key)
//!   DO UPDATE SET sequencer_value = sequencer_value + n … RETURNING sequencer_value`;
//! - ensure_bigger_than: the same upsert, updating only when the stored value is smaller.
//!
//! Metadata: `connectionString` (required; a `postgres://` URL or a
//! `host=… user=… dbname=…` key/value string), `tableName` (default
//! `layotto_sequencer`; an identifier, optionally `schema.table`), `timeout`
//! (acquiring a connection and answering, default `5s`), `maxConns` (pool size,
//! default 10). An unreachable database fails the build with `Unavailable`.

use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Health, Metadata, Result, settings};
use layotto_sql::PoolSettings;
use layotto_sql::postgres::PostgresSettings;
use sqlx::postgres::PgPool;
use sqlx::{AssertSqlSafe, Row, SqlSafeStr, SqlStr};

use super::sql;
use crate::Sequencer;

pub struct PostgresSequencer {
    component: String,
    pool: PgPool,
    timeout: Duration,
    add: SqlStr,
    ensure: SqlStr,
}

impl PostgresSequencer {
    pub const TYPE: &'static str = "postgresql";

    /// The registry constructor.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn Sequencer>> {
        Ok(Arc::new(Self::with_settings(&ctx.name, &ctx.settings()?, &ctx.settings()?).await?))
    }

    /// Connects (failing with `Unavailable` naming the component when the
    /// database cannot be reached) and creates the table if it is missing.
    pub async fn connect(name: &str, metadata: &Metadata) -> Result<Self> {
        let component = format!("sequencer store '{name}' (postgresql)");
        let pool = settings::parse(&component, metadata)?;
        Self::with_settings(name, &pool, &settings::parse(&component, metadata)?).await
    }

    async fn with_settings(name: &str, pool: &PoolSettings, pg: &PostgresSettings) -> Result<Self> {
        let component = format!("sequencer store '{name}' (postgresql)");
        let table = pool.table(&component, sql::DEFAULT_TABLE)?;
        let options = layotto_sql::postgres::connect_options(&component, pg)?;
        let timeout = pool.timeout();
        let pool = layotto_sql::open_pool(&component, "PostgreSQL", options, pool).await?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
               sequencer_key TEXT NOT NULL PRIMARY KEY, \
               sequencer_value BIGINT NOT NULL, \
               version BIGINT NOT NULL DEFAULT 1)"
        );
        let run = sqlx::raw_sql(AssertSqlSafe(create)).execute(&pool);
        layotto_sql::create_table(&component, &table, timeout, async { run.await.map(drop) }).await?;
        let stmt = |s: String| AssertSqlSafe(s).into_sql_str();
        Ok(Self {
            add: stmt(format!(
                "INSERT INTO {table} AS t (sequencer_key, sequencer_value, version) VALUES ($1, $2, 1) \
                 ON CONFLICT (sequencer_key) DO UPDATE \
                 SET sequencer_value = t.sequencer_value + EXCLUDED.sequencer_value, version = t.version + 1 \
                 RETURNING sequencer_value"
            )),
            ensure: stmt(format!(
                "INSERT INTO {table} AS t (sequencer_key, sequencer_value, version) VALUES ($1, $2, 1) \
                 ON CONFLICT (sequencer_key) DO UPDATE \
                 SET sequencer_value = EXCLUDED.sequencer_value, version = t.version + 1 \
                 WHERE t.sequencer_value < EXCLUDED.sequencer_value"
            )),
            component,
            pool,
            timeout,
        })
    }

    /// Adds `n` to the counter of `key` and returns the new value.
    async fn add(&self, key: &str, n: i64) -> Result<i64> {
        let what = format!("key '{key}'");
        let query = sqlx::query(self.add.clone()).bind(key).bind(n);
        let row = sql::run(&self.component, &what, self.timeout, query.fetch_one(&self.pool)).await?;
        row.try_get(0).map_err(|e| layotto_sql::sql_error(&self.component, &what, e))
    }
}

#[async_trait]
impl Sequencer for PostgresSequencer {
    async fn next_id(&self, key: &str) -> Result<i64> {
        self.add(key, 1).await
    }

    async fn segment(&self, key: &str, size: u32) -> Result<Option<RangeInclusive<i64>>> {
        let last = self.add(key, i64::from(size)).await?;
        Ok(Some(sql::segment_range(last, size)))
    }

    async fn ensure_bigger_than(&self, key: &str, min: i64) -> Result<()> {
        let query = sqlx::query(self.ensure.clone()).bind(key).bind(min);
        let what = format!("key '{key}'");
        sql::run(&self.component, &what, self.timeout, query.execute(&self.pool)).await.map(drop)
    }

    async fn health(&self) -> Health {
        sql::health("PostgreSQL", async { sqlx::query("SELECT 1").execute(&self.pool).await.map(drop) }).await
    }
}
