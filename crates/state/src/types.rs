use std::time::{Duration, SystemTime};

use layotto_core::{Error, Metadata, Result};

use crate::{TTL_EXPIRE_TIME_KEY, TTL_METADATA_KEY};

/// Optimistic-concurrency mode of a write.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Concurrency {
    /// Same as last-write, unless an etag is given.
    #[default]
    Unspecified,
    /// The write fails if the item changed since the caller read it, or
    /// (without an etag) if it exists already.
    FirstWrite,
    /// The write wins; any etag is ignored.
    LastWrite,
}

/// Read or write consistency, passed through to the component.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Consistency {
    #[default]
    Unspecified,
    Eventual,
    Strong,
}

impl Consistency {
    /// Dapr's spelling, as components receive it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Unspecified => "",
            Self::Eventual => "eventual",
            Self::Strong => "strong",
        }
    }
}

/// What a component supports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Features {
    pub etag: bool,
    pub transactions: bool,
    pub ttl: bool,
    pub first_write: bool,
}

#[derive(Debug, Clone, Default)]
pub struct GetRequest {
    pub key: String,
    pub consistency: Consistency,
    pub metadata: Metadata,
}

impl GetRequest {
    pub fn new(key: impl Into<String>) -> Self {
        Self { key: key.into(), ..Default::default() }
    }
}

/// A stored item as get returns it.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StateValue {
    pub data: Vec<u8>,
    pub etag: Option<String>,
    /// Component metadata about the item, e.g. `ttlExpireTime`.
    pub metadata: Metadata,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct BulkGetItem {
    pub key: String,
    /// `None` when the key does not exist or the get failed.
    pub value: Option<StateValue>,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default)]
pub struct SetRequest {
    pub key: String,
    pub value: Vec<u8>,
    /// `None` (or empty) means no etag check.
    pub etag: Option<String>,
    pub metadata: Metadata,
    pub concurrency: Concurrency,
    pub consistency: Consistency,
}

impl SetRequest {
    pub fn new(key: impl Into<String>, value: impl Into<Vec<u8>>) -> Self {
        Self { key: key.into(), value: value.into(), ..Default::default() }
    }

    pub fn with_etag(mut self, etag: impl Into<String>) -> Self {
        self.etag = Some(etag.into());
        self
    }

    pub fn with_concurrency(mut self, concurrency: Concurrency) -> Self {
        self.concurrency = concurrency;
        self
    }

    pub fn with_metadata(mut self, key: &str, value: &str) -> Self {
        self.metadata.insert(key.to_owned(), value.to_owned());
        self
    }

    /// The etag that must match, if the write checks one.
    pub fn checked_etag(&self) -> Option<&str> {
        checked_etag(self.etag.as_deref(), self.concurrency)
    }
}

#[derive(Debug, Clone, Default)]
pub struct DeleteRequest {
    pub key: String,
    pub etag: Option<String>,
    pub metadata: Metadata,
    pub concurrency: Concurrency,
    pub consistency: Consistency,
}

impl DeleteRequest {
    pub fn new(key: impl Into<String>) -> Self {
        Self { key: key.into(), ..Default::default() }
    }

    pub fn with_etag(mut self, etag: impl Into<String>) -> Self {
        self.etag = Some(etag.into());
        self
    }

    pub fn checked_etag(&self) -> Option<&str> {
        checked_etag(self.etag.as_deref(), self.concurrency)
    }
}

fn checked_etag(etag: Option<&str>, concurrency: Concurrency) -> Option<&str> {
    match (etag, concurrency) {
        (_, Concurrency::LastWrite) | (None | Some(""), _) => None,
        (Some(e), _) => Some(e),
    }
}

/// One step of a transaction.
#[derive(Debug, Clone)]
pub enum Operation {
    Upsert(SetRequest),
    Delete(DeleteRequest),
}

