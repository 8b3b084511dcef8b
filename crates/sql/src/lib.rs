//! What the SQL components of layotto-rs (lock, sequencer) share: metadata
//! reads, the sqlx error → `ErrorKind` mapping, running a call within the
//! configured timeout, health, and PostgreSQL connection strings.

use std::time::Duration;

use layotto_core::{Error, ErrorKind, Health, Result, settings};
use serde::Deserialize;
use sqlx::ConnectOptions;

pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_MAX_CONNS: u32 = 10;
const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Connection and pool trouble is UNAVAILABLE (retry later); anything else is internal.
pub fn sql_error(component: &str, what: &str, e: sqlx::Error) -> Error {
    let kind = match &e {
        sqlx::Error::Io(_)
        | sqlx::Error::Tls(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => ErrorKind::Unavailable,
        // SQLSTATE class 08 (connection exception) and 57P (PostgreSQL: shutting down).
        sqlx::Error::Database(db)
            if db.code().is_some_and(|c| c.starts_with("08") || c.starts_with("57P")) =>
        {
            ErrorKind::Unavailable
        }
        _ => ErrorKind::Internal,
    };
    Error::new(kind, format!("{component}: {what}: {e}"))
}

/// The error of the first connection at build time: a database that answers
/// and refuses (credentials, unknown database) is a configuration problem.
pub fn connect_error(component: &str, backend: &str, e: sqlx::Error) -> Error {
    let kind = if matches!(e, sqlx::Error::Database(_)) { ErrorKind::Config } else { ErrorKind::Unavailable };
    Error::new(kind, format!("{component}: cannot connect to {backend}: {e}"))
}

/// Runs one database call within `timeout`, mapping its errors.
pub async fn run<T>(
    component: &str,
    what: &str,
    timeout: Duration,
    call: impl Future<Output = sqlx::Result<T>>,
) -> Result<T> {
    match tokio::time::timeout(timeout, call).await {
        Ok(result) => result.map_err(|e| sql_error(component, what, e)),
        Err(_) => Err(Error::new(
            ErrorKind::Timeout,
            format!("{component}: {what}: the database did not answer within {timeout:?}"),
        )),
    }
}

/// `SELECT 1` within two seconds.
pub async fn health(backend: &str, ping: impl Future<Output = sqlx::Result<()>>) -> Health {
    match tokio::time::timeout(HEALTH_TIMEOUT, ping).await {
        Ok(Ok(())) => Health::up(),
        Ok(Err(e)) => Health::down(format!("SELECT 1 on {backend} failed: {e}")),
        Err(_) => Health::down(format!("SELECT 1 on {backend} timed out after {HEALTH_TIMEOUT:?}")),
    }
}

/// The settings every SQL component takes.
#[derive(Debug, Default, Deserialize)]
pub struct PoolSettings {
    #[serde(rename = "tableName", default)]
    pub table_name: Option<String>,
    /// Acquiring a connection and answering, default 5s.
    #[serde(default, deserialize_with = "settings::duration")]
    pub timeout: Option<Duration>,
    #[serde(rename = "maxConns", default)]
    pub max_conns: Option<u32>,
}

impl PoolSettings {
    pub fn timeout(&self) -> Duration {
        self.timeout.unwrap_or(DEFAULT_TIMEOUT)
    }

    pub fn max_conns(&self) -> u32 {
        self.max_conns.unwrap_or(DEFAULT_MAX_CONNS).clamp(1, 1000)
    }

    /// `tableName` (or `default`), checked to be an SQL identifier.
    pub fn table(&self, component: &str, default: &str) -> Result<String> {
        let table = self.table_name.as_deref().map(str::trim).filter(|t| !t.is_empty()).unwrap_or(default);
        check_table_name(component, table)?;
        Ok(table.to_owned())
    }
}

/// `tableName`: an SQL identifier (letters, digits, `_`), optionally `schema.table`.
fn check_table_name(component: &str, table: &str) -> Result<()> {
    let valid_part = |p: &str| {
        !p.is_empty()
            && p.len() <= 63
            && p.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    let parts: Vec<&str> = table.split('.').collect();
    if parts.len() > 2 || !parts.iter().all(|p| valid_part(p)) {
        return Err(Error::config(format!(
            "{component}: metadata 'tableName' must be an SQL identifier (letters, digits, '_', \
             optionally schema.table), got '{table}'"
        )));
    }
    Ok(())
}

/// A pool that connects lazily, after one direct connection has shown that
/// the database answers, so a misconfigured or unreachable database fails
/// the build now with its real cause instead of a pool timeout later.
pub async fn open_pool<DB: sqlx::Database>(
    component: &str,
    backend: &str,
    options: <DB::Connection as sqlx::Connection>::Options,
    pool: &PoolSettings,
) -> Result<sqlx::Pool<DB>> {
    let timeout = pool.timeout();
    match tokio::time::timeout(timeout, options.connect()).await {
        Ok(Ok(conn)) => drop(conn),
        Ok(Err(e)) => return Err(connect_error(component, backend, e)),
        Err(_) => {
            return Err(Error::unavailable(format!(
                "{component}: cannot connect to {backend}: no answer within {timeout:?}"
            )));
        }
    }
    Ok(sqlx::pool::PoolOptions::<DB>::new()
        .max_connections(pool.max_conns())
        .acquire_timeout(timeout)
        .connect_lazy_with(options))
}

/// Runs a `CREATE TABLE IF NOT EXISTS`, tolerating another runtime that
/// creates the same table at the same moment (PostgreSQL's IF NOT EXISTS races).
pub async fn create_table(
    component: &str,
    table: &str,
    timeout: Duration,
    create: impl Future<Output = sqlx::Result<()>>,
) -> Result<()> {
    let what = format!("create table '{table}'");
    run(component, &what, timeout, async {
        match create.await {
            Err(sqlx::Error::Database(db)) if matches!(db.code().as_deref(), Some("23505" | "42P07")) => {
                Ok(())
            }
            other => other,
        }
    })
    .await
}

#[cfg(feature = "postgres")]
pub mod postgres;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;
    use layotto_core::Metadata;

    #[test]
    fn table_names_are_identifiers() {
        let meta = |t: &str| Metadata::from([("tableName".to_owned(), t.to_owned())]);
        let table_name = |c: &str, m: &Metadata, default: &str| {
            settings::parse::<PoolSettings>(c, m).and_then(|p| p.table(c, default))
        };
        assert_eq!(table_name("c", &Metadata::new(), "layotto_sequencer").unwrap(), "layotto_sequencer");
        assert_eq!(table_name("c", &meta("db1.seq_1"), "t").unwrap(), "db1.seq_1");
        for bad in ["1abc", "a;drop table x", "a.b.c", "a b", "`x`"] {
            let err = table_name("c", &meta(bad), "t").unwrap_err();
            assert!(err.to_string().contains("tableName"), "{bad}: {err}");
        }
    }
}
