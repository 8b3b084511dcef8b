//! `mysql`: ids from a counter table in MySQL or MariaDB, in the layout of
//! Go Layotto's MySQL sequencer, so both runtimes can share the table.
//!
//! Storage: `<tableName>(sequencer_key VARCHAR(255), sequencer_value BIGINT,
//! version BIGINT)` with `sequencer_key` the primary key, created `IF NOT
//! EXISTS` when the component is built. `sequencer_value` is the last id
//! handed out (a segment of `n` moves it by `n`, as Layotto's does); `version`
//! counts updates (Layotto's optimistic-lock column). Keys compare
//! case-sensitively (`utf8mb4_bin`); a stored key longer than 255 characters
//! is rejected. Every operation is one atomic statement:
//! - next_id / segment of `n`: `INSERT … VALUES (key, LAST_INSERT_ID(n), 1) ON DUPLICATE
//!   KEY UPDATE sequencer_value = LAST_INSERT_ID(sequencer_value + n), version = version + 1`;
//!   the new value comes back in the reply's last-insert-id, so no second query and
//!   no transaction are needed;
//! - ensure_bigger_than: the same upsert with `GREATEST(sequencer_value, min)`.
//!
//! Metadata (Layotto's keys): `mysqlUrl` or `connectionString` (required): a
//! `mysql://user:password@host:port/database` URL, Go's DSN
//! `user:password@tcp(host:port)/database`, or just `host[:port]`; `userName`,
//! `password` and `dataBaseName` fill in (or override) the user, password and
//! database; `tableName` (default `layotto_sequencer`), `timeout` (acquiring
//! a connection and answering, default `5s`), `maxConns` (pool size, default 10).

use std::ops::RangeInclusive;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use layotto_core::{ComponentContext, Error, Health, Metadata, Result, settings};
use layotto_sql::PoolSettings;
use serde::Deserialize;
use sqlx::mysql::{MySqlConnectOptions, MySqlPool};
use sqlx::{AssertSqlSafe, SqlSafeStr, SqlStr};

use super::sql;
use crate::Sequencer;

/// `sequencer_key VARCHAR(255)`, counted in characters.
const MAX_KEY_CHARS: usize = 255;

pub struct MySqlSequencer {
    component: String,
    pool: MySqlPool,
    timeout: Duration,
    add: SqlStr,
    ensure: SqlStr,
}

impl MySqlSequencer {
    pub const TYPE: &'static str = "mysql";

    /// The registry constructor.
    pub async fn build(ctx: ComponentContext) -> Result<Arc<dyn Sequencer>> {
        Ok(Arc::new(Self::with_settings(&ctx.name, &ctx.settings()?, &ctx.settings()?).await?))
    }

    /// Connects (failing with `Unavailable` naming the component when the
    /// database cannot be reached) and creates the table if it is missing.
    pub async fn connect(name: &str, metadata: &Metadata) -> Result<Self> {
        let component = format!("sequencer store '{name}' (mysql)");
        let pool = settings::parse(&component, metadata)?;
        Self::with_settings(name, &pool, &settings::parse(&component, metadata)?).await
    }