impl Operation {
    pub fn key(&self) -> &str {
        match self {
            Self::Upsert(r) => &r.key,
            Self::Delete(r) => &r.key,
        }
    }

    pub fn key_mut(&mut self) -> &mut String {
        match self {
            Self::Upsert(r) => &mut r.key,
            Self::Delete(r) => &mut r.key,
        }
    }
}

/// The longest TTL accepted, in seconds (Dapr's limit: an int32). Longer
/// ones would overflow expiry times.
pub const MAX_TTL_SECONDS: i64 = i32::MAX as i64;

/// Reads `ttlInSeconds`: `Ok(None)` for no TTL (also for `-1`, which
/// removes one), an error naming the store and key for anything else that is
/// not a positive number up to [`MAX_TTL_SECONDS`].
pub fn ttl_from_metadata(store: &str, key: &str, metadata: &Metadata) -> Result<Option<Duration>> {
    let Some(raw) = metadata.get(TTL_METADATA_KEY) else { return Ok(None) };
    let shown: String = raw.chars().take(40).collect();
    let invalid = || {
        Error::invalid_argument(format!(
            "state store '{store}': key '{key}': metadata '{TTL_METADATA_KEY}' must be a positive number of seconds \
             up to {MAX_TTL_SECONDS}, or -1, got '{shown}'"
        ))
    };
    match raw.trim().parse::<i64>() {
        Ok(-1) => Ok(None),
        Ok(secs) if secs > 0 && secs <= MAX_TTL_SECONDS => Ok(Some(Duration::from_secs(secs as u64))),
        _ => Err(invalid()),
    }
}

/// Parses an etag of the numeric form the built-in components use.
pub fn parse_etag(store: &str, key: &str, etag: &str) -> Result<u64> {
    etag.parse().map_err(|_| {
        Error::new(
            layotto_core::ErrorKind::InvalidEtag,
            format!("state store '{store}': key '{key}': invalid etag '{etag}'"),
        )
    })
}

pub fn etag_mismatch(store: &str, key: &str) -> Error {
    Error::new(
        layotto_core::ErrorKind::EtagMismatch,
        format!("state store '{store}': key '{key}': etag mismatch (the item changed or does not exist)"),
    )
}

pub fn already_exists(store: &str, key: &str) -> Error {
    Error::new(
        layotto_core::ErrorKind::EtagMismatch,
        format!("state store '{store}': key '{key}': first-write failed, the item exists already"),
    )
}

/// Item metadata with `ttlExpireTime` set when the item expires.
pub fn expiry_metadata(expires_at: Option<SystemTime>) -> Metadata {
    let mut metadata = Metadata::new();
    if let Some(at) = expires_at {
        metadata.insert(TTL_EXPIRE_TIME_KEY.to_owned(), humantime::format_rfc3339_seconds(at).to_string());
    }
    metadata
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ttl(v: &str) -> Result<Option<Duration>> {
        ttl_from_metadata("s", "k", &Metadata::from([(TTL_METADATA_KEY.to_owned(), v.to_owned())]))
    }

    #[test]
    fn ttl_values() {
        assert_eq!(ttl("5").unwrap(), Some(Duration::from_secs(5)));
        assert_eq!(ttl("-1").unwrap(), None);
        for bad in ["foo", "-2", "0", ""] {
            let err = ttl(bad).unwrap_err();
            assert_eq!(err.kind(), layotto_core::ErrorKind::InvalidArgument);
            assert!(err.to_string().contains("ttlInSeconds"), "{err}");
        }
    }

    #[test]
    fn last_write_ignores_etag() {
        let r = SetRequest::new("k", "v").with_etag("3").with_concurrency(Concurrency::LastWrite);
        assert_eq!(r.checked_etag(), None);
        assert_eq!(SetRequest::new("k", "v").with_etag("").checked_etag(), None);
        assert_eq!(SetRequest::new("k", "v").with_etag("3").checked_etag(), Some("3"));
    }
}
