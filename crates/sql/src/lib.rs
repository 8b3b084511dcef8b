//! What the SQL components of layotto-rs (lock, sequencer) share: metadata
//! reads, the sqlx error → `ErrorKind` mapping, running a call within the
//! configured timeout, health, and PostgreSQL connection strings.

use std::time::Duration;

use layotto_core::{Error, ErrorKind, Health, Metadata, Result};

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

/// `tableName`: an SQL identifier (letters, digits, `_`), optionally `schema.table`.
pub fn table_name(component: &str, metadata: &Metadata, default: &str) -> Result<String> {
    let table = metadata.get("tableName").map(|t| t.trim()).filter(|t| !t.is_empty()).unwrap_or(default);
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
    Ok(table.to_owned())
}

/// A duration in metadata, such as `5s` or `500ms`.
pub fn duration(component: &str, metadata: &Metadata, key: &str) -> Result<Option<Duration>> {
    match metadata.get(key).map(|v| v.trim()).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(raw) => humantime::parse_duration(raw).map(Some).map_err(|_| {
            Error::config(format!("{component}: metadata '{key}' must be a duration such as 5s, got '{raw}'"))
        }),
    }
}

#[cfg(feature = "postgres")]
pub mod postgres;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::expect_used)]
    use super::*;

    #[test]
    fn table_names_are_identifiers() {
        let meta = |t: &str| Metadata::from([("tableName".to_owned(), t.to_owned())]);
        assert_eq!(table_name("c", &Metadata::new(), "layotto_sequencer").unwrap(), "layotto_sequencer");
        assert_eq!(table_name("c", &meta("db1.seq_1"), "t").unwrap(), "db1.seq_1");
        for bad in ["1abc", "a;drop table x", "a.b.c", "a b", "`x`"] {
            let err = table_name("c", &meta(bad), "t").unwrap_err();
            assert!(err.to_string().contains("tableName"), "{bad}: {err}");
        }
    }
}