    async fn with_settings(name: &str, pool: &PoolSettings, mysql: &MySqlSettings) -> Result<Self> {
        let component = format!("sequencer store '{name}' (mysql)");
        let table = pool.table(&component, sql::DEFAULT_TABLE)?;
        let options = connect_options(&component, mysql)?;
        let timeout = pool.timeout();
        let pool = layotto_sql::open_pool(&component, "MySQL", options, pool).await?;
        let create = format!(
            "CREATE TABLE IF NOT EXISTS {table} (\
               sequencer_key VARCHAR({MAX_KEY_CHARS}) CHARACTER SET utf8mb4 COLLATE utf8mb4_bin NOT NULL, \
               sequencer_value BIGINT NOT NULL, \
               version BIGINT NOT NULL DEFAULT 1, \
               PRIMARY KEY (sequencer_key))"
        );
        let run = sqlx::raw_sql(AssertSqlSafe(create)).execute(&pool);
        layotto_sql::create_table(&component, &table, timeout, async { run.await.map(drop) }).await?;
        let stmt = |s: String| AssertSqlSafe(s).into_sql_str();
        Ok(Self {
            add: stmt(format!(
                "INSERT INTO {table} (sequencer_key, sequencer_value, version) VALUES (?, LAST_INSERT_ID(?), 1) \
                 ON DUPLICATE KEY UPDATE \
                 sequencer_value = LAST_INSERT_ID(sequencer_value + ?), version = version + 1"
            )),
            // Assignments run left to right: version looks at the old value.
            ensure: stmt(format!(
                "INSERT INTO {table} (sequencer_key, sequencer_value, version) VALUES (?, ?, 1) \
                 ON DUPLICATE KEY UPDATE \
                 version = IF(sequencer_value < ?, version + 1, version), \
                 sequencer_value = GREATEST(sequencer_value, ?)"
            )),
            component,
            pool,
            timeout,
        })
    }

    fn check_key(&self, key: &str) -> Result<()> {
        if key.chars().count() > MAX_KEY_CHARS {
            return Err(Error::invalid_argument(format!(
                "{}: key '{key}' is longer than {MAX_KEY_CHARS} characters",
                self.component
            )));
        }
        Ok(())
    }

    /// Adds `n` to the counter of `key` and returns the new value.
    async fn add(&self, key: &str, n: i64) -> Result<i64> {
        self.check_key(key)?;
        let what = format!("key '{key}'");
        let query = sqlx::query(self.add.clone()).bind(key).bind(n).bind(n);
        let done = sql::run(&self.component, &what, self.timeout, query.execute(&self.pool)).await?;
        let value = done.last_insert_id();
        match i64::try_from(value) {
            Ok(value) if value > 0 => Ok(value),
            _ => {
                Err(Error::internal(format!("{}: {what}: unexpected counter value {value}", self.component)))
            }
        }
    }
}

#[async_trait]
impl Sequencer for MySqlSequencer {
    async fn next_id(&self, key: &str) -> Result<i64> {
        self.add(key, 1).await
    }

    async fn segment(&self, key: &str, size: u32) -> Result<Option<RangeInclusive<i64>>> {
        let last = self.add(key, i64::from(size)).await?;
        Ok(Some(sql::segment_range(last, size)))
    }

    async fn ensure_bigger_than(&self, key: &str, min: i64) -> Result<()> {
        self.check_key(key)?;
        let query = sqlx::query(self.ensure.clone()).bind(key).bind(min).bind(min).bind(min);
        let what = format!("key '{key}'");
        sql::run(&self.component, &what, self.timeout, query.execute(&self.pool)).await.map(drop)
    }

    async fn health(&self) -> Health {
        sql::health("MySQL", async { sqlx::query("SELECT 1").execute(&self.pool).await.map(drop) }).await
    }
}

/// Layotto's MySQL connection keys.
#[derive(Debug, Default, Deserialize)]
struct MySqlSettings {
    #[serde(rename = "mysqlUrl", alias = "connectionString", default)]
    url: Option<String>,
    #[serde(rename = "userName", default)]
    user_name: Option<String>,
    #[serde(default)]
    password: Option<String>,
    #[serde(rename = "dataBaseName", default)]
    database_name: Option<String>,
}

