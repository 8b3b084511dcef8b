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
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, Health, Metadata, MetadataExt, Result};
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions, PgSslMode};
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
        let options = connect_options(&component, metadata)?;
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

/// `connectionString` as a URL or libpq key/value string.
fn connect_options(component: &str, metadata: &Metadata) -> Result<PgConnectOptions> {
    let raw = metadata
        .get("connectionString")
        .map(|s| s.trim())
        .filter(|s| !s.is_empty())
        .ok_or_else(|| Error::config(format!("{component}: metadata 'connectionString' is required")))?;
    let options = if raw.contains("://") {
        PgConnectOptions::from_str(raw).map_err(|e| {
            Error::config(format!("{component}: metadata 'connectionString' is not a valid URL: {e}"))
        })?
    } else {
        key_value_options(component, raw)?
    };
    Ok(options.application_name("layotto"))
}

fn key_value_options(component: &str, raw: &str) -> Result<PgConnectOptions> {
    let bad = |what: String| Error::config(format!("{component}: metadata 'connectionString': {what}"));
    let mut options = PgConnectOptions::new_without_pgpass();
    for pair in raw.split_whitespace() {
        let Some((key, value)) = pair.split_once('=') else {
            return Err(bad(format!("expected key=value, got '{pair}'")));
        };
        let value = value.trim_matches('\'');
        options = match key {
            "host" => options.host(value),
            "port" => options.port(value.parse().map_err(|_| bad(format!("invalid port '{value}'")))?),
            "user" | "username" => options.username(value),
            "password" => options.password(value),
            "dbname" | "database" => options.database(value),
            "application_name" => options.application_name(value),
            "sslmode" => options
                .ssl_mode(PgSslMode::from_str(value).map_err(|_| bad(format!("invalid sslmode '{value}'")))?),
            // Pool and timeout settings of other drivers: ours come from metadata.
            "connect_timeout" | "pool_max_conns" | "pool_min_conns" => options,
            other => return Err(bad(format!("unsupported key '{other}'"))),
        };
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn key_value_connection_strings() {
        let opts = key_value_options("c", "host=db port=5433 user=u password=p dbname=x").unwrap();
        assert_eq!((opts.get_host(), opts.get_port(), opts.get_username()), ("db", 5433, "u"));
        assert_eq!(opts.get_database(), Some("x"));
        assert!(key_value_options("c", "hots=db").unwrap_err().to_string().contains("hots"));
        let err = connect_options("c", &Metadata::new()).unwrap_err();
        assert!(err.to_string().contains("connectionString"), "{err}");
    }
}
