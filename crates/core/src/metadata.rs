use std::collections::HashMap;
use std::str::FromStr;

use crate::{Error, Result};

/// Component and request metadata: string keys to string values, as on the wire.
pub type Metadata = HashMap<String, String>;

/// Typed reads of metadata values with errors that name the key.
pub trait MetadataExt {
    /// The value of `key`, or of the first of `aliases` present.
    fn get_any(&self, key: &str, aliases: &[&str]) -> Option<&str>;

    /// Parses `key` when present; `component` names the owner in the error.
    fn parse_opt<T: FromStr>(&self, component: &str, key: &str) -> Result<Option<T>>;

    /// A boolean flag; accepts true/false/1/0 in any case.
    fn flag(&self, component: &str, key: &str, default: bool) -> Result<bool>;
}

impl MetadataExt for Metadata {
    fn get_any(&self, key: &str, aliases: &[&str]) -> Option<&str> {
        std::iter::once(key).chain(aliases.iter().copied()).find_map(|k| self.get(k)).map(String::as_str)
    }

    fn parse_opt<T: FromStr>(&self, component: &str, key: &str) -> Result<Option<T>> {
        match self.get(key).map(|v| v.trim()) {
            None | Some("") => Ok(None),
            Some(raw) => raw.parse().map(Some).map_err(|_| {
                Error::invalid_argument(format!("{component}: metadata '{key}' has an invalid value '{raw}'"))
            }),
        }
    }

    fn flag(&self, component: &str, key: &str, default: bool) -> Result<bool> {
        match self.get(key).map(|v| v.trim().to_ascii_lowercase()) {
            None => Ok(default),
            Some(v) if v.is_empty() => Ok(default),
            Some(v) if v == "true" || v == "1" => Ok(true),
            Some(v) if v == "false" || v == "0" => Ok(false),
            Some(v) => Err(Error::invalid_argument(format!(
                "{component}: metadata '{key}' must be true or false, got '{v}'"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_flag_name_the_key() {
        let mut m = Metadata::new();
        m.insert("redisDB".into(), "x".into());
        m.insert("enableTLS".into(), "TRUE".into());
        let err = m.parse_opt::<u8>("state 'redis'", "redisDB").unwrap_err();
        assert!(err.to_string().contains("redisDB"), "{err}");
        assert!(m.flag("c", "enableTLS", false).unwrap());
        assert!(!m.flag("c", "missing", false).unwrap());
        assert_eq!(m.get_any("host", &["redisDB"]), Some("x"));
    }
}