/// Layotto's metadata keys as connection options.
fn connect_options(component: &str, settings: &MySqlSettings) -> Result<MySqlConnectOptions> {
    let bad = |what: String| Error::config(format!("{component}: {what}"));
    let raw = settings
        .url
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .ok_or_else(|| bad("metadata 'mysqlUrl' (or 'connectionString') is required".to_owned()))?;
    let mut options = if raw.contains("://") {
        MySqlConnectOptions::from_str(raw)
            .map_err(|e| bad(format!("metadata 'mysqlUrl' is not a valid URL: {e}")))?
    } else if let Some(dsn) = GoDsn::parse(raw) {
        let mut options = host_port(MySqlConnectOptions::new(), dsn.address).map_err(bad)?;
        if !dsn.user.is_empty() {
            options = options.username(dsn.user);
        }
        if let Some(password) = dsn.password {
            options = options.password(password);
        }
        if !dsn.database.is_empty() {
            options = options.database(dsn.database);
        }
        options
    } else {
        host_port(MySqlConnectOptions::new(), raw).map_err(bad)?
    };
    if let Some(user) = settings.user_name.as_deref().filter(|u| !u.is_empty()) {
        options = options.username(user);
    }
    if let Some(password) = settings.password.as_deref().filter(|p| !p.is_empty()) {
        options = options.password(password);
    }
    if let Some(database) = settings.database_name.as_deref().filter(|d| !d.is_empty()) {
        options = options.database(database);
    }
    if options.get_database().is_none() {
        return Err(bad(
            "no database: name it in 'mysqlUrl' (mysql://host/db) or in metadata 'dataBaseName'".to_owned(),
        ));
    }
    Ok(options)
}

pub(super) fn host_port(
    options: MySqlConnectOptions,
    address: &str,
) -> std::result::Result<MySqlConnectOptions, String> {
    match address.rsplit_once(':') {
        Some((host, port)) => {
            let port =
                port.parse().map_err(|_| format!("metadata 'mysqlUrl' has an invalid port: '{address}'"))?;
            Ok(options.host(host).port(port))
        }
        None => Ok(options.host(address)),
    }
}

/// Go's MySQL DSN: `user:password@tcp(host:port)/database?params`.
struct GoDsn<'a> {
    user: &'a str,
    password: Option<&'a str>,
    address: &'a str,
    database: &'a str,
}

impl<'a> GoDsn<'a> {
    fn parse(raw: &'a str) -> Option<Self> {
        let at = raw.rfind("@tcp(")?;
        let (userinfo, rest) = (&raw[..at], &raw[at + "@tcp(".len()..]);
        let (address, rest) = rest.split_once(')')?;
        let database = rest.strip_prefix('/')?.split('?').next().unwrap_or_default();
        let (user, password) = match userinfo.split_once(':') {
            Some((user, password)) => (user, Some(password)),
            None => (userinfo, None),
        };
        Some(Self { user, password, address, database })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    fn meta(pairs: &[(&str, &str)]) -> MySqlSettings {
        let metadata: Metadata = pairs.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())).collect();
        settings::parse("c", &metadata).unwrap()
    }

    #[test]
    fn connection_forms() {
        let url = connect_options("c", &meta(&[("mysqlUrl", "mysql://root@db:3307/seq")])).unwrap();
        assert_eq!((url.get_host(), url.get_port(), url.get_database()), ("db", 3307, Some("seq")));
        let dsn = connect_options(
            "c",
            &meta(&[("connectionString", "u:p@ss@tcp(10.0.0.1:3308)/ids?parseTime=true")]),
        )
        .unwrap();
        assert_eq!((dsn.get_host(), dsn.get_port(), dsn.get_username()), ("10.0.0.1", 3308, "u"));
        assert_eq!(dsn.get_database(), Some("ids"));
        let host = connect_options(
            "c",
            &meta(&[("mysqlUrl", "localhost:3306"), ("userName", "root"), ("dataBaseName", "test")]),
        )
        .unwrap();
        assert_eq!(
            (host.get_host(), host.get_username(), host.get_database()),
            ("localhost", "root", Some("test"))
        );
        let err = connect_options("c", &meta(&[("mysqlUrl", "localhost")])).unwrap_err();
        assert!(err.to_string().contains("dataBaseName"), "{err}");
        let err = connect_options("c", &MySqlSettings::default()).unwrap_err();
        assert!(err.to_string().contains("mysqlUrl"), "{err}");
        let err = connect_options("c", &meta(&[("mysqlUrl", "h:port"), ("dataBaseName", "x")])).unwrap_err();
        assert!(err.to_string().contains("port"), "{err}");
    }
}
