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
use layotto_core::{ComponentContext, Error, Health, Metadata, MetadataExt, Result};
use sqlx::postgres::{PgPool, PgPoolOptions};
use sqlx::{AssertSqlSafe, ConnectOptions, Row, SqlSafeStr, SqlStr};

use super::sql::{self, DEFAULT_MAX_CONNS, DEFAULT_TIMEOUT};
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
        Ok(Arc::new(Self::connect(&ctx.name, &ctx.metadata).await?))
    }

    /// Connects (failing with `Unavailable` naming the component when the
    /// database cannot be reached) and creates the table if it is missing.
    pub async fn connect(name: &str, metadata: &Metadata) -> Result<Self> {
        let component = format!("sequencer store '{name}' (postgresql)");
        let table = sql::table_name(&component, metadata)?;
        let options = layotto_sql::postgres::connect_options(&component, metadata)?;
        let timeout = sql::duration(&component, metadata, "timeout")?.unwrap_or(DEFAULT_TIMEOUT);
        let max_conns =
            metadata.parse_opt::<u32>(&component, "maxConns")?.unwrap_or(DEFAULT_MAX_CONNS).clamp(1, 1000);

        // One direct connection first, so an unreachable database fails now
        // with its real cause instead of a pool timeout.
        match tokio::time::timeout(timeout, options.connect()).await {
            Ok(Ok(conn)) => drop(conn),
            Ok(Err(e)) => return Err(sql::connect_error(&component, "PostgreSQL", e)),
            Err(_) => {
                return Err(Error::unavailable(format!(
                    "{component}: cannot connect to PostgreSQL: no answer within {timeout:?}"
                )));
            }
        }
        let pool = PgPoolOptions::new()
            .max_connections(max_conns)
            .acquire_timeout(timeout)
            .connect_lazy_with(options);
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
               sequencer_key TEXT NOT NULL PRIMARY KEY, \
               sequencer_value BIGINT NOT NULL, \
               version BIGINT NOT NULL DEFAULT 1)"
        );
        let what = format!("create table '{table}'");
        let created = sql::run(&component, &what, timeout, async {
            match sqlx::raw_sql(AssertSqlSafe(create)).execute(&pool).await {
                // Another runtime created it at the same moment (IF NOT EXISTS races).
                Err(sqlx::Error::Database(db)) if matches!(db.code().as_deref(), Some("23505" | "42P07")) => {
                    Ok(())
                }
                other => other.map(drop),
            }
        });
        created.await?;
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
        row.try_get(0).map_err(|e| sql::sql_error(&self.component, &what, e))
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
