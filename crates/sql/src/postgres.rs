//! PostgreSQL connection strings as Dapr's PostgreSQL components take them.

use std::str::FromStr;

use layotto_core::{Error, Result};
use serde::Deserialize;
use sqlx::postgres::{PgConnectOptions, PgSslMode};

/// Dapr's PostgreSQL connection key.
#[derive(Debug, Default, Deserialize)]
pub struct PostgresSettings {
    #[serde(rename = "connectionString", default)]
    pub connection_string: Option<String>,
}

/// `connectionString` as a URL or libpq key/value string.
pub fn connect_options(component: &str, settings: &PostgresSettings) -> Result<PgConnectOptions> {
    let raw = settings
        .connection_string
        .as_deref()
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
        let err = connect_options("c", &PostgresSettings::default()).unwrap_err();
        assert!(err.to_string().contains("connectionString"), "{err}");
    }
}
